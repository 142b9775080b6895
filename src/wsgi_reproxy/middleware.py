"""``ReproxyMiddleware``: configuration, and the WSGI entry point of every request.

Per request (the enabled case is :class:`~wsgi_reproxy.exchange.Exchange`)::

    scrub client X-Reproxy-* and capability headers from the environ       (R3.2, R3.3)
    not enabled?  -> call the app, strip X-Reproxy-* from its headers       (R6.6, cheap)
    enabled       -> set X-Proxy-Capabilities, call the app, and look at the
                     headers it passes to start_response:
                       no directive -> pass through, as above
                       directive    -> discard the app's body, stream the first
                                       source that works (file, URLs)     (R4-R6, R9)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar, Unpack, overload
from wsgiref.types import StartResponse, WSGIApplication

import urllib3

from .caching_exchange import CachingExchange
from .exchange import CAPABILITY, CAPABILITY_KEY, Exchange, ExcInfo
from .file_roots import FileRoots
from .headers import strip_reproxy_headers
from .hosts import HostPatterns
from .report import Observer
from .rules import RuleSet, request_path
from .settings import Options, Settings
from .stray import StrayDirectives, carries_directive
from .target_headers import HiddenHeaders
from .upstream import Upstream

__all__ = ["ReproxyMiddleware", "can_reproxy"]

T = TypeVar("T")


class _Setting(Generic[T]):
    """An option read through the middleware: ``mw.pool`` is ``mw.settings.pool``."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> _Setting[T]: ...

    @overload
    def __get__(self, instance: ReproxyMiddleware, owner: type) -> T: ...

    def __get__(self, instance: ReproxyMiddleware | None, owner: type) -> T | _Setting[T]:
        if instance is None:
            return self
        value: T = getattr(instance.settings, self.name)
        return value


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
    :param chunk_size: the largest piece of body handed to the server at once (pieces
        start at 64 KiB and grow to it as a body proves long).
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
    :param observer: ``callable(report)`` given one :class:`~wsgi_reproxy.ReproxyReport`
        per reproxied request once its body ended, broke or the client left (for metrics:
        :class:`wsgi_reproxy.prometheus.PrometheusObserver`); its exceptions are logged,
        never raised into the request.
    :param cache: where decisions marked ``X-Reproxy-Cache-For`` are kept, so that later
        requests for the same URL skip the app: a :class:`~wsgi_reproxy.MemoryCache` (per
        process), a :class:`~wsgi_reproxy.RedisCache` (shared), any object with their
        ``get``/``set``/``delete``, or ``None`` (the default).
    :param cache_key: ``callable(environ) -> str | None``: the key of a request's
        decision, None for "do not cache".  The default keys GET and HEAD by host, path
        and query, and never caches requests with ``Authorization``: pass one when the
        view's decision depends on anything else (the user, a cookie).
    :param cache_max_age: the longest a decision is kept, in seconds (3600).
    :param file_roots: directories ``X-Reproxy-File`` may serve from (R9); None refuses it.
    :raises TypeError, ValueError: on any bad option, with what to fix.
    """

    __slots__ = ("_stray", "app", "settings", "upstream")

    app: WSGIApplication
    settings: Settings
    upstream: Upstream
    _stray: StrayDirectives

    # Each option reads through to the settings: ``mw.pool`` is ``mw.settings.pool``.
    allow = _Setting[RuleSet]()
    preserve = _Setting[tuple[str, ...]]()
    deny = _Setting[RuleSet]()
    upstream_hosts = _Setting[HostPatterns | None]()
    forward = _Setting[tuple[str, ...]]()
    timeout = _Setting[urllib3.Timeout]()
    pool = _Setting[urllib3.PoolManager]()
    pool_maxsize = _Setting[int | None]()
    pool_block = _Setting[bool]()
    chunk_size = _Setting[int]()
    max_urls = _Setting[int]()
    resume = _Setting[bool]()
    refuse_local = _Setting[bool]()
    hide = _Setting[HiddenHeaders]()
    observer = _Setting[Observer | None]()
    file_roots = _Setting[FileRoots | None]()

    def __init__(
        self,
        app: WSGIApplication,
        allow: Iterable[object] = (),
        preserve: Iterable[str] = (),
        **options: Unpack[Options],
    ) -> None:
        if not callable(app):
            raise TypeError(f"app must be a WSGI callable, not {type(app).__name__}")
        _refuse_django_get_response(app)
        settings = Settings.build(allow, preserve, **options)
        set_ = object.__setattr__
        set_(self, "app", app)
        set_(self, "settings", settings)
        set_(self, "upstream", Upstream(settings))
        set_(self, "_stray", StrayDirectives(f"allow={settings.allow!r}, deny={settings.deny!r}"))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable once constructed")

    def __repr__(self) -> str:
        """Every option, in constructor form (R7.3): what a log or a shell shows is what
        was configured."""
        return f"{type(self).__name__}({self.app!r}, {self.settings.constructor_form()})"

    def enabled(self, environ: dict[str, Any]) -> bool:
        """Is reproxying enabled for this request (R2.3)?"""
        allow, deny = self.settings.allow, self.settings.deny
        if not allow:
            return False
        path = request_path(environ)
        if not allow.matches(environ, path):
            return False
        return not (deny and deny.matches(environ, path))

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
        exchange = Exchange if self.settings.cache is None else CachingExchange
        return exchange(self.settings, self.upstream, self.app, environ, start_response).run()
