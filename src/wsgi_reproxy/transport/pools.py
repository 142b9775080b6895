"""The middleware's own ``PoolManager``: urllib3's, with the per-request lookups cut.

A reproxying middleware asks the same few storage origins for files again and again, so
two things urllib3 redoes on every request are done once here:

* **the origin's connection pool**: ``PoolManager.connection_from_host`` normalises a pool
  key and looks it up in its LRU container on every call; :meth:`connection_from_origin`
  remembers the pool per ``(scheme, host, port)``.  :meth:`clear` forgets them with the
  manager's own pools, so ``clear()`` still means "new connections from now on";
* **the connections**: they send request targets as written, bound each response head and
  parse plain header blocks without the ``email`` package
  (:mod:`wsgi_reproxy.transport.connections`), and with
  ``refuse_local=True`` check the address they reached (:mod:`wsgi_reproxy.transport.guard`).

Everything else -- connecting, TLS, keep-alive, timeouts, the body -- is urllib3 as usual.
A plain ``PoolManager`` passed to the middleware as ``pool=`` is used as is, without
either; a :class:`ReproxyPoolManager` built by the user (for TLS options, say) keeps both.

:func:`urlopen_as_written` is how every request reaches a pool: its connections send the
target exactly as the app wrote it (SPEC R5.5); a pool whose connections cannot, and
would change it (escapes in lower case), is not asked at all.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import urllib3
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.response import BaseHTTPResponse
from urllib3.util import parse_url

from ..config import ensure_collection
from ..errors import UpstreamError
from ..hosts import HostPatterns
from ..request_target import CACHED_URL_MAX, TARGET_KEY, request_target
from .connections import ExactTargetConnection, pool_classes
from .guard import guarded_pool_classes

__all__ = ["DEFAULT_POOL_MAXSIZE", "ReproxyPoolManager", "urlopen_as_written"]

# Connections kept per storage host: room for a gthread or uWSGI process's threads.
DEFAULT_POOL_MAXSIZE = 32

Origin = tuple[str, str, "int | None"]


class ReproxyPoolManager(urllib3.PoolManager):
    """A ``urllib3.PoolManager`` with the middleware's speed-ups, to pass as ``pool=``.

    The middleware builds one for itself.  Build your own when the pool needs settings of
    its own -- a private CA (``ca_certs=``), client certificates (``cert_file=``,
    ``key_file=``), ``source_address=``, one pool shared by several middlewares -- and
    pass it as ``pool=``: a plain ``PoolManager`` is used as is, without the speed-ups,
    and refuses to send a target urllib3 would change (escapes in lower case, SPEC R5.5);
    this one keeps them (request targets sent exactly as written, each origin's connection
    pool remembered, response heads bounded as a whole and parsed without the ``email``
    package, interim responses skipped, and a small body read with its head).

    It takes ``urllib3.PoolManager``'s arguments, with room for a threaded server by
    default: ``num_pools=64`` and ``maxsize=32`` (urllib3's are 10 and 1).  Size ``maxsize``
    and ``block`` as described for the middleware's ``pool_maxsize`` and ``pool_block``.
    The middleware still sets ``retries``, ``redirect`` and ``timeout`` on each request,
    and chooses the target's request headers itself (``headers=`` is not sent: see the
    middleware's ``forward``).  For anything else it is an ordinary ``PoolManager``.

    :param refuse_local: every new connection checks the address it reached and refuses
        loopback, link-local, unspecified and cloud metadata ones, before the request (and
        before TLS), as the middleware's ``refuse_local`` does with its own pool.  A
        middleware given ``refuse_local=True`` accepts only a pool built so.
    :param upstream_hosts: with ``refuse_local``, the local addresses that are allowed all
        the same, as host patterns (``"127.0.0.1:8080"``): pass the middleware's
        ``upstream_hosts``.  Which hosts targets may name at all is still the middleware's
        check; the pool only uses this list to let named local addresses through.
    :raises TypeError, ValueError: on a bad ``refuse_local`` or ``upstream_hosts``, or
        ``upstream_hosts`` without ``refuse_local``.
    """

    def __init__(
        self,
        num_pools: int = 64,
        *,
        refuse_local: bool = False,
        upstream_hosts: Iterable[str] | HostPatterns | None = None,
        **connection_pool_kw: Any,
    ) -> None:
        if not isinstance(refuse_local, bool):
            raise TypeError(f"refuse_local must be True or False, not {refuse_local!r}")
        if upstream_hosts is not None and not refuse_local:
            raise ValueError(
                "upstream_hosts on a ReproxyPoolManager names the local addresses "
                "refuse_local=True lets through: without refuse_local it would do nothing "
                "(give the middleware its upstream_hosts)"
            )
        connection_pool_kw.setdefault("maxsize", DEFAULT_POOL_MAXSIZE)
        super().__init__(num_pools=num_pools, **connection_pool_kw)
        if refuse_local:
            if upstream_hosts is not None and not isinstance(upstream_hosts, HostPatterns):
                upstream_hosts = HostPatterns(ensure_collection(upstream_hosts, "upstream_hosts"))
            self.pool_classes_by_scheme = guarded_pool_classes(upstream_hosts)
        else:
            self.pool_classes_by_scheme = pool_classes()
        self._max_origins = num_pools
        self._by_origin: dict[Origin, HTTPConnectionPool] = {}

    def connection_from_origin(
        self, scheme: str, host: str, port: int | None
    ) -> HTTPConnectionPool:
        """``connection_from_host(host, port, scheme)``, remembered per origin."""
        by_origin = self._by_origin  # one dict throughout, whatever clear() does meanwhile
        origin = (scheme, host, port)
        pool = by_origin.get(origin)
        if pool is None:
            pool = self.connection_from_host(host, port=port, scheme=scheme)
            if len(by_origin) >= self._max_origins:
                # More origins than the manager keeps pools for: start over rather than
                # hold pools it has let go of.
                by_origin.clear()
            by_origin[origin] = pool
        return pool

    def clear(self) -> None:
        """Forget every pool, as ``PoolManager.clear()`` does: new connections from now on.

        The manager's pools go first; a request remembering a pool in between stores it in
        the dict being dropped, never in the new one.
        """
        super().clear()
        self._by_origin = {}


def _split(url: str) -> tuple[str, str, int | None, str, str]:
    """Scheme, host and port as urllib3 parses them (the host checked is the host
    connected to), the target as written (R5.5), and the target urllib3 would send."""
    parsed = parse_url(url)
    return (
        parsed.scheme or "http",
        parsed.host or "",
        parsed.port,
        request_target(url),
        parsed.request_uri,
    )


_split_cached = functools.lru_cache(maxsize=4096)(_split)


def urlopen_as_written(
    pool: urllib3.PoolManager, method: str, url: str, **kw: Any
) -> BaseHTTPResponse:
    """``pool.urlopen``, sending the target exactly as written (SPEC R5.5).

    A connection pool of the middleware's gets the target as written, and its
    connections (:class:`~wsgi_reproxy.transport.connections.ExactTargetConnection`) send it as
    is.  Any other pool -- a plain ``PoolManager``, a subclass with its own ``urlopen``
    (``ProxyManager``) -- sends what urllib3 makes of the URL: when that differs (escapes
    in lower case), the URL is not sent at all.  Parsing is cached: the same files are
    asked for again and again, and it was a tenth of the time urllib3 spent per request.
    """
    split = _split_cached if len(url) <= CACHED_URL_MAX else _split
    scheme, host, port, target, urllib3_target = split(url)
    connection_pool = None
    if type(pool).urlopen is urllib3.PoolManager.urlopen:
        if isinstance(pool, ReproxyPoolManager):
            connection_pool = pool.connection_from_origin(scheme, host, port)
        else:
            connection_pool = pool.connection_from_host(host, port=port, scheme=scheme)
        if issubclass(connection_pool.ConnectionCls, ExactTargetConnection):
            kw["headers"] = {**kw["headers"], TARGET_KEY: target}
            return connection_pool.urlopen(method, target, assert_same_host=False, **kw)
    if urllib3_target != target:
        raise UpstreamError(
            url,
            f"not sent: {type(pool).__name__} would send its target as {urllib3_target!r} "
            "(urllib3 upper-cases percent-escapes), not as written; build the pool as "
            "wsgi_reproxy.ReproxyPoolManager to send it as written",
        )
    if connection_pool is None:
        return pool.urlopen(method, url, **kw)
    return connection_pool.urlopen(method, target, assert_same_host=False, **kw)


def make_pool(
    timeout: urllib3.Timeout,
    *,
    refuse_local: bool = False,
    allowed: HostPatterns | None = None,
    maxsize: int = DEFAULT_POOL_MAXSIZE,
    block: bool = False,
) -> urllib3.PoolManager:
    """The pool a middleware owns when none is given: keep-alive, no retries (failover is
    ours, per URL), no redirects, room for a gthread worker's threads, origins remembered
    and response heads read by :mod:`wsgi_reproxy.transport.quick_head`."""
    options: dict[str, Any] = {
        "num_pools": 64,
        "maxsize": maxsize,
        "block": block,
        "retries": False,
        "timeout": timeout,
    }
    if refuse_local:
        return ReproxyPoolManager(refuse_local=True, upstream_hosts=allowed, **options)
    return ReproxyPoolManager(**options)
