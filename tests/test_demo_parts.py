"""The demo's pieces on their own: the sample backend without the middleware, and the
replicas' conditional and range answers (the demo run itself is tests/test_demo.py)."""

from __future__ import annotations

from email.message import Message

import pytest

from harness import call
from wsgi_reproxy.demo.backend import BackendApp
from wsgi_reproxy.demo.files import demo_files
from wsgi_reproxy.demo.replicas import answer

FILES = demo_files()
HELLO = FILES["hello.txt"]


@pytest.fixture
def backend():
    return BackendApp(FILES, lambda name: [f"http://127.0.0.1:9/{name}"])


def test_backend_serves_the_bytes_itself_without_the_middleware(backend):
    """No capability header: the app falls back to sending the file (can_reproxy False)."""
    result = call(backend, "/download/hello.txt")
    assert (result.code, result.body) == (200, HELLO.data)
    assert result.header("Content-Disposition").startswith("attachment")
    # the stray directive an app written for perlbal may send: the middleware strips it
    assert result.header("X-Reproxy-Url") == "http://127.0.0.1:9/hello.txt"
    head = call(backend, "/download/hello.txt", method="HEAD")
    assert (head.code, head.body) == (200, b"")
    assert head.header("Content-Length") == str(len(HELLO.data))


def test_backend_index_and_unknown_paths(backend):
    index = call(backend, "/")
    assert index.code == 200
    assert b"/download/hello.txt" in index.body
    assert call(backend, "/download/nothing").code == 404
    assert call(backend, "/elsewhere/hello.txt").code == 404


def _headers(**values):
    message = Message()
    for name, value in values.items():
        message[name.replace("_", "-")] = value
    return message


def test_replica_if_range_mismatch_sends_everything():
    reply = answer(HELLO, _headers(Range="bytes=0-9", If_Range='"stale"'))
    assert reply.status == 200


def test_replica_unsatisfiable_range_is_416():
    reply = answer(HELLO, _headers(Range=f"bytes={len(HELLO.data)}-"))
    assert reply.status == 416
    assert ("Content-Range", f"bytes */{len(HELLO.data)}") in reply.headers
