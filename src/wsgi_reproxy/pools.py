"""The middleware's own ``PoolManager``: urllib3's, with the per-request lookups cut.

A reproxying middleware asks the same few storage origins for files again and again, so
two things urllib3 redoes on every request are done once here:

* **the origin's connection pool**: ``PoolManager.connection_from_host`` normalises a pool
  key and looks it up in its LRU container on every call (7 µs); :meth:`connection_from_origin`
  remembers the pool per ``(scheme, host, port)``.  :meth:`clear` forgets them with the
  manager's own pools, so ``clear()`` still means "new connections from now on";
* **the connections**: they parse plain header blocks without the ``email`` package and
  keep their timeouts in the kernel (:mod:`wsgi_reproxy.connections`).

Everything else -- connecting, TLS, keep-alive, timeouts, the body -- is urllib3 as usual.
A plain ``PoolManager`` passed to the middleware as ``pool=`` is used as is, without
either; a :class:`ReproxyPoolManager` built by the user (for TLS options, say) keeps both.
"""

from __future__ import annotations

from typing import Any

import urllib3
from urllib3.connectionpool import HTTPConnectionPool

from .connections import pool_classes

__all__ = ["DEFAULT_POOL_MAXSIZE", "ReproxyPoolManager"]

# Connections kept per storage host: room for a gthread or uWSGI process's threads.
DEFAULT_POOL_MAXSIZE = 32

Origin = tuple[str, str, "int | None"]


class ReproxyPoolManager(urllib3.PoolManager):
    """A ``urllib3.PoolManager`` with the middleware's speed-ups, to pass as ``pool=``.

    The middleware builds one for itself.  Build your own when the pool needs settings of
    its own -- a private CA (``ca_certs=``), client certificates (``cert_file=``,
    ``key_file=``), ``source_address=``, one pool shared by several middlewares -- and
    pass it as ``pool=``: a plain ``PoolManager`` is used as is, without the speed-ups;
    this one keeps them (each origin's connection pool remembered, plain response heads
    read without the ``email`` parser and, for ``http``, timeouts kept by the kernel).

    It takes ``urllib3.PoolManager``'s arguments, with room for a threaded server by
    default: ``num_pools=64`` and ``maxsize=32`` (urllib3's are 10 and 1).  Size ``maxsize``
    and ``block`` as described for the middleware's ``pool_maxsize`` and ``pool_block``.
    The middleware still sets ``retries``, ``redirect`` and ``timeout`` on each request,
    and chooses the target's request headers itself (``headers=`` is not sent: see the
    middleware's ``forward``); ``refuse_local`` is not available with a pool of your own
    yet.  For anything else it is an ordinary ``PoolManager``.
    """

    def __init__(self, num_pools: int = 64, **connection_pool_kw: Any) -> None:
        connection_pool_kw.setdefault("maxsize", DEFAULT_POOL_MAXSIZE)
        super().__init__(num_pools=num_pools, **connection_pool_kw)
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
