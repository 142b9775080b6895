"""One enabled request: watch the app's ``start_response``, then reproxy or pass through.

With :mod:`wsgi_reproxy.middleware`, the only module that sees environ and start_response.
The app's answer decides::

    start_response(status, headers)          no X-Reproxy-Url  -> pass it on at once
                                             X-Reproxy-Url     -> hold it; write() discards
    start_response(..., exc_info)            the app's error page: pass it on     (R4.2)
    app returned, directive held             fetch the first working URL and stream it,
                                             or 502/504 when none works          (R4-R6)

Apps that call ``start_response`` lazily, from inside a generator, are advanced until they
do, and what they yielded meanwhile is kept (PEP 3333).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeAlias
from wsgiref.types import StartResponse, WSGIApplication

from .abort import abort_hook
from .body import ReproxyBody
from .body_digest import digest_check
from .client_head import client_head, error_head
from .closing import ClosingIterable, close_iterable
from .directive import Directive, InvalidDirective, Rejected, parse_directive
from .errors import AllUpstreamsFailed, Attempt
from .file_source import URL_ENVIRON_KEY, FileSource
from .headers import strip_reproxy_headers
from .report import REPORT_ENVIRON_KEY, AttemptReport, Outcome, ReproxyReport, notify
from .resume import resume_plan
from .settings import Settings
from .target import Target
from .upstream import Upstream, discard

__all__ = ["CAPABILITY", "CAPABILITY_KEY", "URL_ENVIRON_KEY", "ExcInfo", "Exchange"]

log = logging.getLogger(__name__)

# What start_response's third argument is (PEP 3333); wsgiref.types names the rest.
ExcInfo: TypeAlias = (
    tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
)

CAPABILITY = "reproxy-file"
CAPABILITY_KEY = "HTTP_X_PROXY_CAPABILITIES"


def _discard_write(data: bytes) -> None:
    """``write()`` for an app whose body is being replaced: the data is thrown away (R4.4)."""


@dataclass(slots=True, eq=False)
class Exchange(FileSource):
    """One enabled request: watches the app's start_response, then reproxies or passes."""

    settings: Settings
    upstream: Upstream
    app: WSGIApplication
    environ: dict[str, Any]
    start_response: StartResponse
    started: bool = False
    passed: bool = False  # the real start_response has been called: pass-through
    directive: Directive | InvalidDirective | None = None
    app_headers: list[tuple[str, str]] = field(default_factory=list)
    report: ReproxyReport = field(default_factory=ReproxyReport)
    started_at: float = 0.0  # when the directive was seen

    def app_start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], object]:
        if exc_info is not None:
            # An error page is the app's own answer: pass it, never reproxy it (R4.2).  If
            # the real headers were already sent, the real start_response re-raises.
            self.started = self.passed = True
            self.directive = None
            return self.start_response(status, strip_reproxy_headers(headers), exc_info)
        if self.started:
            raise AssertionError("start_response called a second time without exc_info (PEP 3333)")
        self.started = True
        directive = self._parse(headers)
        if directive is None:
            self.passed = True
            return self.start_response(status, strip_reproxy_headers(headers))
        self._take(directive, headers)
        return _discard_write

    def _take(
        self, directive: Directive | InvalidDirective, app_headers: list[tuple[str, str]]
    ) -> None:
        """The directive to serve, from the app's headers (or a kept decision's)."""
        self.directive, self.app_headers = directive, app_headers
        self.started_at = time.monotonic()
        self.environ[REPORT_ENVIRON_KEY] = self.report

    def _parse(self, headers: list[tuple[str, str]]) -> Directive | InvalidDirective | None:
        rejected: list[Rejected] = []
        directive = parse_directive(
            headers,
            max_urls=self.settings.max_urls,
            hosts=self.settings.upstream_hosts,
            file_roots=self.settings.file_roots,
            rejected=rejected,
        )
        for item in rejected:
            log.warning("reproxy URL skipped: %r %s", item.url, item.reason)
            self.report.attempts.append(AttemptReport(item.url, None, "skipped", item.reason))
        return directive

    def run(self) -> Iterable[bytes]:
        app_iterable = self.app(self.environ, self.app_start_response)
        try:
            head: list[bytes] = []
            rest: Iterable[bytes] = app_iterable
            if not self.started:
                rest = iter(app_iterable)
                head = self._wait_for_start_response(rest)
            if self.passed:
                return (
                    ClosingIterable(head, rest, app_iterable)
                    if head or rest is not app_iterable
                    else app_iterable
                )
            return self._reproxy(app_iterable)
        except BaseException:
            close_iterable(app_iterable)
            raise

    def _wait_for_start_response(self, iterator: Iterable[bytes]) -> list[bytes]:
        """Advance a lazy app until it calls start_response, keeping what it yielded."""
        head = []
        for chunk in iterator:
            head.append(chunk)
            if self.started:
                return head
        if not self.started:
            raise RuntimeError("the application returned without calling start_response")
        return head

    def _reproxy(self, app_iterable: Iterable[bytes]) -> Iterable[bytes]:
        directive = self.directive
        if isinstance(directive, InvalidDirective):
            log.error("reproxy directive unusable, answering 502: %s", directive.reason)
            return self._error(502, app_iterable)
        assert directive is not None
        try:
            return self._serve(directive, app_iterable)
        except AllUpstreamsFailed as failure:
            status = 504 if failure.timed_out else 502
            if not directive.urls and self.report.attempts[-1].status == 404:
                status = 404  # the file, the only source, does not exist (R9.2)
            log.log(
                logging.WARNING if status == 404 else logging.ERROR,
                "reproxy failed, answering %d: every %s failed: %s",
                status,
                "URL" if directive.file is None else "source",
                "; ".join(f"{a.url!r}: {a.reason}" for a in failure.attempts),
            )
            return self._error(status, app_iterable)

    def _serve(self, directive: Directive, app_iterable: Iterable[bytes]) -> Iterable[bytes]:
        """The first source that works, streamed: the file, then the URLs in order;
        ``AllUpstreamsFailed`` when none does."""
        file_failed: list[Attempt] = []
        if directive.file is not None:
            served = self._serve_file(directive, app_iterable)
            if not isinstance(served, Attempt):
                return served
            file_failed.append(served)
        try:
            target, later, headers = self._first(directive)
        except AllUpstreamsFailed as failure:
            raise AllUpstreamsFailed([*file_failed, *failure.attempts]) from None
        self._found(directive)
        return self._stream(target, later, headers, directive, app_iterable)

    def _first(self, directive: Directive) -> tuple[Target, tuple[str, ...], dict[str, str]]:
        """The first URL that answers, the URLs after it, and the request headers sent."""
        method = "HEAD" if self.environ.get("REQUEST_METHOD") == "HEAD" else "GET"
        headers = self.upstream.request_headers(self.environ, method)
        target, later = self.upstream.first(
            directive.urls, method, headers, directive.expected_size, self.report, directive.digest
        )
        return target, later, headers

    def _stream(
        self,
        target: Target,
        later: tuple[str, ...],
        headers: dict[str, str],
        directive: Directive,
        app_iterable: Iterable[bytes],
    ) -> Iterable[bytes]:
        self._start(target)
        return ReproxyBody(
            target,
            chunk_size=self.settings.chunk_size,
            app_iterable=app_iterable,
            resume=resume_plan(
                self.settings.resume, target, self.upstream, later, headers, directive
            ),
            report=self.report,
            finish=self._finish,
            on_abort=abort_hook(self.environ),
            check=digest_check(directive.digest, target),
        )

    def _start(self, target: Target) -> None:
        """Start the client's response with the target's status and headers."""
        settings = self.settings
        status, headers, unsafe = client_head(
            target, self.app_headers, settings.preserved, settings.hide
        )
        if unsafe:
            log.warning("reproxy: dropped unsafe target headers %r from %r", unsafe, target.url)
        try:
            self.start_response(status, headers)
        except BaseException:
            discard(target.response)  # run() closes the app's iterable
            raise
        report = self.report
        # (a digest verdict is this body's own: a URL that failed one before does not count)
        report.url, report.status, report.digest = target.url, target.status, None
        report.first_byte_seconds = time.monotonic() - self.started_at
        self.environ[URL_ENVIRON_KEY] = target.url
        log.debug("reproxying %r: %d", target.url, target.status)

    def _finish(self, outcome: Outcome, sent: int) -> None:
        """The body ended, broke or was left: complete the report and hand it over."""
        report = self.report
        report.outcome, report.bytes = outcome, sent
        report.seconds = time.monotonic() - self.started_at
        if self.settings.observer is not None:
            notify(self.settings.observer, report)

    def _error(self, status: int, app_iterable: Iterable[bytes]) -> Iterable[bytes]:
        line, headers, text = error_head(status)
        self.start_response(line, headers)
        self.report.status = status
        # A HEAD gets the headers a GET would, and no body (RFC 9110 §9.3.2).
        body = [] if self.environ.get("REQUEST_METHOD") == "HEAD" else [text]
        return ClosingIterable(body, (), app_iterable, functools.partial(self._finish, "failed", 0))
