"""Exceptions raised by wsgi-reproxy.

The tree is small on purpose::

    ReproxyError
     +-- UpstreamError            one attempt at one URL failed (never leaves the package)
     +-- AllUpstreamsFailed       every URL failed before a response could start
     +-- UpstreamBodyError        the target's body broke after the response started

Only :class:`UpstreamBodyError` ever reaches the WSGI server: it is raised from the
body iterator so that the server aborts the client connection instead of ending a short
body cleanly (SPEC R6.4).  It is deliberately *not* an :class:`OSError`: servers read
those as "the client went away" (gunicorn then logs a socket error), while this is a storage
failure.  The first piece of a body is read before the response starts, so a target that
fails before its first byte is one more failed attempt (next URL, or 502/504), never a
dropped connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["AllUpstreamsFailed", "Attempt", "ReproxyError", "UpstreamBodyError", "UpstreamError"]


class ReproxyError(Exception):
    """Base class of every wsgi-reproxy exception."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One failed try at one URL: what was asked and why it did not serve."""

    url: str
    reason: str
    timed_out: bool = False


class UpstreamError(ReproxyError):
    """One URL could not serve the response (network error, bad status, size mismatch)."""

    def __init__(
        self, url: str, reason: str, *, timed_out: bool = False, status: int | None = None
    ) -> None:
        super().__init__(f"{url!r}: {reason}")
        self.url = url
        self.reason = reason
        self.timed_out = timed_out
        self.status = status  # the target's, when it answered
        self.seconds: float | None = None  # to the target's response head, when one came

    @property
    def attempt(self) -> Attempt:
        return Attempt(self.url, self.reason, self.timed_out)


class AllUpstreamsFailed(ReproxyError):
    """No URL of the directive served; ``attempts`` says why, one entry per URL tried."""

    def __init__(self, attempts: Sequence[Attempt]) -> None:
        super().__init__("; ".join(f"{a.url!r}: {a.reason}" for a in attempts) or "no usable URL")
        self.attempts = tuple(attempts)

    @property
    def timed_out(self) -> bool:
        """True when there was at least one attempt and every one of them timed out (-> 504)."""
        return bool(self.attempts) and all(a.timed_out for a in self.attempts)


class UpstreamBodyError(ReproxyError):
    """The target's body broke mid-stream; raised so the server aborts the connection."""

    def __init__(self, url: str, reason: str, *, sent: int) -> None:
        super().__init__(f"reproxied body from {url!r} broke after {sent} bytes: {reason}")
        self.url = url
        self.reason = reason
        self.sent = sent
