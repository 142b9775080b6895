"""The connection and pool classes of the middleware's own ``PoolManager`` (speed, SPEC R5).

urllib3's classes, through the extension points urllib3 itself uses for its SOCKS support
(``ConnectionCls``, ``response_class``, ``_new_conn``), with two changes:

* response heads are read by :class:`wsgi_reproxy.heads.HeadResponse`, without the
  ``email`` parser for plain header blocks;
* a plain-HTTP connection's socket becomes a
  :class:`wsgi_reproxy.sockets.KernelTimeoutSocket` once connected, so that its timeouts
  cost no ``poll()`` and ``ioctl()`` per request.

A plain ``PoolManager`` passed to the middleware as ``pool=`` keeps urllib3's own classes;
a :class:`wsgi_reproxy.ReproxyPoolManager` passed in uses these.
"""

from __future__ import annotations

import http.client
import socket

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .heads import response_class
from .sockets import adopt

__all__ = [
    "ReproxyHTTPConnection",
    "ReproxyHTTPConnectionPool",
    "ReproxyHTTPSConnection",
    "ReproxyHTTPSConnectionPool",
    "pool_classes",
]


class ReproxyHTTPConnection(HTTPConnection):
    response_class: type[http.client.HTTPResponse] = response_class()

    def _new_conn(self) -> socket.socket:
        return adopt(super()._new_conn())


class ReproxyHTTPSConnection(HTTPSConnection):
    """TLS: the quick head parser only (``ssl.SSLSocket`` applies timeouts its own way)."""

    response_class: type[http.client.HTTPResponse] = response_class()


class ReproxyHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = ReproxyHTTPConnection


class ReproxyHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = ReproxyHTTPSConnection


def pool_classes() -> dict[str, type[HTTPConnectionPool]]:
    """``PoolManager.pool_classes_by_scheme`` for the middleware's own pool."""
    return {"http": ReproxyHTTPConnectionPool, "https": ReproxyHTTPSConnectionPool}
