"""The WSGI app gunicorn serves for tests/test_real_storage.py: it reproxies what it is told.

The test controls the storage servers and this app alike, so the client names the URLs to
reproxy in its ``X-Test-Urls`` request header, and the app answers with exactly that
``X-Reproxy-Url`` (unvalidated: the middleware's own checks are under test).  ``/o/``
goes through the middleware's own pool, ``/p/`` through a plain ``urllib3.PoolManager``
passed as ``pool=``; any other path answers ``ready``.
"""

from __future__ import annotations

import urllib3

from wsgi_reproxy import ReproxyMiddleware, can_reproxy

READY = b"ready\n"


def backend(environ, start_response):
    urls = environ.get("HTTP_X_TEST_URLS")
    if urls is None or not can_reproxy(environ):
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(READY)))]
        )
        return [READY]
    start_response("200 OK", [("Content-Type", "application/x-stored"), ("X-Reproxy-Url", urls)])
    return [b"IGNORED"]


TIMEOUT = urllib3.Timeout(connect=2, read=5)
own_pool = ReproxyMiddleware(backend, allow=["/o/"], preserve=["Content-Type"], timeout=TIMEOUT)
plain_pool = ReproxyMiddleware(
    backend,
    allow=["/p/"],
    preserve=["Content-Type"],
    timeout=TIMEOUT,
    pool=urllib3.PoolManager(maxsize=4, retries=False),
)


def application(environ, start_response):
    middleware = plain_pool if environ["PATH_INFO"].startswith("/p/") else own_pool
    return middleware(environ, start_response)
