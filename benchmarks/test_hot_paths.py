"""Micro-benchmarks of the per-request hot paths (pytest-benchmark).

Not part of the test suite (``testpaths`` is ``tests``) and never a timing assertion: run
them to compare two versions of the code on the same machine::

    python -m pip install -e '.[test,bench]'
    python -m pytest benchmarks/test_hot_paths.py --no-cov --benchmark-columns=median,ops

Each benchmark is a pure function over plain values, so the numbers say what our own code
costs per request, apart from the network and urllib3.
"""

from __future__ import annotations

import http.client
import io
from typing import Any

import pytest

from wsgi_reproxy import ReproxyMiddleware
from wsgi_reproxy.directive import _check_url, parse_directive
from wsgi_reproxy.headers import merge_preserved, upstream_request_headers
from wsgi_reproxy.target_headers import clean_target_headers
from wsgi_reproxy.transport.heads import HeadResponse

URL = "http://127.0.0.1:18081/files/1k.bin"
APP_HEADERS = [
    ("Content-Type", "application/x-test"),
    ("Content-Disposition", "attachment; filename=1k.bin"),
    ("X-Reproxy-Url", f"{URL} http://127.0.0.1:18082/files/1k.bin"),
    ("Content-Length", "0"),
]
TARGET_HEADERS = [
    ("Server", "nginx/1.22.1"),
    ("Date", "Wed, 25 Nov 2026 21:21:08 GMT"),
    ("Content-Type", "application/octet-stream"),
    ("Content-Length", "1024"),
    ("Last-Modified", "Wed, 25 Nov 2026 21:11:34 GMT"),
    ("Connection", "keep-alive"),
    ("ETag", '"6b074f06-400"'),
    ("Accept-Ranges", "bytes"),
]
PRESERVE = frozenset({"content-type", "content-disposition"})
HEAD_BLOCK = b"".join(f"{name}: {value}\r\n".encode() for name, value in TARGET_HEADERS) + b"\r\n"


def plain_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def environ(path: str) -> dict[str, Any]:
    keys = ("HOST", "USER_AGENT", "ACCEPT", "ACCEPT_ENCODING", "ACCEPT_LANGUAGE", "COOKIE")
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "wsgi.url_scheme": "http",
        **{f"HTTP_{key}": "x" for key in keys},
    }


def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    return None


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare app", "pass-through"])
def test_pass_through(benchmark: Any, wrapped: bool) -> None:
    """A path the middleware does not enable, against the app alone."""
    app = ReproxyMiddleware(plain_app, allow=["/downloads/"]) if wrapped else plain_app
    benchmark(lambda: app(environ("/plain"), start_response))


def test_parse_directive(benchmark: Any) -> None:
    benchmark(parse_directive, APP_HEADERS, max_urls=8)


def test_check_url_uncached(benchmark: Any) -> None:
    benchmark(_check_url, URL)


def test_clean_target_headers(benchmark: Any) -> None:
    benchmark(clean_target_headers, TARGET_HEADERS)


def test_merge_preserved(benchmark: Any) -> None:
    kept = clean_target_headers(TARGET_HEADERS)[0]
    benchmark(merge_preserved, kept, APP_HEADERS, PRESERVE, 200)


def test_upstream_request_headers(benchmark: Any) -> None:
    middleware = ReproxyMiddleware(plain_app)
    env = environ("/x") | {"HTTP_RANGE": "bytes=0-9"}
    benchmark(
        upstream_request_headers, env, middleware.settings.forward_keys, "GET", "wsgi-reproxy"
    )


class _BufferedHead:
    """A socket that has received one response head: all ``HTTPResponse`` asks of it."""

    def makefile(self, mode: str, buffering: int = -1) -> io.BytesIO:
        return io.BytesIO(b"HTTP/1.1 200 OK\r\n" + HEAD_BLOCK)

    def gettimeout(self) -> None:
        return None


@pytest.mark.parametrize("response_class", [HeadResponse, http.client.HTTPResponse])
def test_begin_response(benchmark: Any, response_class: type[http.client.HTTPResponse]) -> None:
    """The target's response head: transport.heads (watched, bounded) against http.client."""

    def begin() -> None:
        response_class(_BufferedHead(), method="GET").begin()  # type: ignore[arg-type]

    benchmark(begin)
