"""What happened to one reproxied request, for access logs and metrics (SPEC R7.4).

Logs (R7.1) tell an operator *that* a replica failed; a report tells a program *what* each
request did, so that an access log can name the storage node that served it and a metrics
exporter can count failovers and resumes without parsing log lines::

    ReproxyReport                  one per reproxied request, never for a pass-through
     +-- attempts                  one AttemptReport per URL tried, in order
     +-- url, status, bytes ...    what the client got

The middleware creates the report when it sees the app's ``X-Reproxy-Url`` and puts it in
``environ["wsgi_reproxy.report"]`` at once; it fills it in as the request goes (the
dataclasses are mutable for that reason), and when the body has ended, broken, or the
client went away, the body's ``close()`` hands it to the ``observer=`` callable through
:func:`notify`, exactly once.  Observers run on the request's thread after the last byte:
they must be quick, and they can never break the request: :func:`notify` logs whatever
they raise and swallows it.

:meth:`ReproxyReport.summary` contains the internal storage URL that served the body:
fine for an access log, which is internal too, never for anything the client sees.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

__all__ = [
    "REPORT_ENVIRON_KEY",
    "AttemptOutcome",
    "AttemptReport",
    "Observer",
    "Outcome",
    "ReproxyReport",
    "notify",
]

log = logging.getLogger(__name__)

REPORT_ENVIRON_KEY = "wsgi_reproxy.report"

AttemptOutcome: TypeAlias = Literal["served", "failed", "skipped", "resumed"]
Outcome: TypeAlias = Literal["complete", "aborted", "client_gone", "failed"]


@dataclass(slots=True)
class AttemptReport:
    """One URL of the directive, tried (or skipped) once.

    :param url: the URL as the directive gave it.
    :param status: the target's status code, or None when no response head came.
    :param outcome: ``"served"`` (it started the body), ``"failed"`` (error, timeout, bad
        status, size mismatch; ``reason`` says which), ``"skipped"`` (not tried, e.g. a
        host outside ``upstream_hosts``) or ``"resumed"`` (it continued a body that broke
        on an earlier URL).
    :param reason: a short text for the log when it did not serve, else None.
    :param timed_out: the attempt failed because a timeout expired.
    :param seconds: from the request to the target to its response head; None when no
        head came.
    """

    url: str
    status: int | None
    outcome: AttemptOutcome
    reason: str | None = None
    timed_out: bool = False
    seconds: float | None = None


@dataclass(slots=True)
class ReproxyReport:
    """The report of one reproxied request, at ``environ["wsgi_reproxy.report"]``.

    :param attempts: one :class:`AttemptReport` per URL, in the order they were tried.
    :param url: the URL that started the body; None when none did.
    :param outcome: ``"complete"`` (the whole body was sent), ``"aborted"`` (the body broke
        and could not be resumed: the connection was cut), ``"client_gone"`` (the client
        hung up first), ``"failed"`` (every URL failed: a 502 or 504 was sent); None while
        the body is still being sent.
    :param status: the status code sent to the client.
    :param bytes: how many body bytes were handed to the server.
    :param seconds: from the directive seen to the end of the body, in all.
    :param first_byte_seconds: from the directive seen to the response started (the
        client's wait for storage); None when no response was started.
    :param cache: ``"hit"``, ``"miss"`` or ``"stored"`` when a decision cache is
        configured, else None.
    :param digest: ``"match"`` or ``"mismatch"`` when the body was checked against
        ``X-Reproxy-Expected-Digest`` to its end (SPEC R10), else None.

    ``str(report)`` is :meth:`summary`:

    >>> report = ReproxyReport(
    ...     attempts=[
    ...         AttemptReport("http://store-1/f", None, "failed", "connection refused"),
    ...         AttemptReport("http://store-2/f", 200, "served", seconds=0.004),
    ...     ],
    ...     url="http://store-2/f", outcome="complete", status=200, bytes=1048576,
    ...     seconds=0.012, first_byte_seconds=0.005,
    ... )
    >>> print(report)
    complete 200 1048576B 0.012s via http://store-2/f (1 failed, 0 resumed)
    """

    attempts: list[AttemptReport] = field(default_factory=list)
    url: str | None = None
    outcome: Outcome | None = None
    status: int | None = None
    bytes: int = 0
    seconds: float = 0.0
    first_byte_seconds: float | None = None
    cache: str | None = None
    digest: str | None = None

    @property
    def served_url(self) -> str | None:
        """The URL that sent the last bytes: :attr:`url`, or the last replica that resumed."""
        for attempt in reversed(self.attempts):
            if attempt.outcome in ("served", "resumed"):
                return attempt.url
        return self.url

    @property
    def resumes(self) -> int:
        """How many times a broken body was continued from another replica."""
        return sum(1 for attempt in self.attempts if attempt.outcome == "resumed")

    @property
    def failed_attempts(self) -> int:
        """How many attempts failed (``"skipped"`` URLs are not counted)."""
        return sum(1 for attempt in self.attempts if attempt.outcome == "failed")

    def summary(self) -> str:
        """One line for an access log; it names the internal URL that served the body.

        ``outcome status bytesB secondss [via URL] (N failed, N resumed) [cache X]
        [digest X]``, with ``streaming`` as the outcome while the body is still being sent
        and ``-`` for a status not sent yet.  A URL with a space, a control or a non-ASCII
        character is written with ``repr()``, so it cannot forge or split a log line.
        """
        parts = [
            self.outcome or "streaming",
            "-" if self.status is None else str(self.status),
            f"{self.bytes}B",
            f"{self.seconds:.3f}s",
        ]
        served = self.served_url
        if served is not None:
            parts.append(f"via {_loggable(served)}")
        parts.append(f"({self.failed_attempts} failed, {self.resumes} resumed)")
        if self.cache is not None:
            parts.append(f"cache {self.cache}")
        if self.digest is not None:
            parts.append(f"digest {self.digest}")
        return " ".join(parts)

    def __str__(self) -> str:
        return self.summary()


def _loggable(url: str) -> str:
    """The URL as is when it is plain printable ASCII, else its ``repr()``: a log line
    cannot be forged or split through it (docs/security.rst)."""
    if url.isascii() and url.isprintable() and not any(char.isspace() for char in url):
        return url
    return repr(url)


Observer: TypeAlias = Callable[[ReproxyReport], object]
"""What ``observer=`` takes: any callable of one :class:`ReproxyReport`; its result is
ignored."""


def notify(observer: Observer, report: ReproxyReport) -> None:
    """Call ``observer(report)``; log what it raises (ERROR, with the traceback), never raise.

    An observer is monitoring: a bug in it must not turn a served download into a server
    error.  ``BaseException`` that is not an ``Exception`` (``SystemExit`` from a worker
    timeout, ``KeyboardInterrupt``) still propagates.
    """
    try:
        observer(report)
    except Exception:
        log.exception("observer %r raised on the report %r", observer, report.summary())
