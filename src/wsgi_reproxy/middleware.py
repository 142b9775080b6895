"""``ReproxyMiddleware``: configuration, and the WSGI entry point of every request.

Per request (the enabled case is :class:`~wsgi_reproxy.exchange.Exchange`)::

    scrub client X-Reproxy-* and capability headers from the environ       (R3.2, R3.3)
    not enabled?  -> call the app, strip X-Reproxy-* from its headers       (R6.6, cheap)
    enabled       -> set X-Proxy-Capabilities, call the app, and look at the
                     headers it passes to start_response:
                       no directive -> pass through, as above
                       directive    -> discard the app's body, fetch the first
                                       working URL, stream it             (R4-R6)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import urllib3

from .config import forward_option, hide_option, positive_int, preserve_option, timeout_option
from .directive import HostPatterns
from .exchange import CAPABILITY, CAPABILITY_KEY, Exchange, ExcInfo, StartResponse, WSGIApp
from .guard import is_guarded
from .headers import HiddenHeaders, environ_key, strip_reproxy_headers
from .pools import DEFAULT_POOL_MAXSIZE
from .rules import RuleSet, compile_rules, ensure_collection, request_path
from .stray import StrayDirectives, carries_directive
from .upstream import make_pool

__all__ = [
    "CAPABILITY",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_FORWARD",
    "DEFAULT_HIDE",
    "DEFAULT_MAX_URLS",
    "DEFAULT_TIMEOUT",
    "ReproxyMiddleware",
    "can_reproxy",
]

DEFAULT_FORWARD = (
    "Range",
    "If-Range",
    "If-Modified-Since",
    "If-Unmodified-Since",
    "If-None-Match",
    "If-Match",
    "Accept-Encoding",
)
# What nginx hides from a proxied response by default (proxy_hide_header): the storage's
# software and version, and its own X-Accel-* controls (SPEC R6.7).
DEFAULT_HIDE = ("Server", "X-Pad", "X-Accel-*")
DEFAULT_TIMEOUT = urllib3.Timeout(connect=5.0, read=30.0)
DEFAULT_CHUNK_SIZE = 64 * 1024
DEFAULT_MAX_URLS = 8


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
    # (A key merely containing the text costs the slow path, never a wrong answer.)
    if "HTTP_X_REPROXY_" in "\n".join(environ):
        for key in [key for key in environ if key.startswith("HTTP_X_REPROXY_")]:
            del environ[key]


def _strip_start_response(
    start_response: StartResponse, environ: dict[str, Any], stray: StrayDirectives
) -> StartResponse:
    """start_response that drops X-Reproxy-* headers and passes everything else through;
    a directive dropped so is reported (R7.3: a forgotten ``allow`` is never silent)."""

    def strip(
        status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], object]:
        for name, _ in headers:
            if name[:1] in "xX" and name[:10].lower() == "x-reproxy-":
                if exc_info is None and carries_directive(headers):
                    stray.seen(request_path(environ), status)
                headers = strip_reproxy_headers(headers)
                break
        return start_response(status, headers, exc_info)

    return strip


def _refuse_django_get_response(app: object) -> None:
    """Django builds each ``settings.MIDDLEWARE`` entry with its ``get_response`` function:
    say at start-up that this is WSGI middleware, instead of a TypeError per request."""
    if inspect.isfunction(app) and app.__module__.startswith("django.core.handlers."):
        raise TypeError(_NOT_DJANGO_MIDDLEWARE)


_NOT_DJANGO_MIDDLEWARE = (
    "ReproxyMiddleware is WSGI middleware, not Django middleware: remove it from "
    "settings.MIDDLEWARE and wrap the WSGI application in wsgi.py instead: "
    "application = ReproxyMiddleware(get_wsgi_application(), allow=[...], preserve=[...])"
)


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
    :param pool: a ``urllib3.PoolManager`` to share; a plain one is used as is.  By default
        the middleware owns one, tuned for reproxying: build yours as a
        :class:`ReproxyPoolManager` to keep that tuning with settings of your own (a
        private CA, say).
    :param pool_maxsize: connections the middleware's own pool keeps per storage host
        (``None``: 32): at least the server's threads (or greenlets) per process.
    :param pool_block: when every connection to a host is busy, wait for one (``True``)
        instead of opening an extra one that is not kept (``False``, the default).
    :param chunk_size: the largest piece of body handed to the server at once.
    :param max_urls: how many URLs of one directive are considered.
    :param resume: when a body breaks mid-stream, continue it from the next URL at the
        exact byte where it stopped, if that replica proves it holds the same bytes.
    :param refuse_local: refuse targets that resolve to loopback, link-local, unspecified
        or cloud metadata addresses (checked on each new connection, so DNS cannot sneak
        them in) unless an ``upstream_hosts`` pattern names the address itself, without
        wildcards in its host.  With ``pool=``, the pool does the
        checking: build it as ``ReproxyPoolManager(refuse_local=True,
        upstream_hosts=...)``.
    :param hide: target response headers never relayed to the client, by name or glob
        (``"X-Amz-*"``), case-insensitive; replaces the default, which is what nginx hides
        (``Server``, ``X-Pad``, ``X-Accel-*``).  The framing headers cannot be hidden.
    :raises TypeError, ValueError: on any bad option, with what to fix.
    """

    __slots__ = (
        "_forward",
        "_preserve",
        "_stray",
        "allow",
        "app",
        "chunk_size",
        "deny",
        "forward",
        "hide",
        "max_urls",
        "pool",
        "pool_block",
        "pool_maxsize",
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
    pool_maxsize: int | None
    pool_block: bool
    chunk_size: int
    max_urls: int
    resume: bool
    refuse_local: bool
    hide: HiddenHeaders
    _preserve: frozenset[str]
    _forward: tuple[tuple[str, str], ...]
    _stray: StrayDirectives

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
        pool_maxsize: int | None = None,
        pool_block: bool = False,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_urls: int = DEFAULT_MAX_URLS,
        resume: bool = True,
        refuse_local: bool = False,
        hide: Iterable[str] = DEFAULT_HIDE,
    ) -> None:
        if not callable(app):
            raise TypeError(f"app must be a WSGI callable, not {type(app).__name__}")
        _refuse_django_get_response(app)
        for option, flag in (
            ("resume", resume),
            ("refuse_local", refuse_local),
            ("pool_block", pool_block),
        ):
            if not isinstance(flag, bool):
                raise TypeError(f"{option} must be True or False, not {flag!r}")
        hosts = (
            None
            if upstream_hosts is None
            else HostPatterns(ensure_collection(upstream_hosts, "upstream_hosts"))
        )
        set_ = object.__setattr__
        set_(self, "app", app)
        set_(self, "allow", compile_rules(allow, "allow"))
        set_(self, "deny", compile_rules(deny, "deny"))
        set_(self, "preserve", preserve_option(preserve))
        set_(self, "forward", forward_option(forward))
        set_(self, "hide", hide_option(hide))
        set_(self, "upstream_hosts", hosts)
        set_(self, "timeout", timeout_option(timeout))
        set_(self, "chunk_size", positive_int(chunk_size, "chunk_size"))
        set_(self, "max_urls", positive_int(max_urls, "max_urls"))
        set_(self, "resume", resume)
        set_(self, "refuse_local", refuse_local)
        self._set_pool(pool, pool_maxsize, pool_block)
        set_(self, "_preserve", frozenset(name.lower() for name in self.preserve))
        set_(self, "_forward", tuple((name, environ_key(name)) for name in self.forward))
        set_(self, "_stray", StrayDirectives(f"allow={self.allow!r}, deny={self.deny!r}"))

    def _set_pool(self, pool: urllib3.PoolManager | None, maxsize: int | None, block: bool) -> None:
        """The pool given, checked against ``refuse_local``; else one of our own."""
        set_ = object.__setattr__
        if pool is not None:
            if not isinstance(pool, urllib3.PoolManager):
                raise TypeError(f"pool must be a urllib3.PoolManager, not {type(pool).__name__}")
            if maxsize is not None or block:
                raise ValueError(
                    "pool_maxsize and pool_block size the middleware's own pool: "
                    "with pool=..., size the pool you pass instead"
                )
            if self.refuse_local and not is_guarded(pool):
                raise ValueError(
                    "refuse_local=True needs a pool that checks the addresses it connects "
                    "to: pass pool=None, or build yours as ReproxyPoolManager("
                    "refuse_local=True, upstream_hosts=<the middleware's upstream_hosts>, ...)"
                )
            set_(self, "pool", pool)
            set_(self, "pool_maxsize", None)
            set_(self, "pool_block", False)
            return
        maxsize = DEFAULT_POOL_MAXSIZE if maxsize is None else positive_int(maxsize, "pool_maxsize")
        own = make_pool(
            self.timeout,
            refuse_local=self.refuse_local,
            allowed=self.upstream_hosts,
            maxsize=maxsize,
            block=block,
        )
        set_(self, "pool", own)
        set_(self, "pool_maxsize", maxsize)
        set_(self, "pool_block", block)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable once constructed")

    def __repr__(self) -> str:
        """Every option, in constructor form (R7.3): what a log or a shell shows is what
        was configured."""
        hosts = None if self.upstream_hosts is None else list(self.upstream_hosts.patterns)
        pool = (
            f"pool_maxsize={self.pool_maxsize!r}, pool_block={self.pool_block!r}"
            if self.pool_maxsize is not None
            else f"pool={self.pool!r}"
        )
        return (
            f"{type(self).__name__}({self.app!r}, allow={self.allow!r}, "
            f"preserve={list(self.preserve)!r}, deny={self.deny!r}, "
            f"upstream_hosts={hosts!r}, forward={list(self.forward)!r}, "
            f"timeout={self.timeout!r}, {pool}, chunk_size={self.chunk_size!r}, "
            f"max_urls={self.max_urls!r}, resume={self.resume!r}, "
            f"refuse_local={self.refuse_local!r}, hide={list(self.hide.patterns)!r})"
        )

    def enabled(self, environ: dict[str, Any]) -> bool:
        """Is reproxying enabled for this request (R2.3)?"""
        if not self.allow:
            return False
        path = request_path(environ)
        if not self.allow.matches(environ, path):
            return False
        return not (self.deny and self.deny.matches(environ, path))

    def ignored_directives(self) -> dict[str, int]:
        """How many ``X-Reproxy-Url`` answers were ignored on requests that ``allow`` did
        not enable, per path prefix of two segments (each is logged once, R7.3)."""
        return self._stray.counts()

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse | None = None
    ) -> Iterable[bytes]:
        if start_response is None:  # called as Django middleware: middleware(request)
            raise TypeError(_NOT_DJANGO_MIDDLEWARE)
        _scrub_environ(environ)
        if not self.enabled(environ):
            return self.app(environ, _strip_start_response(start_response, environ, self._stray))
        environ[CAPABILITY_KEY] = CAPABILITY
        return Exchange(self, environ, start_response).run()
