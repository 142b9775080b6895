"""``ReproxyMiddleware``: the WSGI glue, and the only module that sees environ/start_response.

Per request::

    scrub client X-Reproxy-* and capability headers from the environ       (R3.2, R3.3)
    not enabled?  -> call the app, strip X-Reproxy-* from its headers       (R6.6, cheap)
    enabled       -> set X-Proxy-Capabilities, call the app, and look at the
                     headers it passes to start_response:
                       no directive -> pass through, as above
                       directive    -> discard the app's body, fetch the first
                                       working URL, stream it             (R4-R6)
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from types import TracebackType
from typing import Any, TypeAlias

import urllib3

from . import __version__
from .body import ClosingIterable, ReproxyBody, close_iterable
from .config import header_names, positive_int, timeout_option
from .directive import Directive, HostPatterns, InvalidDirective, Rejected, parse_directive
from .errors import AllUpstreamsFailed
from .guard import is_guarded
from .headers import (
    FRAMING,
    HOP_BY_HOP,
    NEVER_FORWARDED,
    clean_target_headers,
    environ_key,
    merge_preserved,
    strip_reproxy_headers,
    upstream_request_headers,
)
from .resume import NoResume, Resumer, plan_resume
from .rules import RuleSet, compile_rules, ensure_collection, request_path
from .upstream import NO_BODY_STATUSES, Fetched, discard, fetch_first, make_pool

__all__ = [
    "CAPABILITY",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_FORWARD",
    "DEFAULT_MAX_URLS",
    "DEFAULT_TIMEOUT",
    "ReproxyMiddleware",
    "can_reproxy",
]

log = logging.getLogger("wsgi_reproxy")

ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse: TypeAlias = Callable[..., Callable[[bytes], object]]
WSGIApp: TypeAlias = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

CAPABILITY = "reproxy-file"
CAPABILITY_KEY = "HTTP_X_PROXY_CAPABILITIES"
URL_ENVIRON_KEY = "wsgi_reproxy.url"
DEFAULT_FORWARD = (
    "Range",
    "If-Range",
    "If-Modified-Since",
    "If-Unmodified-Since",
    "If-None-Match",
    "If-Match",
    "Accept-Encoding",
)
DEFAULT_TIMEOUT = urllib3.Timeout(connect=5.0, read=30.0)
DEFAULT_CHUNK_SIZE = 64 * 1024
DEFAULT_MAX_URLS = 8
USER_AGENT = f"wsgi-reproxy/{__version__}"


def can_reproxy(environ: dict[str, Any]) -> bool:
    """True when the middleware will honour an ``X-Reproxy-Url`` for this request (R1.3).

    Backends call it to choose between answering with :func:`reproxy_headers` and serving
    the bytes themselves.  The middleware *sets* the capability (never merges it with what
    the client sent) and deletes it on requests it does not enable, so a client cannot fake it.
    """
    value = environ.get(CAPABILITY_KEY)
    return isinstance(value, str) and CAPABILITY in (t.strip() for t in value.split(","))


def _scrub_environ(environ: dict[str, Any]) -> None:
    """Control comes from the app's response only, never from the client (R3.2, R3.3)."""
    environ.pop(CAPABILITY_KEY, None)
    # One substring search over all the keys is three times cheaper than testing each key,
    # and clients almost never send such a header: the pass-through path stays nearly free.
    if "\nHTTP_X_REPROXY_" in "\n" + "\n".join(environ):
        for key in [key for key in environ if key.startswith("HTTP_X_REPROXY_")]:
            del environ[key]


def _strip_start_response(start_response: StartResponse) -> StartResponse:
    """start_response that drops X-Reproxy-* headers and passes everything else through."""

    def strip(
        status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], object]:
        for name, _ in headers:
            if name[:10].lower() == "x-reproxy-":
                headers = strip_reproxy_headers(headers)
                break
        return start_response(status, headers, exc_info)

    return strip


def _discard_write(data: bytes) -> None:
    """``write()`` for an app whose body is being replaced: the data is thrown away (R4.4)."""


class ReproxyMiddleware:
    """Serve ``X-Reproxy-Url`` answers of a WSGI app by streaming the target's response.

    ::

        from wsgi_reproxy import ReproxyMiddleware
        application = ReproxyMiddleware(app, allow=["/downloads/"],
                                        preserve=["Content-Type", "Content-Disposition"])

    :param app: the WSGI application to wrap.
    :param allow: where reproxying is enabled: path prefixes (``"/downloads"``), globs
        (``"*.iso"``, ``"/media/*.iso"``), compiled regexes, or ``callable(environ) -> bool``.
        Empty (the default) enables nothing.
    :param preserve: response header names whose values come from the app instead of the
        target (``Content-Type``, ``Content-Disposition``, ``Cache-Control`` ...).
    :param deny: rules, as in ``allow``, that disable reproxying where ``allow`` matched.
    :param upstream_hosts: host patterns (``"store-*.internal"``, ``"10.1.2.3:8080"``) that
        target URLs must match; ``None`` allows any host, ``[]`` none.
    :param forward: client request headers sent to the target (replaces the default list).
    :param timeout: seconds (connect and read) or a ``urllib3.Timeout``.
    :param pool: a ``urllib3.PoolManager`` to share; by default the middleware owns one.
    :param chunk_size: the largest piece of body handed to the server at once.
    :param max_urls: how many URLs of one directive are considered.
    :param resume: when a body breaks mid-stream, continue it from the next URL at the
        exact byte where it stopped, if that replica proves it holds the same bytes.
    :param refuse_local: refuse targets that resolve to loopback, link-local or unspecified
        addresses (checked on each new connection, so DNS cannot sneak them in) unless
        ``upstream_hosts`` names the address itself.
    :raises TypeError, ValueError: on any bad option, with what to fix.
    """

    __slots__ = (
        "_forward",
        "_hosts",
        "_preserve",
        "allow",
        "app",
        "chunk_size",
        "deny",
        "forward",
        "max_urls",
        "pool",
        "preserve",
        "refuse_local",
        "resume",
        "timeout",
        "upstream_hosts",
    )

    app: WSGIApp
    allow: RuleSet
    deny: RuleSet
    preserve: tuple[str, ...]
    forward: tuple[str, ...]
    upstream_hosts: HostPatterns | None
    timeout: urllib3.Timeout
    pool: urllib3.PoolManager
    chunk_size: int
    max_urls: int
    resume: bool
    refuse_local: bool
    _preserve: frozenset[str]
    _forward: tuple[tuple[str, str], ...]
    _hosts: HostPatterns | None

    def __init__(
        self,
        app: WSGIApp,
        allow: Iterable[object] = (),
        preserve: Iterable[str] = (),
        *,
        deny: Iterable[object] = (),
        upstream_hosts: Iterable[str] | None = None,
        forward: Iterable[str] = DEFAULT_FORWARD,
        timeout: float | urllib3.Timeout = DEFAULT_TIMEOUT,
        pool: urllib3.PoolManager | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_urls: int = DEFAULT_MAX_URLS,
        resume: bool = True,
        refuse_local: bool = False,
    ) -> None:
        if not callable(app):
            raise TypeError(f"app must be a WSGI callable, not {type(app).__name__}")
        if pool is not None and not isinstance(pool, urllib3.PoolManager):
            raise TypeError(f"pool must be a urllib3.PoolManager, not {type(pool).__name__}")
        if refuse_local and pool is not None and not is_guarded(pool):
            raise ValueError(
                "refuse_local=True checks addresses in the middleware's own pool: "
                "pass pool=None, or a pool made by wsgi_reproxy.guard.guarded_pool"
            )
        hosts = (
            None
            if upstream_hosts is None
            else HostPatterns(ensure_collection(upstream_hosts, "upstream_hosts"))
        )
        set_ = object.__setattr__
        set_(self, "app", app)
        set_(self, "allow", compile_rules(allow, "allow"))
        set_(self, "deny", compile_rules(deny, "deny"))
        set_(
            self,
            "preserve",
            header_names(
                preserve,
                "preserve",
                FRAMING | HOP_BY_HOP,
                "framing, hop-by-hop and X-Reproxy-* headers always come from the target",
            ),
        )
        set_(
            self,
            "forward",
            header_names(
                forward,
                "forward",
                NEVER_FORWARDED,
                "Host comes from the URL; Cookie, Authorization and hop-by-hop headers never leave",
            ),
        )
        set_(self, "upstream_hosts", hosts)
        set_(self, "timeout", timeout_option(timeout))
        set_(self, "chunk_size", positive_int(chunk_size, "chunk_size"))
        set_(self, "max_urls", positive_int(max_urls, "max_urls"))
        for option, flag in (("resume", resume), ("refuse_local", refuse_local)):
            if not isinstance(flag, bool):
                raise TypeError(f"{option} must be True or False, not {flag!r}")
        set_(self, "resume", resume)
        set_(self, "refuse_local", refuse_local)
        set_(
            self,
            "pool",
            pool
            if pool is not None
            else make_pool(self.timeout, refuse_local=refuse_local, allowed=hosts),
        )
        set_(self, "_preserve", frozenset(name.lower() for name in self.preserve))
        set_(self, "_forward", tuple((name, environ_key(name)) for name in self.forward))
        set_(self, "_hosts", hosts)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable once constructed")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.app!r}, allow={list(self.allow.rules)!r}, "
            f"preserve={list(self.preserve)!r})"
        )

    def enabled(self, environ: dict[str, Any]) -> bool:
        """Is reproxying enabled for this request (R2.3)?"""
        if not self.allow:
            return False
        path = request_path(environ)
        if not self.allow.matches(environ, path):
            return False
        return not (self.deny and self.deny.matches(environ, path))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        _scrub_environ(environ)
        if not self.enabled(environ):
            return self.app(environ, _strip_start_response(start_response))
        environ[CAPABILITY_KEY] = CAPABILITY
        return _Exchange(self, environ, start_response).run()

    # -- used by _Exchange -------------------------------------------------------------

    def _parse(self, headers: list[tuple[str, str]]) -> Directive | InvalidDirective | None:
        rejected: list[Rejected] = []
        directive = parse_directive(
            headers, max_urls=self.max_urls, hosts=self._hosts, rejected=rejected
        )
        for item in rejected:
            log.warning("reproxy URL skipped: %r %s", item.url, item.reason)
        return directive


class _Exchange:
    """One enabled request: watches the app's start_response, then reproxies or passes."""

    __slots__ = (
        "app_headers",
        "app_status",
        "directive",
        "environ",
        "mw",
        "passed",
        "start_response",
        "started",
    )

    def __init__(
        self, mw: ReproxyMiddleware, environ: dict[str, Any], start_response: StartResponse
    ) -> None:
        self.mw = mw
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
        directive = self.mw._parse(headers)
        if directive is None:
            self.passed = True
            return self.start_response(status, strip_reproxy_headers(headers))
        self.directive = directive
        self.app_headers = headers
        return _discard_write

    def run(self) -> Iterable[bytes]:
        app_iterable = self.mw.app(self.environ, self.app_start_response)
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
            self.environ, self.mw._forward, method, USER_AGENT
        )
        try:
            fetched = fetch_first(
                self.mw.pool,
                directive,
                method,
                request_headers,
                self.mw.timeout,
                self.mw.chunk_size,
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
        headers, unsafe = clean_target_headers(response.headers.items())
        if unsafe:
            log.warning("reproxy: dropped unsafe target headers %r from %r", unsafe, fetched.url)
        headers = merge_preserved(headers, self.app_headers, self.mw._preserve, response.status)
        try:
            self.start_response(_status_line(response.status, response.reason), headers)
        except BaseException:
            discard(response)  # run() closes the app's iterable
            raise
        has_body = method != "HEAD" and response.status not in NO_BODY_STATUSES
        self.environ[URL_ENVIRON_KEY] = fetched.url
        log.debug("reproxying %r: %d", fetched.url, response.status)
        return ReproxyBody(
            response,
            url=fetched.url,
            chunk_size=self.mw.chunk_size,
            app_iterable=app_iterable,
            has_body=has_body,
            first_chunk=fetched.first_chunk,
            expected_length=_expected_length(response, has_body, directive),
            resume=self._plan_resume(fetched, request_headers, directive),
        )

    def _plan_resume(
        self, fetched: Fetched, request_headers: dict[str, str], directive: Directive
    ) -> NoResume | Callable[[], Resumer | NoResume]:
        if not self.mw.resume:
            return NoResume("resume=False")
        return functools.partial(
            plan_resume,
            fetched.response,
            later_urls=fetched.later_urls,
            headers=request_headers,
            pool=self.mw.pool,
            timeout=self.mw.timeout,
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
        return ClosingIterable([text], (), app_iterable)


def _status_line(status: int, reason: str | None) -> str:
    if not reason or not reason.isprintable():
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
    return f"{status} {reason}"


def _expected_length(response: Any, has_body: bool, directive: Directive) -> int | None:
    """How many body bytes must arrive: Content-Length, else the expected size (chunked)."""
    if not has_body:
        return None
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit():
        return int(length)
    if response.status == 200:
        return directive.expected_size
    return None
