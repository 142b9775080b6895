"""The app ``benchmarks/servers.py`` runs under each server: the anchors' candidate, again.

``GET /r/<name>`` answers ``X-Reproxy-Url: $BENCH_STORAGE<name>`` with an empty body and
the two headers a download view sets, behind ``ReproxyMiddleware(allow=["/r/"],
preserve=[...])`` -- the same shape as ``../shared/anchors``' candidate slot, so numbers
from here and from ``bench`` can be read side by side.  ``GET /n/<name>`` is a small plain
answer on a path the middleware does not enable (pass-through); ``GET /n/version`` names
the ``wsgi_reproxy`` it imported (``servers.py --compare`` runs two source trees).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import wsgi_reproxy
from wsgi_reproxy import ReproxyMiddleware

STORAGE = os.environ.get("BENCH_STORAGE", "http://127.0.0.1:18081/files/")
PRESERVE = ["Content-Type", "Content-Disposition"]


def backend(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    kind, _, name = environ.get("PATH_INFO", "").lstrip("/").partition("/")
    if kind == "r" and name:
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/x-test"),
                ("Content-Disposition", f"attachment; filename={name}"),
                ("X-Reproxy-Url", STORAGE + name),
                ("Content-Length", "0"),
            ],
        )
        return [b""]
    if kind == "n" and name == "version":  # which source tree this server runs
        body = f"{wsgi_reproxy.__version__} {os.path.dirname(wsgi_reproxy.__file__)}\n".encode()
    else:
        body = f"plain {name}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


application = ReproxyMiddleware(backend, allow=["/r/"], preserve=PRESERVE)
