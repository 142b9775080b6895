"""Refusing loopback and link-local targets at connect time (SSRF).

An app that builds ``X-Reproxy-Url`` from user input can be tricked into fetching
``http://127.0.0.1:6379/`` or the cloud metadata service at ``169.254.169.254``.
``upstream_hosts`` checks the host *name*; a name can still resolve to a local address
(or be re-pointed there after validation: DNS rebinding).  So with ``refuse_local=True``
the pool -- the middleware's own, or a :class:`~wsgi_reproxy.ReproxyPoolManager` built
with ``refuse_local=True`` -- checks the address each new connection actually reached,
before a byte of the request is sent (before the TLS handshake too), and refuses loopback,
link-local and unspecified addresses unless an ``upstream_hosts`` pattern names that
address explicitly, without wildcards in its host (``"127.0.0.1:8080"``, ``"[::1]:*"``;
not ``"*:8080"`` or ``"127.0.0.*:80"``).
"""

from __future__ import annotations

import ipaddress
import socket

import urllib3
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import NewConnectionError

from ..hosts import HostPatterns
from .connections import (
    ReproxyHTTPConnection,
    ReproxyHTTPConnectionPool,
    ReproxyHTTPSConnection,
    ReproxyHTTPSConnectionPool,
)

__all__ = ["METADATA_ADDRESSES", "guarded_pool_classes", "is_guarded", "is_local_address"]


# Cloud metadata services outside the link-local ranges: AWS's IPv6 endpoint and Alibaba
# Cloud's.  (AWS, GCP, Azure and Oracle answer at 169.254.169.254, which is link-local.)
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
)


def is_local_address(address: str) -> bool:
    """Loopback (127/8, ::1), link-local (169.254/16, fe80::/10), unspecified (0.0.0.0),
    or a cloud metadata service (:data:`METADATA_ADDRESSES`)."""
    ip = ipaddress.ip_address(address.partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip in METADATA_ADDRESSES


class _RefuseLocal:
    """Mixin for urllib3 connections: check the peer address right after connect()."""

    allowed: HostPatterns | None = None
    scheme = "http"
    host: str

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        address, port = sock.getpeername()[:2]
        allowed = self.allowed is not None and self.allowed.names_literally(
            address, port, self.scheme
        )
        if is_local_address(address) and not allowed:
            sock.close()
            raise NewConnectionError(
                self,  # type: ignore[arg-type]  # always mixed into an HTTPConnection
                f"refused: {self.host!r} is the local address {address} "
                f"(refuse_local=True; name it in upstream_hosts to allow it)",
            )
        return sock


def guarded_pool_classes(allowed: HostPatterns | None) -> dict[str, type[HTTPConnectionPool]]:
    """``PoolManager.pool_classes_by_scheme`` whose connections refuse local addresses not
    in ``allowed`` (the same connection classes as the unguarded pool's, with the check)."""

    class GuardedHTTPConnection(_RefuseLocal, ReproxyHTTPConnection):
        pass

    class GuardedHTTPSConnection(_RefuseLocal, ReproxyHTTPSConnection):
        scheme = "https"

    class GuardedHTTPConnectionPool(ReproxyHTTPConnectionPool):
        ConnectionCls = GuardedHTTPConnection

    class GuardedHTTPSConnectionPool(ReproxyHTTPSConnectionPool):
        ConnectionCls = GuardedHTTPSConnection

    GuardedHTTPConnection.allowed = GuardedHTTPSConnection.allowed = allowed
    return {"http": GuardedHTTPConnectionPool, "https": GuardedHTTPSConnectionPool}


def is_guarded(pool: urllib3.PoolManager) -> bool:
    """Do all of the pool's connections check the address they reached?"""
    return all(
        issubclass(getattr(cls, "ConnectionCls", object), _RefuseLocal)
        for cls in pool.pool_classes_by_scheme.values()
    )
