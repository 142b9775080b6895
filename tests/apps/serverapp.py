"""The WSGI app that real servers (gunicorn, uWSGI, waitress) load in the tests.

Configured from the environment, because it runs in another process:

``RP_REPLICAS``   space-separated base URLs of storage replicas (FileServer instances)
``RP_POOL_SIZE``  maxsize of the middleware's PoolManager (block=True), default 2
``RP_STALL``      a URL that never answers (a ScriptedServer), for ``/s/``
``RP_DYING``      a URL whose chunked body dies halfway (a ScriptedServer), for ``/d/``,
                  whose full length is ``RP_DYING_SIZE``
``RP_TLS``        an HTTPS URL whose certificate ``RP_TLS_CA`` (a PEM file) signed, for
                  ``/t/``, fetched through a ``ReproxyPoolManager(ca_certs=...)``

Routes: ``/r/<name>`` reproxies ``<replica>/files/<name>`` for every replica in order,
through a plain urllib3 ``PoolManager`` passed as ``pool``; ``/o/<name>`` does the same
through the middleware's own pool (its connections, its sockets), and ``/s/<name>``
reproxies ``RP_STALL`` through it with a 1 s read timeout; ``/d/<name>`` reproxies
``RP_DYING`` with its ``X-Reproxy-Expected-Size``; ``/n/<name>`` is not enabled
(the app answers itself); ``/stats`` reports how many app iterables were created and
closed, so a test can assert "closed exactly once" across the process boundary, and
``/sockets`` the classes of the sockets the own pool keeps.
"""

from __future__ import annotations

import json
import os

import urllib3
from counted import Counted, lock, stats

from wsgi_reproxy import ReproxyMiddleware, ReproxyPoolManager, can_reproxy, reproxy_headers


def backend(environ, start_response):
    path = environ["PATH_INFO"]
    if path in ("/stats", "/sockets"):
        with lock:
            body = json.dumps(stats if path == "/stats" else _own_sockets()).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]
    name = path.rpartition("/")[2]
    if path.startswith(("/r/", "/o/", "/s/", "/d/", "/t/")) and can_reproxy(environ):
        replicas = os.environ["RP_REPLICAS"].split()
        urls = [f"{base}/files/{name}" for base in replicas]
        expected_size = None
        if path.startswith("/s/"):
            urls = [os.environ["RP_STALL"]]
        if path.startswith("/d/"):
            urls = [os.environ["RP_DYING"]]
            expected_size = int(os.environ["RP_DYING_SIZE"])
        if path.startswith("/t/"):
            urls = [os.environ["RP_TLS"]]
        headers = reproxy_headers(*urls, expected_size=expected_size)
        start_response("200 OK", [("Content-Type", "application/x-app"), *headers])
        return Counted([b"IGNORED"])
    body = f"plain {name}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return Counted([body])


pool = urllib3.PoolManager(
    maxsize=int(os.environ.get("RP_POOL_SIZE", "2")), block=True, retries=False
)
shared_pool = ReproxyMiddleware(
    backend,
    allow=["/r/"],
    preserve=["Content-Type"],
    pool=pool,
    timeout=urllib3.Timeout(connect=2, read=5),
)
own_pool = ReproxyMiddleware(
    backend,
    allow=["/o/", "/s/", "/d/"],
    preserve=["Content-Type"],
    timeout=urllib3.Timeout(connect=2, read=1),
)


tls_pool = ReproxyMiddleware(
    backend,
    allow=["/t/"],
    pool=ReproxyPoolManager(ca_certs=os.environ.get("RP_TLS_CA")),
    timeout=urllib3.Timeout(connect=2, read=2),
)


def _own_sockets():
    """The classes of the sockets kept in the own pool's connections, as module.name."""
    found = []
    for key in own_pool.pool.pools.keys():  # noqa: SIM118 (the container refuses iteration)
        connections = own_pool.pool.pools[key].pool
        for connection in list(connections.queue) if connections is not None else []:
            if connection is not None and connection.sock is not None:
                kind = type(connection.sock)
                found.append(f"{kind.__module__}.{kind.__qualname__}")
    return found


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith("/t/"):
        return tls_pool(environ, start_response)
    middleware = own_pool if path.startswith(("/o/", "/s/", "/d/")) else shared_pool
    return middleware(environ, start_response)
