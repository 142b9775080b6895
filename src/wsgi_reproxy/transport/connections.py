"""The connection and pool classes of the middleware's own ``PoolManager`` (speed, SPEC R5).

urllib3's classes, through the extension points urllib3 itself uses for its SOCKS support
(``ConnectionCls``, and ``response_class``, which http.client reads but does not
document: python/cpython#57665) and the public ``HTTPConnection.request``, with two
changes:

* the request target goes out exactly as the app wrote it (:class:`ExactTargetConnection`,
  SPEC R5.5), where urllib3 would upper-case its escapes;
* response heads are read by :class:`wsgi_reproxy.transport.quick_head.QuickHeadResponse`:
  bounded as a whole, every interim response skipped, a head cut off refused, a 64 KiB
  body in the same read, and plain header blocks parsed without the ``email`` package.

A plain ``PoolManager`` passed to the middleware as ``pool=`` keeps urllib3's own classes;
a :class:`wsgi_reproxy.ReproxyPoolManager` passed in uses these.
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..request_target import TARGET_KEY, TargetMismatch, upper_escapes
from .quick_head import response_class

__all__ = [
    "ExactTargetConnection",
    "ReproxyHTTPConnection",
    "ReproxyHTTPConnectionPool",
    "ReproxyHTTPSConnection",
    "ReproxyHTTPSConnectionPool",
    "pool_classes",
]


class ExactTargetConnection(HTTPConnection):
    """Sends the exact target handed down under :data:`~wsgi_reproxy.request_target.TARGET_KEY`.

    urllib3's ``HTTPConnectionPool.urlopen`` upper-cases the escapes of every target
    before its connection sees it; :func:`wsgi_reproxy.transport.pools.urlopen_as_written` passes
    the target as the app wrote it among the headers, and this connection sends that one
    instead -- after checking that it is the target urllib3 derived, up to the case of
    its escapes.  Should they differ in more (a target meant for another request, a
    urllib3 that rewrites more), nothing is sent: ``TargetMismatch``, which urllib3
    reports as a ``ProtocolError``, fails that URL.
    """

    def request(
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if headers is not None and TARGET_KEY in headers:
            rest = dict(headers)
            target: str = rest.pop(TARGET_KEY)
            if target != url and upper_escapes(target) != url:
                raise TargetMismatch(f"exact target {target!r} is not urllib3's {url!r}")
            url, headers = target, rest
        super().request(method, url, body, headers, **kwargs)


class ReproxyHTTPConnection(ExactTargetConnection):
    response_class: type[http.client.HTTPResponse] = response_class()


class ReproxyHTTPSConnection(ExactTargetConnection, HTTPSConnection):
    response_class: type[http.client.HTTPResponse] = response_class()


class ReproxyHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = ReproxyHTTPConnection


class ReproxyHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = ReproxyHTTPSConnection


def pool_classes() -> dict[str, type[HTTPConnectionPool]]:
    """``PoolManager.pool_classes_by_scheme`` for the middleware's own pool."""
    return {"http": ReproxyHTTPConnectionPool, "https": ReproxyHTTPSConnectionPool}
