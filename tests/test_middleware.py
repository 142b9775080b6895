"""ReproxyMiddleware end to end against real upstream servers on 127.0.0.1 (SPEC R3-R7).

Every test names the clause it holds.  The app is called through wsgiref's PEP 3333
validator (tests/harness.py); the targets are real threaded HTTP servers and scripted
sockets (tests/upstreams.py).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import time

import pytest
import urllib3

from harness import BackendApp, call, make_environ, reproxy_app
from upstreams import FILES, FileServer, respond, response_head
from wsgi_reproxy import ReproxyMiddleware, UpstreamBodyError
from wsgi_reproxy.transport.pools import ReproxyPoolManager

PRESERVE = ["Content-Type", "Content-Disposition"]


def mw_for(app, **kwargs):
    kwargs.setdefault("allow", ["/r/"])
    kwargs.setdefault("preserve", PRESERVE)
    kwargs.setdefault("timeout", 2)
    return ReproxyMiddleware(app, **kwargs)


@pytest.fixture
def good(file_server):
    return file_server.url("/files/1m.bin")


# -- R3: the capability header -------------------------------------------------------------


def test_capability_is_set_on_enabled_requests_even_if_spoofed():
    """R3.1: enabled requests see exactly 'reproxy-file', never merged with the client's."""
    app = BackendApp(body=[b"x"])
    call(mw_for(app), "/r/x", headers={"X-Proxy-Capabilities": "spoofed"})
    assert app.record.environ["HTTP_X_PROXY_CAPABILITIES"] == "reproxy-file"


def test_capability_is_removed_on_requests_not_enabled():
    """R3.2: a request that is not enabled sees no capability, even if the client sent one."""
    app = BackendApp(body=[b"x"])
    call(mw_for(app), "/n/x", headers={"X-Proxy-Capabilities": "reproxy-file"})
    assert "HTTP_X_PROXY_CAPABILITIES" not in app.record.environ


@pytest.mark.parametrize("path", ["/r/x", "/n/x"])
def test_client_reproxy_headers_are_scrubbed(path):
    """R3.3: client-sent X-Reproxy-* request headers never reach the app."""
    app = BackendApp(body=[b"x"])
    call(
        mw_for(app),
        path,
        headers={"X-Reproxy-Url": "http://evil/", "X-Reproxy-Foo": "1", "X-Reproxyish": "kept"},
    )
    seen = app.record.environ
    assert not [k for k in seen if k.startswith("HTTP_X_REPROXY_")]
    assert seen["HTTP_X_REPROXYISH"] == "kept"


# -- R4: the directive ---------------------------------------------------------------------


def test_directive_serves_the_target_byte_exact(good):
    """R4.1, R6.3: the target's bytes replace the app's body, exactly."""
    app = reproxy_app(good)
    result = call(mw_for(app), "/r/f")
    assert result.code == 200
    assert result.body == FILES["1m.bin"]
    assert result.header("Content-Length") == str(len(FILES["1m.bin"]))


@pytest.mark.parametrize("status", ["404 Not Found", "500 Internal Server Error", "201 Created"])
def test_directive_is_honoured_whatever_the_apps_status(good, status):
    """R4.2: the target's status replaces the app's."""
    result = call(mw_for(reproxy_app(good, status=status)), "/r/f")
    assert result.status == "200 OK"
    assert result.body == FILES["1m.bin"]


def test_not_enabled_passes_through_without_reproxy_headers(good):
    """R4.2: not enabled -> the app's response, minus every X-Reproxy-* header."""
    app = reproxy_app(good, extra_headers=[("X-Reproxy-Expected-Size", "5")])
    result = call(mw_for(app), "/n/f")
    assert result.body == b"IGNORED"
    assert result.status == "200 OK"
    assert "x-reproxy-url" not in result.names()
    assert "x-reproxy-expected-size" not in result.names()
    assert result.header("Content-Length") == "7"
    assert app.record.closed == 1


@pytest.mark.parametrize("value", ["", "   ", "\t"])
def test_empty_directive_is_absent(value):
    """R4.2: an empty or all-whitespace X-Reproxy-Url counts as absent."""
    app = BackendApp(
        headers=[("X-Reproxy-Url", value), ("Content-Type", "text/plain"), ("Content-Length", "2")],
        body=[b"ok"],
    )
    result = call(mw_for(app), "/r/f")
    assert (result.code, result.body) == (200, b"ok")
    assert "x-reproxy-url" not in result.names()


def test_exc_info_answer_is_never_reproxied(good):
    """R4.2: an error page sent with exc_info is the app's own answer."""

    def app(environ, start_response):
        start_response("200 OK", [("X-Reproxy-Url", good)])
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            import sys

            start_response(
                "500 Internal Server Error",
                [("Content-Type", "text/plain"), ("X-Reproxy-Url", good)],
                sys.exc_info(),
            )
        return [b"error page"]

    result = call(mw_for(app), "/r/f")
    assert (result.status, result.body) == ("500 Internal Server Error", b"error page")
    assert "x-reproxy-url" not in result.names()


def test_invalid_urls_are_skipped_and_never_requested(file_server, caplog):
    """R4.3: invalid or disallowed URLs are skipped and logged with repr()."""
    evil = f"http://user:pw@127.0.0.1:{file_server.port}/echo"
    app = reproxy_app("ftp://x/y", evil, "http://h/\x1b[2J", file_server.url("/files/small.txt"))
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        result = call(mw_for(app), "/r/f")
    assert result.body == FILES["small.txt"]
    assert [r.path for r in file_server.requests] == ["/files/small.txt"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("'ftp://x/y'" in m for m in messages)
    assert any("'http://h/\\x1b[2J'" in m for m in messages)


def test_upstream_hosts_restrict_targets(file_server):
    """R4.3: with upstream_hosts, a URL on another host or port is skipped."""
    app = reproxy_app(file_server.url("/files/small.txt"))
    result = call(mw_for(app, upstream_hosts=["127.0.0.2:*", "127.0.0.1"]), "/r/f")
    assert result.code == 502
    assert file_server.requests == []
    ok = call(mw_for(app, upstream_hosts=[f"127.0.0.1:{file_server.port}"]), "/r/f")
    assert ok.body == FILES["small.txt"]


def test_only_max_urls_are_considered(file_server, refused_url):
    """R4.3: only the first max_urls tokens count, valid or not."""
    app = reproxy_app(refused_url, file_server.url("/files/small.txt"))
    assert call(mw_for(app, max_urls=1), "/r/f").code == 502
    assert call(mw_for(app, max_urls=2), "/r/f").body == FILES["small.txt"]


@pytest.mark.parametrize(
    "directive",
    [
        [("X-Reproxy-Url", "ftp://x/ /relative")],
        [("X-Reproxy-Url", "http://127.0.0.1:1/x"), ("X-Reproxy-Expected-Size", "ten")],
    ],
)
def test_unusable_directive_answers_502_without_leaking(directive, caplog):
    """R4.1, R4.3: no usable URL, or a bad expected size -> 502, logged, no URL leaked."""
    app = BackendApp(headers=directive)
    with caplog.at_level(logging.ERROR, "wsgi_reproxy"):
        result = call(mw_for(app), "/r/f")
    assert result.code == 502
    assert b"ftp" not in result.body
    assert b"127.0.0.1" not in result.body
    assert "x-reproxy-url" not in result.names()
    assert app.record.closed == 1
    assert [r.levelname for r in caplog.records if r.levelno >= logging.ERROR] == ["ERROR"]


def test_apps_body_is_discarded_and_closed_once(good):
    """R4.4: the app's body is never sent; its iterable is closed exactly once."""
    app = reproxy_app(good, body=[b"APP", b"BODY"])
    result = call(mw_for(app), "/r/f")
    assert b"APP" not in result.body[:10]
    assert app.record.closed == 1
    assert app.record.iterated == 0


def test_write_data_is_discarded(good):
    """R4.4: data passed to write() is thrown away when reproxying."""
    app = reproxy_app(good, write=b"WRITTEN", body=[])
    result = call(mw_for(app), "/r/f")
    assert result.body == FILES["1m.bin"]


def test_framing_comes_from_the_target(file_server):
    """R4.4: Content-Length (and friends) always come from the target, never the app."""
    app = reproxy_app(
        file_server.url("/files/small.txt"), extra_headers=[("Content-Encoding", "br")]
    )
    result = call(mw_for(app), "/r/f")
    assert result.all("Content-Length") == [str(len(FILES["small.txt"]))]
    assert result.all("Content-Encoding") == []


# -- R5: fetching ----------------------------------------------------------------------------


def test_failover_in_order(file_server, refused_url):
    """R5.1, R5.3: refused, 404, 500 and 302 fail over to the next URL, in order."""
    urls = [
        refused_url,
        file_server.url("/status/404"),
        file_server.url("/status/500"),
        file_server.url("/status/302"),
        file_server.url("/files/small.txt"),
    ]
    result = call(mw_for(reproxy_app(*urls)), "/r/f")
    assert result.body == FILES["small.txt"]
    assert [r.path for r in file_server.requests] == [
        "/status/404",
        "/status/500",
        "/status/302",
        "/files/small.txt",
    ]
    assert result.environ["wsgi_reproxy.url"] == urls[-1]


def test_redirects_are_not_followed(file_server):
    """R5.3: a 3xx fails that URL; its Location is never fetched."""
    result = call(mw_for(reproxy_app(file_server.url("/status/302"))), "/r/f")
    assert result.code == 502
    assert [r.path for r in file_server.requests] == ["/status/302"]
    assert "location" not in result.names()


def test_head_is_sent_as_head(file_server):
    """R5.1, R6.3: HEAD upstream, the target's length, no body."""
    result = call(mw_for(reproxy_app(file_server.url("/files/1m.bin"))), "/r/f", method="HEAD")
    assert result.code == 200
    assert result.body == b""
    assert result.header("Content-Length") == str(len(FILES["1m.bin"]))
    assert [r.method for r in file_server.requests] == ["HEAD"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_fetch_with_get(file_server, method):
    """R5.1: the request to the target is GET unless the client's method is HEAD."""
    call(mw_for(reproxy_app(file_server.url("/echo"))), "/r/f", method=method)
    assert [r.method for r in file_server.requests] == ["GET"]


def test_forwarded_request_headers(file_server):
    """R5.2: forward list only; Host from the URL; never Cookie/Authorization; our UA."""
    client = {
        "Range": "bytes=0-3",
        "If-None-Match": '"x"',
        "Accept-Encoding": "gzip",
        "Cookie": "session=secret",
        "Authorization": "Bearer secret",
        "X-Custom": "no",
        "Host": "front.example",
    }
    call(mw_for(reproxy_app(file_server.url("/echo/x"))), "/r/f", headers=client)
    [request] = file_server.requests
    sent = {k.lower(): v for k, v in request.headers}
    assert sent["range"] == "bytes=0-3"
    assert sent["if-none-match"] == '"x"'
    assert sent["accept-encoding"] == "gzip"
    assert sent["host"] == f"127.0.0.1:{file_server.port}"
    assert sent["user-agent"].startswith("wsgi-reproxy/")
    assert not {"cookie", "authorization", "x-custom"} & set(sent)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Range": "bytes=10-19"}, 206),
        ({"Range": "bytes=99999999-"}, 416),
    ],
)
def test_range_answers_are_relayed(file_server, headers, status):
    """R5.3, R6.1: 206 and 416 are the client's own answers: relayed as such."""
    result = call(mw_for(reproxy_app(file_server.url("/files/1m.bin"))), "/r/f", headers=headers)
    assert result.code == status
    if status == 206:
        assert result.body == FILES["1m.bin"][10:20]
        assert result.header("Content-Range") == f"bytes 10-19/{len(FILES['1m.bin'])}"
    else:
        assert result.header("Content-Range") == f"bytes */{len(FILES['1m.bin'])}"


def test_not_modified_is_relayed_without_body_or_added_headers(file_server):
    """R5.3, R6.2, R6.3: 304 relayed, no body, preserve adds nothing."""
    url = file_server.url("/files/small.txt")
    first = call(mw_for(reproxy_app(url)), "/r/f")
    etag = first.header("ETag")
    result = call(mw_for(reproxy_app(url)), "/r/f", headers={"If-None-Match": etag})
    assert result.code == 304
    assert result.body == b""
    assert result.header("ETag") == etag
    assert "content-disposition" not in result.names()
    assert "content-type" not in result.names()


@pytest.mark.parametrize(
    ("size", "served"),
    [
        (len(FILES["small.txt"]), "small"),
        (len(FILES["1m.bin"]), "1m"),
    ],
)
def test_expected_size_picks_the_target_of_the_right_length(file_server, size, served):
    """R4.1, R5.3: a target whose full length differs from the expected size fails."""
    app = reproxy_app(
        file_server.url("/files/small.txt"),
        file_server.url("/files/1m.bin"),
        extra_headers=[("X-Reproxy-Expected-Size", str(size))],
    )
    result = call(mw_for(app), "/r/f")
    assert result.body == FILES["small.txt" if served == "small" else "1m.bin"]


def test_expected_size_checks_the_total_of_a_206(file_server):
    """R4.1: on a 206 the total in Content-Range is compared (perlbal fails every Range)."""
    size = len(FILES["1m.bin"])
    app = reproxy_app(
        file_server.url("/files/1m.bin"), extra_headers=[("X-Reproxy-Expected-Size", str(size))]
    )
    result = call(mw_for(app), "/r/f", headers={"Range": "bytes=0-9"})
    assert (result.code, result.body) == (206, FILES["1m.bin"][:10])
    wrong = reproxy_app(
        file_server.url("/files/1m.bin"), extra_headers=[("X-Reproxy-Expected-Size", str(size - 1))]
    )
    assert call(mw_for(wrong), "/r/f", headers={"Range": "bytes=0-9"}).code == 502


def test_expected_size_lets_a_multipart_byteranges_answer_through(scripted):
    """R4.1: a 206 for several ranges has no Content-Range of its own (RFC 9110 §14.6), so
    its total cannot be compared: it is relayed, not failed (perlbal's bug, PEERS §2.4)."""
    part = b"--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\nab\r\n--B--\r\n"
    head = response_head(
        "206 Partial Content",
        [("Content-Type", "multipart/byteranges; boundary=B"), ("Content-Length", str(len(part)))],
    )
    target = scripted(respond(head + part, keep_open=True))
    app = reproxy_app(target.url("/f"), extra_headers=[("X-Reproxy-Expected-Size", "10")])
    result = call(mw_for(app), "/r/f", headers={"Range": "bytes=0-1,5-6"})
    assert (result.code, result.body) == (206, part)
    assert result.header("Content-Type") == "multipart/byteranges; boundary=B"


@pytest.mark.parametrize("chunked", [False, True], ids=["with-length", "chunked"])
def test_expected_size_is_not_held_against_an_encoded_body(scripted, chunked):
    """Accept-Encoding is forwarded, and the expected size is the file's: a gzip answer's
    length is the encoded bytes', and says nothing about the file.  Relayed as sent."""
    encoded = gzip.compress(b"a" * 12_000)
    if chunked:
        framing = [("Transfer-Encoding", "chunked")]
        body = b"%x\r\n" % len(encoded) + encoded + b"\r\n0\r\n\r\n"
    else:
        framing = [("Content-Length", str(len(encoded)))]
        body = encoded
    head = response_head("200 OK", [("Content-Encoding", "gzip"), *framing])
    target = scripted(respond(head + body, keep_open=True))
    app = reproxy_app(target.url("/f"), extra_headers=[("X-Reproxy-Expected-Size", "12000")])
    result = call(mw_for(app), "/r/f", headers={"Accept-Encoding": "gzip"})
    assert (result.code, result.body) == (200, encoded)
    assert result.header("Content-Encoding") == "gzip"
    assert result.header("Content-Length") == (None if chunked else str(len(encoded)))


def test_a_chunked_body_of_known_length_is_announced(file_server):
    """R6.4: with the length known from the expected size, the client is told it, so that
    a body that breaks looks short under every server (see test_servers)."""
    data = FILES["1m.bin"]
    app = reproxy_app(
        file_server.url("/chunked/1m.bin"),
        extra_headers=[("X-Reproxy-Expected-Size", str(len(data)))],
    )
    result = call(mw_for(app), "/r/f")
    assert (result.body, result.header("Content-Length")) == (data, str(len(data)))


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "until-close"])
def test_a_body_longer_than_the_announced_length_never_completes_it(scripted, chunked):
    """The middleware announced the expected size, the target did not: the piece that
    completes it goes out only once nothing follows it.  A longer (stale) body leaves the
    client short of the length it was told -- an abort it can see -- never holding every
    promised byte of the wrong file."""
    piece = bytes(range(256)) * 256
    if chunked:
        framing = [("Transfer-Encoding", "chunked")]
        body = b"".join(b"%x\r\n" % len(piece) + piece + b"\r\n" for _ in range(3))
        body += b"0\r\n\r\n"
    else:
        framing = []
        body = piece * 3
    head = response_head("200 OK", [*framing, ("Connection", "close")])
    target = scripted(respond(head + body))
    expected = 2 * len(piece)
    app = reproxy_app(target.url("/f"), extra_headers=[("X-Reproxy-Expected-Size", str(expected))])
    started = {}
    iterable = mw_for(app)(make_environ("/r/f"), lambda s, h, e=None: started.update(h=h))
    received = bytearray()
    try:
        with pytest.raises(UpstreamBodyError, match=f"more than the {expected} bytes expected"):
            _read_into(received, iterable)
    finally:
        iterable.close()
    assert ("Content-Length", str(expected)) in started["h"]
    assert len(received) < expected
    assert bytes(received) == (piece * 2)[: len(received)]


@pytest.mark.parametrize("size", [1000, 200_000], ids=["small", "large"])
def test_a_body_that_ends_only_by_silence_is_whole_at_its_expected_size(scripted, size):
    """uWSGI's --http11-socket, serving a view without a length, neither chunks nor
    closes: its body ends only with its idle timeout.  Once the expected size is in hand,
    the silence that follows is its end, not a broken body (no 504, no abort)."""
    body = (bytes(range(256)) * (size // 256 + 1))[:size]

    def silent_after(conn, server):
        if server.read_request(conn):
            conn.sendall(response_head("200 OK", [("Content-Type", "a/b")]) + body)
            server.hold(conn)

    target = scripted(silent_after)
    app = reproxy_app(target.url("/f"), extra_headers=[("X-Reproxy-Expected-Size", str(size))])
    result = call(mw_for(app, timeout=0.3), "/r/f")
    assert (result.code, result.body, result.header("Content-Length")) == (200, body, str(size))


def _chunk_promising_more_then_silence(body):
    """A chunked body whose chunk header promises 5 bytes more than it sends, then silence."""

    def handler(conn, server):
        if server.read_request(conn):
            head = response_head("200 OK", [("Transfer-Encoding", "chunked")])
            conn.sendall(head + b"%x\r\n" % (len(body) + 5) + body)
            server.hold(conn)

    return handler


def test_a_small_chunked_body_silent_at_its_expected_size_fails_over(scripted, file_server):
    """A chunked body ends with its last chunk, not with silence: stalled at the expected
    size, its chunk header promising more, it is broken, and the next URL serves."""
    small = FILES["small.txt"]
    stalls = scripted(_chunk_promising_more_then_silence(b"x" * len(small)))
    app = reproxy_app(
        stalls.url("/f"),
        file_server.url("/files/small.txt"),
        extra_headers=[("X-Reproxy-Expected-Size", str(len(small)))],
    )
    result = call(mw_for(app, timeout=0.3), "/r/f")
    assert (result.code, result.body) == (200, small)


def test_a_large_chunked_body_silent_at_its_expected_size_is_aborted(scripted):
    """The same once streaming: the last piece is held back, and the response aborted."""
    size = 200_000
    stalls = scripted(_chunk_promising_more_then_silence(b"x" * size))
    app = reproxy_app(stalls.url("/f"), extra_headers=[("X-Reproxy-Expected-Size", str(size))])
    iterable = mw_for(app, timeout=0.3)(make_environ("/r/f"), lambda s, h, e=None: None)
    received = bytearray()
    try:
        with pytest.raises(UpstreamBodyError):
            _read_into(received, iterable)
    finally:
        iterable.close()
    assert len(received) < size


def test_a_small_body_dribbling_in_starts_the_response_before_it_ends(scripted):
    """The small body read to its end before the response starts gets one read timeout
    in all: one dribbling in, each byte within the timeout, starts streaming before its
    end (and is held to its size as it goes) instead of keeping the client waiting."""
    body = b"twelve bytes"
    sent = {"bytes": 0}

    def dribbles(conn, server):
        if server.read_request(conn):
            conn.sendall(response_head("200 OK", [("Transfer-Encoding", "chunked")]))
            for byte in body:
                conn.sendall(b"1\r\n" + bytes([byte]) + b"\r\n")
                sent["bytes"] += 1
                time.sleep(0.15)
            conn.sendall(b"0\r\n\r\n")

    target = scripted(dribbles)
    app = reproxy_app(target.url("/f"), extra_headers=[("X-Reproxy-Expected-Size", "12")])
    started_at = {}
    iterable = mw_for(app, timeout=0.5)(
        make_environ("/r/f"), lambda s, h, e=None: started_at.update(sent=sent["bytes"])
    )
    try:
        received = b"".join(iterable)
    finally:
        iterable.close()
    assert received == body
    assert started_at["sent"] < len(body)


def _read_into(received, iterable):
    for chunk in iterable:
        received += chunk


def test_expected_size_bounds_a_chunked_body(file_server):
    """R4.1, R6.4: a chunked body is held to the expected size while streaming."""
    data = FILES["1m.bin"]
    url = file_server.url("/chunked/1m.bin")
    ok = reproxy_app(url, extra_headers=[("X-Reproxy-Expected-Size", str(len(data)))])
    assert call(mw_for(ok), "/r/f").body == data
    for wrong in (len(data) - 1, len(data) + 1):
        app = reproxy_app(url, extra_headers=[("X-Reproxy-Expected-Size", str(wrong))])
        with pytest.raises(UpstreamBodyError):
            call(mw_for(app), "/r/f")


def test_a_chunked_body_of_unknown_length_streams_whole(file_server):
    """R6.3: no Content-Length and no expected size: the body runs to the target's end,
    read piece by piece, byte-exact."""
    result = call(mw_for(reproxy_app(file_server.url("/chunked/1m.bin"))), "/r/f")
    assert result.body == FILES["1m.bin"]
    assert result.header("Content-Length") is None


def test_all_failed_answers_502_with_one_error_log(file_server, refused_url, caplog):
    """R5.4: 502 when not every failure was a timeout; one ERROR record; no URL in the body."""
    urls = [refused_url, file_server.url("/status/500")]
    with caplog.at_level(logging.DEBUG, "wsgi_reproxy"):
        result = call(mw_for(reproxy_app(*urls)), "/r/f")
    assert result.code == 502
    assert result.header("Content-Type").startswith("text/plain")
    assert b"127.0.0.1" not in result.body
    assert b"http" not in result.body
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert repr(urls[0]) in errors[0].getMessage()
    assert repr(urls[1]) in errors[0].getMessage()
    assert "status 500" in errors[0].getMessage()
    assert "wsgi_reproxy.url" not in result.environ


def test_all_refused_is_502_not_504(refused_url):
    """R5.4: a refused connection is not a timeout, whatever urllib3's classes say."""
    assert call(mw_for(reproxy_app(refused_url, refused_url)), "/r/f").code == 502


def test_all_timed_out_is_504(scripted):
    """R5.4: 504 when every failure was a timeout."""
    from upstreams import stall_before_status

    stalled = scripted(stall_before_status())
    app = reproxy_app(stalled.url("/a"), stalled.url("/b"))
    result = call(mw_for(app, timeout=0.2), "/r/f")
    assert result.code == 504
    assert str(stalled.port).encode() not in result.body


# -- R6: the response -------------------------------------------------------------------------


def test_status_line_is_the_targets(file_server):
    """R6.1: the target's code and reason."""
    result = call(mw_for(reproxy_app(file_server.url("/status/204"))), "/r/f")
    assert result.status == "204 No Content"
    assert result.body == b""


def test_response_headers(file_server):
    """R6.2: target headers in order with duplicates, minus hop-by-hop, Connection-listed
    and X-Reproxy-*, with preserved names taken from the app."""
    result = call(mw_for(reproxy_app(file_server.url("/headers"))), "/r/f")
    names = result.names()
    assert result.all("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert result.all("X-Custom") == ["one", "two"]
    for hop in (
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "upgrade",
        "trailer",
        "x-private",
        "x-reproxy-url",
        "x-reproxy-expected-size",
    ):
        assert hop not in names
    assert result.all("Content-Type") == ["application/x-app"]
    assert result.all("Content-Disposition") == ["attachment; filename=f.bin"]
    assert result.body == b"headers\n"


def test_gzip_body_stays_gzip(file_server):
    """R6.3: decode_content=False: the bytes as sent, with their Content-Encoding."""
    result = call(
        mw_for(reproxy_app(file_server.url("/gzip/1m.bin"))),
        "/r/f",
        headers={"Accept-Encoding": "gzip"},
    )
    assert result.header("Content-Encoding") == "gzip"
    assert gzip.decompress(result.body) == FILES["1m.bin"]
    assert result.header("Content-Length") == str(len(result.body))


def test_body_is_streamed_in_pieces_of_at_most_chunk_size(file_server):
    """R6.3: streamed in pieces of at most chunk_size, never buffered whole."""
    mw = mw_for(reproxy_app(file_server.url("/files/1m.bin")), chunk_size=10_000)
    start = []
    body = mw(
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/r/f", "SCRIPT_NAME": ""},
        lambda s, h, e=None: start.append(s),
    )
    try:
        sizes = [len(chunk) for chunk in body]
    finally:
        body.close()
    assert max(sizes) <= 10_000
    assert sum(sizes) == len(FILES["1m.bin"])
    assert len(sizes) >= 105


def test_short_body_raises_instead_of_ending_cleanly(scripted, caplog):
    """R6.4: fewer bytes than Content-Length must never look complete."""
    from upstreams import close_mid_body

    server = scripted(close_mid_body(100, b"x" * 9))
    with caplog.at_level(logging.ERROR, "wsgi_reproxy"), pytest.raises(UpstreamBodyError) as raised:
        call(mw_for(reproxy_app(server.url("/f"))), "/r/f")
    assert raised.value.sent == 9
    assert any("broke" in r.getMessage() for r in caplog.records)


def test_close_is_idempotent_and_returns_the_connection(file_server):
    """R6.5: close() closes the app's iterable once and reuses the upstream connection."""
    app = reproxy_app(file_server.url("/files/small.txt"))
    mw = mw_for(app)
    for _ in range(3):
        body = mw({"REQUEST_METHOD": "GET", "PATH_INFO": "/r/f"}, lambda s, h, e=None: None)
        assert b"".join(body) == FILES["small.txt"]
        body.close()
        body.close()
    assert app.record.closed == 3
    assert file_server.connections == 1


def test_early_close_frees_the_slot_of_a_blocking_pool(file_server):
    """R6.5: a client gone early: the connection is closed and its slot released, so a
    block=True pool of one never deadlocks."""
    pool = urllib3.PoolManager(maxsize=1, block=True, retries=False)
    app = reproxy_app(file_server.url("/files/5m.bin"))
    mw = mw_for(app, pool=pool, timeout=urllib3.Timeout(connect=1, read=1, total=None))
    try:
        for _ in range(5):
            body = mw({"REQUEST_METHOD": "GET", "PATH_INFO": "/r/f"}, lambda s, h, e=None: None)
            next(iter(body))
            body.close()
        result = call(mw, "/r/f")
        assert result.body == FILES["5m.bin"]
    finally:
        pool.clear()
    assert app.record.closed == 6
    assert file_server.connections == 6


def test_the_own_pool_remembers_origins_until_cleared(file_server):
    """R6.5: the middleware's own pool keeps one connection pool per origin -- one
    connection for many requests -- and ``clear()`` still means new connections."""
    mw = mw_for(reproxy_app(file_server.url("/files/small.txt")))
    assert isinstance(mw.pool, ReproxyPoolManager)
    for _ in range(3):
        assert call(mw, "/r/f").body == FILES["small.txt"]
    assert file_server.connections == 1
    mw.pool.clear()
    for _ in range(2):
        assert call(mw, "/r/f").body == FILES["small.txt"]
    assert file_server.connections == 2
    mw.pool.clear()


def test_more_origins_than_pools_still_serve(file_server):
    """R6.5: with more origins than the manager keeps pools for, each request still gets
    its origin's pool, and the remembered pools stay within that bound."""
    pool = ReproxyPoolManager(num_pools=1, retries=False)
    with FileServer() as other:
        apps = [
            reproxy_app(file_server.url("/files/small.txt")),
            reproxy_app(other.url("/files/small.txt")),
        ]
        middlewares = [mw_for(app, pool=pool) for app in apps]
        for _ in range(3):
            for mw in middlewares:
                assert call(mw, "/r/f").body == FILES["small.txt"]
                assert len(pool._by_origin) == 1
        pool.clear()
    assert [app.record.closed for app in apps] == [3, 3]


def test_pass_through_returns_the_apps_own_iterable():
    """R6.6: not enabled or no directive: the very same iterable (file_wrapper/sendfile)."""
    sentinel = [b"a", b"b"]

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return sentinel

    mw = mw_for(app)
    for path in ("/n/x", "/r/x"):
        assert (
            mw({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda s, h, e=None: None) is sentinel
        )


def test_pass_through_write_and_lazy_start_response():
    """R6.6 and PEP 3333: write() reaches the server; lazy generators keep their chunks."""
    writer = BackendApp(headers=[("Content-Type", "text/plain")], write=b"w", body=[b"x"])
    assert call(mw_for(writer), "/r/a").body == b"wx"
    lazy = BackendApp(headers=[("Content-Type", "text/plain")], body=[b"1", b"2"], lazy=True)
    result = call(mw_for(lazy), "/r/a")
    assert result.body == b"12"
    assert lazy.record.closed == 1


def test_lazy_start_response_with_directive(good):
    """PEP 3333: a generator app that calls start_response late is still reproxied."""
    app = reproxy_app(good, lazy=True, body=[b"IGN", b"ORED"])
    result = call(mw_for(app), "/r/f")
    assert result.body == FILES["1m.bin"]
    assert app.record.closed == 1


def test_file_wrapper_is_returned_unchanged(tmp_path):
    """R6.6: a wsgi.file_wrapper answer is returned as is so the server can sendfile."""
    from wsgiref.util import FileWrapper

    path = tmp_path / "f.txt"
    path.write_bytes(b"file body")
    holder = {}

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        holder["wrapper"] = environ["wsgi.file_wrapper"](path.open("rb"))
        return holder["wrapper"]

    mw = mw_for(app)
    environ = {"PATH_INFO": "/r/f", "REQUEST_METHOD": "GET", "wsgi.file_wrapper": FileWrapper}
    result = mw(environ, lambda s, h, e=None: None)
    assert result is holder["wrapper"]
    assert b"".join(result) == b"file body"
    result.close()


# -- R7: observability -----------------------------------------------------------------------


def test_logging_levels(file_server, refused_url, caplog):
    """R7.1: DEBUG per attempt, WARNING per failed attempt, nothing on pass-through."""
    with caplog.at_level(logging.DEBUG, "wsgi_reproxy"):
        call(mw_for(BackendApp(body=[b"x"])), "/n/x")
        call(mw_for(BackendApp(body=[b"x"])), "/r/x")
        assert caplog.records == []
        call(mw_for(reproxy_app(refused_url, file_server.url("/files/small.txt"))), "/r/f")
    levels = [r.levelname for r in caplog.records]
    assert levels.count("WARNING") == 1
    assert levels.count("DEBUG") >= 2
    assert "ERROR" not in levels


def test_served_url_is_recorded_in_the_environ(file_server):
    """R7.2: environ['wsgi_reproxy.url'] names the URL that served the body."""
    url = file_server.url("/files/small.txt")
    result = call(mw_for(reproxy_app(url)), "/r/f")
    assert result.environ["wsgi_reproxy.url"] == url
    assert hashlib.sha256(result.body).digest() == hashlib.sha256(FILES["small.txt"]).digest()


# -- odd targets and odd apps ----------------------------------------------------------------


def test_custom_reason_and_folded_header_from_a_raw_target(scripted):
    """R6.1: the target's own reason phrase; obs-folded values are unfolded, not injected."""
    from upstreams import respond

    raw = (
        b"HTTP/1.1 200 Fine Thanks\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
        b"X-Folded: a\r\n b\r\n\r\nok"
    )
    server = scripted(respond(raw))
    result = call(mw_for(reproxy_app(server.url("/f")), preserve=[]), "/r/f")
    assert result.status == "200 Fine Thanks"
    assert result.body == b"ok"
    assert all("\n" not in v and "\r" not in v for _, v in result.headers)


def test_start_response_twice_without_exc_info_is_an_error():
    """PEP 3333: a second start_response call needs exc_info."""

    def app(environ, start_response):
        start_response("200 OK", [("X-Reproxy-Url", "http://127.0.0.1:1/")])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b""]

    with pytest.raises(AssertionError, match="second time"):
        call(mw_for(app), "/r/f", validate=False)


def test_app_that_never_calls_start_response_is_an_error():
    """PEP 3333: an app must call start_response before its body ends."""

    def silent(environ, start_response):
        yield b""

    with pytest.raises(RuntimeError, match="without calling start_response"):
        call(mw_for(silent), "/r/f", validate=False)


def test_app_iterable_is_closed_when_the_app_fails_before_start_response():
    """R4.4/R6.5: whatever happens, the app's iterable is closed."""
    closed = []

    def app(environ, start_response):
        try:
            raise ValueError("app bug")
            yield b""
        finally:
            closed.append(True)

    with pytest.raises(ValueError, match="app bug"):
        call(mw_for(app), "/r/f", validate=False)
    assert closed == [True]


@pytest.mark.parametrize(
    ("name", "chunk_size", "bound"),
    [
        ("5m.bin", 64 * 1024, 1024 * 1024),
        # The default: pieces grow to 1 MiB; a piece and the next in hand at most.
        ("50m.bin", None, 3 * 1024 * 1024),
    ],
)
def test_memory_stays_flat_while_streaming(file_server, name, chunk_size, bound):
    """R6.3: memory is bounded by the piece size, whatever the body size."""
    import tracemalloc

    options = {} if chunk_size is None else {"chunk_size": chunk_size}
    mw = mw_for(reproxy_app(file_server.url(f"/files/{name}")), **options)
    tracemalloc.start()
    try:
        body = mw({"REQUEST_METHOD": "GET", "PATH_INFO": "/r/f"}, lambda s, h, e=None: None)
        total = sum(len(chunk) for chunk in body)
        body.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == len(FILES[name])
    assert peak < bound, f"peak {peak} bytes while streaming {name}"


def test_under_webtest_lint(file_server):
    """PEP 3333 as WebTest's lint checks it, on reproxied and passed-through answers."""
    import webtest

    app = reproxy_app(file_server.url("/files/small.txt"))
    client = webtest.TestApp(mw_for(app), lint=True)
    response = client.get("/r/f")
    assert response.body == FILES["small.txt"]
    assert response.headers["Content-Disposition"] == "attachment; filename=f.bin"
    passed = client.get("/n/f")
    assert passed.body == b"IGNORED"
    assert "X-Reproxy-Url" not in passed.headers
    assert client.head("/r/f").body == b""
    assert client.get("/r/f", headers={"Range": "bytes=0-4"}, status=206).body == b"hello"


@pytest.mark.parametrize(
    ("method", "conditional"), [("HEAD", False), ("GET", True)], ids=["HEAD", "304"]
)
def test_bodiless_answers_leave_a_reusable_connection(file_server, method, conditional):
    """R6.5: after a HEAD or a 304 the kept-alive connection serves the next request."""
    from upstreams import etag_for

    environ = {"REQUEST_METHOD": method, "PATH_INFO": "/r/f"}
    if conditional:
        environ["HTTP_IF_NONE_MATCH"] = etag_for("small.txt")
    mw = mw_for(reproxy_app(file_server.url("/files/small.txt")))
    kept = []  # keep bodies alive, as a server may: no help from garbage collection
    for _ in range(2):
        statuses = []
        body = mw(dict(environ), lambda s, h, e=None, out=statuses: out.append(s))
        assert b"".join(body) == b""
        body.close()
        kept.append(body)
        assert statuses == ["304 Not Modified" if conditional else "200 OK"]
        result = call(mw, "/r/f")
        assert (result.code, result.body) == (200, FILES["small.txt"])
    assert file_server.connections == 1
    assert [r.method for r in file_server.requests] == [method, "GET"] * 2


def test_can_reproxy_tells_the_app_what_the_middleware_will_do():
    """R1.3, R3: can_reproxy is true exactly on enabled requests, whatever the client sent."""
    from wsgi_reproxy import can_reproxy

    seen = {}

    def app(environ, start_response):
        seen[environ["PATH_INFO"]] = can_reproxy(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b""]

    mw = mw_for(app)
    spoof = {"X-Proxy-Capabilities": "reproxy-file"}
    call(mw, "/r/x", headers=spoof)
    call(mw, "/n/x", headers=spoof)
    assert seen == {"/r/x": True, "/n/x": False}
    assert can_reproxy({"HTTP_X_PROXY_CAPABILITIES": "gzip, reproxy-file"}) is True
    assert can_reproxy({"HTTP_X_PROXY_CAPABILITIES": "reproxy-files"}) is False
    assert can_reproxy({}) is False


@pytest.mark.parametrize(
    ("status_line", "expected"),
    [(b"200 ", "200 OK"), (b"299 ", "299 Unknown"), (b"203 Fine", "203 Fine")],
)
def test_missing_reason_phrase_is_filled_in(scripted, status_line, expected):
    """R6.1: a target without a reason phrase still yields a valid WSGI status line."""
    from upstreams import respond

    raw = b"HTTP/1.1 " + status_line + b"\r\nContent-Type: a/b\r\nContent-Length: 2\r\n\r\nok"
    result = call(mw_for(reproxy_app(scripted(respond(raw)).url("/f"))), "/r/f")
    assert (result.status, result.body) == (expected, b"ok")


def test_unsafe_target_header_is_dropped_and_logged(scripted, caplog):
    from upstreams import respond

    raw = (
        b"HTTP/1.1 200 OK\r\nContent-Type: a/b\r\nX-Bad: a\x01b\r\nX-Good: 1\r\n"
        b"Content-Length: 2\r\n\r\nok"
    )
    server = scripted(respond(raw))
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        result = call(mw_for(reproxy_app(server.url("/f"))), "/r/f")
    assert result.header("X-Good") == "1"
    assert "x-bad" not in result.names()
    assert any("X-Bad" in r.getMessage() for r in caplog.records)


def test_partial_content_without_length_streams_to_the_end(scripted):
    """A chunked 206 has no Content-Length: the body ends where the target ends it."""
    from upstreams import respond

    raw = (
        b"HTTP/1.1 206 Partial Content\r\nContent-Type: a/b\r\nContent-Range: bytes 0-2/9\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    result = call(mw_for(reproxy_app(scripted(respond(raw)).url("/f"))), "/r/f")
    assert (result.code, result.body) == (206, b"abc")


def test_lazy_app_that_starts_without_yielding(good):
    """PEP 3333: a generator may call start_response and end without yielding a chunk."""

    def make(headers):
        def app(environ, start_response):
            start_response("200 OK", headers)
            return
            yield b""  # a generator, but it yields nothing

        return app

    result = call(mw_for(make([("X-Reproxy-Url", good)])), "/r/f")
    assert result.body == FILES["1m.bin"]
    empty = call(mw_for(make([("Content-Type", "text/plain")])), "/r/f")
    assert (empty.code, empty.body) == (200, b"")


def test_failing_server_start_response_still_closes_everything(file_server):
    """If the server's start_response raises, the app and the upstream are still closed."""
    app = reproxy_app(file_server.url("/files/small.txt"))
    mw = mw_for(app)

    def start_response(status, headers, exc_info=None):
        raise OSError("client gone")

    with pytest.raises(OSError, match="client gone"):
        mw({"REQUEST_METHOD": "GET", "PATH_INFO": "/r/f"}, start_response)
    assert app.record.closed == 1
    assert call(mw, "/r/f").body == FILES["small.txt"]  # the pool is healthy
    assert file_server.wait_open_connections(at_most=1) <= 1


def test_repr_names_the_configuration():
    mw = mw_for(BackendApp(), allow=["/r/"], preserve=["Content-Type"])
    assert "allow=['/r/']" in repr(mw)
    assert "preserve=['Content-Type']" in repr(mw)


def test_error_answer_close_is_idempotent_and_plain_lists_need_no_close(refused_url):
    """R6.5: close() of a 502 answer closes the app's iterable once; a list has no close()."""
    app = reproxy_app(refused_url)
    body = mw_for(app)({"REQUEST_METHOD": "GET", "PATH_INFO": "/r/f"}, lambda s, h, e=None: None)
    body.close()
    body.close()
    assert app.record.closed == 1

    def list_app(environ, start_response):
        start_response("200 OK", [("X-Reproxy-Url", refused_url)])
        return [b"ignored"]

    assert call(mw_for(list_app), "/r/f").code == 502


# -- the first piece: what has arrived, at once -------------------------------------------


def _pieces(mw, path="/r/f"):
    """The body's pieces as the middleware yields them (the server writes each one)."""
    started = {}
    body = mw(
        {"REQUEST_METHOD": "GET", "PATH_INFO": path, "SERVER_NAME": "x", "SERVER_PORT": "80"},
        lambda status, headers, exc_info=None: started.setdefault("status", status),
    )
    try:
        return started["status"], list(body)
    finally:
        body.close()


def test_the_rest_of_a_small_body_is_not_waited_for(scripted):
    """R6.3: a slow target's first bytes go out at once, the rest as it arrives."""
    import threading

    from upstreams import response_head

    first, rest = b"a" * 5000, b"b" * 5000
    release = threading.Event()

    def handler(conn, server):
        if server.read_request(conn):
            head = response_head("200 OK", [("Content-Length", "10000")])
            conn.sendall(head + first)
            release.wait(10)
            conn.sendall(rest)
            server.hold(conn)

    server = scripted(handler)
    mw = mw_for(reproxy_app(server.url("/f")))
    started = {}
    body = mw(
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/r/f", "SERVER_NAME": "x", "SERVER_PORT": "80"},
        lambda status, headers, exc_info=None: started.setdefault("status", status),
    )
    try:
        chunks = iter(body)
        assert next(chunks) == first  # while the target still holds the rest
        release.set()
        assert b"".join(chunks) == rest
    finally:
        release.set()
        body.close()
    assert started["status"] == "200 OK"


def test_a_64k_body_sent_with_its_head_goes_out_in_one_piece(scripted):
    """R6.3, speed: the read that brings the head also brings what arrived of the body, up
    to a default chunk (http.client's own 8 KiB buffer would split it after the head)."""
    from upstreams import response_head

    body = bytes(range(256)) * 256  # 64 KiB

    def handler(conn, server):
        while server.read_request(conn):
            conn.sendall(response_head("200 OK", [("Content-Length", str(len(body)))]) + body)

    server = scripted(handler)
    status, pieces = _pieces(mw_for(reproxy_app(server.url("/f"))))
    assert status == "200 OK"
    assert b"".join(pieces) == body
    # what one read gets depends on the new connection's TCP window (32 KiB or more here);
    # through http.client's 8 KiB buffer it would be 8 KiB less the head
    assert len(pieces[0]) > 16 * 1024, [len(p) for p in pieces]


def test_a_small_body_reset_right_after_its_first_piece_raises(scripted):
    """R6.4: the reset is readable as soon as the first piece is read; the response has
    started, so it is aborted after the bytes it had, never ended as if whole."""
    from upstreams import reset_mid_body

    server = scripted(reset_mid_body(60000, 3000, delay=0.0))
    with pytest.raises(UpstreamBodyError) as raised:
        _pieces(mw_for(reproxy_app(server.url("/f"))))
    assert raised.value.sent == 3000  # Linux hands over queued bytes before the reset
