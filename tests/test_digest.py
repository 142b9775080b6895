"""``X-Reproxy-Expected-Digest``: the bytes proven, not only the file named (SPEC R10).

Resume proves "same file" only as well as the storage's validator: two replicas with the
same size, ETag and Last-Modified but other bytes splice into a download that looks
complete.  With a digest the body is hashed as it passes, across resumes, and its last
piece is held back until it matches; a mismatch aborts the response (SPEC R6.4).  Every
test goes through the WSGI boundary to real servers on 127.0.0.1, except the tables for
the pure functions (``parse_expected_digest``, ``format_digest``, ``reproxy_headers``).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.util import FileWrapper
from wsgiref.validate import validator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import BackendApp, call, make_environ, reproxy_app
from upstreams import FILES, LAST_MODIFIED, FileServer, etag_for, respond, response_head
from wsgi_reproxy import (
    MemoryCache,
    ReproxyMiddleware,
    UpstreamBodyError,
    format_digest,
    reproxy_headers,
)
from wsgi_reproxy.digest import ALGORITHMS, ExpectedDigest, parse_expected_digest

DATA = FILES["1m.bin"]
SIZE = len(DATA)
ETAG = etag_for("1m.bin")
# Another version of the file: same size, other bytes (what a replica left behind by a
# failed rewrite, or restored from a backup, holds under the same size-and-mtime ETag).
STALE = FILES["5m.bin"][:SIZE]
SMALL = FILES["small.txt"]
BREAK_AT = 300_000
ERROR_BODY = b"502 Bad Gateway: the file could not be fetched from storage.\n"

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def digest_of(data: bytes, algorithm: str = "sha-256") -> str:
    """The header value for ``data``, written here without format_digest (tested below)."""
    raw = hashlib.new(ALGORITHMS[algorithm][0], data).digest()
    return f"{algorithm}=:{base64.b64encode(raw).decode()}:"


RIGHT = digest_of(DATA)
WRONG = digest_of(STALE)


def mw_for(app: Any, **kwargs: Any) -> ReproxyMiddleware:
    kwargs.setdefault("timeout", 2)
    return ReproxyMiddleware(app, allow=["/r/"], preserve=["Content-Type"], **kwargs)


def digest_app(*urls: str, digest: str | list[str] | None, **kwargs: Any) -> BackendApp:
    """A backend asking for ``urls`` with ``digest`` (one header per value of a list)."""
    values = [] if digest is None else [digest] if isinstance(digest, str) else digest
    extra = [("X-Reproxy-Expected-Digest", value) for value in values]
    return reproxy_app(*urls, extra_headers=extra + kwargs.pop("extra_headers", []), **kwargs)


@dataclass
class Got:
    """What a client got: the response head, the bytes handed out before any abort, and
    the abort itself (None when the body ended whole)."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes
    environ: dict[str, Any]
    error: UpstreamBodyError | None

    @property
    def code(self) -> int:
        return int(self.status[:3])

    @property
    def report(self) -> Any:
        return self.environ["wsgi_reproxy.report"]

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def fetch(
    app: Any,
    path: str = "/r/f",
    method: str = "GET",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Got:
    """Like ``harness.call``, but keep the bytes handed out before an abort, which is
    what the client holds when the server cuts the connection."""
    environ = make_environ(path, method, headers, **extra)
    captured: dict[str, Any] = {}

    def start_response(status, response_headers, exc_info=None):
        captured["status"], captured["headers"] = status, list(response_headers)
        return lambda data: None

    iterable = validator(app)(environ, start_response)
    chunks: list[bytes] = []
    error = None
    try:
        for chunk in iterable:
            chunks.append(chunk)
    except UpstreamBodyError as raised:
        error = raised
    finally:
        iterable.close()
    return Got(captured["status"], captured["headers"], b"".join(chunks), environ, error)


def broken(data: bytes, upto: int) -> Callable[..., None]:
    """A replica announcing all of ``data`` under the 1m.bin validators, dying at ``upto``."""
    headers = [
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", str(len(data))),
        ("Last-Modified", LAST_MODIFIED),
        ("ETag", ETAG),
    ]
    return respond(response_head("200 OK", headers) + data[:upto])


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]


# -- Done when 1: the spliced replica ------------------------------------------------------


def spliced(scripted: Any, file_server: FileServer, digest: str | None) -> tuple[Got, Any]:
    """The first replica holds the stale version under the validators of the right one
    (same size, ETag, Last-Modified) and dies; the second holds the right one and proves
    the continuation with If-Range, as it must: the validators are equal."""
    stale = scripted(broken(STALE, BREAK_AT))
    app = digest_app(stale.url("/f"), file_server.url("/files/1m.bin"), digest=digest)
    return fetch(mw_for(app)), stale


def test_without_a_digest_a_spliced_body_looks_complete(scripted, file_server, caplog):
    """The case only a digest detects: two versions spliced, full length, no error."""
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        got, stale = spliced(scripted, file_server, None)
    assert got.error is None
    assert (got.code, len(got.body)) == (200, SIZE)
    assert got.body == STALE[:BREAK_AT] + DATA[BREAK_AT:]
    assert got.body != DATA
    [resume] = file_server.requests
    assert resume.header("Range") == f"bytes={BREAK_AT}-{SIZE - 1}"
    assert resume.header("If-Range") == ETAG
    report = got.report
    assert [(a.url, a.status, a.outcome) for a in report.attempts] == [
        (stale.url("/f"), 200, "served"),
        (file_server.url("/files/1m.bin"), 206, "resumed"),
    ]
    assert (report.outcome, report.digest, report.bytes) == ("complete", None, SIZE)
    assert errors(caplog) == []


def test_with_a_digest_a_spliced_body_is_aborted(scripted, file_server, caplog):
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        got, stale = spliced(scripted, file_server, RIGHT)
    assert got.code == 200
    assert got.header("Content-Length") == str(SIZE)  # so the cut shows as a short body
    assert isinstance(got.error, UpstreamBodyError)
    assert "digest mismatch" in got.error.reason
    assert len(got.body) < SIZE
    assert got.body == (STALE[:BREAK_AT] + DATA[BREAK_AT:])[: len(got.body)]
    assert got.error.sent == len(got.body)
    [resume] = file_server.requests
    assert resume.header("If-Range") == ETAG  # the resume itself was proven and served
    report = got.report
    assert [(a.url, a.status, a.outcome, a.reason) for a in report.attempts] == [
        (stale.url("/f"), 200, "failed", "digest mismatch"),
        (file_server.url("/files/1m.bin"), 206, "failed", "digest mismatch"),
    ]
    assert (report.outcome, report.digest, report.bytes) == ("aborted", "mismatch", len(got.body))
    assert str(report).endswith("(2 failed, 0 resumed) digest mismatch")
    [error] = errors(caplog)
    assert error.startswith("reproxied body broke, aborting the response: ")
    expected = RIGHT.partition("=")[2]
    found = digest_of(STALE[:BREAK_AT] + DATA[BREAK_AT:]).partition("=")[2]
    assert error.endswith(f": digest mismatch: sha-256 of the body is {found}, expected {expected}")


# -- Done when 2: a resumed download that is the file --------------------------------------


def test_a_digest_over_a_resumed_download_matches(scripted, file_server, caplog):
    """Both replicas hold the right bytes: the hash runs on across the resume."""
    dying = scripted(broken(DATA, BREAK_AT))
    app = digest_app(dying.url("/f"), file_server.url("/files/1m.bin"), digest=RIGHT)
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        got = fetch(mw_for(app))
    assert got.error is None
    assert (got.code, got.body) == (200, DATA)
    assert file_server.requests[0].header("Range") == f"bytes={BREAK_AT}-{SIZE - 1}"
    report = got.report
    assert [a.outcome for a in report.attempts] == ["served", "resumed"]
    assert (report.outcome, report.digest, report.bytes) == ("complete", "match", SIZE)
    assert str(report).endswith("(0 failed, 1 resumed) digest match")
    assert errors(caplog) == []


# -- Done when 3: algorithms, several members ---------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha-256", "sha-512", "md5"])
def test_each_algorithm_matches_the_right_file(file_server, algorithm):
    app = digest_app(file_server.url("/files/1m.bin"), digest=digest_of(DATA, algorithm))
    got = fetch(mw_for(app))
    assert got.error is None
    assert (got.code, got.body, got.report.digest) == (200, DATA, "match")


@pytest.mark.parametrize("algorithm", ["sha-256", "sha-512", "md5"])
def test_each_algorithm_aborts_another_file(file_server, algorithm, caplog):
    app = digest_app(file_server.url("/files/1m.bin"), digest=digest_of(STALE, algorithm))
    with caplog.at_level(logging.ERROR, "wsgi_reproxy"):
        got = fetch(mw_for(app))
    assert isinstance(got.error, UpstreamBodyError)
    assert 0 < len(got.body) < SIZE
    assert got.body == DATA[: len(got.body)]
    assert (got.report.digest, got.report.outcome) == ("mismatch", "aborted")
    [attempt] = got.report.attempts
    assert (attempt.outcome, attempt.reason) == ("failed", "digest mismatch")
    [error] = errors(caplog)
    assert f"digest mismatch: {algorithm} of the body is :" in error


def _b64(data: bytes, algorithm: str) -> str:
    return digest_of(data, algorithm).partition("=")[2]


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        (f"md5={_b64(STALE, 'md5')}, sha-256={_b64(DATA, 'sha-256')}", "match"),
        (f"md5={_b64(DATA, 'md5')}, sha-256={_b64(STALE, 'sha-256')}", "mismatch"),
        (f"sha-256={_b64(STALE, 'sha-256')}, sha-512={_b64(DATA, 'sha-512')}", "match"),
        (f"sha-512={_b64(STALE, 'sha-512')},md5={_b64(DATA, 'md5')}", "mismatch"),
        ([f"md5={_b64(STALE, 'md5')}", f"sha-256={_b64(DATA, 'sha-256')}"], "match"),
        (f"unixsum=:AAAA:, sha-256={_b64(DATA, 'sha-256')}", "match"),
        (f"sha=:{base64.b64encode(bytes(20)).decode()}:, md5={_b64(DATA, 'md5')}", "match"),
        (f"sha-256={_b64(DATA, 'sha-256')};note=x;y=1", "match"),
        (f"sha-256={_b64(DATA, 'sha-256')}, sha-256={_b64(DATA, 'sha-256')}", "match"),
    ],
    ids=[
        "wrong-md5-right-sha256",
        "right-md5-wrong-sha256",
        "wrong-sha256-right-sha512",
        "wrong-sha512-right-md5",
        "two-header-lines",
        "unknown-algorithm-ignored",
        "sha1-ignored",
        "parameters-ignored",
        "same-value-twice",
    ],
)
def test_the_strongest_known_member_is_checked(file_server, value, verdict):
    app = digest_app(file_server.url("/files/1m.bin"), digest=value)
    got = fetch(mw_for(app))
    assert got.report.digest == verdict
    if verdict == "match":
        assert (got.error, got.body) == (None, DATA)
    else:
        assert isinstance(got.error, UpstreamBodyError)
        assert len(got.body) < SIZE


# -- Done when 4: malformed values --------------------------------------------------------

SHA256_B64 = base64.b64encode(bytes(32)).decode()  # 44 characters, one "="
MALFORMED = [
    (f"sha-256=:{SHA256_B64[:-1]}:", "sha-256 is not valid base64"),
    (f"sha-256=:{'A' * 45}:", "sha-256 is not valid base64"),
    (f"sha-256=:{base64.b64encode(bytes(16)).decode()}:", "sha-256 has 16 bytes, not 32"),
    (f"md5=:{SHA256_B64}:", "md5 has 32 bytes, not 16"),
    (f"sha-512=:{SHA256_B64}:", "sha-512 has 32 bytes, not 64"),
    ("sha-256=::", "sha-256 has 0 bytes, not 32"),
    (f"sha-1=:{base64.b64encode(bytes(20)).decode()}:", "names no supported algorithm"),
    ("unixsum=:AAAA:, foo=:AAAA:", "names no supported algorithm"),
    (f"sha-256={SHA256_B64}", "is not name=:BASE64:"),
    (f'sha-256="{SHA256_B64}"', "is not name=:BASE64:"),
    (f"sha-256=:{SHA256_B64}", "is not name=:BASE64:"),
    (f"SHA-256=:{SHA256_B64}:", "is not name=:BASE64:"),
    ("sha-256", "is not name=:BASE64:"),
    (hashlib.sha256(DATA).hexdigest(), "is not name=:BASE64:"),
    (f"sha-256=:{SHA256_B64}:,", "is not name=:BASE64:"),
    (f"sha-256=:{SHA256_B64}:, sha-256=:{digest_of(DATA)[9:]}", "two different sha-256 values"),
    ("", "an empty X-Reproxy-Expected-Digest"),
    (" \t", "an empty X-Reproxy-Expected-Digest"),
]
MALFORMED_IDS = [
    "truncated-base64",
    "bad-padding",
    "sha256-too-short",
    "md5-too-long",
    "sha512-too-short",
    "empty-digest",
    "only-sha1",
    "only-unknown",
    "no-colons",
    "quoted",
    "no-closing-colon",
    "upper-case-name",
    "name-only",
    "bare-hex",
    "trailing-comma",
    "two-sha256",
    "empty",
    "blank",
]


@pytest.mark.parametrize(("value", "why"), MALFORMED, ids=MALFORMED_IDS)
def test_a_malformed_digest_is_a_502(file_server, caplog, value, why):
    app = digest_app(file_server.url("/files/small.txt"), digest=value)
    with caplog.at_level(logging.ERROR, "wsgi_reproxy"):
        result = call(mw_for(app), "/r/f")
    assert (result.code, result.body) == (502, ERROR_BODY)
    assert result.header("Content-Type") == "text/plain; charset=utf-8"
    assert file_server.requests == []  # the directive is refused before any fetch
    [error] = errors(caplog)
    assert error.startswith("reproxy directive unusable, answering 502: ")
    assert why in error
    assert app.record.closed == 1


def test_two_header_lines_with_two_sha256_values_are_a_502(file_server, caplog):
    values = [RIGHT, WRONG]
    app = digest_app(file_server.url("/files/small.txt"), digest=values)
    with caplog.at_level(logging.ERROR, "wsgi_reproxy"):
        result = call(mw_for(app), "/r/f")
    assert (result.code, result.body) == (502, ERROR_BODY)
    assert file_server.requests == []
    [error] = errors(caplog)
    assert error.endswith("X-Reproxy-Expected-Digest gives two different sha-256 values")


@pytest.mark.parametrize(("value", "why"), MALFORMED, ids=MALFORMED_IDS)
def test_reproxy_headers_refuses_a_malformed_digest(value, why):
    with pytest.raises(ValueError, match=re.escape(f"digest {value!r}: ")):
        reproxy_headers("http://store-1/f", digest=value)


# -- Done when 5: unknown length ----------------------------------------------------------


def test_a_chunked_body_of_unknown_length_that_matches_passes_whole(file_server):
    app = digest_app(file_server.url("/chunked/1m.bin"), digest=RIGHT)
    got = fetch(mw_for(app))
    assert got.error is None
    assert (got.code, got.body) == (200, DATA)
    assert got.header("Content-Length") is None
    assert (got.report.digest, got.report.outcome, got.report.bytes) == ("match", "complete", SIZE)


def test_a_chunked_body_of_unknown_length_that_mismatches_keeps_its_last_piece(file_server, caplog):
    app = digest_app(file_server.url("/chunked/1m.bin"), digest=WRONG)
    with caplog.at_level(logging.ERROR, "wsgi_reproxy"):
        got = fetch(mw_for(app))
    assert isinstance(got.error, UpstreamBodyError)
    assert 0 < len(got.body) < SIZE  # the client never holds the whole file
    assert got.body == DATA[: len(got.body)]
    report = got.report
    assert (report.digest, report.outcome, report.bytes) == ("mismatch", "aborted", len(got.body))
    [attempt] = report.attempts
    assert (attempt.outcome, attempt.reason) == ("failed", "digest mismatch")
    [error] = errors(caplog)
    assert "digest mismatch: sha-256 of the body is " in error


@pytest.mark.parametrize(
    ("digest", "verdict"), [(RIGHT, "match"), (WRONG, "mismatch")], ids=["right", "wrong"]
)
def test_a_chunked_body_with_an_expected_size(file_server, digest, verdict):
    """The length known from X-Reproxy-Expected-Size: the completing piece is held."""
    app = digest_app(
        file_server.url("/chunked/1m.bin"),
        digest=digest,
        extra_headers=[("X-Reproxy-Expected-Size", str(SIZE))],
    )
    got = fetch(mw_for(app))
    assert got.header("Content-Length") == str(SIZE)
    assert got.report.digest == verdict
    if verdict == "match":
        assert (got.error, got.body) == (None, DATA)
    else:
        assert isinstance(got.error, UpstreamBodyError)
        assert got.body == DATA[: len(got.body)]
        assert len(got.body) < SIZE


def one_chunk_then_wait(release: threading.Event) -> Callable[..., None]:
    """A chunked body of unknown length: ``hello `` at once, ``world`` once released."""
    head = response_head(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "close"),
        ],
    )

    def handler(conn, server):
        if not server.read_request(conn):
            return
        conn.sendall(head + b"6\r\nhello \r\n")
        if release.wait(5):
            conn.sendall(b"5\r\nworld\r\n0\r\n\r\n")

    return handler


def start(mw: ReproxyMiddleware) -> Any:
    """The middleware's body for one request, not yet iterated (the caller closes it)."""
    return validator(mw)(make_environ("/r/f"), lambda status, headers, exc_info=None: None)


def test_without_a_digest_nothing_is_held_back(scripted):
    """No cost when absent: a piece goes out as it comes, before the next exists."""
    release = threading.Event()
    server = scripted(one_chunk_then_wait(release))
    iterable = start(mw_for(BackendApp(headers=reproxy_headers(server.url("/f")))))
    try:
        iterator = iter(iterable)
        assert next(iterator) == b"hello "
        assert not release.is_set()  # it came while storage still held the rest
        release.set()
        assert b"".join(iterator) == b"world"
    finally:
        release.set()
        iterable.close()


def test_with_a_digest_of_unknown_length_a_piece_waits_for_the_next(scripted):
    release = threading.Event()
    server = scripted(one_chunk_then_wait(release))
    digest = digest_of(b"hello world")
    iterable = start(mw_for(BackendApp(headers=reproxy_headers(server.url("/f"), digest=digest))))
    timer = threading.Timer(0.2, release.set)
    timer.start()
    try:
        iterator = iter(iterable)
        assert next(iterator) == b"hello "
        assert release.is_set()  # held until "world" had come
        assert b"".join(iterator) == b"world"
    finally:
        timer.cancel()
        release.set()
        iterable.close()


# -- Done when 6: not checked -------------------------------------------------------------


def test_a_gzip_target_is_not_checked(file_server, caplog):
    app = digest_app(file_server.url("/gzip/1m.bin"), digest=WRONG)
    with caplog.at_level(logging.DEBUG, "wsgi_reproxy"):
        got = fetch(mw_for(app))
    assert got.error is None
    assert (got.code, got.header("Content-Encoding")) == (200, "gzip")
    assert gzip.decompress(got.body) == DATA
    assert (got.report.digest, got.report.outcome) == (None, "complete")
    assert (
        "X-Reproxy-Expected-Digest not checked: a 200, encoded=True, body=True" in caplog.messages
    )
    assert errors(caplog) == []


def test_a_client_range_is_not_checked(file_server, caplog):
    app = digest_app(file_server.url("/files/1m.bin"), digest=WRONG)
    with caplog.at_level(logging.DEBUG, "wsgi_reproxy"):
        got = fetch(mw_for(app), headers={"Range": "bytes=100-199"})
    assert got.error is None
    assert (got.code, got.body) == (206, DATA[100:200])
    assert got.header("Content-Range") == f"bytes 100-199/{SIZE}"
    assert (got.report.digest, got.report.outcome) == (None, "complete")
    assert (
        "X-Reproxy-Expected-Digest not checked: a 206, encoded=False, body=True" in caplog.messages
    )


def test_head_is_not_checked(file_server):
    app = digest_app(file_server.url("/files/1m.bin"), digest=WRONG)
    got = fetch(mw_for(app), method="HEAD")
    assert got.error is None
    assert (got.code, got.body, got.header("Content-Length")) == (200, b"", str(SIZE))
    assert got.report.digest is None
    assert file_server.requests[0].method == "HEAD"


def test_a_304_is_not_checked(file_server, caplog):
    app = digest_app(file_server.url("/files/1m.bin"), digest=WRONG)
    with caplog.at_level(logging.DEBUG, "wsgi_reproxy"):
        got = fetch(mw_for(app), headers={"If-None-Match": ETAG})
    assert got.error is None
    assert (got.code, got.body) == (304, b"")
    assert got.report.digest is None
    assert (
        "X-Reproxy-Expected-Digest not checked: a 304, encoded=False, body=False" in caplog.messages
    )


def test_without_the_header_the_body_is_not_checked(file_server):
    app = digest_app(file_server.url("/files/1m.bin"), digest=None)
    got = fetch(mw_for(app))
    assert (got.error, got.code, got.body) == (None, 200, DATA)
    assert (got.report.digest, got.report.outcome) == (None, "complete")
    assert "digest" not in str(got.report)


@pytest.mark.parametrize(
    ("route", "digest", "verdict"),
    [
        pytest.param("/chunked/empty.bin", digest_of(b""), "match", id="chunked-right"),
        pytest.param("/chunked/empty.bin", WRONG, "mismatch", id="chunked-wrong"),
        pytest.param("/files/empty.bin", digest_of(b""), "match", id="length-right"),
        pytest.param("/files/empty.bin", WRONG, "mismatch", id="length-wrong"),
    ],
)
def test_an_empty_body_is_checked(file_server, route, digest, verdict):
    """A zero-byte replica (a failed write) is a wrong file like any other."""
    got = fetch(mw_for(digest_app(file_server.url(route), digest=digest)))
    assert got.report.digest == verdict
    if verdict == "match":
        assert (got.error, got.code, got.body) == (None, 200, b"")
    else:
        assert got.error is not None or got.code == 502
        assert got.report.outcome != "complete"


# -- Done when 7: X-Reproxy-File ----------------------------------------------------------


@pytest.fixture
def stored(tmp_path: Path) -> Path:
    path = tmp_path / "f.bin"
    path.write_bytes(DATA)
    return path


def file_mw(path: Path, digest: str | None, **kwargs: Any) -> ReproxyMiddleware:
    extra = [] if digest is None else [("X-Reproxy-Expected-Digest", digest)]
    app = BackendApp(headers=[("X-Reproxy-File", str(path)), *extra, *kwargs.pop("headers", [])])
    return ReproxyMiddleware(app, allow=["/r/"], file_roots=[str(path.parent)], **kwargs)


def test_a_file_with_the_right_digest_is_served_whole(stored):
    got = fetch(file_mw(stored, RIGHT))
    assert got.error is None
    assert (got.code, got.body, got.header("Content-Length")) == (200, DATA, str(SIZE))
    report = got.report
    assert (report.url, report.digest, report.outcome, report.bytes) == (
        str(stored),
        "match",
        "complete",
        SIZE,
    )
    assert [(a.url, a.status, a.outcome) for a in report.attempts] == [(str(stored), 200, "served")]


def test_a_file_with_a_wrong_digest_is_aborted(stored, caplog):
    with caplog.at_level(logging.ERROR, "wsgi_reproxy"):
        got = fetch(file_mw(stored, WRONG))
    assert got.code == 200
    assert got.header("Content-Length") == str(SIZE)
    assert isinstance(got.error, UpstreamBodyError)
    assert 0 < len(got.body) < SIZE
    assert got.body == DATA[: len(got.body)]
    report = got.report
    assert (report.digest, report.outcome, report.bytes) == ("mismatch", "aborted", len(got.body))
    assert [(a.outcome, a.reason) for a in report.attempts] == [("failed", "digest mismatch")]
    [error] = errors(caplog)
    assert "digest mismatch: sha-256 of the body is " in error


@pytest.mark.parametrize(
    ("digest", "verdict"), [(RIGHT, "match"), (WRONG, "mismatch")], ids=["right", "wrong"]
)
def test_a_file_with_a_digest_never_goes_to_the_file_wrapper(stored, digest, verdict):
    """The server's sendfile would send bytes the middleware never saw: with a digest to
    check, the file is read by the middleware even when the server offers a wrapper."""
    got = fetch(file_mw(stored, digest), **{"wsgi.file_wrapper": FileWrapper})
    assert got.report.digest == verdict
    assert (got.body == DATA) is (verdict == "match")


def test_a_file_without_a_digest_goes_to_the_file_wrapper(stored):
    environ = make_environ("/r/f", **{"wsgi.file_wrapper": FileWrapper})
    result = file_mw(stored, None)(environ, lambda status, headers, exc_info=None: None)
    try:
        assert isinstance(result, FileWrapper)
        assert b"".join(result) == DATA
    finally:
        result.close()
    assert environ["wsgi_reproxy.report"].digest is None


def test_a_client_range_on_a_file_is_not_checked(stored):
    got = fetch(file_mw(stored, WRONG), headers={"Range": "bytes=10-19"})
    assert got.error is None
    assert (got.code, got.body) == (206, DATA[10:20])
    assert got.header("Content-Range") == f"bytes 10-19/{SIZE}"
    assert (got.report.digest, got.report.outcome) == (None, "complete")


def test_a_head_of_a_file_is_not_checked(stored):
    got = fetch(file_mw(stored, WRONG), method="HEAD")
    assert got.error is None
    assert (got.code, got.body, got.header("Content-Length")) == (200, b"", str(SIZE))
    assert got.report.digest is None


def test_an_empty_file_with_a_wrong_digest_is_not_served_as_complete(tmp_path):
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    got = fetch(file_mw(empty, WRONG))
    assert got.report.digest == "mismatch"
    assert got.error is not None or got.code == 502
    assert got.report.outcome != "complete"


def test_a_304_of_a_file_is_not_checked(stored):
    etag = fetch(file_mw(stored, None), method="HEAD").header("ETag")
    assert etag is not None
    got = fetch(file_mw(stored, WRONG), headers={"If-None-Match": etag})
    assert got.error is None
    assert (got.code, got.body) == (304, b"")
    assert got.report.digest is None


def test_a_file_failing_over_to_a_url_is_checked_there(tmp_path, file_server):
    """The file missing, the URL serves: the same digest applies to its body."""
    missing = tmp_path / "gone.bin"
    url = file_server.url("/files/1m.bin")
    got = fetch(file_mw(missing, WRONG, headers=[("X-Reproxy-Url", url)]))
    assert isinstance(got.error, UpstreamBodyError)
    assert len(got.body) < SIZE
    assert [(a.url, a.status, a.outcome, a.reason) for a in got.report.attempts] == [
        (str(missing), 404, "failed", "no such file"),
        (url, 200, "failed", "digest mismatch"),
    ]
    assert (got.report.digest, got.report.outcome) == ("mismatch", "aborted")


# -- Done when 8: the decision cache -----------------------------------------------------


def changing_replica(content: list[bytes]) -> Callable[..., None]:
    """Serves ``content[0]`` as it is at the time of the request."""

    def handler(conn, server):
        if not server.read_request(conn):
            return
        data = content[0]
        head = response_head(
            "200 OK",
            [("Content-Length", str(len(data))), ("ETag", ETAG), ("Connection", "close")],
        )
        conn.sendall(head + data)

    return handler


def test_a_cached_decision_keeps_its_digest(scripted):
    content = [DATA]
    replica = scripted(changing_replica(content))
    app = digest_app(replica.url("/f"), digest=RIGHT, extra_headers=[("X-Reproxy-Cache-For", "60")])
    mw = mw_for(app, cache=MemoryCache())
    stored_hit_then_stale(mw, lambda: content.__setitem__(0, STALE))


def stored_hit_then_stale(mw: ReproxyMiddleware, make_stale: Callable[[], None]) -> None:
    """A decision stored and then hit, both matching; then, the source turned stale, a
    hit that is aborted as a mismatch, the app never asked again."""
    for cache in ("stored", "hit"):
        got = fetch(mw)
        assert (got.error, got.body, got.report.cache, got.report.digest) == (
            None,
            DATA,
            cache,
            "match",
        )
    make_stale()
    third = fetch(mw)
    assert mw.app.record.closed == 1  # both later answers came from the entry alone
    assert third.report.cache == "hit"
    assert isinstance(third.error, UpstreamBodyError)
    assert len(third.body) < SIZE
    assert (third.report.digest, third.report.outcome) == ("mismatch", "aborted")


def test_a_cached_file_decision_keeps_its_digest(stored):
    """The entry keeps the file and the digest: a hit serves the file and checks it."""
    mw = file_mw(stored, RIGHT, headers=[("X-Reproxy-Cache-For", "60")], cache=MemoryCache())
    stored_hit_then_stale(mw, lambda: stored.write_bytes(STALE))


# -- Done when 9: format_digest and reproxy_headers ---------------------------------------


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_format_digest_of_raw_bytes_and_hex(algorithm):
    raw = hashlib.new(ALGORITHMS[algorithm][0], DATA).digest()
    expected = digest_of(DATA, algorithm)
    assert format_digest(algorithm, raw) == expected
    assert format_digest(algorithm, bytearray(raw)) == expected
    assert format_digest(algorithm, raw.hex()) == expected
    assert format_digest(algorithm, raw.hex().upper()) == expected


def test_format_digest_of_an_s3_etag():
    """A single-part S3 ETag is the MD5 in hex, quoted: the docstring's example."""
    etag = '"9e107d9d372bb6826bd81d3542a419d6"'
    assert format_digest("md5", etag.strip('"')) == "md5=:nhB9nTcrtoJr2B01QqQZ1g==:"
    assert hashlib.md5(b"The quick brown fox jumps over the lazy dog").hexdigest() == etag[1:-1]


@pytest.mark.parametrize(
    ("algorithm", "digest", "message"),
    [
        ("sha-256", bytes(31), "a sha-256 digest has 32 bytes, not 31"),
        ("sha-256", bytes(64), "a sha-256 digest has 32 bytes, not 64"),
        ("md5", "00" * 17, "a md5 digest has 16 bytes, not 17"),
        ("sha-512", b"", "a sha-512 digest has 64 bytes, not 0"),
        ("md5", "zz" * 16, "non-hexadecimal"),
        ("md5", "abc", "non-hexadecimal"),
        ("sha-1", bytes(20), "algorithm must be one of sha-512, sha-256, md5, not 'sha-1'"),
        ("sha256", bytes(32), "not 'sha256'"),
        ("SHA-256", bytes(32), "not 'SHA-256'"),
        ("", bytes(32), "not ''"),
    ],
)
def test_format_digest_refuses(algorithm, digest, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        format_digest(algorithm, digest)


def test_reproxy_headers_adds_a_digest_the_middleware_checks(file_server):
    digest = format_digest("sha-512", hashlib.sha512(DATA).digest())
    headers = reproxy_headers(file_server.url("/files/1m.bin"), expected_size=SIZE, digest=digest)
    assert headers == [
        ("X-Reproxy-Url", file_server.url("/files/1m.bin")),
        ("X-Reproxy-Expected-Size", str(SIZE)),
        ("X-Reproxy-Expected-Digest", digest),
    ]
    got = fetch(mw_for(BackendApp(headers=headers)))
    assert (got.error, got.body, got.report.digest) == (None, DATA, "match")


def test_reproxy_headers_with_a_file_and_a_digest():
    digest = format_digest("md5", hashlib.md5(DATA).digest())
    assert reproxy_headers(file="/srv/f.bin", digest=digest) == [
        ("X-Reproxy-File", "/srv/f.bin"),
        ("X-Reproxy-Expected-Digest", digest),
    ]


@pytest.mark.parametrize(
    "digest", [b"sha-256=:AAAA:", 42, ["md5=:AAAA:"]], ids=["bytes", "int", "list"]
)
def test_reproxy_headers_refuses_a_digest_that_is_not_a_str(digest):
    with pytest.raises(ValueError, match="not a str"):
        reproxy_headers("http://store-1/f", digest=digest)


def test_reproxy_headers_without_a_digest_adds_none():
    assert reproxy_headers("http://store-1/f") == [("X-Reproxy-Url", "http://store-1/f")]


# -- Done when 10: properties -------------------------------------------------------------

member_names = st.sampled_from(
    ["sha-256", "sha-512", "md5", "sha-1", "unixsum", "SHA-256", "*", "a_b.c", "", "1x", "md5 "]
)
member_values = st.one_of(
    st.binary(max_size=70).map(lambda raw: ":" + base64.b64encode(raw).decode() + ":"),
    st.text(st.characters(max_codepoint=0xFF), max_size=20),
    st.sampled_from([":", "::", ":=:", ":AAAA", "AAAA:", ':"x":', "?1", "1"]),
)
params = st.lists(
    st.tuples(st.sampled_from(["a", "x-y", "", "=", "q"]), st.sampled_from(["", "=1", '="s"'])),
    max_size=2,
).map(lambda pairs: "".join(f";{name}{value}" for name, value in pairs))
members = st.builds(lambda n, v, p: f"{n}={v}{p}", member_names, member_values, params)
separators = st.sampled_from([",", ", ", " ,", ",\t", ",,", ""])
header_values = st.one_of(
    st.text(st.characters(max_codepoint=0xFF), max_size=60),
    st.builds(
        lambda items, sep: sep.join(items), st.lists(members, min_size=1, max_size=4), separators
    ),
)


@FUZZ
@given(st.lists(header_values, max_size=3))
def test_parse_expected_digest_never_crashes(values):
    parsed = parse_expected_digest(values)
    if not values:
        assert parsed is None
    elif isinstance(parsed, ExpectedDigest):
        assert parsed.algorithm in ALGORITHMS
        assert len(parsed.value) == ALGORITHMS[parsed.algorithm][1]
        # what a cache entry stores reads back as the same digest
        assert parse_expected_digest([parsed.field_value()]) == parsed
    else:
        assert isinstance(parsed, str)
        assert parsed.startswith(
            ("an empty X-Reproxy-Expected-Digest", "X-Reproxy-Expected-Digest")
        )


@FUZZ
@given(
    st.sampled_from(list(ALGORITHMS)).flatmap(
        lambda name: st.tuples(
            st.just(name),
            st.binary(min_size=ALGORITHMS[name][1], max_size=ALGORITHMS[name][1]),
        )
    ),
    st.booleans(),
)
def test_format_then_parse_round_trips(algorithm_and_raw, as_hex):
    algorithm, raw = algorithm_and_raw
    value = format_digest(algorithm, raw.hex() if as_hex else raw)
    assert parse_expected_digest([value]) == ExpectedDigest(algorithm, raw)
    assert reproxy_headers("http://store-1/f", digest=value)[-1] == (
        "X-Reproxy-Expected-Digest",
        value,
    )
    # beside an unknown algorithm, and with parameters, it is the same digest
    assert parse_expected_digest([f"unixsum=:AAAA:, {value};x=1"]) == ExpectedDigest(algorithm, raw)


@pytest.fixture(scope="module")
def small_storage() -> Iterator[FileServer]:
    with FileServer() as server:
        yield server


@settings(max_examples=60, deadline=None)
@given(header_values)
def test_any_value_at_the_wsgi_boundary(small_storage, value):
    """Whatever the app sends: a 502 when it is malformed, else the body is checked and
    the verdict is the one the hash of small.txt gives."""
    app = digest_app(small_storage.url("/files/small.txt"), digest=value)
    got = fetch(mw_for(app))
    parsed = parse_expected_digest([value])
    if isinstance(parsed, str):
        assert (got.code, got.body, got.error) == (502, ERROR_BODY, None)
        return
    assert isinstance(parsed, ExpectedDigest)
    right = hashlib.new(ALGORITHMS[parsed.algorithm][0], SMALL).digest() == parsed.value
    assert got.code == 200
    assert got.report.digest == ("match" if right else "mismatch")
    if right:
        assert (got.body, got.error) == (SMALL, None)
    else:
        assert isinstance(got.error, UpstreamBodyError)
        assert got.body == b""  # small.txt is one piece: all of it held back


def test_algorithms_table_matches_hashlib():
    for name, (hashlib_name, length) in ALGORITHMS.items():
        assert hashlib.new(hashlib_name).digest_size == length, name
    assert list(ALGORITHMS) == ["sha-512", "sha-256", "md5"]  # strongest first


def test_a_forked_worker_hashes_on_threads_of_its_own():
    """A pool made before a fork has no threads in the child (gunicorn --preload): the
    child must make its own, or its first large digest would wait forever."""
    import hashlib
    import signal

    from wsgi_reproxy.body_digest import DigestCheck, _hashing_pool

    data = bytes(3 * 1024 * 1024)
    expected = ExpectedDigest("sha-256", hashlib.sha256(data).digest())
    parent_pool = _hashing_pool()
    check = DigestCheck(expected)
    check.update(data)
    assert check.mismatch() is None
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if a large digest completes on its own threads
        signal.alarm(10)
        code = 1
        try:
            child_check = DigestCheck(expected)
            for start in range(0, len(data), 256 * 1024):
                child_check.update(data[start : start + 256 * 1024])
            code = 0 if child_check.mismatch() is None and _hashing_pool() is not parent_pool else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_small_wrong_local_file_fails_over_to_the_url(tmp_path, file_server):
    """A file a first read brings whole is judged before the response starts, as a small
    body from a URL is: a stale copy fails over instead of being aborted."""
    right = FILES["small.txt"]
    stale = tmp_path / "small.txt"
    stale.write_bytes(bytes(len(right)))  # same size, other bytes
    app = BackendApp(
        headers=[
            ("X-Reproxy-File", str(stale)),
            ("X-Reproxy-Url", file_server.url("/files/small.txt")),
            ("X-Reproxy-Expected-Digest", digest_of(right)),
        ]
    )
    got = fetch(ReproxyMiddleware(app, allow=["/r/"], file_roots=[str(tmp_path)]))
    assert (got.error, got.code, got.body) == (None, 200, right)
    assert got.report.digest == "match"
    [file_attempt, url_attempt] = got.report.attempts
    assert (file_attempt.outcome, url_attempt.outcome) == ("failed", "served")
    assert file_attempt.reason.startswith("digest mismatch")


def test_a_verdict_belongs_to_the_body_served(file_server):
    """A first URL failing its digest does not make the report of an unchecked body
    served by the next one say "mismatch"."""
    right = FILES["small.txt"]
    app = digest_app(
        file_server.url("/files/empty.bin"),  # whole in its first read, and not the file
        file_server.url("/gzip/small.txt"),  # encoded: served, not checked
        digest=digest_of(right),
    )
    got = fetch(mw_for(app))
    assert (got.error, got.code) == (None, 200)
    assert got.report.digest is None
    assert got.report.attempts[0].reason.startswith("digest mismatch")


def test_a_body_still_checked_once_no_thread_can_be_had():
    """At interpreter shutdown concurrent.futures refuses new work: a body still being
    checked then hashes on its own thread instead of failing."""
    from wsgi_reproxy.body_digest import DigestCheck, _hashing_pool, _pools

    data = bytes(2 * 1024 * 1024)
    pool = _hashing_pool()
    pool.shutdown()
    try:
        check = DigestCheck(ExpectedDigest("sha-256", hashlib.sha256(data).digest()))
        check.update(data[: 1024 * 1024])
        check.update(data[1024 * 1024 :])
        assert check.mismatch() is None
    finally:
        _pools.pop(os.getpid(), None)  # the next check makes a new pool
