"""A plain WSGI app whose downloads are reproxied, with Prometheus metrics at ``/metrics``.

``GET /files/<name>`` answers ``X-Reproxy-Url`` listing ``<replica>/files/<name>`` for each
base URL of ``$STORAGE_REPLICAS`` (space-separated, tried in order); ``ReproxyMiddleware``
streams the first replica that works and gives each request's report to a
``PrometheusObserver``.  ``GET /metrics`` is answered before the middleware, so scrapes are
neither reproxied nor counted.  With ``$PROMETHEUS_MULTIPROC_DIR`` set (several gunicorn
workers, see docs/observability.rst), ``/metrics`` adds up the metrics of every worker.

Run it from the repository root (needs ``pip install 'wsgi-reproxy[prometheus]' gunicorn``)::

    STORAGE_REPLICAS="http://127.0.0.1:9001 http://127.0.0.1:9002" \\
        gunicorn -k gthread --threads 16 examples.metrics_app:application
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from urllib.parse import urlsplit
from wsgiref.types import StartResponse, WSGIEnvironment

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app, multiprocess

from wsgi_reproxy import ReproxyMiddleware, can_reproxy, reproxy_headers
from wsgi_reproxy.prometheus import PrometheusObserver

REPLICAS = os.environ.get("STORAGE_REPLICAS", "http://127.0.0.1:9001 http://127.0.0.1:9002")
FILE_PATH = re.compile(r"/files/(?P<name>\w[\w.-]*)", re.ASCII)


def backend(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The application: ``/files/<name>`` is served by the replicas, anything else is 404."""
    match = FILE_PATH.fullmatch(environ.get("PATH_INFO", ""))
    if match is None or not can_reproxy(environ):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    urls = [f"{replica.rstrip('/')}/files/{match['name']}" for replica in REPLICAS.split()]
    start_response("200 OK", reproxy_headers(*urls))
    return []


def metrics_registry() -> CollectorRegistry:
    """The registry ``/metrics`` serves: the default one, or every worker's files."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


reproxied = ReproxyMiddleware(
    backend,
    allow=["/files/"],
    upstream_hosts=[urlsplit(replica).netloc for replica in REPLICAS.split()],
    observer=PrometheusObserver(),  # one per process, in prometheus_client.REGISTRY
)
metrics = make_wsgi_app(metrics_registry())


def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """``/metrics`` first, everything else through the middleware."""
    if environ.get("PATH_INFO") == "/metrics":
        return metrics(environ, start_response)
    return reproxied(environ, start_response)
