"""A Flask app whose downloads are served by storage replicas through wsgi-reproxy.

``GET /downloads/<name>`` looks the file up in the catalogue.  When the middleware will
honour it (``can_reproxy``), the view answers at once with ``X-Reproxy-Url`` listing every
replica and an empty body; the middleware then streams the first replica that works.
Otherwise (reproxying switched off for this path) the view streams the bytes itself.

Run it with ``flask --app app run`` or ``gunicorn 'app:create_app()'`` (see README.rst).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import urllib3
from flask import Flask, Response, abort, current_app, request
from werkzeug.http import dump_options_header

from wsgi_reproxy import ReproxyMiddleware, can_reproxy, reproxy_headers

log = logging.getLogger(__name__)

DEFAULT_REPLICAS = "http://127.0.0.1:9001 http://127.0.0.1:9002"
#: Response headers the view sets and the client must get from it, not from the replica.
PRESERVE = ["Content-Type", "Content-Disposition"]
CHUNK_SIZE = 64 * 1024
TIMEOUT = urllib3.Timeout(connect=5.0, read=30.0)


# -- The app --------------------------------------------------------------------------------


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The app factory.

    Configuration: ``STORAGE_REPLICAS``, the replicas' base URLs (default: the environment
    variable of the same name, space-separated), and ``REPROXY_ALLOW``, the path prefixes
    where reproxying is enabled (default: ``$REPROXY_ALLOW``, else ``/downloads/``).
    ``config`` overrides both.
    """
    app = Flask(__name__)
    app.config.from_mapping(
        STORAGE_REPLICAS=os.environ.get("STORAGE_REPLICAS", DEFAULT_REPLICAS).split(),
        REPROXY_ALLOW=os.environ.get("REPROXY_ALLOW", "/downloads/").split(),
    )
    if config is not None:
        app.config.from_mapping(config)
    # The app's own pool, for the fallback; the middleware has another one.
    app.extensions["storage_pool"] = urllib3.PoolManager(maxsize=8, retries=False, timeout=TIMEOUT)
    app.add_url_rule("/downloads/<name>", view_func=download)
    app.wsgi_app = ReproxyMiddleware(  # type: ignore[method-assign]
        app.wsgi_app,
        allow=app.config["REPROXY_ALLOW"],
        preserve=PRESERVE,
        upstream_hosts=upstream_hosts(app.config["STORAGE_REPLICAS"]),
    )
    return app


def download(name: str) -> Response:
    """``GET``/``HEAD /downloads/<name>``: reproxy when possible, else serve the bytes."""
    stored = CATALOGUE.get(name)
    if stored is None:
        abort(404)
    urls = replica_urls(current_app.config["STORAGE_REPLICAS"], stored)
    headers = {
        "Content-Type": stored.content_type,
        "Content-Disposition": dump_options_header("attachment", {"filename": stored.name}),
    }
    if can_reproxy(request.environ):
        # The middleware discards this empty body and streams the first working replica,
        # keeping our Content-Type and Content-Disposition (PRESERVE).
        directive = reproxy_headers(*urls, expected_size=stored.size)
        return Response(b"", headers=[*directive, *headers.items()])
    body = open_first(current_app.extensions["storage_pool"], urls, request.method, stored)
    if body is None:
        abort(502)
    headers["Content-Length"] = str(stored.size)
    return Response(body, headers=headers, direct_passthrough=True)


# -- The catalogue --------------------------------------------------------------------------
# In a real deployment this is a database table and the replicas come from a placement
# service; here both are tiny and in memory.


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


def upstream_hosts(replicas: Sequence[str]) -> list[str]:
    """The middleware's ``upstream_hosts``: exactly the replicas' ``host:port``."""
    return [urlsplit(replica).netloc for replica in replicas]


# -- The fallback: serving the bytes ourselves -----------------------------------------------


def open_first(
    pool: urllib3.PoolManager, urls: Sequence[str], method: str, stored: StoredFile
) -> ReplicaBody | None:
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
    """A WSGI response body streamed from a replica, ``CHUNK_SIZE`` bytes at a time.

    ``close()`` (idempotent; the server calls it whether or not the client read everything)
    hands a fully read connection back to the pool, and closes a half-read one rather than
    drain the rest of a large file.
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
