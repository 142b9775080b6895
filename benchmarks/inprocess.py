"""The middleware against its in-process limits, in one run, as ratios.

For each file size it measures, interleaved in rounds so that machine noise hits all
three alike:

``bare``         a urllib3 download of the file from the storage (what any Python process
                 pays to fetch it: the in-process limit);
``reproxy``      a WSGI call of ``ReproxyMiddleware`` whose app answers ``X-Reproxy-Url``
                 for that file (no server: the middleware's own cost on top of ``bare``);
``+ observer``   the same with ``observer=`` a ``PrometheusObserver`` (``--observer``);
``app``          the bare app on a path that is not enabled, and
``pass-through`` the same call through the middleware (the cost of being installed).

It prints CPU microseconds per request (``time.process_time``: this process only, so the
storage server's work and other processes do not count) and wall time, with ratios:
``reproxy/bare`` (1.0 = no overhead at all) and ``pass-through/app``.

Storage: ``--storage URL`` (a directory URL with the files, e.g. the anchors' nginx at
``http://127.0.0.1:18081/files/``), else an embedded threaded file server in a subprocess.

    python benchmarks/inprocess.py --sizes 1k,64k,1m --rounds 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import urllib3

from wsgi_reproxy import ReproxyMiddleware, reproxy_headers

SIZES = {"1k": 1024, "64k": 64 * 1024, "1m": 1024 * 1024, "16m": 16 * 1024 * 1024}
EMBEDDED_SERVER = r"""
import http.server, os, sys
files = {name: os.urandom(size) for name, size in (a.split("=") for a in sys.argv[2:])
         for size in [int(size)]}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = files.get(self.path.rpartition("/")[2])
        self.send_response(200 if body is not None else 404)
        body = body if body is not None else b"missing"
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
server.daemon_threads = True
print("ready", flush=True)
server.serve_forever()
"""

Environ = dict[str, Any]


def make_app(storage: str) -> Callable[[Environ, Any], Iterable[bytes]]:
    """A backend that answers /r/<name> with X-Reproxy-Url and /n/<name> by itself."""
    plain = b"plain\n"

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        name = environ["PATH_INFO"].rpartition("/")[2]
        if environ["PATH_INFO"].startswith("/r/"):
            start_response(
                "200 OK",
                [("Content-Type", "application/x-bench"), *reproxy_headers(storage + name)],
            )
            return []
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(plain)))]
        )
        return [plain]

    return app


def environ(path: str) -> Environ:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "HTTP_HOST": "bench",
        "wsgi.url_scheme": "http",
        "HTTP_USER_AGENT": "bench",
        "HTTP_ACCEPT": "*/*",
    }


def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return None


def wsgi_call(app: Callable[..., Iterable[bytes]], path: str) -> int:
    body = app(environ(path), start_response)
    size = sum(len(chunk) for chunk in body)
    close = getattr(body, "close", None)
    if close is not None:
        close()
    return size


def bare_download(pool: urllib3.PoolManager, url: str) -> int:
    response = pool.urlopen("GET", url, preload_content=False, decode_content=False, redirect=False)
    size = 0
    while chunk := response.read1(64 * 1024):
        size += len(chunk)
    response.release_conn()
    return size


def timed(work: Callable[[], int], count: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per call."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        work()
    return ((time.process_time() - cpu) / count * 1e6, (time.perf_counter() - wall) / count * 1e6)


def measure(
    cases: dict[str, Callable[[], int]], count: int, rounds: int
) -> dict[str, tuple[float, float]]:
    """Median over interleaved rounds, after one warm-up round."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for round_ in range(rounds + 1):
        for name, work in cases.items():
            result = timed(work, count)
            if round_:
                samples[name].append(result)
    return {
        name: (statistics.median(s[0] for s in values), statistics.median(s[1] for s in values))
        for name, values in samples.items()
    }


def embedded_storage(sizes: dict[str, int]) -> tuple[str, subprocess.Popen[str]]:
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [f"{name}.bin={size}" for name, size in sizes.items()]
    process = subprocess.Popen(
        [sys.executable, "-c", EMBEDDED_SERVER, str(port), *args], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    process.stdout.readline()
    return f"http://127.0.0.1:{port}/files/", process


def _observer(kind: str) -> Callable[[Any], object]:
    """The '+ observer' case: a PrometheusObserver on a registry of its own, or nothing."""
    if kind == "noop":
        return lambda report: None
    from prometheus_client import CollectorRegistry

    from wsgi_reproxy.prometheus import PrometheusObserver

    return PrometheusObserver(registry=CollectorRegistry())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", help="base URL of the files (NAME.bin under it)")
    parser.add_argument("--sizes", default="1k,64k,1m", help="from " + ",".join(SIZES))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=300, help="per round and case")
    parser.add_argument(
        "--observer",
        choices=["prometheus", "noop"],
        default="prometheus",
        help="the observer= of the '+ observer' case (prometheus needs prometheus_client)",
    )
    args = parser.parse_args(argv)
    sizes = {name: SIZES[name] for name in args.sizes.split(",")}
    process = None
    storage = args.storage
    if storage is None:
        storage, process = embedded_storage(sizes)
    pool = urllib3.PoolManager(retries=False)
    app = make_app(storage)
    middleware = ReproxyMiddleware(app, allow=["/r/"], preserve=["Content-Type"])
    observed = ReproxyMiddleware(
        app, allow=["/r/"], preserve=["Content-Type"], observer=_observer(args.observer)
    )
    try:
        print(
            f"storage {storage}  ({os.cpu_count()} cores, {args.rounds} rounds x "
            f"{args.requests} requests, medians)"
        )
        print(f"{'case':24s} {'CPU µs':>9s} {'wall µs':>9s} {'ratio (CPU)':>12s}")
        passthrough = measure(
            {
                "app": lambda: wsgi_call(app, "/n/x"),
                "pass-through": lambda: wsgi_call(middleware, "/n/x"),
            },
            args.requests * 10,
            args.rounds,
        )
        base = passthrough["app"][0]
        for name, (cpu, wall) in passthrough.items():
            print(f"{name:24s} {cpu:9.1f} {wall:9.1f} {base / cpu:11.3f}x")
        for size in sizes:
            url = f"{storage}{size}.bin"
            results = measure(
                {
                    f"bare urllib3 {size}": lambda u=url: bare_download(pool, u),
                    f"reproxy {size}": lambda s=size: wsgi_call(middleware, f"/r/{s}.bin"),
                    f"+ observer {size}": lambda s=size: wsgi_call(observed, f"/r/{s}.bin"),
                },
                args.requests,
                args.rounds,
            )
            base = results[f"bare urllib3 {size}"][0]
            for name, (cpu, wall) in results.items():
                print(f"{name:24s} {cpu:9.1f} {wall:9.1f} {base / cpu:11.3f}x")
    finally:
        pool.clear()
        middleware.pool.clear()
        if process is not None:
            process.terminate()
            process.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
