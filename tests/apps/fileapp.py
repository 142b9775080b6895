"""The WSGI app that real servers load for the X-Reproxy-File tests.

``RP_FILE_ROOT`` is the one ``file_roots`` directory; ``RP_REPLICA`` a storage base URL
(a FileServer) for the failover route.  Routes: ``/f/<name>`` answers
``X-Reproxy-File: RP_FILE_ROOT/<name>``; ``/fo/<name>`` the same plus
``X-Reproxy-Url: RP_REPLICA/files/<name>``; ``/stats`` counts the app iterables made and
closed and the ``os.sendfile`` calls this process made (gunicorn sends a
``wsgi.file_wrapper`` with ``os.sendfile``: counting them is how a test knows the bytes
never went through Python).
"""

from __future__ import annotations

import json
import os

from counted import Counted, count, lock, stats

from wsgi_reproxy import ReproxyMiddleware, reproxy_headers

_real_sendfile = os.sendfile


def _counting_sendfile(*args, **kwargs):
    count("sendfile")
    return _real_sendfile(*args, **kwargs)


os.sendfile = _counting_sendfile


def backend(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/stats":
        with lock:
            body = json.dumps({"sendfile": 0, **stats}).encode()
        length = str(len(body))  # uWSGI's --http11-socket ends no body without one
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", length)])
        return [body]
    name = path.rpartition("/")[2]
    urls = [f"{os.environ['RP_REPLICA']}/files/{name}"] if path.startswith("/fo/") else []
    file = os.path.join(os.environ["RP_FILE_ROOT"], name)
    start_response("200 OK", [("Content-Type", "text/x-app"), *reproxy_headers(*urls, file=file)])
    return Counted([b"IGNORED"])


application = ReproxyMiddleware(
    backend, allow=["/f/", "/fo/"], file_roots=[os.environ["RP_FILE_ROOT"]]
)
