"""Every fault a target can commit, with its exact outcome, against real sockets.

For each: what the client gets (the next URL, 502/504 before the response starts, resume or
abort after it), and that the pool is healthy afterwards: a further request through the same
middleware, hence the same pool, succeeds promptly.
"""

from __future__ import annotations

import http.server
import logging
import socket
import struct
import time
from types import SimpleNamespace

import pytest
import trustme
import urllib3

from harness import call, reproxy_app
from upstreams import (
    FILES,
    etag_for,
    garbage_status,
    https_server,
    huge_headers,
    infinite_chunked,
    long_body,
    respond,
    response_head,
    stall_before_status,
    stall_mid_body,
    stall_mid_headers,
)
from wsgi_reproxy import ReproxyMiddleware, ReproxyPoolManager, UpstreamBodyError
from wsgi_reproxy.transport.pools import DEFAULT_POOL_MAXSIZE
from wsgi_reproxy.transport.quick_head import QuickHeadResponse

SMALL = FILES["small.txt"]


def middleware(*urls, **kwargs):
    kwargs.setdefault("timeout", 0.5)
    extra = kwargs.pop("extra_headers", [])
    app = reproxy_app(*urls, extra_headers=extra)
    return ReproxyMiddleware(app, allow=["/r/"], preserve=["Content-Type"], **kwargs)


def assert_pool_healthy(mw, file_server):
    """The same middleware (and pool) serves a good URL at once after the fault."""
    good = ReproxyMiddleware(
        reproxy_app(file_server.url("/files/small.txt")), allow=["/r/"], pool=mw.pool, timeout=2
    )
    started = time.monotonic()
    result = call(good, "/r/f")
    assert (result.code, result.body) == (200, SMALL)
    assert time.monotonic() - started < 1.5


# -- before the response starts: next URL, or 502/504 when none is left ----------------------

BEFORE_START = [
    ("refused", None, "connection failed", 502),
    ("dns", None, "connection failed", 502),
    ("stall before status", stall_before_status, "timed out", 504),
    ("stall mid headers", stall_mid_headers, "timed out", 504),
    ("garbage status", garbage_status, "ProtocolError", 502),
    ("garbage line", lambda: garbage_status(b"garbage\r\n\r\n"), "ProtocolError", 502),
    ("huge header block", huge_headers, "ProtocolError", 502),
    ("huge header line", lambda: huge_headers(100_000, single_line=True), "ProtocolError", 502),
    ("empty reply", lambda: respond(b""), "ProtocolError", 502),
    # The first piece of the body is read before the client's response starts, so a body
    # that breaks before its first byte is one more failed attempt, not a dropped connection.
    ("stall before first byte", lambda: stall_mid_body(1000, 0), "first byte: timed out", 504),
    (
        "close before first byte",
        lambda: respond(response_head("200 OK", [("Content-Length", "1000")])),
        "first byte: ProtocolError",
        502,
    ),
]


def _fault_url(kind, handler, scripted, refused_url):
    if kind == "refused":
        return refused_url
    if kind == "dns":
        return "http://store-1.invalid/f"
    return scripted(handler()).url("/f")


@pytest.mark.parametrize(
    ("kind", "handler", "reason", "status"), BEFORE_START, ids=[case[0] for case in BEFORE_START]
)
def test_fault_before_start_fails_over(
    kind, handler, reason, status, scripted, refused_url, file_server, caplog
):
    """R5.3: the faulty URL fails and the next one serves, byte-exact."""
    url = _fault_url(kind, handler, scripted, refused_url)
    mw = middleware(url, file_server.url("/files/small.txt"))
    result = call(mw, "/r/f")
    assert (result.code, result.body) == (200, SMALL)
    assert any(reason in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert_pool_healthy(mw, file_server)


@pytest.mark.parametrize(
    ("kind", "handler", "reason", "status"), BEFORE_START, ids=[case[0] for case in BEFORE_START]
)
def test_fault_before_start_alone_answers_502_or_504(
    kind, handler, reason, status, scripted, refused_url, file_server
):
    """R5.4: 504 only when every failure was a timeout, else 502; no URL in the body."""
    url = _fault_url(kind, handler, scripted, refused_url)
    mw = middleware(url, url)
    result = call(mw, "/r/f")
    assert result.code == status
    assert b"127.0.0.1" not in result.body
    assert b"invalid" not in result.body
    assert_pool_healthy(mw, file_server)


def test_target_answering_with_its_own_directive_is_not_followed(scripted, file_server):
    """R6.2: a target's X-Reproxy-Url is neither followed nor leaked (no loops)."""
    raw = (
        response_head(
            "200 OK",
            [
                ("Content-Type", "text/plain"),
                ("Content-Length", "2"),
                ("X-Reproxy-Url", file_server.url("/files/1m.bin")),
            ],
        )
        + b"ok"
    )
    target = scripted(respond(raw))
    result = call(middleware(target.url("/f")), "/r/f")
    assert (result.code, result.body) == (200, b"ok")
    assert "x-reproxy-url" not in result.names()
    assert file_server.requests == []


# -- after the response started: resume when provable, else abort ----------------------------

AFTER_START = [
    ("stall mid body", lambda: stall_mid_body(1000, 100)),
    (
        "close mid body",
        lambda: respond(
            response_head("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "1000")])
            + b"x" * 100
        ),
    ),
]


@pytest.mark.parametrize(("kind", "handler"), AFTER_START, ids=[c[0] for c in AFTER_START])
def test_fault_mid_body_without_another_url_aborts(kind, handler, scripted, file_server, caplog):
    """R6.4: the body never looks complete: the iterator raises, logged at ERROR."""
    mw = middleware(scripted(handler()).url("/f"))
    with pytest.raises(UpstreamBodyError) as raised:
        call(mw, "/r/f")
    assert raised.value.sent == 100
    assert [r.levelname for r in caplog.records].count("ERROR") == 1
    assert_pool_healthy(mw, file_server)


def test_fewer_bytes_than_content_length_resume_from_the_next_replica(scripted, file_server):
    """Fewer bytes than Content-Length, with a replica that proves the rest: resumed."""
    data = FILES["1m.bin"]
    head = response_head(
        "200 OK",
        [("Content-Type", "a/b"), ("ETag", etag_for("1m.bin")), ("Content-Length", str(len(data)))],
    )
    dying = scripted(respond(head + data[:12345]))
    mw = middleware(dying.url("/f"), file_server.url("/files/1m.bin"))
    assert call(mw, "/r/f").body == data
    assert_pool_healthy(mw, file_server)


def test_more_bytes_than_content_length(scripted, file_server):
    """Extra bytes after Content-Length are never sent, and never parsed as the next
    response on a reused connection."""
    target = scripted(long_body(5, b"hello, and then some garbage", keep_open=True))
    mw = middleware(target.url("/f"))
    for _ in range(3):
        result = call(mw, "/r/f")
        assert (result.code, result.body) == (200, b"hello")
    assert_pool_healthy(mw, file_server)


def test_infinite_chunked_body_is_cut_at_the_expected_size(scripted, file_server):
    """An endless chunked body against X-Reproxy-Expected-Size aborts, it never streams on."""
    target = scripted(infinite_chunked(8192))
    mw = middleware(target.url("/f"), extra_headers=[("X-Reproxy-Expected-Size", "100000")])
    with pytest.raises(UpstreamBodyError, match="more than the 100000 bytes"):
        call(mw, "/r/f")
    assert_pool_healthy(mw, file_server)


# -- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_ca():
    return trustme.CA()


@pytest.fixture
def tls_server(tls_ca):
    """An HTTPS file server on 127.0.0.1 with a certificate from a private CA."""
    accepted = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            accepted.append(self.client_address)  # one handler per TCP connection
            super().setup()

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(SMALL)))
            self.end_headers()
            self.wfile.write(SMALL)

        def log_message(self, *args):
            pass

    with https_server(tls_ca, Handler) as base:
        yield SimpleNamespace(url=f"{base}/f", accepted=accepted)


def test_tls_failure_fails_over(tls_server, file_server, caplog):
    """R5.3: a certificate the pool does not trust fails that URL."""
    mw = middleware(tls_server.url, file_server.url("/files/small.txt"))
    result = call(mw, "/r/f")
    assert (result.code, result.body) == (200, SMALL)
    assert any("SSLError" in r.getMessage() for r in caplog.records)
    assert_pool_healthy(mw, file_server)


@pytest.mark.parametrize("pool_class", [urllib3.PoolManager, ReproxyPoolManager])
def test_tls_with_a_trusted_ca_serves(tls_server, tls_ca, pool_class):
    """A private CA goes in a pool of one's own, kept alive either way; built as a
    ReproxyPoolManager it keeps the middleware's speed-ups (origin pools remembered,
    quick response heads) and room for a threaded server's connections."""
    port = urllib3.util.parse_url(tls_server.url).port
    with tls_ca.cert_pem.tempfile() as ca_file:
        pool = pool_class(ca_certs=ca_file)
        try:
            mw = middleware(tls_server.url, pool=pool)
            results = [call(mw, "/r/f") for _ in range(3)]
            served_by = pool.connection_from_host("127.0.0.1", port, scheme="https")
            if pool_class is ReproxyPoolManager:
                assert pool._by_origin == {("https", "127.0.0.1", port): served_by}
                assert served_by.ConnectionCls.response_class is QuickHeadResponse
                assert served_by.pool.maxsize == DEFAULT_POOL_MAXSIZE
        finally:
            pool.clear()
    assert [(r.code, r.body) for r in results] == [(200, SMALL)] * 3
    assert len(tls_server.accepted) == 1  # one TLS handshake, then kept alive


@pytest.mark.parametrize("named", [False, True], ids=["refused", "named-in-upstream_hosts"])
def test_refuse_local_with_a_pool_of_ones_own(tls_server, tls_ca, named, caplog):
    """A private CA needs a pool of one's own; built as ReproxyPoolManager(refuse_local=True)
    it checks addresses as the middleware's own pool does: a local target is refused
    before the TLS handshake, unless upstream_hosts names it."""
    port = urllib3.util.parse_url(tls_server.url).port
    hosts = [f"127.0.0.1:{port}"] if named else None
    with tls_ca.cert_pem.tempfile() as ca_file:
        pool = ReproxyPoolManager(ca_certs=ca_file, refuse_local=True, upstream_hosts=hosts)
        try:
            mw = middleware(tls_server.url, pool=pool, refuse_local=True, upstream_hosts=hosts)
            with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
                result = call(mw, "/r/f")
        finally:
            pool.clear()
    refusals = [r for r in caplog.records if "is the local address 127.0.0.1" in r.getMessage()]
    if named:
        assert (result.code, result.body) == (200, SMALL)
        assert (len(tls_server.accepted), refusals) == (1, [])
    else:
        assert result.code == 502
        assert tls_server.accepted == []  # no handshake, no request
        assert refusals  # the log says why


def test_kept_alive_connection_closed_under_us_is_retried_once(scripted, caplog):
    """A target's idle timeout racing our reuse of its connection is not a failed URL: the
    request goes once more on a new connection (a lone URL would otherwise answer 502)."""
    body = b"fresh"
    answer = response_head("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    connections = []

    def idle_timeout_race(conn, server):
        connections.append(conn)
        if len(connections) == 1:
            if server.read_request(conn):
                conn.sendall(answer + body)  # kept alive ...
            server.read_request(conn)  # ... and closed when the next request arrives
            return
        while server.read_request(conn):
            conn.sendall(answer + body)

    target = scripted(idle_timeout_race)
    mw = middleware(target.url("/f"))
    with caplog.at_level(logging.DEBUG, "wsgi_reproxy"):
        first = call(mw, "/r/f")
        second = call(mw, "/r/f")
    assert (first.code, first.body) == (200, body)
    assert (second.code, second.body) == (200, body)
    assert len(connections) == 2
    assert any("retrying once" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("refusal", ["403 Forbidden", "405 Method Not Allowed"])
def test_head_refused_by_a_presigned_url_is_asked_with_get(scripted, refusal):
    """Presigned URLs sign the method: HEAD on a GET URL answers 403. The HEAD client still
    gets the file's headers, from a GET whose body is cut off, never read or sent."""
    size = 5 * 1024 * 1024
    ok = response_head(
        "200 OK", [("Content-Type", "a/b"), ("Content-Length", str(size)), ("ETag", '"v1"')]
    )
    no = response_head(refusal, [("Content-Type", "text/plain"), ("Content-Length", "0")])
    methods = []

    def presigned(conn, server):
        while request := server.read_request(conn):
            methods.append(request.split(b" ", 1)[0])
            conn.sendall(no if request.startswith(b"HEAD") else ok + b"x" * size)

    target = scripted(presigned)
    mw = middleware(target.url("/f"))
    head = call(mw, "/r/f", method="HEAD")
    assert (head.code, head.body) == (200, b"")
    assert head.header("Content-Length") == str(size)
    assert head.header("ETag") == '"v1"'
    get = call(mw, "/r/f")
    assert (get.code, len(get.body)) == (200, size)
    assert methods == [b"HEAD", b"GET", b"GET"]
    # the refused HEAD's and the cut-off GET's connections were closed, never reused
    assert target.connections == 3


def test_a_refused_head_stands_in_on_a_connection_that_is_never_reused(scripted):
    """The GET standing in for a refused HEAD is cut off: its connection is closed, never
    put back with the body still on the wire -- the next request, for any file, would
    read that body as its answer.  Here the body follows its head a moment later, so
    nothing else (a buffer thrown away, urllib3's check for dropped connections) saves
    the next request."""
    body = b"0123456789" * 10
    ok = response_head("200 OK", [("Content-Type", "a/b"), ("Content-Length", str(len(body)))])
    no = response_head("403 Forbidden", [("Content-Length", "0")])

    def presigned_and_slow(conn, server):
        while request := server.read_request(conn):
            if request.startswith(b"HEAD"):
                conn.sendall(no)
            else:
                conn.sendall(ok)
                time.sleep(0.3)
                conn.sendall(body)

    target = scripted(presigned_and_slow)
    mw = middleware(target.url("/f"), timeout=5)
    head = call(mw, "/r/f", method="HEAD")
    get = call(mw, "/r/f")
    assert (head.code, head.body, head.header("Content-Length")) == (200, b"", "100")
    assert (get.code, get.body) == (200, body)
    assert target.connections == 3  # HEAD's, the cut-off GET's, then a fresh one


def served_after(scripted, file_server, raw, caplog, *, expected_size=False):
    """A target answering ``raw`` first, small.txt from the file server second: what the
    client gets, and the middleware's warnings."""
    odd = scripted(respond(raw))
    extra = [("X-Reproxy-Expected-Size", str(len(SMALL)))] if expected_size else []
    mw = middleware(odd.url("/f"), file_server.url("/files/small.txt"), extra_headers=extra)
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        result = call(mw, "/r/f")
    return result, [record.getMessage() for record in caplog.records]


@pytest.mark.parametrize(
    "cut",
    [b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Le"],
    ids=["after-the-status-line", "inside-a-header"],
)
def test_a_target_dying_inside_its_head_fails_over(scripted, file_server, cut, caplog):
    """A head the connection's end cuts off is a broken target, not an empty 200 that
    ends cleanly (http.client alone would take it for one)."""
    result, warnings = served_after(scripted, file_server, cut, caplog)
    assert (result.code, result.body) == (200, SMALL)
    assert any("inside the response head" in warning for warning in warnings)


@pytest.mark.parametrize("transfer_encoding", ["chunked ", "gzip, chunked", "identity"])
def test_a_transfer_coding_http_client_does_not_decode_fails_over(
    scripted, file_server, transfer_encoding, caplog
):
    """http.client decodes ``chunked`` spelled exactly so, nothing else: any other coding
    would reach the client as the file's bytes, framing included.  That URL fails."""
    head = response_head(
        "200 OK", [("Transfer-Encoding", transfer_encoding), ("Connection", "close")]
    )
    raw = head + b"5\r\nhello\r\n0\r\n\r\n"
    result, warnings = served_after(scripted, file_server, raw, caplog)
    assert (result.code, result.body) == (200, SMALL)
    assert any("unsupported Transfer-Encoding" in warning for warning in warnings)


@pytest.mark.parametrize("length", ["\u00b2", "+5", "1_0", "5, 6", "0x5", ""])
def test_a_malformed_content_length_fails_over(scripted, file_server, length, caplog):
    """Only ASCII digits make a Content-Length (``"²".isdigit()`` is True, ``int("1_0")``
    is 10): anything else fails that URL instead of reaching the client as its framing,
    or escaping the middleware as a ValueError."""
    head = response_head("200 OK", [("Content-Length", length), ("Connection", "close")])
    raw = head + b"hello"
    result, warnings = served_after(scripted, file_server, raw, caplog, expected_size=True)
    assert (result.code, result.body) == (200, SMALL)
    # (urllib3 itself refuses two different values, in its own words)
    assert any("Content-Length" in warning for warning in warnings)


@pytest.mark.parametrize(
    "lengths", [["5", "5"], ["5, 5"], [" 5"]], ids=["two-lines", "a-list", "padded"]
)
def test_a_valid_but_unusual_content_length_reaches_the_client_as_one_value(scripted, lengths):
    """RFC 9110 §8.6: a repeated value is accepted, and a proxy sends it on as one value:
    gunicorn and waitress answer 500 to ``5, 5``."""
    head = response_head("200 OK", [("Content-Length", value) for value in lengths])
    odd = scripted(respond(head + b"hello"))
    result = call(middleware(odd.url("/f")), "/r/f")
    assert (result.code, result.body) == (200, b"hello")
    assert [v for n, v in result.headers if n.lower() == "content-length"] == ["5"]


def test_a_206_whose_length_is_not_its_ranges_fails_over(scripted, file_server, caplog):
    """Content-Length 50 with Content-Range bytes 0-9: a client writing at the announced
    offsets would store 40 wrong bytes.  That URL fails."""
    head = response_head(
        "206 Partial Content",
        [("Content-Range", "bytes 0-9/100"), ("Content-Length", "50"), ("Connection", "close")],
    )
    odd = scripted(respond(head + b"x" * 50))
    mw = middleware(odd.url("/f"), file_server.url("/files/1m.bin"))
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        result = call(mw, "/r/f", headers={"Range": "bytes=0-9"})
    assert (result.code, result.body) == (206, FILES["1m.bin"][:10])
    assert any("is not the length of Content-Range" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("interim", [b"103 Early Hints", b"102 Processing", b"100 Continue"])
def test_interim_responses_before_the_answer_are_skipped(scripted, interim):
    """RFC 9110 §15.2: any number of 1xx may precede the final answer (http.client skips
    only 100 Continue, and would take a 103 for the answer and fail the URL)."""
    early = b"HTTP/1.1 " + interim + b"\r\nLink: </style.css>; rel=preload\r\n\r\n"
    answer = response_head("200 OK", [("Content-Length", "5"), ("Connection", "close")])
    target = scripted(respond(early + early + answer + b"hello"))
    result = call(middleware(target.url("/f")), "/r/f")
    assert (result.code, result.body) == (200, b"hello")
    assert result.header("Link") is None  # the interim response's headers are not the answer's


def test_switching_protocols_is_not_skipped_as_interim(scripted):
    """101 is never asked for: it is an answer, and not a usable one."""
    target = scripted(respond(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"))
    assert call(middleware(target.url("/f")), "/r/f").code == 502


@pytest.mark.parametrize("named", ["Content-Encoding", "content-length", "Content-Range"])
def test_a_framing_header_named_in_connection_fails_over(scripted, file_server, named, caplog):
    """Connection-named headers are hop-by-hop and dropped, but the bytes are still framed
    by them (gzip bytes without their Content-Encoding): that URL fails."""
    head = response_head(
        "200 OK",
        [("Content-Encoding", "gzip"), ("Content-Length", "5"), ("Connection", f"close, {named}")],
    )
    result, warnings = served_after(scripted, file_server, head + b"hello", caplog)
    assert (result.code, result.body) == (200, SMALL)
    assert any("Connection names framing headers" in warning for warning in warnings)


@pytest.mark.parametrize(
    ("size", "chunks"),
    [(len(SMALL) + 2, 1), (len(SMALL) - 2, 1), (len(SMALL) + 5, 2)],
    ids=["longer", "shorter", "the-right-size-then-more"],
)
def test_a_small_chunked_body_of_the_wrong_size_fails_over(
    scripted, file_server, size, chunks, caplog
):
    """A stale replica whose small chunked body has the wrong size is a failed URL, like
    one with a wrong Content-Length -- not an aborted download; also when its first chunk
    alone has the expected size (the body is read past it, to its end)."""
    body = b"x" * size
    cut = len(SMALL) if chunks == 2 else size
    parts = [body[:cut], body[cut:]] if chunks == 2 else [body]
    head = response_head("200 OK", [("Transfer-Encoding", "chunked"), ("Connection", "close")])
    raw = head + b"".join(b"%x\r\n" % len(p) + p + b"\r\n" for p in parts) + b"0\r\n\r\n"
    result, warnings = served_after(scripted, file_server, raw, caplog, expected_size=True)
    assert (result.code, result.body) == (200, SMALL)
    assert any("differs from X-Reproxy-Expected-Size" in warning for warning in warnings)


def test_a_small_chunked_body_that_breaks_before_it_began_fails_over(scripted, file_server, caplog):
    """Reading a small body to its end before the response starts: a break there is one
    more failed URL, not an aborted response."""
    head = response_head("200 OK", [("Transfer-Encoding", "chunked")])
    raw = head + b"2\r\nab\r\n5\r\nxy"  # then the connection closes
    result, warnings = served_after(scripted, file_server, raw, caplog, expected_size=True)
    assert (result.code, result.body) == (200, SMALL)
    assert any("broke before it began" in warning for warning in warnings)


def test_connection_may_name_transfer_encoding(scripted):
    """Transfer-Encoding is hop-by-hop anyway (and decoded): naming it in Connection is
    lawful (RFC 9110 §7.6.1), and Pushpin and PHP's server do."""
    head = response_head(
        "200 OK",
        [("Transfer-Encoding", "chunked"), ("Connection", "keep-alive, Transfer-Encoding")],
    )
    target = scripted(respond(head + b"5\r\nhello\r\n0\r\n\r\n", keep_open=True))
    result = call(middleware(target.url("/f")), "/r/f")
    assert (result.code, result.body) == (200, b"hello")


def test_a_chunked_body_with_a_content_length_too_fails_over(scripted, file_server, caplog):
    """http.client reads it by its chunks while the client would be told the other length
    (RFC 9112 §6.3: an error)."""
    head = response_head(
        "200 OK",
        [("Transfer-Encoding", "chunked"), ("Content-Length", "5"), ("Connection", "close")],
    )
    raw = head + b"a\r\nHELLOWORLD\r\n0\r\n\r\n"
    result, warnings = served_after(scripted, file_server, raw, caplog)
    assert (result.code, result.body) == (200, SMALL)
    assert any("both Transfer-Encoding and Content-Length" in warning for warning in warnings)


def _sends_then_hangs_up(raw, *, reset):
    def handler(conn, server):
        if server.read_request(conn):
            conn.sendall(raw)
            server.stop_event.wait(0.3)  # the middleware reads what was sent before the RST
            if reset:  # SO_LINGER on, zero timeout: close() sends an RST
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    return handler


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b"HTTP/1.1 103 Early Hints\r\n\r\n", "after 1 interim response(s)"),
        (b"HTTP/1.1 200 OK\r\nContent-Type: a/b\r\n", "inside the response head"),
        (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n", "interim response"),
        (b"HTTP/1.1 20", "status"),  # (closed: a bad status line; reset: cut inside it)
    ],
    ids=[
        "after-an-interim-response",
        "inside-the-head",
        "inside-an-interim-response",
        "inside-the-status-line",
    ],
)
def test_a_hang_up_after_the_response_began_is_not_retried(scripted, raw, said, reset, caplog):
    """A response had begun: not a stale keep-alive, so the request is not sent again,
    whether the target closed or reset the connection."""
    target = scripted(_sends_then_hangs_up(raw, reset=reset))
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        assert call(middleware(target.url("/f")), "/r/f").code == 502
    assert len(target.requests) == 1
    assert any(said in r.getMessage().lower() for r in caplog.records)


def _head_in_pieces(pieces, pause, state):
    """A target sending its response head in ``pieces``, ``pause`` seconds apart."""

    def handler(conn, server):
        if not server.read_request(conn):
            return
        try:
            for piece in pieces:
                conn.sendall(piece)
                time.sleep(pause)
        except OSError:
            return  # cut off by the middleware
        state["sent_all"] = True

    return handler


def test_a_head_trickling_in_is_bounded_and_fails_over(scripted, file_server, caplog):
    """Each byte within the read timeout, the head as a whole far beyond it: without a
    bound on the head, the request (and its failover) would wait 15 s here, and forever
    for a target that never stops."""
    head = response_head("200 OK", [("X-Pad", "a" * 300), ("Content-Length", "5")]) + b"hello"
    state = {"sent_all": False}
    trickler = scripted(_head_in_pieces([bytes([b]) for b in head], 0.05, state))
    mw = middleware(trickler.url("/f"), file_server.url("/files/small.txt"), timeout=0.5)
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        result = call(mw, "/r/f")
    assert (result.code, result.body) == (200, SMALL)
    assert state["sent_all"] is False  # the head was given up on, not read to its end
    assert any("timed out" in r.getMessage() for r in caplog.records)


def test_a_head_in_a_few_pieces_within_the_timeout_is_read(scripted):
    head = response_head("200 OK", [("Content-Length", "5"), ("Connection", "close")])
    state = {"sent_all": False}
    pieces = [head[:10], head[10:30], head[30:] + b"hello"]
    target = scripted(_head_in_pieces(pieces, 0.1, state))
    result = call(middleware(target.url("/f"), timeout=2), "/r/f")
    assert (result.code, result.body) == (200, b"hello")


@pytest.mark.parametrize(
    ("status", "method"),
    [("304 Not Modified", "GET"), ("204 No Content", "GET"), ("200 OK", "HEAD")],
)
def test_both_framing_headers_on_an_answer_without_body_are_relayed(scripted, status, method):
    """HEAD, 204 and 304 answers end at their blank line whatever their headers say:
    there is no body to frame wrong."""
    head = response_head(status, [("Transfer-Encoding", "chunked"), ("Content-Length", "1234")])
    target = scripted(respond(head, keep_open=True))
    result = call(middleware(target.url("/f")), "/r/f", method=method)
    assert (result.code, result.body) == (int(status[:3]), b"")


def test_interim_responses_keep_a_slow_target_alive(scripted):
    """Each interim response is a sign of life: 102 Processing every 0.3 s keeps a target
    that needs longer than the read timeout (0.5 s here) to answer."""
    state = {"sent_all": False}
    processing = b"HTTP/1.1 102 Processing\r\n\r\n"
    answer = response_head("200 OK", [("Content-Length", "5"), ("Connection", "close")])
    target = scripted(_head_in_pieces([processing] * 4 + [answer + b"hello"], 0.3, state))
    result = call(middleware(target.url("/f"), timeout=0.5), "/r/f")
    assert (result.code, result.body) == (200, b"hello")


def test_a_get_standing_in_for_head_has_its_framing_checked_as_a_get(scripted, file_server):
    """The GET asked when HEAD is refused has a body: both Transfer-Encoding and
    Content-Length on it fail the URL, as on any GET, instead of relaying the length."""
    refusal = response_head("403 Forbidden", [("Content-Length", "0")])
    both = response_head("200 OK", [("Transfer-Encoding", "chunked"), ("Content-Length", "999")])

    def presigned(conn, server):
        while request := server.read_request(conn):
            conn.sendall(refusal if request.startswith(b"HEAD") else both + b"0\r\n\r\n")

    target = scripted(presigned)
    mw = middleware(target.url("/f"), file_server.url("/files/small.txt"))
    head = call(mw, "/r/f", method="HEAD")
    assert (head.code, head.header("Content-Length")) == (200, str(len(SMALL)))


def test_a_reset_inside_the_status_line_is_not_retried_without_a_read_timeout(scripted):
    """Bytes had arrived: whatever the timeouts, not a stale keep-alive."""
    target = scripted(_sends_then_hangs_up(b"HTTP/1.1 20", reset=True))
    mw = middleware(target.url("/f"), timeout=urllib3.Timeout(connect=2, read=None))
    assert call(mw, "/r/f").code == 502
    assert len(target.requests) == 1
