"""Self-tests of the test upstreams: each route and each scripted failure does what it promises.

The middleware's tests rely on these servers to tell a correct proxy from a broken one, so
they are checked here with a plain urllib3 client first (``preload_content=False``,
``decode_content=False``, as the middleware uses it).
"""

from __future__ import annotations

import gzip
import http.client
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import urllib3
from urllib3.exceptions import NewConnectionError, ProtocolError, ReadTimeoutError

from upstreams import (
    FILES,
    HEADERS_BODY,
    HEADERS_ROUTE,
    LAST_MODIFIED,
    FileServer,
    Handler,
    ScriptedServer,
    close_mid_body,
    etag_for,
    garbage_status,
    huge_headers,
    infinite_chunked,
    long_body,
    reset_mid_body,
    respond,
    response_head,
    stall_before_status,
    stall_mid_body,
    stall_mid_headers,
)

Scripted = Callable[[Handler], ScriptedServer]
SHORT = urllib3.Timeout(connect=2, read=0.2)
SMALL = FILES["small.txt"]
OLD_DATE = "Sun, 31 Dec 2023 00:00:00 GMT"


@pytest.fixture
def pool() -> Iterator[urllib3.PoolManager]:
    manager = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=5))
    yield manager
    manager.clear()


def fetch(
    pool: urllib3.PoolManager, url: str, method: str = "GET", **kwargs: Any
) -> tuple[urllib3.BaseHTTPResponse, bytes]:
    """One request, body read whole (raw bytes), connection back in the pool."""
    response = pool.request(method, url, preload_content=False, decode_content=False, **kwargs)
    try:
        body = response.read(decode_content=False)
    finally:
        response.release_conn()
    return response, body


# --------------------------------------------------------------------------------------------
# FileServer: /files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FILES))
def test_files_get_whole(pool: urllib3.PoolManager, file_server: FileServer, name: str) -> None:
    response, body = fetch(pool, file_server.url(f"/files/{name}"))
    assert response.status == 200
    assert body == FILES[name]
    assert response.headers["Content-Length"] == str(len(FILES[name]))
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["ETag"] == etag_for(name)
    assert response.headers["Last-Modified"] == LAST_MODIFIED
    assert response.headers["Accept-Ranges"] == "bytes"


def test_etag_is_strong_sha256_prefix() -> None:
    assert etag_for("small.txt") == '"a948904f2f0f479b"'
    assert etag_for("small.txt", weak=True) == 'W/"a948904f2f0f479b"'


@pytest.mark.parametrize(
    ("range_", "status", "content_range", "body"),
    [
        ("bytes=0-4", 206, "bytes 0-4/12", b"hello"),
        ("bytes=6-", 206, "bytes 6-11/12", b"world\n"),
        ("bytes=-6", 206, "bytes 6-11/12", b"world\n"),
        ("bytes=-100", 206, "bytes 0-11/12", SMALL),
        ("bytes=5-100", 206, "bytes 5-11/12", b" world\n"),
        ("bytes=12-", 416, "bytes */12", b"range not satisfiable\n"),
        ("bytes=-0", 416, "bytes */12", b"range not satisfiable\n"),
        ("bytes=0-1,3-4", 200, None, SMALL),
        ("bytes=5-2", 200, None, SMALL),
        ("items=0-1", 200, None, SMALL),
    ],
    ids=[
        "first-last",
        "open",
        "suffix",
        "suffix-too-long",
        "last-too-long",
        "past-end",
        "suffix-zero",
        "multi-range",
        "reversed",
        "other-unit",
    ],
)
def test_files_range(
    pool: urllib3.PoolManager,
    file_server: FileServer,
    range_: str,
    status: int,
    content_range: str | None,
    body: bytes,
) -> None:
    response, got = fetch(pool, file_server.url("/files/small.txt"), headers={"Range": range_})
    assert (response.status, response.headers.get("Content-Range"), got) == (
        status,
        content_range,
        body,
    )
    assert response.headers["Content-Length"] == str(len(body))


def test_files_range_in_large_file(pool: urllib3.PoolManager, file_server: FileServer) -> None:
    headers = {"Range": "bytes=1000000-1048575"}
    response, body = fetch(pool, file_server.url("/files/1m.bin"), headers=headers)
    assert response.status == 206
    assert response.headers["Content-Range"] == "bytes 1000000-1048575/1048576"
    assert body == FILES["1m.bin"][1000000:]


def test_empty_file_range_unsatisfiable(pool: urllib3.PoolManager, file_server: FileServer) -> None:
    response, _ = fetch(pool, file_server.url("/files/empty.bin"), headers={"Range": "bytes=0-"})
    assert response.status == 416
    assert response.headers["Content-Range"] == "bytes */0"


@pytest.mark.parametrize(
    ("path", "if_range", "status"),
    [
        ("/files/small.txt", etag_for("small.txt"), 206),
        ("/files/small.txt", '"other"', 200),
        ("/files/small.txt", LAST_MODIFIED, 206),
        ("/files/small.txt", OLD_DATE, 200),
        ("/weak/small.txt", etag_for("small.txt", weak=True), 200),
    ],
    ids=["etag-match", "etag-differs", "date-match", "date-differs", "weak-never-matches"],
)
def test_if_range(
    pool: urllib3.PoolManager, file_server: FileServer, path: str, if_range: str, status: int
) -> None:
    headers = {"Range": "bytes=0-4", "If-Range": if_range}
    response, body = fetch(pool, file_server.url(path), headers=headers)
    assert response.status == status
    assert body == (b"hello" if status == 206 else SMALL)


def test_weak_route_sends_weak_etag(pool: urllib3.PoolManager, file_server: FileServer) -> None:
    response, body = fetch(pool, file_server.url("/weak/1m.bin"))
    assert (response.status, body) == (200, FILES["1m.bin"])
    assert response.headers["ETag"] == etag_for("1m.bin", weak=True)
    assert response.headers["ETag"].startswith('W/"')


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"If-None-Match": etag_for("small.txt")}, 304),
        ({"If-None-Match": f'"nope", {etag_for("small.txt", weak=True)}'}, 304),
        ({"If-None-Match": "*"}, 304),
        ({"If-None-Match": '"nope"'}, 200),
        ({"If-Modified-Since": LAST_MODIFIED}, 304),
        ({"If-Modified-Since": OLD_DATE}, 200),
        ({"If-None-Match": '"nope"', "If-Modified-Since": LAST_MODIFIED}, 200),
        ({"If-Match": '"nope"'}, 412),
        ({"If-Match": etag_for("small.txt")}, 200),
        ({"If-Unmodified-Since": OLD_DATE}, 412),
    ],
    ids=[
        "inm-match",
        "inm-weak-compare",
        "inm-star",
        "inm-differs",
        "ims-equal",
        "ims-older",
        "inm-overrides-ims",
        "if-match-fails",
        "if-match-ok",
        "ius-fails",
    ],
)
def test_conditional(
    pool: urllib3.PoolManager, file_server: FileServer, headers: dict[str, str], status: int
) -> None:
    response, body = fetch(pool, file_server.url("/files/small.txt"), headers=headers)
    assert response.status == status
    if status == 304:
        assert body == b""
        assert response.headers["ETag"] == etag_for("small.txt")
        assert "Content-Length" not in response.headers
    elif status == 200:
        assert body == SMALL


def test_head_same_headers_no_body(pool: urllib3.PoolManager, file_server: FileServer) -> None:
    url = file_server.url("/files/5m.bin")
    get, _ = fetch(pool, url)
    head, body = fetch(pool, url, method="HEAD")
    assert body == b""
    assert without_date(head.headers) == without_date(get.headers)
    assert head.headers["Content-Length"] == str(5 * 1024 * 1024)


def without_date(headers: urllib3.HTTPHeaderDict) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers.iteritems() if name != "Date"]


def test_unknown_file_and_route(pool: urllib3.PoolManager, file_server: FileServer) -> None:
    for path in ("/files/nope", "/nope", "/gzip/nope", "/chunked/nope"):
        response, body = fetch(pool, file_server.url(path))
        assert (path, response.status) == (path, 404)
        assert body


def test_files_reject_post(pool: urllib3.PoolManager, file_server: FileServer) -> None:
    response, _ = fetch(pool, file_server.url("/files/small.txt"), method="POST", body=b"x")
    assert response.status == 405
    assert response.headers["Allow"] == "GET, HEAD"


# --------------------------------------------------------------------------------------------
# FileServer: other routes
# --------------------------------------------------------------------------------------------


def test_gzip_raw_bytes(pool: urllib3.PoolManager, file_server: FileServer) -> None:
    response, body = fetch(pool, file_server.url("/gzip/1m.bin"))
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Vary"] == "Accept-Encoding"
    assert response.headers["Content-Length"] == str(len(body))
    assert body[:2] == b"\x1f\x8b"
    assert gzip.decompress(body) == FILES["1m.bin"]
    _, again = fetch(pool, file_server.url("/gzip/1m.bin"), headers={"Accept-Encoding": "br"})
    assert again == body


@pytest.mark.parametrize("name", ["1m.bin", "empty.bin"])
def test_chunked(pool: urllib3.PoolManager, file_server: FileServer, name: str) -> None:
    response, body = fetch(pool, file_server.url(f"/chunked/{name}"))
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in response.headers
    assert body == FILES[name]


def test_chunked_piece_size(pool: urllib3.PoolManager, file_server: FileServer) -> None:
    response = pool.request("GET", file_server.url("/chunked/small.txt"), preload_content=False)
    try:
        assert list(response.read_chunked(decode_content=False)) == [SMALL]
    finally:
        response.release_conn()
    response = pool.request("GET", file_server.url("/chunked/1m.bin"), preload_content=False)
    try:
        sizes = [len(chunk) for chunk in response.read_chunked(decode_content=False)]
    finally:
        response.release_conn()
    assert set(sizes[:-1]) == {7919}
    assert sum(sizes) == len(FILES["1m.bin"])


def test_headers_route_duplicates_order_and_keep_alive(
    pool: urllib3.PoolManager, file_server: FileServer
) -> None:
    response, body = fetch(pool, file_server.url("/headers"))
    assert body == HEADERS_BODY
    assert response.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert response.headers.getlist("X-Custom") == ["one", "two"]
    fetch(pool, file_server.url("/headers"))
    assert file_server.connections == 1


def test_headers_route_wire_order(file_server: FileServer) -> None:
    # urllib3's HTTPHeaderDict groups values by name; http.client keeps the wire order.
    connection = http.client.HTTPConnection("127.0.0.1", file_server.port, timeout=5)
    try:
        connection.request("GET", "/headers")
        response = connection.getresponse()
        assert response.read() == HEADERS_BODY
        received = [(n, v) for n, v in response.getheaders() if n not in ("Server", "Date")]
    finally:
        connection.close()
    assert received == list(HEADERS_ROUTE)


@pytest.mark.parametrize("code", [200, 301, 302, 404, 500, 503])
def test_status_with_body(pool: urllib3.PoolManager, file_server: FileServer, code: int) -> None:
    response, body = fetch(pool, file_server.url(f"/status/{code}"), redirect=False)
    assert response.status == code
    assert body == b"status %d\n" % code
    assert response.headers["Content-Length"] == str(len(body))
    location = "http://127.0.0.1:9/elsewhere" if 300 <= code < 400 else None
    assert response.headers.get("Location") == location


@pytest.mark.parametrize("code", [204, 304])
def test_status_without_body(pool: urllib3.PoolManager, file_server: FileServer, code: int) -> None:
    response, body = fetch(pool, file_server.url(f"/status/{code}"), redirect=False)
    assert (response.status, body) == (code, b"")
    assert "Content-Length" not in response.headers
    fetch(pool, file_server.url("/status/200"))
    assert file_server.connections == 1


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_echo(pool: urllib3.PoolManager, file_server: FileServer, method: str) -> None:
    headers = {"X-Test": "1", "Range": "bytes=0-1"}
    response, body = fetch(
        pool, file_server.url("/echo/sub?q=1&r=2"), method=method, headers=headers
    )
    assert response.headers["Content-Type"] == "application/json"
    echoed = json.loads(body)
    assert echoed["method"] == method
    assert echoed["path"] == "/echo/sub?q=1&r=2"
    assert ["X-Test", "1"] in echoed["headers"]
    assert ["Range", "bytes=0-1"] in echoed["headers"]
    assert ["Host", f"127.0.0.1:{file_server.port}"] in echoed["headers"]


def test_requests_recorded_in_order(pool: urllib3.PoolManager, file_server: FileServer) -> None:
    fetch(pool, file_server.url("/files/small.txt"), headers={"X-A": "1", "x-b": "2"})
    fetch(pool, file_server.url("/echo?x=1"), method="HEAD")
    first, second = file_server.requests
    assert (first.method, first.path) == ("GET", "/files/small.txt")
    assert (second.method, second.path) == ("HEAD", "/echo?x=1")
    assert first.header("x-a") == "1"
    assert first.header_values("X-B") == ["2"]
    assert first.header("X-Missing") is None
    names = [name for name, _ in first.headers]
    assert names.index("X-A") < names.index("x-b")


def test_connections_counted(file_server: FileServer) -> None:
    for _ in range(2):  # two pools: two connections
        manager = urllib3.PoolManager(retries=False)
        try:
            for _ in range(3):  # keep-alive: one connection per pool
                fetch(manager, file_server.url("/files/small.txt"))
        finally:
            manager.clear()
    assert file_server.connections == 2
    assert len(file_server.requests) == 6


def test_slow_delays_then_serves(pool: urllib3.PoolManager, file_server: FileServer) -> None:
    started = time.monotonic()
    response, body = fetch(pool, file_server.url("/slow/small.txt?delay=0.1"))
    assert (response.status, body) == (200, SMALL)
    assert time.monotonic() - started >= 0.1


def test_slow_times_out_and_close_is_fast(pool: urllib3.PoolManager) -> None:
    server = FileServer()
    try:
        with pytest.raises(ReadTimeoutError):
            fetch(pool, server.url("/slow/small.txt?delay=30"), timeout=SHORT)
    finally:
        started = time.monotonic()
        server.close()
    assert time.monotonic() - started < 0.5


def test_close_cuts_stalled_download(pool: urllib3.PoolManager) -> None:
    # A client that stops reading a 5 MiB body leaves the server blocked in send().
    server = FileServer()
    response = pool.request("GET", server.url("/files/5m.bin"), preload_content=False)
    try:
        assert len(response.read(1000)) == 1000
        started = time.monotonic()
        server.close()
        assert time.monotonic() - started < 0.5
    finally:
        response.close()
        response.release_conn()
        server.close()


# --------------------------------------------------------------------------------------------
# ScriptedServer
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "handler", [stall_before_status(), stall_mid_headers()], ids=["before-status", "mid-headers"]
)
def test_stall_in_head_times_out(
    pool: urllib3.PoolManager, scripted: Scripted, handler: Handler
) -> None:
    server = scripted(handler)
    with pytest.raises(ReadTimeoutError):
        pool.request("GET", server.url("/x"), preload_content=False, timeout=SHORT)
    assert server.requests[0].startswith(b"GET /x HTTP/1.1\r\n")
    assert server.requests[0].endswith(b"\r\n\r\n")


def test_stall_mid_body_times_out_on_read(pool: urllib3.PoolManager, scripted: Scripted) -> None:
    server = scripted(stall_mid_body(100, b"0123456789"))
    response = pool.request("GET", server.url(), preload_content=False, timeout=SHORT)
    try:
        assert response.status == 200
        assert response.read(10) == b"0123456789"
        with pytest.raises(ReadTimeoutError):
            response.read(1)
    finally:
        response.release_conn()


def test_close_mid_body_is_a_protocol_error(pool: urllib3.PoolManager, scripted: Scripted) -> None:
    server = scripted(close_mid_body(100, b"abc"))
    response = pool.request("GET", server.url(), preload_content=False)
    try:
        assert response.headers["Content-Length"] == "100"
        with pytest.raises(ProtocolError):
            response.read()
    finally:
        response.release_conn()


def test_reset_mid_body_is_a_protocol_error(pool: urllib3.PoolManager, scripted: Scripted) -> None:
    server = scripted(reset_mid_body(100_000, 10))
    with pytest.raises(ProtocolError):  # on read as a rule, on urlopen if the RST is early
        fetch(pool, server.url())


def test_long_body_truncated_and_connection_not_reused(
    pool: urllib3.PoolManager, scripted: Scripted
) -> None:
    server = scripted(long_body(5, b"hello world"))
    for _ in range(3):
        response, body = fetch(pool, server.url())
        assert (body, response.headers["Connection"]) == (b"hello", "close")
    assert server.connections == 3


def test_long_body_keep_open_never_leaks_extra_bytes(
    pool: urllib3.PoolManager, scripted: Scripted
) -> None:
    server = scripted(long_body(5, b"hello world", keep_open=True))
    for _ in range(3):
        assert fetch(pool, server.url())[1] == b"hello"
    assert 1 <= server.connections <= 3


@pytest.mark.parametrize(
    "handler",
    [
        garbage_status(),
        garbage_status(b"garbage\r\n\r\n"),
        huge_headers(),
        huge_headers(100_000, single_line=True),
    ],
    ids=["bad-status-code", "not-http", "too-many-headers", "line-too-long"],
)
def test_unparseable_head_is_a_protocol_error(
    pool: urllib3.PoolManager, scripted: Scripted, handler: Handler
) -> None:
    with pytest.raises(ProtocolError):
        fetch(pool, scripted(handler).url())


def test_infinite_chunked_streams_until_closed(
    pool: urllib3.PoolManager, scripted: Scripted
) -> None:
    server = scripted(infinite_chunked())
    response = pool.request("GET", server.url(), preload_content=False)
    try:
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert response.read(200_000) == b"z" * 200_000
    finally:
        response.close()
        response.release_conn()
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < 0.5


def test_respond_exact_bytes(pool: urllib3.PoolManager, scripted: Scripted) -> None:
    raw = response_head("418 I'm a teapot", [("Content-Length", "3"), ("X-A", "b")]) + b"tea"
    server = scripted(respond(raw))
    response, body = fetch(pool, server.url())
    assert (response.status, response.reason, body) == (418, "I'm a teapot", b"tea")
    assert response.headers["X-A"] == "b"


def test_respond_keep_open_serves_each_request(
    pool: urllib3.PoolManager, scripted: Scripted
) -> None:
    server = scripted(
        respond(response_head("200 OK", [("Content-Length", "2")]) + b"ok", keep_open=True)
    )
    for _ in range(3):
        assert fetch(pool, server.url())[1] == b"ok"
    assert (server.connections, len(server.requests)) == (1, 3)


def test_respond_keep_open_can_stall(pool: urllib3.PoolManager, scripted: Scripted) -> None:
    raw = response_head("200 OK", [("Content-Length", "10")]) + b"short"
    server = scripted(respond(raw, keep_open=True))
    with pytest.raises(ReadTimeoutError):
        fetch(pool, server.url(), timeout=SHORT)


def test_stalled_scripted_server_closes_fast(pool: urllib3.PoolManager) -> None:
    server = ScriptedServer(stall_before_status())
    try:
        with pytest.raises(ReadTimeoutError):
            pool.request("GET", server.url(), preload_content=False, timeout=SHORT)
    finally:
        started = time.monotonic()
        server.close()
    assert time.monotonic() - started < 0.5


def test_refused(pool: urllib3.PoolManager, refused_url: str) -> None:
    with pytest.raises(NewConnectionError):
        pool.request("GET", refused_url, preload_content=False)
