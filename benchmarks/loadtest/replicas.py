"""The replicas: a raw-socket HTTP/1.1 file store, so that a body can be cut where planned.

:func:`reply_for` is the HTTP side (``/files/<name>``, strong ETag, ``Range``/``If-Range``,
and on the dying replica ``?cut=N&how=fin|rst``), with no socket in it; :class:`Replica` is
the threaded keep-alive server around it, counting what the middleware did to it.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from .files import ETAGS, FILES, KIB
from .wire import established, parse_head, read_head, reset_on_close

_RANGE = re.compile(r"bytes=(\d+)-(\d*)", re.ASCII)
_REASONS = {200: "OK", 206: "Partial Content", 404: "Not Found", 416: "Range Not Satisfiable"}
_SEND_SLICE = 256 * KIB


@dataclass(frozen=True, slots=True)
class Reply:
    """What a replica sends; ``cut`` bytes of the body only, then a FIN or (``reset``) RST."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: memoryview
    cut: int | None = None
    reset: bool = False

    def head(self) -> bytes:
        lines = [
            f"HTTP/1.1 {self.status} {_REASONS[self.status]}",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _byte_range(headers: Mapping[str, str], etag: str, size: int) -> range | None:
    """The single range to send, or None for the whole file (RFC 9110 §14.2, §13.1.5).

    Only ``bytes=N-`` and ``bytes=N-M`` are understood -- what the middleware sends to resume
    -- and a ``Range`` whose ``If-Range`` is not this replica's ETag is ignored.
    """
    match = _RANGE.fullmatch(headers.get("range", "").strip())
    if match is None or headers.get("if-range", etag) != etag:
        return None
    start, last = int(match[1]), match[2]
    if start >= size:
        return range(0)  # unsatisfiable: 416
    stop = min(int(last) + 1, size) if last else size
    return range(start, stop) if start < stop else None


def _cut(query: str) -> tuple[int | None, bool]:
    params = parse_qs(query)
    if "cut" not in params:
        return None, False
    return int(params["cut"][0]), params.get("how") == ["rst"]


def reply_for(target: str, headers: Mapping[str, str], *, dying: bool) -> Reply:
    """The answer to ``GET target``: ``/files/<name>`` with a strong ETag and ranges."""
    url = urlsplit(target)
    name = url.path.removeprefix("/files/")
    if not url.path.startswith("/files/") or name not in FILES:
        return Reply(404, (("Content-Length", "0"),), memoryview(b""))
    data = memoryview(FILES[name])
    common = (
        ("Content-Type", "application/octet-stream"),
        ("ETag", ETAGS[name]),
        ("Accept-Ranges", "bytes"),
    )
    part = _byte_range(headers, ETAGS[name], len(data))
    if part is not None and not part:
        return Reply(
            416,
            (("Content-Range", f"bytes */{len(data)}"), ("Content-Length", "0")),
            memoryview(b""),
        )
    extra: tuple[tuple[str, str], ...] = ()
    status, body = 200, data
    if part is not None:
        status, body = 206, data[part.start : part.stop]
        extra = (("Content-Range", f"bytes {part.start}-{part.stop - 1}/{len(data)}"),)
    cut, reset = _cut(url.query) if dying else (None, False)
    return Reply(status, (*common, *extra, ("Content-Length", str(len(body)))), body, cut, reset)


def _send(conn: socket.socket, method: str, reply: Reply) -> bool:
    """Send ``reply``; False when the connection must end (the body was cut)."""
    conn.sendall(reply.head())
    body = reply.body if method != "HEAD" else memoryview(b"")
    if reply.cut is not None:
        body = body[: reply.cut]
    for start in range(0, len(body), _SEND_SLICE):
        conn.sendall(body[start : start + _SEND_SLICE])
    if reply.cut is None:
        return True
    if reply.reset:
        reset_on_close(conn)
    return False


class Replica:
    """A threaded keep-alive HTTP/1.1 file server for :data:`.files.FILES` on 127.0.0.1.

    Counts TCP connections accepted, requests, and the most connections ESTABLISHED at
    once -- measured at each accept, the only moment that number can grow, from the
    kernel's view, so that a client that closes one connection and then opens another is
    never counted twice however late this server's threads notice the close.

    ``dying=True``: ``?cut=N&how=fin|rst`` in the URL sends only N body bytes, then hangs up.
    """

    def __init__(self, label: str, *, dying: bool = False) -> None:
        self.label = label
        self.dying = dying
        self.accepted = 0
        self.requests = 0
        self.peak_open = 0
        self.cut_by_peer = 0  # responses the client (the middleware) hung up on mid-body
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._listener.settimeout(0.05)  # how often the accept loop looks at _stop
        self.port: int = self._listener.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._acceptor = threading.Thread(
            target=self._accept_loop, daemon=True, name=f"replica-{label}"
        )
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(30.0)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(
                target=self._serve, args=(conn,), daemon=True, name=f"replica-{self.label}-conn"
            )
            with self._lock:
                self.accepted += 1
                self._open.add(conn)
                self.peak_open = max(self.peak_open, sum(map(established, self._open)))
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._converse(conn)
        except OSError:
            pass  # the peer went away (a discarded upstream connection) or close() cut it
        finally:
            with self._lock:
                self._open.discard(conn)
            conn.close()

    def _converse(self, conn: socket.socket) -> None:
        pending = b""
        while not self._stop.is_set():
            head, pending = read_head(conn, pending)
            if head is None:
                return
            request_line, headers = parse_head(head)
            method, target, _ = request_line.split(" ", 2)
            with self._lock:
                self.requests += 1
            try:
                if not _send(conn, method, reply_for(target, headers, dying=self.dying)):
                    return
            except ConnectionError:
                with self._lock:
                    self.cut_by_peer += 1
                return
            if headers.get("connection", "").lower() == "close":
                return

    def open_now(self) -> int:
        with self._lock:
            return sum(map(established, self._open))

    def close(self) -> None:
        """Stop accepting, cut open connections (waking their threads), join everything."""
        self._stop.set()
        self._acceptor.join()
        self._listener.close()
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)
