"""The response-head reader against the standard library whose ``begin()`` it wraps.

:mod:`wsgi_reproxy.transport.heads` leaves the parsing to ``http.client`` and adds a bound
on the head, skips every interim response and refuses a head cut off; these tests hold
it to the standard library's answer -- the same message, framing decisions and
exceptions -- on generated response heads, but for those differences, and check that
the middleware's own pools use it.
"""

from __future__ import annotations

import email.header
import http.client
import io
import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import urllib3
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import call, own_pool_middleware, reproxy_app
from upstreams import FILES, FileServer, ScriptedServer
from wsgi_reproxy import ReproxyMiddleware
from wsgi_reproxy.transport import header_block, quick_head
from wsgi_reproxy.transport.head_watch import HeadWatch
from wsgi_reproxy.transport.header_block import (
    PlainHTTPMessage,
    parse_any_headers,
    parse_plain_headers,
    read_header_lines,
    read_plain_head,
)
from wsgi_reproxy.transport.heads import READ_BUFFER_SIZE, HeadCutOff, HeadResponse
from wsgi_reproxy.transport.quick_head import QuickHeadResponse

# The reader on public names only, and the one that parses plain blocks itself.
READERS = pytest.mark.parametrize(
    "reader", [HeadResponse, QuickHeadResponse], ids=["public", "quick"]
)

DIFFERENTIAL = settings(max_examples=400, deadline=None)

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
plain_names = st.one_of(
    st.sampled_from(
        ["Content-Type", "Content-Length", "ETag", "Connection", "Transfer-Encoding", "From"]
    ),
    st.text(TOKEN_CHARS, min_size=1, max_size=12),
)
plain_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just("\t"))
blanks = st.sampled_from(["", " ", "  ", "\t", " \t"])


@st.composite
def plain_lines(draw: st.DrawFn) -> bytes:
    name, value = draw(plain_names), draw(plain_values)
    return f"{name}:{draw(blanks)}{value}{draw(blanks)}\r\n".encode()


# Lines outside the plain token: value form, which http.client parses its own odd ways.
odd_lines = st.one_of(
    st.sampled_from(
        [
            b" folded continuation\r\n",
            b"\tfolded with a tab\r\n",
            b"no colon at all\r\n",
            b": empty name\r\n",
            b"Bad Name: space in the name\r\n",
            b"Bare-LF: value\n",
            b"Lone-CR: a\rb\r\n",
            b"Obs-Text: caf\xe9\r\n",
            b"Control: a\x01b\r\n",
            b"Delete: a\x7fb\r\n",
            b"Content-Type: multipart/mixed; boundary=xyz\r\n",
            b"content-type: Message/http\r\n",
            b"From nobody Mon Jan  1 00:00:00 2024\r\n",
            b"X-Nul: \x00\r\n",
        ]
    ),
    st.binary(max_size=20).map(lambda b: b + b"\r\n"),
)
terminators = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b""])


@st.composite
def header_blocks(draw: st.DrawFn) -> list[bytes]:
    lines = draw(st.lists(st.one_of(plain_lines(), plain_lines(), odd_lines), max_size=12))
    terminator = draw(terminators)
    # the lines as a response head is read: split at LF, up to the first empty line
    return read_header_lines(io.BytesIO(b"".join([*lines, terminator])))


def stdlib_message(lines: list[bytes]) -> http.client.HTTPMessage:
    return http.client.parse_headers(io.BytesIO(b"".join(lines)))


def payload_shape(message: http.client.HTTPMessage) -> object:
    """The payload, with nested messages (``message/*`` types) compared by content."""
    payload = message.get_payload()
    if isinstance(payload, list):
        return [(part.items(), payload_shape(part)) for part in payload]  # type: ignore[arg-type]
    return payload


def same_message(ours: http.client.HTTPMessage, theirs: http.client.HTTPMessage) -> None:
    assert ours.items() == theirs.items()
    assert payload_shape(ours) == payload_shape(theirs)
    assert [type(d) for d in ours.defects] == [type(d) for d in theirs.defects]
    assert ours.is_multipart() == theirs.is_multipart()
    assert ours.get_content_type() == theirs.get_content_type()
    for name in ("content-length", "transfer-encoding", "connection", "keep-alive"):
        assert ours.get(name) == theirs.get(name)
        assert ours.get_all(name) == theirs.get_all(name)


@DIFFERENTIAL
@given(header_blocks())
def test_every_block_gives_the_standard_message(
    lines: list[bytes],
) -> None:
    ours = parse_plain_headers(lines) or parse_any_headers(lines)
    same_message(ours, stdlib_message(lines))


@DIFFERENTIAL
@given(st.lists(plain_lines(), max_size=12))
def test_every_plain_block_takes_the_quick_path(lines: list[bytes]) -> None:
    block = [*lines, b"\r\n"]
    ours = parse_plain_headers(block)
    assert ours is not None
    same_message(ours, stdlib_message(block))


@pytest.mark.parametrize(
    "line",
    [
        b" folded continuation\r\n",
        b"no colon at all\r\n",
        b"Bare-LF: value\n",
        b"Obs-Text: caf\xe9\r\n",
        b"Control: a\x01b\r\n",
        b"Content-Type: multipart/mixed; boundary=xyz\r\n",
        b"Content-Type: message/http\r\n",
    ],
)
def test_odd_lines_are_left_to_the_standard_parser(line: bytes) -> None:
    assert parse_plain_headers([b"Server: x\r\n", line, b"\r\n"]) is None


def test_a_block_cut_short_is_left_to_the_standard_parser() -> None:
    assert parse_plain_headers([b"Server: x\r\n", b""]) is None
    assert parse_plain_headers([b"Server: x\r\n", b"\n"]) is None
    assert parse_plain_headers([]) is None


@DIFFERENTIAL
@given(
    st.sampled_from(
        [b"HTTP/1.1 200 OK", b"HTTP/1.0 206 Partial", b"HTTP/1.1 404", b"HTTP/1.1 599  x\t"]
    ),
    st.lists(plain_lines(), max_size=12),
    st.binary(max_size=40),
)
def test_a_whole_plain_head_is_read_at_once_as_http_client_reads_it(
    status: bytes, lines: list[bytes], body: bytes
) -> None:
    raw = status + b"\r\n" + b"".join(lines) + b"\r\n"
    fp = io.BufferedReader(io.BytesIO(raw + body))
    head = read_plain_head(fp)
    assert head is not None
    version, code, reason, message = head
    theirs = response_from(raw + body, http.client.HTTPResponse, "GET")
    assert isinstance(theirs, tuple)
    assert (version, code, reason) == theirs[:3]
    assert isinstance(message, PlainHTTPMessage)
    same_message(message, stdlib_message([*lines, b"\r\n"]))
    assert fp.read() == body  # the head consumed, the body left


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nServer: x\r\n",  # no blank line yet: more reads needed
        b"HTTP/1.1 200 OK\r\nFolded: a\r\n b\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nObs-Text: caf\xe9\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBare-LF: a\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: b\r\n\nC: d\r\n\r\n",  # the head ends at the bare LF
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 200\tOK\r\n\r\n",
        b"HTTP/1.1 099 Low\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 100 + b"\r\n",  # http.client refuses 100
        b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000 + b"\r\n\r\n",  # over http.client's line limit
    ],
)
def test_any_other_head_is_left_in_the_buffer(raw: bytes) -> None:
    fp = io.BufferedReader(io.BytesIO(raw + b"body"), 128 * 1024)
    assert read_plain_head(fp) is None
    assert fp.read() == raw + b"body"


def test_a_plain_head_at_http_clients_header_limit_is_read_at_once() -> None:
    """99 header lines pass http.client's limit (it counts the blank line): taken whole."""
    raw = b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 99 + b"\r\n"
    head = read_plain_head(io.BufferedReader(io.BytesIO(raw + b"body")))
    assert head is not None
    assert head[3].get_all("x") == ["y"] * 99


def test_the_plain_message_answers_as_the_email_policy_would() -> None:
    """get() and items() skip the policy only for what it would return unchanged."""
    ours, theirs = PlainHTTPMessage(), http.client.HTTPMessage()
    for message in (ours, theirs):
        message.set_raw("Content-Length", "5")
        message.set_raw("X-Twice", "a")
        message.set_raw("x-twice", "b")
        message.set_raw("X-Surrogate", "caf\udce9")  # as email stores undecodable bytes
        message.set_raw("X-Object", email.header.Header("set later"))
    assert ours.items() == theirs.items()
    for name in ("content-length", "X-TWICE", "x-surrogate", "x-object", "missing"):
        assert ours.get(name) == theirs.get(name)
        assert ours[name] == theirs[name]
        assert ours.get_all(name) == theirs.get_all(name)
    assert ours.get("missing", "default") == "default"
    assert not isinstance(ours.get("x-surrogate"), str)  # the policy's Header


# -- whole response heads, through a real socket ---------------------------------------


def response_from(raw: bytes, cls: type[http.client.HTTPResponse], method: str) -> object:
    """What ``cls.begin()`` makes of ``raw``: its framing decisions, or the exception."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(raw)
        ours.shutdown(socket.SHUT_WR)
        response = cls(theirs, method=method)
        try:
            response.begin()
        except Exception as error:  # the exception is the answer compared
            return (type(error), str(error))
        finally:
            response.close()
        assert response.msg is not None
        return (
            response.version,
            response.status,
            response.reason,
            response.chunked,
            response.chunk_left,
            response.length,
            response.will_close,
            response.msg.items(),
        )


status_lines = st.one_of(
    st.sampled_from(
        [
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.0 200 OK\r\n",
            b"HTTP/1.1 206 Partial Content\r\n",
            b"HTTP/1.1 204 No Content\r\n",
            b"HTTP/1.1 304 Not Modified\r\n",
            b"HTTP/1.1 404\r\n",
            b"HTTP/2 200 OK\r\n",
            b"ICY 200 OK\r\n",
            b"HTTP/1.1 99 Low\r\n",
            b"HTTP/1.1 abc OK\r\n",
            b"",
        ]
    ),
    st.binary(max_size=30).map(lambda b: b + b"\r\n"),
)
framing_lines = st.sampled_from(
    [
        b"Content-Length: 10\r\n",
        b"Content-Length: -1\r\n",
        b"Content-Length: x\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: gzip, chunked\r\n",
        b"Connection: close\r\n",
        b"Connection: keep-alive\r\n",
        b"Keep-Alive: timeout=5\r\n",
        b"Proxy-Connection: keep-alive\r\n",
    ]
)


@DIFFERENTIAL
@given(
    status_lines,
    st.booleans(),
    st.lists(st.one_of(framing_lines, plain_lines(), odd_lines), max_size=8),
    terminators,
    st.sampled_from(["GET", "HEAD"]),
)
@READERS
def test_begin_decides_framing_exactly_as_http_client_does(
    reader: type[HeadResponse],
    status: bytes,
    continue_first: bool,
    lines: list[bytes],
    terminator: bytes,
    method: str,
) -> None:
    raw = (b"HTTP/1.1 100 Continue\r\nX: y\r\n\r\n" if continue_first else b"") + status
    raw += b"".join(lines) + terminator + b"body"
    ours = response_from(raw, reader, method)
    theirs = response_from(raw, http.client.HTTPResponse, method)
    if head_is_cut_off(raw, continue_first) and not is_error(theirs):
        # the one deliberate difference: no blank line before the connection's end
        assert is_error(ours)
        assert ours[0] is HeadCutOff
    else:
        assert ours == theirs


def is_error(result: object) -> bool:
    return isinstance(result, tuple) and isinstance(result[0], type)


def head_is_cut_off(raw: bytes, continue_first: bool) -> bool:
    """Does the connection end before the blank line that ends the (final) head?"""
    fp = io.BytesIO(raw)
    for _ in range(2 if continue_first else 1):
        fp.readline()  # the status line
        while (line := fp.readline()) not in (b"\r\n", b"\n", b""):
            pass
    return line == b""


@pytest.mark.parametrize(
    "cut",
    [
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Le",
        b"HTTP/1.1 200 OK",
    ],
)
@READERS
def test_a_head_cut_off_by_the_connections_end_is_an_error(
    reader: type[HeadResponse], cut: bytes
) -> None:
    """http.client takes such a head for a whole one, and a target dying there for an empty
    200 that ends cleanly; the reader raises instead, so the URL fails over."""
    assert response_from(cut, http.client.HTTPResponse, "GET")[:2] == (11, 200)  # type: ignore[index]
    assert response_from(cut, reader, "GET") == (
        HeadCutOff,
        "the connection closed inside the response head",
    )


interim_heads = st.lists(
    st.sampled_from(
        [
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 102 Processing\r\n\r\n",
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
            b"HTTP/1.1 199 Whatever\r\nX: y\r\n\r\n",
        ]
    ),
    min_size=1,
    max_size=4,
)


@DIFFERENTIAL
@given(interim_heads, st.lists(st.one_of(framing_lines, plain_lines()), max_size=6))
@READERS
def test_every_interim_response_is_skipped(
    reader: type[HeadResponse], interim: list[bytes], lines: list[bytes]
) -> None:
    """The answer after any interim responses is the one http.client reads without them."""
    final = b"HTTP/1.1 200 OK\r\n" + b"".join(lines) + b"\r\nbody"
    ours = response_from(b"".join(interim) + final, reader, "GET")
    assert ours == response_from(final, http.client.HTTPResponse, "GET")


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b"HTTP/1.1 103 Early Hints\r\n\r\n", "closed after 1 interim response(s)"),
        (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n", "closed inside an interim response"),
    ],
)
@READERS
def test_a_head_cut_off_after_an_interim_response_is_an_error(
    reader: type[HeadResponse], raw: bytes, said: str
) -> None:
    assert response_from(raw, reader, "GET") == (HeadCutOff, f"the connection {said}")


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nProxy-Connection: keep-alive\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@READERS
def test_framing_cases_match_http_client(
    reader: type[HeadResponse], head: bytes, method: str
) -> None:
    raw = head + b"12345"
    assert response_from(raw, reader, method) == response_from(
        raw, http.client.HTTPResponse, method
    )


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", http.client.HTTPException),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000 + b"\r\n\r\n", http.client.LineTooLong),
        (b"", http.client.RemoteDisconnected),
        (b"garbage\r\n\r\n", http.client.BadStatusLine),
    ],
)
@READERS
def test_limits_and_errors_are_the_standard_librarys(
    reader: type[HeadResponse], raw: bytes, error: type[Exception]
) -> None:
    ours = response_from(raw, reader, "GET")
    assert ours == response_from(raw, http.client.HTTPResponse, "GET")
    assert isinstance(ours, tuple)
    assert ours[0] is error


@READERS
def test_interim_responses_are_bounded(reader: type[HeadResponse]) -> None:
    """A server sending "102 Processing" without end is refused after 100 of them,
    instead of holding the thread."""
    raw = b"HTTP/1.1 102 Processing\r\n\r\n" * 101 + b"HTTP/1.1 200 OK\r\n\r\n"
    assert response_from(raw, reader, "GET") == (
        http.client.HTTPException,
        "got more than 100 interim responses",
    )
    raw = b"HTTP/1.1 102 Processing\r\n\r\n" * 100 + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    ours = response_from(raw, reader, "GET")
    assert isinstance(ours, tuple)
    assert ours[1] == 200


@READERS
def test_continue_without_end_is_bounded_by_the_head_deadline(reader: type[HeadResponse]) -> None:
    """http.client skips "100 Continue" itself, without a bound before Python 3.14; a target
    sending them forever still meets the deadline on the head as a whole."""
    ours, theirs = socket.socketpair()
    stop = threading.Event()

    def forever() -> None:
        while not stop.wait(0.02):
            try:
                ours.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            except OSError:
                return

    sender = threading.Thread(target=forever)
    sender.start()
    try:
        theirs.settimeout(0.3)
        response = reader(theirs, method="GET")
        started = time.monotonic()
        # the public reader meets the deadline; the quick one counts each Continue as an
        # interim response, each restarting the clock, and stops at the hundredth
        with pytest.raises((TimeoutError, http.client.HTTPException)):
            response.begin()
        assert time.monotonic() - started < 5
        response.close()
    finally:
        stop.set()
        sender.join()
        ours.close()
        theirs.close()


@READERS
def test_limits_are_read_when_used(
    reader: type[HeadResponse], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Raising http.client's header limit after import works here as it does there."""
    raw = b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 150 + b"Content-Length: 0\r\n\r\n"
    monkeypatch.setattr(http.client, "_MAXHEADERS", 1000)
    ours = response_from(raw, reader, "GET")
    assert ours == response_from(raw, http.client.HTTPResponse, "GET")
    assert isinstance(ours, tuple)
    assert ours[1] == 200


@pytest.mark.parametrize("debuglevel", [0, 1])
@READERS
def test_begin_twice_reads_the_head_once(
    reader: type[HeadResponse], debuglevel: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """As in http.client, a second begin() changes nothing; debug output goes through the
    standard begin()."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nServer: s\r\n\r\nHTTP/1.1 500 X\r\n")
        response = reader(theirs, debuglevel=debuglevel, method="GET")
        response.begin()
        response.begin()
        response.close()
    assert response.status == 200
    assert response.length == 0
    assert ("header: Server: s" in capsys.readouterr().out) is bool(debuglevel)


# -- the middleware's pools use it -----------------------------------------------------


@pytest.fixture(scope="module")
def files() -> Iterator[FileServer]:
    with FileServer() as server:
        yield server


@pytest.mark.parametrize("refuse_local", [False, True])
def test_the_middlewares_own_pools_use_the_head_reader(
    files: FileServer, refuse_local: bool
) -> None:
    """R5: the pool a middleware makes (guarded or not) uses the quick reader, and serves."""
    mw = own_pool_middleware(files.url("/files/small.txt"), files.port, refuse_local=refuse_local)
    for scheme in ("http", "https"):
        pool_class = mw.pool.pool_classes_by_scheme[scheme]
        assert pool_class.ConnectionCls.response_class is QuickHeadResponse  # type: ignore[attr-defined]
    result = call(mw, "/r/small.txt")
    assert result.status == "200 OK"
    assert result.body == FILES["small.txt"]


def test_a_pool_passed_in_keeps_urllib3s_own_classes(files: FileServer) -> None:
    pool = urllib3.PoolManager(retries=False)
    mw = ReproxyMiddleware(reproxy_app(files.url("/files/small.txt")), allow=["/r/"], pool=pool)
    assert mw.pool.pool_classes_by_scheme is urllib3.poolmanager.pool_classes_by_scheme
    assert call(mw, "/r/small.txt").body == FILES["small.txt"]


def test_odd_target_heads_reach_the_client_as_the_standard_parser_reads_them() -> None:
    """R6.2: a folded header and a multipart type are read as http.client reads them."""
    body = b"0123456789"
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n"
        b"Content-Type: multipart/byteranges; boundary=B\r\n"
        b"X-Folded: first\r\n  second\r\n\r\n"
    )

    def answer(conn: socket.socket, server: ScriptedServer) -> None:
        if server.read_request(conn):
            conn.sendall(head + body)

    with ScriptedServer(answer) as server:
        mw = ReproxyMiddleware(reproxy_app(server.url("/f")), allow=["/r/"], preserve=[])
        result = call(mw, "/r/f")
    assert result.status == "200 OK"
    assert result.body == body
    assert result.header("Content-Type") == "multipart/byteranges; boundary=B"
    assert result.header("X-Folded") == "first second"


@pytest.mark.skipif(
    sys.platform != "linux", reason="sends 66 KB into a socket pair before reading it"
)
@READERS
def test_one_read_brings_the_head_and_a_64k_body(reader: type[HeadResponse]) -> None:
    """The first read fills a buffer of READ_BUFFER_SIZE: a head and 64 KiB of body that
    have arrived together come in one system call (http.client's 8 KiB would not)."""
    body = bytes(range(256)) * 256
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 65536\r\n\r\n" + body)
        response = reader(theirs, method="GET")
        try:
            response.begin()
            assert len(response.fp.peek()) == len(body)  # already buffered, nothing read
            assert response.read1(READ_BUFFER_SIZE) == body
        finally:
            response.close()
    assert READ_BUFFER_SIZE >= 64 * 1024 + 4096


def test_the_watch_refuses_a_read_past_the_heads_deadline() -> None:
    """A read that starts after the deadline has passed fails at once, without waiting."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.settimeout(0.1)
        watch = HeadWatch(theirs)
        assert watch.fileno() == theirs.fileno()
        watch.start()
        ours.sendall(b"HTTP/1.1 200 OK\r\n")
        buffer = bytearray(100)
        assert watch.readinto(buffer) == 17
        time.sleep(0.15)
        ours.sendall(b"X: y\r\n")  # waiting to be read: still refused
        with pytest.raises(TimeoutError, match="head took longer than the read timeout"):
            watch.readinto(buffer)
        assert theirs.gettimeout() == 0.1  # the socket's own timeout is left as it was
        watch.close()
        watch.close()


def test_header_count_limit_is_the_standard_librarys() -> None:
    """http.client counts the closing empty line too: 99 headers pass, 100 do not."""
    for count in (99, 100):
        raw = b"X: y\r\n" * count + b"\r\n"
        try:
            theirs: object = http.client._read_headers(io.BytesIO(raw))  # type: ignore[attr-defined]
        except http.client.HTTPException as error:
            theirs = str(error)
        try:
            ours: object = read_header_lines(io.BytesIO(raw))
        except http.client.HTTPException as error:
            ours = str(error)
        assert ours == theirs
    assert ours == "got more than 100 headers"


def test_a_reproxied_request_takes_the_quick_path(
    files: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The speed-up is real only if it runs: count the heads it read whole."""
    parsed: list[bool] = []
    quick = header_block.read_plain_head

    def counting(fp: object) -> object:
        head = quick(fp)
        parsed.append(head is not None)
        return head

    monkeypatch.setattr(quick_head, "read_plain_head", counting)
    mw = ReproxyMiddleware(reproxy_app(files.url("/files/small.txt")), allow=["/r/"])
    assert call(mw, "/r/small.txt").body == FILES["small.txt"]
    assert call(mw, "/r/small.txt").body == FILES["small.txt"]
    assert parsed == [True, True]
    mw.pool.clear()
