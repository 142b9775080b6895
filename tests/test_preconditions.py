"""412 Precondition Failed is the client's own answer, relayed like 304 and 416 (SPEC R5.3).

``If-Match`` and ``If-Unmodified-Since`` are forwarded by default, so a storage answering
412 answers the client's question: the middleware relays it as nginx does -- status,
headers, body -- and does not take it for a broken replica (no failover, no 502, no
``ERROR``).  Tested at the WSGI boundary (WebTest, lint on) against real file servers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import webtest

from harness import call, reproxy_app
from upstreams import FILES, FileServer, etag_for, respond, response_head
from wsgi_reproxy import ReproxyMiddleware, UpstreamBodyError

SMALL = FILES["small.txt"]
OLD_DATE = "Sun, 31 Dec 2023 00:00:00 GMT"  # before the file servers' Last-Modified
PRECONDITION_FAILED = b"precondition failed\n"  # what FileServer's 412 says


@pytest.fixture
def second() -> Iterator[FileServer]:
    """The replica after the first: a 412 must never reach it."""
    with FileServer() as server:
        yield server


def client_for(
    first: FileServer, second: FileServer, expected_size: int | None = None
) -> webtest.TestApp:
    size = [] if expected_size is None else [("X-Reproxy-Expected-Size", str(expected_size))]
    app = reproxy_app(
        first.url("/files/small.txt"), second.url("/files/small.txt"), extra_headers=size
    )
    middleware = ReproxyMiddleware(app, allow=["/r/"], preserve=["Content-Type"])
    return webtest.TestApp(middleware, lint=True)


@pytest.mark.parametrize(
    "condition",
    [{"If-Match": '"nope"'}, {"If-Unmodified-Since": OLD_DATE}],
    ids=["If-Match", "If-Unmodified-Since"],
)
@pytest.mark.parametrize("expected_size", [None, len(SMALL)], ids=["no-size", "size"])
def test_412_is_relayed_and_not_failed_over(file_server, second, caplog, condition, expected_size):
    """R5.3: the 412 with its body and validators; the next URL is never asked, nothing
    is logged as a failure -- and X-Reproxy-Expected-Size, which is the file's length, is
    not held against the 412's body."""
    client = client_for(file_server, second, expected_size)
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        response = client.get("/r/f", headers=condition, status=412)
    assert response.status == "412 Precondition Failed"
    assert response.body == PRECONDITION_FAILED
    assert response.headers["Content-Length"] == str(len(PRECONDITION_FAILED))
    assert response.headers["ETag"] == etag_for("small.txt")
    assert "X-Reproxy-Url" not in response.headers
    [asked] = file_server.requests
    assert [asked.header(name) for name in condition] == list(condition.values())
    assert second.requests == []
    assert [r.getMessage() for r in caplog.records] == []


def test_412_to_head_is_relayed_without_body(file_server, second):
    response = client_for(file_server, second).head(
        "/r/f", headers={"If-Match": '"nope"'}, status=412
    )
    assert response.body == b""
    assert [r.method for r in file_server.requests] == ["HEAD"]
    assert second.requests == []


def test_a_matching_precondition_serves_the_file(file_server, second):
    """The same headers, satisfied: the file itself, from the first URL."""
    response = client_for(file_server, second).get(
        "/r/f", headers={"If-Match": etag_for("small.txt")}, status=200
    )
    assert response.body == SMALL
    assert second.requests == []


def test_412_from_a_status_route_is_relayed_too(file_server, second):
    """A 412 the storage chose for reasons of its own is relayed as well: the middleware
    cannot tell whose precondition failed, and nginx relays it too."""
    app = reproxy_app(file_server.url("/status/412"), second.url("/files/small.txt"))
    client = webtest.TestApp(ReproxyMiddleware(app, allow=["/r/"]), lint=True)
    response = client.get("/r/f", status=412)
    assert response.body == b"status 412\n"
    assert second.requests == []


def test_a_broken_412_body_is_never_resumed_from_the_file(scripted, file_server, caplog):
    """A 412's body is no part of the file: should it break, the next replica's bytes of
    the file -- same validator, same length -- must not be spliced onto it."""
    head = response_head(
        "412 Precondition Failed",
        [
            ("Content-Type", "text/html"),
            ("ETag", etag_for("small.txt")),
            ("Content-Length", str(len(SMALL))),
        ],
    )
    dying = scripted(respond(head + b"cut-"))
    app = reproxy_app(dying.url("/f"), file_server.url("/files/small.txt"))
    middleware = ReproxyMiddleware(app, allow=["/r/"], preserve=["Content-Type"])
    with caplog.at_level(logging.ERROR, "wsgi_reproxy"), pytest.raises(UpstreamBodyError):
        call(middleware, "/r/f", headers={"If-Match": '"nope"'})
    assert file_server.requests == []
    [error] = caplog.records
    assert "a 412 body is no part of the file" in error.getMessage()
