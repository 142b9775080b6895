"""Real upstream servers for the tests: one that behaves, and scripted ones that do not.

Why real servers and no mocks: the middleware's hardest promises (SPEC R5, R6) are about what
happens on the wire -- which headers reach the target, whether a keep-alive connection is
reused, what a client sees when a target stalls, lies about ``Content-Length`` or resets the
connection mid-body. A mock of urllib3 would only test our beliefs about urllib3. So, like
Werkzeug's ``tests/live_apps`` and urllib3's ``SocketDummyServerTestCase``, the tests talk to:

* :class:`FileServer` -- a threaded HTTP/1.1 keep-alive server with real HTTP semantics
  (ranges, validators, conditional requests, gzip, chunked, awkward headers, an echo route),
  which records every request and counts TCP connections.
* :class:`ScriptedServer` -- a raw TCP server running a *handler* per connection, to misbehave
  in exactly one way. The factories below (:func:`stall_before_status`, :func:`close_mid_body`,
  ...) cover the usual failures; a test may also pass its own ``handler(conn, server)``.
* :func:`closed_port_url` -- a URL whose port refuses connections.

Teardown discipline. The suite runs with warnings as errors, ``ResourceWarning`` included, so
every socket is closed and every thread joined by ``close()``. ``close()`` must also be fast
when a connection is stalled: stalls wait on ``stop_event`` (set by ``close()``), and
``close()`` shuts down every open connection, which wakes any thread blocked in
``recv``/``send`` on it. Everything binds ``127.0.0.1`` port 0.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import gzip
import hashlib
import json
import random
import re
import select
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "FILES",
    "HEADERS_BODY",
    "HEADERS_ROUTE",
    "LAST_MODIFIED",
    "FileServer",
    "Handler",
    "RecordedRequest",
    "ScriptedServer",
    "close_mid_body",
    "closed_port_url",
    "etag_for",
    "garbage_status",
    "https_server",
    "huge_headers",
    "infinite_chunked",
    "long_body",
    "reset_mid_body",
    "respond",
    "response_head",
    "stall_before_status",
    "stall_mid_body",
    "stall_mid_headers",
]

# Deterministic contents, so tests can compare bytes exactly. The large ones are pseudo-random
# (incompressible, no repeating pattern) and bigger than any chunk size, so a body that is
# truncated, reordered or re-chunked wrongly cannot compare equal by accident.
FILES: dict[str, bytes] = {
    "small.txt": b"hello world\n",
    "1m.bin": random.Random(1).randbytes(1024 * 1024),
    "5m.bin": random.Random(5).randbytes(5 * 1024 * 1024),
    "50m.bin": random.Random(50).randbytes(50 * 1024 * 1024),  # the real-server tests
    "empty.bin": b"",
}

# A fixed validator date, so If-Modified-Since / If-Range tests can use it.
LAST_MODIFIED = "Mon, 01 Jan 2024 00:00:00 GMT"

# What ``/headers`` sends, in this order, after the server's own ``Server`` and ``Date``.
# Duplicates are interleaved with other names on purpose (a proxy must keep both values and
# their order), and every hop-by-hop kind is present (RFC 9110 §7.6.1), including
# ``X-Private``, which is hop-by-hop only because ``Connection`` names it. ``X-Reproxy-*`` is the
# target's own directive: a reproxying middleware must neither follow it nor leak it.
HEADERS_BODY = b"headers\n"
HEADERS_ROUTE: tuple[tuple[str, str], ...] = (
    ("Content-Type", "text/plain"),
    ("Set-Cookie", "a=1; Path=/"),
    ("X-Custom", "one"),
    ("Keep-Alive", "timeout=5"),
    ("Set-Cookie", "b=2; Path=/"),
    ("Proxy-Authenticate", "Basic"),
    ("X-Custom", "two"),
    ("Upgrade", "h2c"),
    ("Trailer", "X-T"),
    ("Connection", "X-Private, keep-alive"),
    ("X-Private", "secret"),
    ("X-Reproxy-Url", "http://127.0.0.1:9/loop"),
    ("X-Reproxy-Expected-Size", "3"),
    ("Content-Length", str(len(HEADERS_BODY))),
)

_OCTET = "application/octet-stream"
_LAST_MODIFIED_TS = email.utils.parsedate_to_datetime(LAST_MODIFIED).timestamp()
_CHUNKED_PIECE = 7919  # a prime: chunk boundaries never line up with anyone's buffer size
_WRITE_SLICE = 64 * 1024  # large bodies are written in slices, never copied whole
_REDIRECT_TARGET = "http://127.0.0.1:9/elsewhere"
_BYTE_RANGE = re.compile(r"bytes=(\d*)-(\d*)", re.ASCII | re.IGNORECASE)
_MAX_HEAD = 64 * 1024
_POLL = 0.01  # how often idle loops look at stop_event: bounds the latency of close()


def _shut(sock: socket.socket) -> None:
    """Shut a connection down in both directions, waking any thread blocked on it.

    Only the owning thread ever closes a connection socket; other threads only shut it
    down, so a file descriptor is never closed under a thread still using it.
    """
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _join_all(threads: Iterable[threading.Thread], what: str) -> None:
    stuck = []
    for thread in threads:
        thread.join(timeout=2)
        if thread.is_alive():
            stuck.append(thread.name)
    if stuck:
        raise RuntimeError(f"{what}: threads did not stop: {stuck}")


# --------------------------------------------------------------------------------------------
# HTTP semantics of /files, as small pure functions
# --------------------------------------------------------------------------------------------


@functools.cache
def etag_for(name: str, *, weak: bool = False) -> str:
    """The ETag ``/files/<name>`` (strong) or ``/weak/<name>`` (weak) sends for ``FILES[name]``."""
    tag = '"' + hashlib.sha256(FILES[name]).hexdigest()[:16] + '"'
    return "W/" + tag if weak else tag


@functools.cache
def _gzipped(name: str) -> bytes:
    # mtime=0: the same input always compresses to the same bytes, so tests may compare them.
    return gzip.compress(FILES[name], mtime=0)


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _etag_in(header: str, etag: str, *, strong: bool) -> bool:
    """Does an ``If-Match``/``If-None-Match`` list match (RFC 9110 §8.8.3.2 comparison)?"""
    tags = [tag.strip() for tag in header.split(",")]
    if "*" in tags:
        return True
    if strong:
        return not etag.startswith("W/") and etag in tags
    return etag.removeprefix("W/") in {tag.removeprefix("W/") for tag in tags}


def _precondition_status(headers: Mapping[str, str], etag: str) -> int | None:
    """412 or 304 when the request's preconditions say so, else None (RFC 9110 §13.2.2)."""
    if_match = headers.get("If-Match")
    if if_match is not None and not _etag_in(if_match, etag, strong=True):
        return 412
    since = _http_date(headers.get("If-Unmodified-Since"))
    if if_match is None and since is not None and since < _LAST_MODIFIED_TS:
        return 412
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        return 304 if _etag_in(if_none_match, etag, strong=False) else None
    modified_since = _http_date(headers.get("If-Modified-Since"))
    if modified_since is not None and modified_since >= _LAST_MODIFIED_TS:
        return 304
    return None


def _byte_range(headers: Mapping[str, str], etag: str, length: int) -> range | None:
    """The one byte range to send, ``range(0)`` when unsatisfiable, None to send it all.

    Only single ranges are supported; a multi-range or malformed ``Range`` is ignored (a
    server MAY do so, RFC 9110 §14.2), and so is any ``Range`` whose ``If-Range`` does not
    match: an entity-tag must match strongly (never a weak one), a date exactly (§13.1.5).
    """
    value = headers.get("Range")
    if value is None:
        return None
    if_range = headers.get("If-Range")
    if if_range is not None:
        if if_range.startswith(('"', "W/")):
            if etag.startswith("W/") or if_range.strip() != etag:
                return None
        elif _http_date(if_range) != _LAST_MODIFIED_TS:
            return None
    match = _BYTE_RANGE.fullmatch(value.strip())
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:  # suffix range: the last N bytes
        suffix = int(last)
        return range(max(0, length - suffix), length) if suffix and length else range(0)
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= length:
        return range(0)
    return range(start, min(int(last), length - 1) + 1 if last else length)


# --------------------------------------------------------------------------------------------
# FileServer
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One request as :class:`FileServer` received it: the method, the path with its query
    string, and the headers as ``(name, value)`` pairs in received order, duplicates kept."""

    method: str
    path: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in received order."""
        return [value for key, value in self.headers if key.lower() == name.lower()]


class _ServerBase:
    """What both servers share: the open connections they cut at close, the threads they
    join, and use as a context manager."""

    base: str
    _lock: threading.Lock
    _open: set[socket.socket]
    _threads: list[threading.Thread]

    def close(self) -> None:
        raise NotImplementedError

    def _cut_connections_and_join(self) -> None:
        with self._lock:
            for sock in self._open:
                _shut(sock)
            threads = list(self._threads)
        _join_all(threads, f"{type(self).__name__} {self.base}")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class FileServer(_ServerBase):
    """A threaded HTTP/1.1 keep-alive server on 127.0.0.1 serving :data:`FILES`.

    Routes (``HEAD`` works wherever ``GET`` does, with the same headers and no body):

    ``/files/<name>``
        ``FILES[name]`` with ``Content-Length``, strong ``ETag``, ``Last-Modified``,
        ``Accept-Ranges: bytes``; single byte ranges (206 / 416), ``If-Range``,
        ``If-None-Match`` / ``If-Modified-Since`` (304), ``If-Match`` /
        ``If-Unmodified-Since`` (412). Unknown names: 404.
    ``/weak/<name>``
        the same with a weak ``W/"..."`` ETag (never matches ``If-Range``).
    ``/gzip/<name>``
        ``gzip.compress(FILES[name], mtime=0)`` with ``Content-Encoding: gzip``, whatever the
        request's ``Accept-Encoding``.
    ``/chunked/<name>``
        ``Transfer-Encoding: chunked`` in chunks of 7919 bytes, no ``Content-Length``.
    ``/headers``
        :data:`HEADERS_ROUTE` and :data:`HEADERS_BODY`.
    ``/status/<code>``
        that status; 3xx carry ``Location: http://127.0.0.1:9/elsewhere``; 204/304 no body.
    ``/echo[/...]``
        any method; JSON ``{"method", "path", "headers": [[name, value], ...]}``.
    ``/slow/<name>?delay=SECONDS``
        like ``/files/<name>``, after a delay that :meth:`close` interrupts.

    Every request is appended to :attr:`requests`; :attr:`connections` counts accepted TCP
    connections, so tests can tell keep-alive reuse from reconnecting.

    >>> with FileServer() as server:
    ...     url = server.url("/files/small.txt")
    """

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._httpd = _HTTPServer(self)
        self.port: int = self._httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._serve_thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": _POLL},
            name=f"file-server-{self.port}",
            daemon=True,
        )
        self._serve_thread.start()

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` on this server."""
        return self.base + ("" if path.startswith("/") else "/") + path

    def close(self) -> None:
        """Stop accepting, cut every open connection (even stalled ones) and join all threads.

        Idempotent. Takes well under 0.5 s whatever the clients are doing.
        """
        if self._closed:
            return
        self._closed = True
        self.stop_event.set()
        self._httpd.shutdown()
        self._serve_thread.join()
        self._httpd.server_close()
        self._cut_connections_and_join()

    @property
    def open_connections(self) -> int:
        """Connections accepted and not yet closed: what clients still hold open."""
        with self._lock:
            return len(self._open)

    def wait_open_connections(self, at_most: int, timeout: float = 5.0) -> int:
        """Wait until no more than ``at_most`` connections are open; return the count."""
        deadline = time.monotonic() + timeout
        while self.open_connections > at_most and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.open_connections

    # Called from the server's threads.

    def _opened(self, sock: socket.socket, thread: threading.Thread) -> None:
        with self._lock:
            self.connections += 1
            self._open.add(sock)
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)

    def _closing(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks its connections and threads for :meth:`FileServer.close`.

    The stock class neither counts connections nor keeps daemon threads to join, and its
    ``server_bind`` does a reverse DNS lookup (``getfqdn``) that can take seconds.
    """

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, owner: FileServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _FileHandler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"file-server-{self.server_port}-conn",
            daemon=True,
        )
        self.owner._opened(request, thread)
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        self.owner._closing(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client going away (or close() cutting it off) is normal here; anything else is a
        # bug in this module, printed as usual.
        if isinstance(sys.exception(), ConnectionError) or self.owner.stop_event.is_set():
            return
        super().handle_error(request, client_address)


class _FileHandler(BaseHTTPRequestHandler):
    """The routes of :class:`FileServer`; one instance per connection, one request at a time."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes
    server_version = "upstreams/1"
    sys_version = ""

    @property
    def owner(self) -> FileServer:
        return cast(_HTTPServer, self.server).owner

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; tests inspect FileServer.requests instead

    def _dispatch(self) -> None:
        self.owner._record(RecordedRequest(self.command, self.path, list(self.headers.items())))
        self._discard_request_body()
        url = urlsplit(self.path)
        route, _, rest = url.path.lstrip("/").partition("/")
        serve = getattr(self, f"_route_{route}", None)
        if serve is None:
            self._plain(404, b"not found\n")
        elif route != "echo" and self.command not in ("GET", "HEAD"):
            self._plain(405, b"method not allowed\n", [("Allow", "GET, HEAD")])
        else:
            serve(unquote(rest), parse_qs(url.query))

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _dispatch

    # Routes: (rest of the path after the route name, parsed query) -> None.

    def _route_files(self, name: str, query: dict[str, list[str]]) -> None:
        self._serve_file(name, weak=False)

    def _route_weak(self, name: str, query: dict[str, list[str]]) -> None:
        self._serve_file(name, weak=True)

    def _route_slow(self, name: str, query: dict[str, list[str]]) -> None:
        delay = float(query.get("delay", ["1"])[0])
        if self.owner.stop_event.wait(delay):
            self.close_connection = True  # shutting down: answer nothing
            return
        self._serve_file(name, weak=False)

    def _route_gzip(self, name: str, query: dict[str, list[str]]) -> None:
        if name not in FILES:
            return self._plain(404, b"no such file\n")
        body = _gzipped(name)
        headers = [
            ("Content-Type", _OCTET),
            ("Content-Encoding", "gzip"),
            ("Vary", "Accept-Encoding"),
            ("Content-Length", str(len(body))),
        ]
        return self._send(200, headers, body)

    def _route_chunked(self, name: str, query: dict[str, list[str]]) -> None:
        if name not in FILES:
            return self._plain(404, b"no such file\n")
        self._send(200, [("Content-Type", _OCTET), ("Transfer-Encoding", "chunked")])
        if self.command == "HEAD":
            return None
        data = memoryview(FILES[name])
        for start in range(0, len(data), _CHUNKED_PIECE):
            piece = data[start : start + _CHUNKED_PIECE]
            self.wfile.write(b"%x\r\n" % len(piece))
            self.wfile.write(piece)
            self.wfile.write(b"\r\n")
        self.wfile.write(b"0\r\n\r\n")
        return None

    def _route_headers(self, rest: str, query: dict[str, list[str]]) -> None:
        self._send(200, HEADERS_ROUTE, HEADERS_BODY)

    def _route_status(self, code_text: str, query: dict[str, list[str]]) -> None:
        code = int(code_text) if code_text.isascii() and code_text.isdigit() else 0
        if not 200 <= code <= 599:
            return self._plain(400, b"status must be 200-599\n")
        extra = [("Location", _REDIRECT_TARGET)] if 300 <= code < 400 else []
        if code in (204, 304):  # no body and no Content-Length (RFC 9110 §8.6)
            return self._send(code, extra)
        return self._plain(code, b"status %d\n" % code, extra)

    def _route_echo(self, rest: str, query: dict[str, list[str]]) -> None:
        received = {
            "method": self.command,
            "path": self.path,
            "headers": [[name, value] for name, value in self.headers.items()],
        }
        body = json.dumps(received).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        self._send(200, headers, body)

    # HTTP semantics.

    def _serve_file(self, name: str, *, weak: bool) -> None:
        data = FILES.get(name)
        if data is None:
            return self._plain(404, b"no such file\n")
        etag = etag_for(name, weak=weak)
        validators = [("ETag", etag), ("Last-Modified", LAST_MODIFIED)]
        request_headers = cast(Mapping[str, str], self.headers)
        status = _precondition_status(request_headers, etag)
        if status == 412:
            return self._plain(412, b"precondition failed\n", validators)
        if status == 304:
            return self._send(304, validators)
        common = [("Content-Type", _OCTET), *validators, ("Accept-Ranges", "bytes")]
        part = _byte_range(request_headers, etag, len(data))
        if part is None:
            return self._send(200, [*common, ("Content-Length", str(len(data)))], data)
        if not part:
            unsatisfiable = [("Content-Range", f"bytes */{len(data)}"), *validators]
            return self._plain(416, b"range not satisfiable\n", unsatisfiable)
        content_range = f"bytes {part.start}-{part.stop - 1}/{len(data)}"
        headers = [*common, ("Content-Range", content_range), ("Content-Length", str(len(part)))]
        return self._send(206, headers, memoryview(data)[part.start : part.stop])

    def _plain(self, status: int, body: bytes, extra: Iterable[tuple[str, str]] = ()) -> None:
        headers = [("Content-Type", "text/plain"), *extra, ("Content-Length", str(len(body)))]
        self._send(status, headers, body)

    def _send(
        self, status: int, headers: Iterable[tuple[str, str]], body: bytes | memoryview = b""
    ) -> None:
        """Status line and headers in the order given, then the body unless this is HEAD."""
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        view = memoryview(body)
        for start in range(0, len(view), _WRITE_SLICE):
            self.wfile.write(view[start : start + _WRITE_SLICE])

    def _discard_request_body(self) -> None:
        # Read a request body even where it is ignored, or keep-alive would parse it as the
        # next request.
        length = self.headers.get("Content-Length", "")
        if length.isascii() and length.isdigit():
            self.rfile.read(int(length))


# --------------------------------------------------------------------------------------------
# ScriptedServer
# --------------------------------------------------------------------------------------------

Handler = Callable[[socket.socket, "ScriptedServer"], None]
"""``handler(conn, server)``: speaks raw bytes on one accepted connection, then returns.

The server closes ``conn`` afterwards; a handler only closes it itself to choose *how*
(:func:`reset_mid_body`). ``BrokenPipeError``/``ConnectionResetError`` from the peer going
away, and any ``OSError`` after :meth:`ScriptedServer.close`, are swallowed by the server.
"""


class ScriptedServer(_ServerBase):
    """A raw TCP server on 127.0.0.1 that runs ``handler(conn, self)`` for each connection,
    each in its own thread, to produce one precise misbehaviour.

    Handlers use :meth:`read_request` (which records into :attr:`requests`) and :meth:`hold`
    (keep the connection open until the peer or :meth:`close` ends it), and
    :func:`response_head` to build responses.

    >>> with ScriptedServer(close_mid_body(100, b"abc")) as server:
    ...     url = server.url("/x")
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        # accept() wakes up every _POLL seconds to notice stop_event.
        self._listener.settimeout(_POLL)
        self.port: int = self._listener.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"scripted-{self.port}", daemon=True
        )
        self._accept_thread.start()

    def url(self, path: str = "/") -> str:
        """The absolute URL of ``path`` on this server."""
        return self.base + ("" if path.startswith("/") else "/") + path

    def read_request(self, conn: socket.socket) -> bytes:
        """Read one request head (through the blank line) and record it in :attr:`requests`.

        Returns ``b""`` when the peer closed first (or :meth:`close` cut the connection):
        handlers then simply return. Bytes after the head are discarded, which is fine for
        the body-less GET/HEAD requests a reproxying middleware sends.
        """
        data = b""
        while b"\r\n\r\n" not in data and len(data) < _MAX_HEAD:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        head = data.partition(b"\r\n\r\n")[0] + b"\r\n\r\n" if b"\r\n\r\n" in data else data
        if head:
            with self._lock:
                self.requests.append(head)
        return head

    def hold(self, conn: socket.socket) -> None:
        """Keep ``conn`` open, discarding input, until the peer closes it or :meth:`close`."""
        while not self.stop_event.is_set():
            readable, _, _ = select.select([conn], [], [], _POLL)
            if readable and not conn.recv(65536):
                return

    def close(self) -> None:
        """Stop accepting, set :attr:`stop_event`, cut every open connection, join threads."""
        if self._closed:
            return
        self._closed = True
        self.stop_event.set()
        self._accept_thread.join()
        self._listener.close()
        self._cut_connections_and_join()

    def _accept_loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(
                target=self._serve, args=(conn,), name=f"scripted-{self.port}-conn", daemon=True
            )
            with self._lock:
                self.connections += 1
                self._open.add(conn)
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.handler(conn, self)
        except OSError as exc:
            # The peer going away, or close() cutting us off, is the expected end of most
            # scripts. Anything else propagates and fails the test (pytest reports exceptions
            # in threads as warnings, which are errors here).
            if not isinstance(exc, ConnectionError) and not self.stop_event.is_set():
                raise
        finally:
            with self._lock:
                self._open.discard(conn)
            conn.close()


def response_head(status: str = "200 OK", headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """``b"HTTP/1.1 <status>\\r\\n<name>: <value>\\r\\n...\\r\\n"``, for scripted responses."""
    lines = [f"HTTP/1.1 {status}", *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _sized_head(content_length: int, *, close: bool = False) -> bytes:
    fields = [("Content-Type", _OCTET), ("Content-Length", str(content_length))]
    return response_head("200 OK", [*fields, ("Connection", "close")] if close else fields)


def _as_bytes(data: bytes | int) -> bytes:
    return b"x" * data if isinstance(data, int) else data


# Handler factories. Each returns a Handler that first reads the request head (so the client
# is waiting for a response, not still sending) and then misbehaves as its name says.


def stall_before_status() -> Handler:
    """Accept and read the request, then send nothing (a client read timeout)."""

    def handler(conn: socket.socket, server: ScriptedServer) -> None:
        if server.read_request(conn):
            server.hold(conn)

    return handler


def stall_mid_headers() -> Handler:
    """Send the status line and one header, then stall (the head never ends)."""

    def handler(conn: socket.socket, server: ScriptedServer) -> None:
        if server.read_request(conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n")
            server.hold(conn)

    return handler


def stall_mid_body(content_length: int, sent_bytes: bytes | int) -> Handler:
    """Announce ``content_length``, send ``sent_bytes`` (bytes, or that many ``b"x"``), stall."""
    prefix = _as_bytes(sent_bytes)

    def handler(conn: socket.socket, server: ScriptedServer) -> None:
        if server.read_request(conn):
            conn.sendall(_sized_head(content_length) + prefix)
            server.hold(conn)

    return handler


def close_mid_body(content_length: int, body_prefix: bytes | int) -> Handler:
    """Announce ``content_length``, send only ``body_prefix``, then close cleanly (FIN).

    The client sees a premature end of body: urllib3 raises ``ProtocolError`` on read.
    """
    prefix = _as_bytes(body_prefix)

    def handler(conn: socket.socket, server: ScriptedServer) -> None:
        if server.read_request(conn):
            conn.sendall(_sized_head(content_length) + prefix)

    return handler


def reset_mid_body(
    content_length: int, body_prefix: bytes | int, *, delay: float = 0.05
) -> Handler:
    """Announce ``content_length``, send ``body_prefix``, wait ``delay``, then reset (RST).

    The delay lets the client read the head first, so the reset usually surfaces while the
    body is read; code under test must cope with it surfacing earlier too.
    """
    prefix = _as_bytes(body_prefix)

    def handler(conn: socket.socket, server: ScriptedServer) -> None:
        if server.read_request(conn):
            conn.sendall(_sized_head(content_length) + prefix)
            server.stop_event.wait(delay)
            # SO_LINGER on with a zero timeout: close() discards the connection with an RST.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    return handler


def long_body(content_length: int, actual_body: bytes, *, keep_open: bool = False) -> Handler:
    """Announce ``content_length`` but send all of the longer ``actual_body``.

    A client must stop at ``content_length``. By default the response says
    ``Connection: close`` and the server closes, so the polluted connection is never reused
    and the outcome is deterministic. With ``keep_open`` the connection stays and every further
    request on it gets the same answer: whether a client then reuses it depends on whether
    the extra bytes are still in the socket (urllib3 sees unread data and reconnects) or
    already in http.client's discarded read buffer (it reuses), so assert bodies, not
    connection counts.
    """
    return respond(
        _sized_head(content_length, close=not keep_open) + actual_body, keep_open=keep_open
    )


def garbage_status(raw: bytes = b"HTTP/1.1 abc\r\n\r\n") -> Handler:
    """Answer with an unparseable status line (e.g. ``b"garbage\\r\\n\\r\\n"``), then close."""

    def handler(conn: socket.socket, server: ScriptedServer) -> None:
        if server.read_request(conn):
            conn.sendall(raw)

    return handler


def huge_headers(n_bytes: int = 100_000, *, single_line: bool = False) -> Handler:
    """A response head of about ``n_bytes`` that http.client refuses.

    http.client accepts at most 100 header fields and 65536 bytes per line: by default the
    head is split into ~100-byte fields (more than 100 of them whatever ``n_bytes``); with
    ``single_line`` it is one ``X-Big`` field of ``n_bytes`` (choose more than 65536).
    """
    if single_line:
        fields = [("X-Big", "a" * n_bytes)]
    else:
        fields = [(f"X-Filler-{i:05d}", "a" * 85) for i in range(max(101, n_bytes // 100))]
    head = response_head("200 OK", [*fields, ("Content-Length", "0")])

    def handler(conn: socket.socket, server: ScriptedServer) -> None:
        if server.read_request(conn):
            conn.sendall(head)
            server.hold(conn)

    return handler


def infinite_chunked(chunk_size: int = 8192) -> Handler:
    """A chunked body that never ends, until the peer goes away or the server closes."""
    chunk = b"%x\r\n" % chunk_size + b"z" * chunk_size + b"\r\n"
    head = response_head("200 OK", [("Content-Type", _OCTET), ("Transfer-Encoding", "chunked")])

    def handler(conn: socket.socket, server: ScriptedServer) -> None:
        if server.read_request(conn):
            conn.sendall(head)
            while not server.stop_event.is_set():
                conn.sendall(chunk)

    return handler


def respond(raw: bytes, *, keep_open: bool = False) -> Handler:
    """Answer with exactly ``raw``, then close; or, with ``keep_open``, keep the connection
    and answer every further request on it with ``raw`` again (keep-alive reuse, or a stall
    when ``raw`` promises more body than it has).

    Without ``keep_open``, put ``Connection: close`` in ``raw`` if the client may send a second
    request: otherwise it may reuse the connection before it sees the close, and get a reset.
    """

    def handler(conn: socket.socket, server: ScriptedServer) -> None:
        while server.read_request(conn):
            conn.sendall(raw)
            if not keep_open:
                return

    return handler


def closed_port_url(path: str = "/x") -> str:
    """A URL on 127.0.0.1 whose port refuses connections.

    The port is taken from a socket bound and closed without listening, so nothing listens
    there (the OS could in theory hand it out again, but not within a test's lifetime in
    practice, since ephemeral ports are allocated round-robin).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


@contextlib.contextmanager
def https_server(ca: Any, handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTPS server on 127.0.0.1 running ``handler``, with a certificate that
    ``ca`` (a ``trustme.CA``) issued; yields its base URL (``https://127.0.0.1:PORT``)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
