"""The storage replicas: keep-alive HTTP/1.1 file servers with ranges and ETags.

They know nothing of the middleware; they answer ``/files/<name>`` like a blob store would,
with a generic content type (which is why the middleware is told to ``preserve`` the app's).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import quote, unquote

from .files import DemoFile
from .servers import ThreadedServer

__all__ = [
    "FILES_PATH",
    "REPLICA_CONTENT_TYPE",
    "ReplicaServer",
    "Reply",
    "answer",
    "byte_range",
]

log = logging.getLogger("wsgi_reproxy.demo")

FILES_PATH = "/files/"
REPLICA_CONTENT_TYPE = "application/octet-stream"  # blob stores know no types: see `preserve`


@dataclass(frozen=True, slots=True)
class Reply:
    """What a replica sends: status, headers and body (a view, so 8 MiB is never copied)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes | memoryview = b""


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, stop)`` of a single byte range, or None to send the whole file.

    A missing, malformed or multi-range header is ignored, as RFC 9110 §14.2 allows.
    :raises ValueError: the range is unsatisfiable (416).
    """
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:  # suffix range: the last N bytes
        if int(last) == 0:
            raise ValueError("empty suffix range")
        return max(0, size - int(last)), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise ValueError(f"range starts at {start}, past the end ({size})")
    return start, min(int(last) + 1, size) if last else size


def _none_match(if_none_match: str | None, etag: str) -> bool:
    """``If-None-Match``: a list of entity tags, or ``*`` (RFC 9110 §13.1.2)."""
    tags = [tag.strip() for tag in (if_none_match or "").split(",")]
    return etag in tags or "*" in tags


def answer(stored: DemoFile, headers: Message) -> Reply:
    """A replica's answer for a file it has: 200, 206, 304 or 416 (RFC 9110 §13, §14)."""
    common = [("ETag", stored.etag), ("Accept-Ranges", "bytes")]
    if _none_match(headers.get("If-None-Match"), stored.etag):
        return Reply(304, common)
    size = len(stored.data)
    range_header = headers.get("Range")
    if headers.get("If-Range", stored.etag) != stored.etag:
        range_header = None  # the client's partial copy is stale: send it all
    try:
        span = byte_range(range_header, size)
    except ValueError:
        return Reply(416, [*common, ("Content-Range", f"bytes */{size}"), ("Content-Length", "0")])
    start, stop = span or (0, size)
    common += [("Content-Type", REPLICA_CONTENT_TYPE), ("Content-Length", str(stop - start))]
    body = memoryview(stored.data)[start:stop]
    if span is None:
        return Reply(200, common, body)
    return Reply(206, [*common, ("Content-Range", f"bytes {start}-{stop - 1}/{size}")], body)


class ReplicaServer(ThreadedServer):
    """A storage node: serves its files under ``/files/<name>`` and names itself in X-Replica.

    ``hits`` records ``(method, name, status)`` of every request, so checks can show failover.
    """

    def __init__(self, name: str, files: Iterable[DemoFile], port: int = 0) -> None:
        self.name = name
        self.files = {file.name: file for file in files}
        self.hits: list[tuple[str, str, int]] = []
        super().__init__(port, ReplicaHandler)

    def file_url(self, name: str) -> str:
        return f"{self.url}{FILES_PATH}{quote(name)}"


class ReplicaHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, so the middleware's pool really reuses connections."""

    protocol_version = "HTTP/1.1"
    server: ReplicaServer

    def do_GET(self) -> None:
        self._send(self._reply(), body=True)

    def do_HEAD(self) -> None:
        self._send(self._reply(), body=False)

    def _reply(self) -> Reply:
        path = self.path.partition("?")[0]
        name = unquote(path.removeprefix(FILES_PATH)) if path.startswith(FILES_PATH) else ""
        stored = self.server.files.get(name)
        if stored is None:
            text = f"{name or path!r} is not stored on replica {self.server.name}\n".encode()
            reply = Reply(
                404,
                [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(text)))],
                text,
            )
        else:
            reply = answer(stored, self.headers)
        self.server.hits.append((self.command, name, reply.status))
        return reply

    def _send(self, reply: Reply, *, body: bool) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("X-Replica", self.server.name)
        self.end_headers()
        if body:
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("replica %s: %s", self.server.name, format % args)
