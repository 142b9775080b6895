"""The file catalogue, and serving a file ourselves when the middleware cannot reproxy it.

In a real deployment the catalogue is a model and the replicas come from a placement
service; here both are tiny and in memory.  The fallback streams the bytes from the first
replica that answers, through urllib3, in pieces: never the whole file in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import urllib3

log = logging.getLogger(__name__)

CHUNK_SIZE = 64 * 1024
TIMEOUT = urllib3.Timeout(connect=5.0, read=30.0)

#: The app's own pool, for the fallback (failover is ours: no retries); the middleware has
#: another one.
pool = urllib3.PoolManager(maxsize=8, retries=False, timeout=TIMEOUT)


@dataclass(frozen=True)
class StoredFile:
    """What the app knows about a file: its size and type; the bytes live on the replicas."""

    name: str
    size: int
    content_type: str


CATALOGUE: dict[str, StoredFile] = {
    stored.name: stored
    for stored in (
        StoredFile("small.txt", 12, "text/plain; charset=utf-8"),
        StoredFile("1m.bin", 1024 * 1024, "application/octet-stream"),
        StoredFile("5m.bin", 5 * 1024 * 1024, "application/octet-stream"),
    )
}


def replica_urls(replicas: Sequence[str], stored: StoredFile) -> list[str]:
    """Where the file lives, in the order to try: ``<replica>/files/<name>`` on each."""
    return [f"{replica.rstrip('/')}/files/{stored.name}" for replica in replicas]


def open_first(urls: Sequence[str], method: str, stored: StoredFile) -> ReplicaBody | None:
    """``method`` (GET or HEAD) on each URL in turn; the first 200 of the right size wins."""
    for url in urls:
        try:
            response = pool.request(method, url, preload_content=False, redirect=False)
        except urllib3.exceptions.HTTPError as error:
            log.warning("replica %r failed: %s", url, error)
            continue
        if response.status == 200 and response.headers.get("Content-Length") == str(stored.size):
            return ReplicaBody(response)
        log.warning(
            "replica %r answered %d, Content-Length %s",
            url,
            response.status,
            response.headers.get("Content-Length"),
        )
        response.close()
        response.release_conn()
    return None


class ReplicaBody:
    """A response body streamed from a replica, ``CHUNK_SIZE`` bytes at a time.

    ``close()`` (idempotent; Django calls it when the server closes the response, whether or
    not the client read everything) hands a fully read connection back to the pool, and
    closes a half-read one rather than drain the rest of a large file.
    """

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self._response.stream(CHUNK_SIZE, decode_content=False)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        response = self._response
        if response.length_remaining == 0:
            response.drain_conn()  # nothing left (HEAD, or read whole): keep the connection
        else:
            response.close()
        response.release_conn()
