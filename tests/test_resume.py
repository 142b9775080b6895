"""Mid-stream resume from the next replica (issue: never lose, leak or fake a byte).

A first target sends part of a file and dies; the middleware must continue from the next
URL at the exact byte, with ``Range`` + ``If-Range``, and accept only a 206 that proves to
be the rest of the same representation.  Otherwise it aborts (SPEC R6.4).
"""

from __future__ import annotations

import logging
import re

import pytest

from harness import call, reproxy_app
from upstreams import FILES, LAST_MODIFIED, etag_for, respond, response_head
from wsgi_reproxy import ReproxyMiddleware, UpstreamBodyError

DATA = FILES["1m.bin"]
SIZE = len(DATA)
ETAG = etag_for("1m.bin")


def mw_for(app, **kwargs):
    kwargs.setdefault("timeout", 2)
    return ReproxyMiddleware(app, allow=["/r/"], preserve=["Content-Type"], **kwargs)


def broken(
    upto, *, first=0, last=SIZE - 1, etag=ETAG, status="200 OK", last_modified=None, extra=()
):
    """A target that announces bytes first..last of 1m.bin, sends up to ``upto``, and dies."""
    headers = [
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", str(last - first + 1)),
        *extra,
    ]
    if etag is not None:
        headers.append(("ETag", etag))
    if last_modified is not None:
        headers.append(("Last-Modified", last_modified))
    if status.startswith("206"):
        headers.append(("Content-Range", f"bytes {first}-{last}/{SIZE}"))
    return respond(response_head(status, headers) + DATA[first:upto])


def test_resume_continues_at_the_exact_byte(scripted, file_server, caplog):
    """The rest comes from the next URL with Range: bytes=N- and the strong ETag."""
    dying = scripted(broken(300_000))
    app = reproxy_app(dying.url("/f"), file_server.url("/files/1m.bin"))
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        result = call(mw_for(app), "/r/f")
    assert result.body == DATA
    assert result.header("Content-Length") == str(SIZE)
    [request] = file_server.requests
    assert request.header("Range") == f"bytes=300000-{SIZE - 1}"
    assert request.header("If-Range") == etag_for("1m.bin")
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "after 300000 bytes" in warning.getMessage()
    assert "resuming" in warning.getMessage()


def test_resume_shifts_the_clients_own_range(scripted, file_server):
    """A client Range: the continuation asks for the rest of *that* range."""
    dying = scripted(broken(1000 + 4321, first=1000, last=499_999, status="206 Partial Content"))
    app = reproxy_app(dying.url("/f"), file_server.url("/files/1m.bin"))
    result = call(mw_for(app), "/r/f", headers={"Range": "bytes=1000-499999"})
    assert result.code == 206
    assert result.body == DATA[1000:500_000]
    assert result.header("Content-Range") == f"bytes 1000-499999/{SIZE}"
    assert file_server.requests[0].header("Range") == "bytes=5321-499999"


def test_resume_with_last_modified_as_validator(scripted, file_server):
    """No ETag: Last-Modified is the validator in If-Range."""
    dying = scripted(broken(70_000, etag=None, last_modified=LAST_MODIFIED))
    app = reproxy_app(dying.url("/f"), file_server.url("/files/1m.bin"))
    assert call(mw_for(app), "/r/f").body == DATA
    assert file_server.requests[0].header("If-Range") == LAST_MODIFIED


def test_resume_after_a_read_timeout(scripted, file_server):
    """A stalled body is a break like any other."""
    head = response_head(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(SIZE)),
            ("ETag", etag_for("1m.bin")),
        ],
    )

    def stall(conn, server):
        if server.read_request(conn):
            conn.sendall(head + DATA[:50_000])
            server.hold(conn)

    slow = scripted(stall)
    app = reproxy_app(slow.url("/f"), file_server.url("/files/1m.bin"))
    assert call(mw_for(app, timeout=0.3), "/r/f").body == DATA


def test_resume_chains_through_several_replicas(scripted, file_server):
    first = scripted(broken(100_000))
    second_head = response_head(
        "206 Partial Content",
        [
            ("Content-Type", "application/octet-stream"),
            ("ETag", etag_for("1m.bin")),
            ("Content-Length", str(SIZE - 100_000)),
            ("Content-Range", f"bytes 100000-{SIZE - 1}/{SIZE}"),
        ],
    )
    second = scripted(respond(second_head + DATA[100_000:400_000]))
    app = reproxy_app(first.url("/a"), second.url("/b"), file_server.url("/files/1m.bin"))
    assert call(mw_for(app), "/r/f").body == DATA
    assert file_server.requests[0].header("Range") == f"bytes=400000-{SIZE - 1}"


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ({"etag": 'W/"weak"'}, "the ETag is weak"),
        ({"etag": None}, "no ETag or Last-Modified"),
    ],
)
def test_no_strong_validator_aborts(scripted, file_server, target, why, caplog):
    """Without a strong validator the continuation cannot be proven: abort, ask no one."""
    dying = scripted(broken(10_000, **target))
    app = reproxy_app(dying.url("/f"), file_server.url("/files/1m.bin"))
    with caplog.at_level(logging.ERROR, "wsgi_reproxy"), pytest.raises(UpstreamBodyError):
        call(mw_for(app), "/r/f")
    assert file_server.requests == []
    assert any(why in r.getMessage() for r in caplog.records)


def test_a_replica_with_other_bytes_answers_200_and_is_refused(scripted, file_server):
    """If-Range with the first ETag: a replica of another version answers 200: refused."""
    dying = scripted(broken(10_000, etag='"another-version"'))
    app = reproxy_app(dying.url("/f"), file_server.url("/files/1m.bin"))
    with pytest.raises(UpstreamBodyError, match="no other URL could prove"):
        call(mw_for(app), "/r/f")
    assert [r.header("If-Range") for r in file_server.requests] == ['"another-version"']


def test_a_different_total_is_refused(scripted, file_server):
    """A 206 whose total differs is another file, even with the same validator."""
    dying = scripted(broken(10_000, etag=etag_for("5m.bin")))
    app = reproxy_app(dying.url("/f"), file_server.url("/files/5m.bin"))
    with pytest.raises(UpstreamBodyError):
        call(mw_for(app), "/r/f")
    assert len(file_server.requests) == 1


def test_no_url_left_aborts(scripted, file_server):
    dying = scripted(broken(10_000))
    app = reproxy_app(file_server.url("/status/500"), dying.url("/f"))
    with pytest.raises(UpstreamBodyError, match="no URL left"):
        call(mw_for(app), "/r/f")


def test_resume_can_be_turned_off(scripted, file_server):
    dying = scripted(broken(10_000))
    app = reproxy_app(dying.url("/f"), file_server.url("/files/1m.bin"))
    with pytest.raises(UpstreamBodyError, match="resume=False"):
        call(mw_for(app, resume=False), "/r/f")
    assert file_server.requests == []


def test_resume_of_a_chunked_body_uses_the_expected_size(scripted, file_server):
    """Chunked: the full length is X-Reproxy-Expected-Size."""
    head = response_head(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("Transfer-Encoding", "chunked"),
            ("ETag", etag_for("1m.bin")),
        ],
    )
    part = DATA[:20_000]
    dying = scripted(respond(head + b"%x\r\n" % len(part) + part + b"\r\n"))
    app = reproxy_app(
        dying.url("/f"),
        file_server.url("/files/1m.bin"),
        extra_headers=[("X-Reproxy-Expected-Size", str(SIZE))],
    )
    assert call(mw_for(app), "/r/f").body == DATA
    # urllib3 may drop a partly read chunk with the error: the offset is what the client got
    assert file_server.requests[0].header("Range").endswith(f"-{SIZE - 1}")
    assert file_server.requests[0].header("If-Range") == etag_for("1m.bin")


def test_gzip_continuation_must_keep_the_encoding(scripted, file_server):
    """The continuation must have the first target's Content-Encoding."""
    dying = scripted(broken(10_000, extra=[("Content-Encoding", "gzip")]))
    app = reproxy_app(dying.url("/f"), file_server.url("/files/1m.bin"))
    with pytest.raises(UpstreamBodyError):
        call(mw_for(app), "/r/f")


def test_a_resume_target_that_refuses_is_skipped(scripted, file_server, refused_url):
    dying = scripted(broken(10_000))
    app = reproxy_app(dying.url("/f"), refused_url, file_server.url("/files/1m.bin"))
    assert call(mw_for(app), "/r/f").body == DATA


@pytest.mark.parametrize(
    ("extra", "status", "why"),
    [
        ({"etag": "unquoted"}, "200 OK", "the ETag is malformed"),
        ({}, "206 Partial Content", "no single Content-Range"),
    ],
)
def test_unresumable_first_answers(scripted, file_server, extra, status, why):
    headers = [("Content-Type", "a/b"), ("Content-Length", str(SIZE))]
    headers.append(("ETag", extra.get("etag", ETAG)))
    dying = scripted(respond(response_head(status, headers) + DATA[:1000]))
    app = reproxy_app(dying.url("/f"), file_server.url("/files/1m.bin"))
    with pytest.raises(UpstreamBodyError, match=why):
        call(mw_for(app), "/r/f", headers={"Range": "bytes=0-"} if status[0] == "2" else {})
    assert file_server.requests == []


def test_chunked_body_of_unknown_length_cannot_resume(scripted, file_server):
    head = response_head(
        "200 OK", [("Content-Type", "a/b"), ("Transfer-Encoding", "chunked"), ("ETag", ETAG)]
    )
    dying = scripted(respond(head + b"5\r\nhello\r\n"))
    app = reproxy_app(dying.url("/f"), file_server.url("/files/1m.bin"))
    with pytest.raises(UpstreamBodyError, match="the full length is unknown"):
        call(mw_for(app), "/r/f")


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("bytes 0-9/10", (0, 9, 10)),
        ("bytes 0-9/*", None),
        ("bytes */10", None),
        ("bytes 9-0/10", None),
        ("bytes 0-10/10", None),
        ("items 0-1/2", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_content_range(value, parsed):
    from wsgi_reproxy.framing import parse_content_range

    assert parse_content_range(value) == parsed


OTHER_DATE = "Mon, 02 Jan 2006 15:04:05 GMT"


@pytest.mark.parametrize(
    ("first", "theirs", "refusal"),
    [
        ({}, ("ETag", '"another-version"'), f"its ETag '\"another-version\"' is not {ETAG!r}"),
        ({}, None, f"its ETag None is not {ETAG!r}"),
        (
            {"etag": None, "last_modified": LAST_MODIFIED},
            ("Last-Modified", OTHER_DATE),
            f"its Last-Modified {OTHER_DATE!r} is not {LAST_MODIFIED!r}",
        ),
    ],
    ids=["other-etag", "no-etag", "other-last-modified"],
)
def test_a_replica_ignoring_if_range_must_still_show_the_validator(
    scripted, first, theirs, refusal, caplog
):
    """A replica that answers 206 whatever If-Range says, holding another version of the
    same size, is refused: its 206 must carry the validator asked for itself."""
    other = bytes(reversed(DATA))

    def ignores_if_range(conn, server):
        request = server.read_request(conn)
        if not request:
            return
        start = int(re.search(rb"Range: bytes=(\d+)-", request).group(1))
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(SIZE - start)),
            ("Content-Range", f"bytes {start}-{SIZE - 1}/{SIZE}"),
            ("Connection", "close"),
        ]
        if theirs is not None:
            headers.append(theirs)
        conn.sendall(response_head("206 Partial Content", headers) + other[start:])

    dying = scripted(broken(10_000, **first))
    replica = scripted(ignores_if_range)
    app = reproxy_app(dying.url("/f"), replica.url("/f"))
    with (
        caplog.at_level(logging.WARNING, "wsgi_reproxy"),
        pytest.raises(UpstreamBodyError, match="no other URL could prove"),
    ):
        call(mw_for(app), "/r/f")
    assert len(replica.requests) == 1
    refusals = [r.getMessage() for r in caplog.records if "resume refused" in r.getMessage()]
    assert len(refusals) == 1
    assert refusals[0].endswith(refusal)


@pytest.mark.parametrize("sent", [100, 50], ids=["whole", "short"])
def test_a_206_without_content_length_is_held_to_its_range(scripted, sent):
    """A 206 that only the connection's end delimits must still bring what its
    Content-Range promises: 50 of 100 bytes is a broken body, never a complete one."""
    head = response_head(
        "206 Partial Content",
        [
            ("Content-Type", "application/octet-stream"),
            ("Content-Range", f"bytes 0-99/{SIZE}"),
            ("Connection", "close"),
        ],
    )
    target = scripted(respond(head + DATA[:sent]))
    app = reproxy_app(target.url("/f"))
    if sent == 100:
        result = call(mw_for(app), "/r/f", headers={"Range": "bytes=0-99"})
        assert (result.code, result.body) == (206, DATA[:100])
        assert result.header("Content-Length") == "100"  # announced, so a break would show
    else:
        with pytest.raises(UpstreamBodyError, match="ended after 50 of 100 bytes"):
            call(mw_for(app), "/r/f", headers={"Range": "bytes=0-99"})


@pytest.mark.parametrize(
    "framing",
    [
        [("Transfer-Encoding", "gzip, chunked")],
        [("Content-Length", "+1")],
        [("Content-Length", "12")],
    ],
    ids=["undecoded-transfer-coding", "malformed-length", "length-not-the-ranges"],
)
def test_a_replicas_framing_is_checked_as_the_first_targets_is(scripted, file_server, framing):
    """A replica's 206 whose framing the client could be told wrong is refused, and the
    next URL continues: chunk framing must never be spliced into the file as its bytes."""

    def odd_replica(conn, server):
        request = server.read_request(conn)
        if not request:
            return
        start = int(re.search(rb"Range: bytes=(\d+)-", request).group(1))
        rest = DATA[start:]
        headers = [
            ("Content-Range", f"bytes {start}-{SIZE - 1}/{SIZE}"),
            ("ETag", ETAG),
            ("Connection", "close"),
            *framing,
        ]
        body = (
            b"%x\r\n" % len(rest) + rest + b"\r\n0\r\n\r\n" if "chunked" in str(framing) else rest
        )
        conn.sendall(response_head("206 Partial Content", headers) + body)

    dying = scripted(broken(300_000))
    odd = scripted(odd_replica)
    app = reproxy_app(dying.url("/f"), odd.url("/f"), file_server.url("/files/1m.bin"))
    result = call(mw_for(app), "/r/f")
    assert result.body == DATA
    assert len(odd.requests) == 1
    assert file_server.requests[0].header("Range") == f"bytes=300000-{SIZE - 1}"


def test_an_encoded_body_is_not_resumed_from_the_expected_size(scripted, file_server, caplog):
    """The expected size is the file's; a chunked gzip body's length is unknown, so a
    break cannot be placed in it: abort rather than ask for the wrong bytes."""
    head = response_head(
        "200 OK",
        [("Content-Encoding", "gzip"), ("Transfer-Encoding", "chunked"), ("ETag", ETAG)],
    )
    dying = scripted(respond(head + b"5\r\nhello\r\n"))
    app = reproxy_app(
        dying.url("/f"),
        file_server.url("/files/1m.bin"),
        extra_headers=[("X-Reproxy-Expected-Size", str(SIZE))],
    )
    with caplog.at_level(logging.ERROR, "wsgi_reproxy"), pytest.raises(UpstreamBodyError):
        call(mw_for(app), "/r/f")
    assert file_server.requests == []
    assert any("length of the encoded body is unknown" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("validator", "logged"),
    [
        ({"etag": ETAG}, f"by its ETag {ETAG!r}"),
        ({"etag": None, "last_modified": LAST_MODIFIED}, f"by its Last-Modified {LAST_MODIFIED!r}"),
    ],
    ids=["etag", "last-modified"],
)
def test_the_resume_warning_names_the_validator_it_trusted(
    scripted, file_server, validator, logged, caplog
):
    """The validator is the whole proof of a resume: the WARNING says which one, and its
    value, so a deployment can tell a content hash from a size-and-mtime ETag or a date."""
    dying = scripted(broken(300_000, **validator))
    app = reproxy_app(dying.url("/f"), file_server.url("/files/1m.bin"))
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        assert call(mw_for(app), "/r/f").body == DATA
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage().endswith(
        f"resuming from {file_server.url('/files/1m.bin')!r}, trusted as the same file {logged}"
    )


def test_other_bytes_behind_the_same_validator_are_spliced_in(scripted, caplog):
    """The limit docs/security.rst states: a replica holding other bytes of the same size
    under the same validator (Apache's and nginx's ETags are size and mtime) proves itself
    the same file, and the client gets a mix of both.  Only a validator computed from the
    content, or resume=False, rules that out."""
    other = FILES["5m.bin"][:SIZE]

    def same_etag_other_bytes(conn, server):
        request = server.read_request(conn)
        if not request:
            return
        start = int(re.search(rb"Range: bytes=(\d+)-", request).group(1))
        headers = [
            ("Content-Range", f"bytes {start}-{SIZE - 1}/{SIZE}"),
            ("Content-Length", str(SIZE - start)),
            ("ETag", ETAG),
        ]
        conn.sendall(response_head("206 Partial Content", headers) + other[start:])

    dying = scripted(broken(300_000))
    impostor = scripted(same_etag_other_bytes)
    app = reproxy_app(dying.url("/f"), impostor.url("/f"))
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        result = call(mw_for(app), "/r/f")
    assert result.body == DATA[:300_000] + other[300_000:]
    assert any(f"by its ETag {ETAG!r}" in r.getMessage() for r in caplog.records)
