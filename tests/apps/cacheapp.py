"""A WSGI app whose view costs a lookup, behind a middleware caching its decisions in the
Redis at ``RP_REDIS`` (tests/test_cache_redis.py runs two servers on it).

``/r/<name>`` answers ``X-Reproxy-Url: <RP_STORAGE>/files/<name>`` with
``X-Reproxy-Cache-For: 60``; ``/calls`` says how many times this process ran the view.
"""

from __future__ import annotations

import os
import threading

from wsgi_reproxy import RedisCache, ReproxyMiddleware

_lock = threading.Lock()
_calls = {"view": 0}


def view(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/calls":
        with _lock:
            body = str(_calls["view"]).encode()
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        )
        return [body]
    with _lock:
        _calls["view"] += 1
    name = path.rpartition("/")[2]
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/x-view"),
            ("X-Reproxy-Url", f"{os.environ['RP_STORAGE']}/files/{name}"),
            ("X-Reproxy-Cache-For", "60"),
        ],
    )
    return [b""]


application = ReproxyMiddleware(
    view,
    allow=["/r/"],
    preserve=["Content-Type"],
    cache=RedisCache.from_url(os.environ["RP_REDIS"], prefix="test:"),
)
