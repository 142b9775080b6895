"""The apps ``benchmarks/ceiling.py`` runs side by side under one server: how fast can a
Python front serve a small stored file, and what does each layer of a cached hit cost?

Each is one path prefix, ``/<kind>/<name>``, answering the bytes of ``$BENCH_STORAGE<name>``:

``static``   the bytes from memory, fetched once: the server's own ceiling;
``socket``   a raw HTTP/1.1 GET over one kept-alive socket per thread: a fetch with no
             client library at all (no checks either: not something to deploy);
``urllib3``  a plain ``urllib3.HTTPConnectionPool``: the client the project keeps;
``pool``     the middleware's own pool (:class:`wsgi_reproxy.ReproxyPoolManager`): the
             fetch a hit makes, without the middleware around it;
``hit``      ``ReproxyMiddleware`` with a ``MemoryCache``, in front of a view that spends
             1 ms of CPU and answers ``X-Reproxy-Cache-For: 30``: after the first
             request every request is a hit, the app never called;
``r``        the middleware without a cache, in front of a view that costs nothing.

``/n/ready`` and ``/n/version`` are what ``servers.py``'s helpers ask for.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import urllib3

import wsgi_reproxy
from wsgi_reproxy import MemoryCache, ReproxyMiddleware
from wsgi_reproxy.transport.pools import make_pool, urlopen_as_written

STORAGE = os.environ.get("BENCH_STORAGE", "http://127.0.0.1:18081/files/")
PRESERVE = ["Content-Type", "Content-Disposition"]
TIMEOUT = urllib3.Timeout(connect=5, read=30)
VIEW_SECONDS = 0.001  # what the view behind ``hit`` spends on a miss (the anchors' --app-ms 1)

StartResponse = Callable[..., Any]
_parsed = urllib3.util.parse_url(STORAGE)
_HOST, _PORT, _PATH = _parsed.host or "127.0.0.1", _parsed.port or 80, _parsed.path or "/"
_kept: dict[str, bytes] = {}
_sockets = threading.local()
_plain_pool = urllib3.HTTPConnectionPool(_HOST, _PORT, maxsize=32, retries=False)
_own_pool = make_pool(TIMEOUT)


def _answer(start_response: StartResponse, body: bytes) -> list[bytes]:
    start_response(
        "200 OK",
        [("Content-Type", "application/x-test"), ("Content-Length", str(len(body)))],
    )
    return [body]


def static(name: str) -> bytes:
    body = _kept.get(name)
    if body is None:
        body = _kept[name] = _plain_pool.request("GET", _PATH + name).data
    return body


def raw_socket(name: str) -> bytes:
    """One GET on this thread's kept-alive socket; the length from Content-Length."""
    sock = getattr(_sockets, "sock", None)
    if sock is None:
        sock = _sockets.sock = socket.create_connection((_HOST, _PORT))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(f"GET {_PATH}{name} HTTP/1.1\r\nHost: {_HOST}:{_PORT}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return body


def plain_urllib3(name: str) -> bytes:
    response = _plain_pool.urlopen("GET", _PATH + name, preload_content=False, redirect=False)
    body = response.read()
    response.release_conn()
    return body


def own_pool(name: str) -> bytes:
    response = urlopen_as_written(
        _own_pool,
        "GET",
        STORAGE + name,
        headers={"User-Agent": "ceiling"},
        redirect=False,
        retries=False,
        preload_content=False,
        decode_content=False,
        timeout=TIMEOUT,
    )
    body = response.read()
    response.release_conn()
    return body


def view(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """A download view: X-Reproxy-Url to the storage; ``/hit/`` costs 1 ms of CPU and
    lets its decision be kept for 30 s."""
    kind, _, name = environ.get("PATH_INFO", "").lstrip("/").partition("/")
    headers = [
        ("Content-Type", "application/x-test"),
        ("Content-Disposition", f"attachment; filename={name}"),
        ("X-Reproxy-Url", STORAGE + name),
    ]
    if kind == "hit":
        end = time.thread_time() + VIEW_SECONDS
        while time.thread_time() < end:
            pass
        headers.append(("X-Reproxy-Cache-For", "30"))
    start_response("200 OK", [*headers, ("Content-Length", "0")])
    return [b""]


_cached = ReproxyMiddleware(view, allow=["/hit/"], preserve=PRESERVE, cache=MemoryCache(10000))
_uncached = ReproxyMiddleware(view, allow=["/r/"], preserve=PRESERVE)
FETCHES: dict[str, Callable[[str], bytes]] = {
    "static": static,
    "socket": raw_socket,
    "urllib3": plain_urllib3,
    "pool": own_pool,
}
KINDS = [*FETCHES, "hit", "r"]


def close() -> None:
    """Close the pools, and this thread's raw socket (the tests call it)."""
    _own_pool.clear()
    _plain_pool.close()
    sock = getattr(_sockets, "sock", None)
    if sock is not None:
        sock.close()
        _sockets.sock = None


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    kind, _, name = environ.get("PATH_INFO", "").lstrip("/").partition("/")
    if kind == "hit":
        return _cached(environ, start_response)
    if kind == "r":
        return _uncached(environ, start_response)
    fetch = FETCHES.get(kind)
    if fetch is not None:
        return _answer(start_response, fetch(name))
    if name == "version":
        return _answer(start_response, f"{wsgi_reproxy.__file__}\n".encode())
    return _answer(start_response, b"ready\n")
