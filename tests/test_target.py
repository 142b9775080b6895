"""The request target goes out byte for byte as the app wrote it (SPEC R5.5).

Storage that signs the exact path (S3/GCS presigned URLs, SigV4) answers 403 to a target
that differs by one byte, and urllib3 changes targets: lower-case escapes become
upper-case, and characters outside RFC 3986 get encoded.  Here a storage records the
request line as raw bytes, so a single changed byte fails the test.  Targets that cannot
be sent as written are refused (skipped, logged; ``ValueError`` from
``reproxy_headers``); a plain ``urllib3.PoolManager`` passed as ``pool=`` refuses to send
what it would change.
"""

from __future__ import annotations

import http.server
import logging
import string
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme
import urllib3
from hypothesis import given, settings
from hypothesis import strategies as st
from urllib3.exceptions import ProtocolError
from urllib3.util import parse_url

from harness import call, reproxy_app
from upstreams import FILES, ScriptedServer, etag_for, https_server, respond, response_head
from wsgi_reproxy import ReproxyMiddleware, ReproxyPoolManager, reproxy_headers
from wsgi_reproxy.directive import check_url
from wsgi_reproxy.request_target import (
    TARGET_KEY,
    TargetMismatch,
    request_target,
    target_problem,
    upper_escapes,
)
from wsgi_reproxy.transport.connections import ReproxyHTTPConnectionPool

BODY = b"stored bytes\n"
OK = (
    response_head("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    + BODY
)
Scripted = Callable[..., ScriptedServer]


@pytest.fixture
def storage(scripted: Scripted) -> ScriptedServer:
    """Answers every request with :data:`BODY`; ``requests`` holds each head as raw bytes."""
    return scripted(respond(OK, keep_open=True))


def request_lines(server: ScriptedServer) -> list[bytes]:
    return [head.partition(b"\r\n")[0] for head in server.requests]


def mw_for(*urls: str, **options: Any) -> ReproxyMiddleware:
    return ReproxyMiddleware(reproxy_app(*urls), allow=["/r/"], timeout=2, **options)


# -- what the target is, and when it can be sent as written ----------------------------------


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("http://h/b/%c3%bc", "/b/%c3%bc"),
        ("http://h:8080/a?b=%2f#frag", "/a?b=%2f"),
        ("http://h", "/"),
        ("http://h?q=1", "/?q=1"),
        ("http://h#f", "/"),
        ("https://[::1]:8443//double//slash", "//double//slash"),
        ("HTTP://H/X?Y", "/X?Y"),
    ],
)
def test_request_target_is_the_text_after_the_authority(url, target):
    assert request_target(url) == target


REFUSED_TARGETS = [
    ("/b/%zz", "'%zz' in its path: a % must start an escape of two hex digits"),
    ("/b/%4", "'%4' in its path"),
    ("/b/x%", "'%' in its path"),
    ("/b/ok?sig=%g1", "'%g1' in its query"),
    ("/b/a b", "' ' in its path, which RFC 3986 does not allow there (write it as %20)"),
    ('/b/"q"', """'"' in its path, which RFC 3986 does not allow there (write it as %22)"""),
    ("/b/{x}", "(write it as %7B)"),
    ("/b/}", "(write it as %7D)"),
    ("/b/a|b", "(write it as %7C)"),
    ("/b/a\\b", "(write it as %5C)"),
    ("/b/a^b", "(write it as %5E)"),
    ("/b/a`b", "(write it as %60)"),
    ("/b/<a>", "(write it as %3C)"),
    ("/b/[a]", "'[' in its path"),
    ("/b/a?x=[1]", "'[' in its query"),
    ("/b/caf\u00e9", "(write it as %C3%A9)"),
]


@pytest.mark.parametrize(("target", "reason"), REFUSED_TARGETS)
def test_targets_that_cannot_be_sent_as_written(target, reason):
    problem = target_problem(target)
    assert problem is not None
    assert reason in problem


@pytest.mark.parametrize(
    "target",
    [
        "/",
        "/b/%c3%bc%C3%BC%2F%2f",
        "/b/+~=&'!*()$,;:@-._",
        "/b/x?q=/?&a=b+c%20d'!*():@,;$~",
        "/?" + "&".join(f"k{i}=v%2f{i}" for i in range(400)),
    ],
)
def test_targets_made_of_rfc_3986_characters_are_sent_as_written(target):
    assert target_problem(target) is None


def test_upper_escapes():
    assert upper_escapes("/a%c3%bC?x=%2f&y=%zz") == "/a%C3%BC?x=%2F&y=%zz"
    assert upper_escapes("/plain") == "/plain"


_URL_CHARS = string.ascii_letters[:6] + string.digits[:3] + "%/?#.-_~!$&'()*+,;=:@ [\"{^|"


@settings(max_examples=500, deadline=None)
@given(st.text(_URL_CHARS, max_size=30))
def test_a_valid_target_differs_from_urllib3s_only_by_the_case_of_escapes(tail):
    """What the design rests on: for every URL check_url accepts, urllib3's own target is
    the target as written with its escapes in upper case, so a connection can check the
    one against the other -- and a plain PoolManager changes nothing else."""
    url = "http://store:8080/" + tail
    if check_url(url) is None:
        assert upper_escapes(request_target(url)) == parse_url(url).request_uri


# -- sent as written, through the middleware's connections -----------------------------------

SENT_AS_WRITTEN = [
    "/b/%c3%bc.txt",
    "/b/%C3%bc.txt",
    "/b/a%2Fb/c%2fd",
    "/b/a+b~c=d&e'f!g*h(i)j:k@l,m;n$o",
    "/b/x?sig=%2b%2f%3d&X-Amz-Credential=AKID%2f20240101%2fus-east-1",
    "/b/x?q=/?&empty=&=&&",
    "/b/x?" + "&".join(f"X-Param-{i}=%2f{i:04d}" for i in range(300)),
]


@pytest.mark.parametrize(
    "options",
    [{}, {"pool": "reproxy"}, {"refuse_local": True}],
    ids=["own-pool", "ReproxyPoolManager", "refuse_local"],
)
@pytest.mark.parametrize("target", SENT_AS_WRITTEN, ids=lambda t: t[:40])
def test_the_request_line_is_the_target_as_written(storage, target, options):
    """R5.5: byte for byte, escapes in either case, every RFC 3986 character kept."""
    if options.get("pool") == "reproxy":
        options = {"pool": ReproxyPoolManager(retries=False)}
    elif options.get("refuse_local"):
        options = {**options, "upstream_hosts": [f"127.0.0.1:{storage.port}"]}
    result = call(mw_for(storage.base + target, **options), "/r/f")
    assert (result.code, result.body) == (200, BODY)
    assert request_lines(storage) == [b"GET " + target.encode("ascii") + b" HTTP/1.1"]


def test_an_empty_path_and_a_fragment(storage):
    call(mw_for(storage.base + "?q=%2f#frag"), "/r/f")
    call(mw_for(storage.base + "#frag"), "/r/f")
    assert request_lines(storage) == [b"GET /?q=%2f HTTP/1.1", b"GET / HTTP/1.1"]


@pytest.mark.parametrize(
    "bad",
    ["/b/%zz%4", "/b/%4", '/b/"x"', "/b/{x}", "/b/a|b", "/b/a^b", "/b/[x]", "/b/caf\u00e9"],
)
def test_a_target_that_cannot_be_sent_as_written_is_skipped(scripted, storage, caplog, bad):
    """R5.5: refused, logged, never requested; the next URL serves."""
    untouched = scripted(respond(OK))
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        result = call(mw_for(untouched.base + bad, storage.url("/next")), "/r/f")
    assert (result.code, result.body) == (200, BODY)
    assert untouched.connections == 0
    assert request_lines(storage) == [b"GET /next HTTP/1.1"]
    [skipped] = [r.getMessage() for r in caplog.records]
    assert skipped.startswith(f"reproxy URL skipped: {untouched.base + bad!r} ")


@pytest.mark.parametrize(
    "bad",
    ["http://h/a b", "http://h/%zz", "http://h/%4", 'http://h/"', "http://h/{", "http://h/\u00fc"],
)
def test_reproxy_headers_refuses_what_cannot_be_sent_as_written(bad):
    """R1.3, R5.5: the app learns at once, with a traceback."""
    with pytest.raises(ValueError, match="cannot reproxy"):
        reproxy_headers(bad)


def test_the_resume_request_carries_the_exact_target_too(scripted, file_server):
    """R5.5 for the request that continues a broken body (resume.py)."""
    data = FILES["1m.bin"]
    head = response_head(
        "200 OK", [("Content-Length", str(len(data))), ("ETag", etag_for("1m.bin"))]
    )
    dying = scripted(respond(head + data[:100_000]))
    target = "/files/1m%2ebin?sig=%2b%2f"
    app = reproxy_app(dying.url("/f"), file_server.url(target))
    result = call(ReproxyMiddleware(app, allow=["/r/"], preserve=["Content-Type"]), "/r/f")
    assert result.body == data
    [resumed] = file_server.requests
    assert resumed.path == target
    assert resumed.header("Range") == f"bytes=100000-{len(data) - 1}"


# -- a plain urllib3.PoolManager ---------------------------------------------------------


@pytest.fixture
def plain_pool() -> Iterator[urllib3.PoolManager]:
    pool = urllib3.PoolManager(retries=False)
    yield pool
    pool.clear()


def test_a_plain_pool_sends_a_target_it_would_not_change(storage, plain_pool):
    """Escapes in upper case and RFC 3986 characters: urllib3 sends them unchanged."""
    target = "/b/%C3%BC%2F+~=&'!*():@?sig=%2B%2F&a=b"
    result = call(mw_for(storage.base + target, pool=plain_pool), "/r/f")
    assert (result.code, result.body) == (200, BODY)
    assert request_lines(storage) == [b"GET " + target.encode() + b" HTTP/1.1"]


def test_a_plain_pool_refuses_to_send_a_target_it_would_change(
    scripted, storage, plain_pool, caplog
):
    """urllib3 would upper-case the escapes: the URL is not sent, the reason says to build
    the pool as a ReproxyPoolManager, and the next URL serves."""
    untouched = scripted(respond(OK))
    lower = untouched.base + "/b/%c3%bc?sig=%2b"
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        result = call(mw_for(lower, storage.url("/B/%C3%BC"), pool=plain_pool), "/r/f")
    assert (result.code, result.body) == (200, BODY)
    assert untouched.connections == 0
    assert request_lines(storage) == [b"GET /B/%C3%BC HTTP/1.1"]
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning == (
        f"reproxy attempt failed: {lower!r}: not sent: PoolManager would send its target as "
        "'/b/%C3%BC?sig=%2B' (urllib3 upper-cases percent-escapes), not as written; build "
        "the pool as wsgi_reproxy.ReproxyPoolManager to send it as written"
    )
    only = call(mw_for(lower, pool=plain_pool), "/r/f")
    assert only.code == 502


def test_a_pool_with_its_own_urlopen_is_held_to_the_same_rule(storage):
    """A PoolManager subclass with its own urlopen (ProxyManager's kind) gets the whole URL,
    and only when urllib3 would send its target unchanged."""

    opened: list[str] = []

    class Recording(urllib3.PoolManager):
        def urlopen(self, method, url, redirect=True, **kw):
            opened.append(url)
            return super().urlopen(method, url, redirect=redirect, **kw)

    pool = Recording(retries=False)
    try:
        upper, lower = storage.url("/a%2F"), storage.url("/a%2f")
        assert call(mw_for(upper, pool=pool), "/r/f").body == BODY
        assert call(mw_for(lower, pool=pool), "/r/f").code == 502
    finally:
        pool.clear()
    assert opened == [upper]
    assert request_lines(storage) == [b"GET /a%2F HTTP/1.1"]


# -- the connection's own check, and HTTPS -----------------------------------------------------


def test_a_connection_sends_nothing_when_the_exact_target_is_not_urllib3s(storage):
    """The connection checks the target it is handed against urllib3's, up to the case of
    escapes: a target meant for another request is never sent, and neither is urllib3's."""
    pool = ReproxyHTTPConnectionPool("127.0.0.1", storage.port, retries=False)
    try:
        with pytest.raises(ProtocolError) as raised:
            pool.urlopen("GET", "/a", headers={TARGET_KEY: "/b"}, preload_content=False)
        assert isinstance(raised.value.args[1], TargetMismatch)
        response = pool.urlopen("GET", "/A%2F", headers={TARGET_KEY: "/A%2f"})
        assert response.data == BODY
    finally:
        pool.close()
    assert request_lines(storage) == [b"GET /A%2f HTTP/1.1"]


def test_a_reproxypoolmanager_used_directly_is_urllib3_as_usual(storage):
    """Shared with other code (R1.2), the pool's connections send what urllib3 gives them
    when no exact target is handed down."""
    pool = ReproxyPoolManager(retries=False)
    try:
        assert pool.request("GET", storage.url("/a%2f")).data == BODY
    finally:
        pool.clear()
    assert request_lines(storage) == [b"GET /a%2F HTTP/1.1"]


@pytest.fixture(scope="module")
def tls_ca() -> trustme.CA:
    return trustme.CA()


def test_over_https_the_target_is_sent_as_written(tls_ca, tmp_path):
    received: list[bytes] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            received.append(self.raw_requestline)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args: object) -> None:
            pass

    ca_file = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca_file))
    target = "/b/%c3%bc%2f?X-Goog-Signature=ab%2b"
    pool = ReproxyPoolManager(ca_certs=str(ca_file))
    try:
        with https_server(tls_ca, Recorder) as base:
            result = call(mw_for(base + target, pool=pool), "/r/f")
    finally:
        pool.clear()
    assert (result.code, result.body) == (200, BODY)
    assert received == [b"GET " + target.encode() + b" HTTP/1.1\r\n"]


# -- S3 presigned URLs (botocore), made with fake credentials --------------------------------


def presigned(base: str, key: str) -> str:
    import botocore.session
    from botocore.config import Config

    session = botocore.session.Session()
    session.set_credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    client = session.create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=base,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    try:
        url: str = client.generate_presigned_url(
            "get_object", Params={"Bucket": "bucket", "Key": key}, ExpiresIn=600
        )
    finally:
        client.close()
    return url


@pytest.mark.parametrize(
    "key",
    [
        "with spaces/and more spaces.bin",
        "unicode/\u00fc\u00f1\u00ee\u00e7\u00f8d\u00e9 \u2603.txt",
        "plus+percent%tilde~equals=amp&.bin",
        "literal%2Fslash/x.bin",
        "parens(1)!'*,;:@$.bin",
    ],
)
@pytest.mark.parametrize("pool", ["own", "plain"])
def test_a_presigned_s3_url_reaches_storage_byte_for_byte(storage, key, pool):
    """R5.5: the request line the storage receives is exactly the presigned URL's path and
    query, so the signature computed over them still holds.  (botocore escapes in upper
    case, so a plain PoolManager sends them unchanged as well.)"""
    url = presigned(storage.base, key)
    assert check_url(url) is None
    written = url.removeprefix(storage.base)
    assert written.startswith("/bucket/")
    assert "X-Amz-Signature=" in written
    plain = urllib3.PoolManager(retries=False) if pool == "plain" else None
    try:
        result = call(mw_for(url, pool=plain), "/r/f")
    finally:
        if plain is not None:
            plain.clear()
    assert (result.code, result.body) == (200, BODY)
    assert request_lines(storage) == [b"GET " + written.encode("ascii") + b" HTTP/1.1"]
