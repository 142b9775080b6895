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
from collections.abc import Callable, Iterable
from http import HTTPStatus
from types import TracebackType
from typing import Any, TypeAlias

from . import __version__
from .abort import abort_hook
from .body import ClosingIterable, ReproxyBody, close_iterable
from .directive import Directive, InvalidDirective, Rejected, parse_directive
from .errors import AllUpstreamsFailed
from .framing import is_encoded, parse_content_length, parse_content_range
from .headers import (
    clean_target_headers,
    merge_preserved,
    strip_reproxy_headers,
    upstream_request_headers,
)
from .resume import NoResume, Resumer, plan_resume
from .settings import Settings
from .upstream import NO_BODY_STATUSES, Fetched, discard, fetch_first

__all__ = ["CAPABILITY", "CAPABILITY_KEY", "URL_ENVIRON_KEY", "Exchange"]

log = logging.getLogger("wsgi_reproxy")

ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse: TypeAlias = Callable[..., Callable[[bytes], object]]
WSGIApp: TypeAlias = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

CAPABILITY = "reproxy-file"
CAPABILITY_KEY = "HTTP_X_PROXY_CAPABILITIES"
URL_ENVIRON_KEY = "wsgi_reproxy.url"
USER_AGENT = f"wsgi-reproxy/{__version__}"


def _discard_write(data: bytes) -> None:
    """``write()`` for an app whose body is being replaced: the data is thrown away (R4.4)."""


class Exchange:
    """One enabled request: watches the app's start_response, then reproxies or passes."""

    __slots__ = (
        "app",
        "app_headers",
        "directive",
        "environ",
        "passed",
        "settings",
        "start_response",
        "started",
    )

    def __init__(
        self,
        settings: Settings,
        app: WSGIApp,
        environ: dict[str, Any],
        start_response: StartResponse,
    ) -> None:
        self.settings = settings
        self.app = app
        self.environ = environ
        self.start_response = start_response
        self.started = False
        self.passed = False  # the real start_response has been called: pass-through
        self.directive: Directive | InvalidDirective | None = None
        self.app_headers: list[tuple[str, str]] = []

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
        self.directive = directive
        self.app_headers = headers
        return _discard_write

    def _parse(self, headers: list[tuple[str, str]]) -> Directive | InvalidDirective | None:
        rejected: list[Rejected] = []
        directive = parse_directive(
            headers,
            max_urls=self.settings.max_urls,
            hosts=self.settings.upstream_hosts,
            rejected=rejected,
        )
        for item in rejected:
            log.warning("reproxy URL skipped: %r %s", item.url, item.reason)
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
        method = "HEAD" if self.environ.get("REQUEST_METHOD") == "HEAD" else "GET"
        request_headers = upstream_request_headers(
            self.environ, self.settings.forward_keys, method, USER_AGENT
        )
        try:
            fetched = fetch_first(
                self.settings.pool,
                directive,
                method,
                request_headers,
                self.settings.timeout,
                self.settings.chunk_size,
            )
        except AllUpstreamsFailed as failure:
            status = 504 if failure.timed_out else 502
            log.error(
                "reproxy failed, answering %d: every URL failed: %s",
                status,
                "; ".join(f"{a.url!r}: {a.reason}" for a in failure.attempts),
            )
            return self._error(status, app_iterable)
        response = fetched.response
        headers, unsafe = clean_target_headers(response.headers.iteritems(), self.settings.hide)
        if unsafe:
            log.warning("reproxy: dropped unsafe target headers %r from %r", unsafe, fetched.url)
        headers = merge_preserved(
            headers, self.app_headers, self.settings.preserved, response.status
        )
        has_body = method != "HEAD" and response.status not in NO_BODY_STATUSES
        announced = response.headers.get("Content-Length")
        target_length = parse_content_length(announced)  # checked: plain digits
        expected_length = _expected_length(response, has_body, directive, target_length)
        headers = _announce_length(headers, announced, target_length, expected_length)
        try:
            self.start_response(_status_line(response.status, response.reason), headers)
        except BaseException:
            discard(response)  # run() closes the app's iterable
            raise
        self.environ[URL_ENVIRON_KEY] = fetched.url
        log.debug("reproxying %r: %d", fetched.url, response.status)
        return ReproxyBody(
            response,
            url=fetched.url,
            chunk_size=self.settings.chunk_size,
            app_iterable=app_iterable,
            has_body=has_body,
            first_chunk=fetched.first_chunk,
            drain=not fetched.stands_in_for_head,
            expected_length=expected_length,
            confirm_end=expected_length is not None and target_length is None,
            resume=self._plan_resume(fetched, request_headers, directive),
            on_abort=abort_hook(self.environ),
        )

    def _plan_resume(
        self, fetched: Fetched, request_headers: dict[str, str], directive: Directive
    ) -> NoResume | Callable[[], Resumer | NoResume]:
        if not self.settings.resume:
            return NoResume("resume=False")
        return functools.partial(
            plan_resume,
            fetched.response,
            later_urls=fetched.later_urls,
            headers=request_headers,
            pool=self.settings.pool,
            timeout=self.settings.timeout,
            expected_size=directive.expected_size,
        )

    def _error(self, status: int, app_iterable: Iterable[bytes]) -> Iterable[bytes]:
        phrase = HTTPStatus(status).phrase
        text = f"{status} {phrase}: the file could not be fetched from storage.\n".encode()
        self.start_response(
            f"{status} {phrase}",
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(text))),
                ("Cache-Control", "no-store"),
            ],
        )
        # A HEAD gets the headers a GET would, and no body (RFC 9110 §9.3.2).
        body = [] if self.environ.get("REQUEST_METHOD") == "HEAD" else [text]
        return ClosingIterable(body, (), app_iterable)


def _status_line(status: int, reason: str | None) -> str:
    if not reason or not reason.isprintable():
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
    return f"{status} {reason}"


def _announce_length(
    headers: list[tuple[str, str]],
    announced: str | None,
    target_length: int | None,
    known: int | None,
) -> list[tuple[str, str]]:
    """The client's ``Content-Length``: the target's as one plain value, or the length
    known without one.

    A target's ``5, 5`` (or two identical lines) is valid and accepted (RFC 9110 §8.6), but
    must reach the client as one value: gunicorn and waitress answer 500 to the list.  And
    a length known but not announced (chunked, or until the connection's end) is said, so
    that a body that breaks looks short to the client under every server: without one, a
    server can only close the connection, which uWSGI, wsgiref and any HTTP/1.0 client
    take for the end of a whole body.
    """
    length = target_length if target_length is not None else known
    if length is None or announced == str(length):
        return headers  # nothing to say, or said plainly once already
    value = str(length)
    result = []
    for name, old in headers:
        if name.lower() != "content-length":
            result.append((name, old))
        elif value:
            result.append((name, value))
            value = ""
    if value:
        result.append(("Content-Length", value))
    return result


def _expected_length(
    response: Any, has_body: bool, directive: Directive, target_length: int | None
) -> int | None:
    """How many body bytes must arrive: Content-Length; else, for a 206, the length of its
    one range, and for a 200 without a content coding the expected size; else None (only
    the target's EOF says)."""
    if not has_body:
        return None
    if target_length is not None:
        return target_length
    if response.status == 206:
        content_range = parse_content_range(response.headers.get("Content-Range"))
        return None if content_range is None else content_range[1] - content_range[0] + 1
    if response.status == 200 and not is_encoded(response):
        return directive.expected_size
    return None
