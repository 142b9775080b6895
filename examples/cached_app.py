"""A plain WSGI app whose view costs a replica lookup, and whose decisions are cached.

``GET /files/<name>`` looks up which replicas hold ``<name>`` (here a sleep standing for a
database query or MogileFS's ``get_paths``) and answers ``X-Reproxy-Url`` with their URLs
and ``X-Reproxy-Cache-For: 300``.  ``ReproxyMiddleware(cache=MemoryCache())`` keeps that
decision for five minutes: the next requests for the same file go straight to the
replicas, without the view.  ``$STORAGE_REPLICAS`` lists the replicas' base URLs,
space-separated, in the order to try them.  See docs/cache.rst.

Run it from the repository root (needs ``pip install gunicorn``)::

    STORAGE_REPLICAS="http://127.0.0.1:9001 http://127.0.0.1:9002" \\
        gunicorn -k gthread --threads 16 examples.cached_app:application

Each gunicorn worker process keeps its own ``MemoryCache``; to share the decisions
between workers and hosts, pass ``cache=RedisCache.from_url("redis://host:6379/0")``
(``pip install 'wsgi-reproxy[redis]'``).
"""

from __future__ import annotations

import mimetypes
import os
import re
import threading
import time
from collections.abc import Iterable, Sequence
from urllib.parse import quote, urlsplit
from wsgiref.types import StartResponse, WSGIEnvironment

from wsgi_reproxy import MemoryCache, ReproxyMiddleware, can_reproxy, reproxy_headers

REPLICAS = os.environ.get("STORAGE_REPLICAS", "http://127.0.0.1:9001 http://127.0.0.1:9002")
FILE_PATH = re.compile(r"/files/(?P<name>\w[\w.-]*)", re.ASCII)
CACHE_FOR = 300  # seconds a decision holds: shorter than a file stays where it is


class Downloads:
    """The application: ``/files/<name>`` answered with the replicas holding it.

    ``lookups`` counts the costly lookups, so a test (or you) can see the cache at work.
    """

    def __init__(self, replicas: Sequence[str], lookup_seconds: float = 0.05) -> None:
        self.replicas = [replica.rstrip("/") for replica in replicas]
        self.lookup_seconds = lookup_seconds
        self.lookups = 0
        self._lock = threading.Lock()

    def locate(self, name: str) -> list[str]:
        """The URLs of the replicas holding ``name``: the part of the view worth caching."""
        time.sleep(self.lookup_seconds)
        with self._lock:
            self.lookups += 1
        return [f"{replica}/files/{quote(name)}" for replica in self.replicas]

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        match = FILE_PATH.fullmatch(environ.get("PATH_INFO", ""))
        if match is None or not can_reproxy(environ):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        name = match["name"]
        headers = reproxy_headers(*self.locate(name))
        headers += [
            ("X-Reproxy-Cache-For", str(CACHE_FOR)),
            ("Content-Type", mimetypes.guess_type(name)[0] or "application/octet-stream"),
        ]
        start_response("200 OK", headers)
        return []


def make_application(replicas: Sequence[str]) -> ReproxyMiddleware:
    """The view behind the middleware, its decisions kept in this process."""
    return ReproxyMiddleware(
        Downloads(replicas),
        allow=["/files/"],
        preserve=["Content-Type"],  # kept with the decision: a hit sends it too
        upstream_hosts=[urlsplit(replica).netloc for replica in replicas],
        cache=MemoryCache(maxsize=10_000),
    )


application = make_application(REPLICAS.split())
