"""Storage internals never reach the client: ``hide=`` (SPEC R6.7), and the answers whose
headers stay the target's own (412, 416) or carry no body (HEAD 502/504).

Found by running storage servers behind the middleware: nginx announced itself with
``Server: nginx/1.22``, MinIO and S3 with ``x-amz-*`` request ids and replica names.
"""

from __future__ import annotations

import pytest

from harness import call, reproxy_app
from upstreams import FILES, respond, response_head
from wsgi_reproxy import DEFAULT_HIDE, ReproxyMiddleware
from wsgi_reproxy.headers import FRAMING
from wsgi_reproxy.target_headers import HiddenHeaders, clean_target_headers

STORAGE_HEADERS = [
    ("Server", "nginx/1.22.1"),
    ("X-Pad", "avoid browser bug"),
    ("X-Accel-Buffering", "no"),
    ("x-amz-request-id", "4442587FB7D0A2F9"),
    ("X-Amz-Meta-Owner", "alice"),
    ("X-Replica", "store-7.internal"),
    ("ETag", '"abc"'),
    ("Content-Type", "application/octet-stream"),
]


def _storage(scripted, body=b"hello", headers=STORAGE_HEADERS, status="200 OK"):
    head = response_head(status, [*headers, ("Content-Length", str(len(body)))])
    return scripted(respond(head + body, keep_open=True))


def _mw(url, **kwargs):
    kwargs.setdefault("allow", ["/r/"])
    return ReproxyMiddleware(reproxy_app(url), timeout=2, **kwargs)


def test_default_hides_what_nginx_hides(scripted):
    """R6.7: Server, X-Pad and X-Accel-* never reach the client by default."""
    storage = _storage(scripted)
    result = call(_mw(storage.url("/f")), "/r/f")
    assert result.code == 200
    assert result.body == b"hello"
    names = result.names()
    assert "server" not in names
    assert "x-pad" not in names
    assert "x-accel-buffering" not in names
    assert result.header("ETag") == '"abc"'
    assert result.header("X-Replica") == "store-7.internal"  # not hidden unless asked


def test_hide_takes_names_and_globs_case_insensitively(scripted):
    """R6.7: ``hide`` replaces the default; names and globs match in any case."""
    storage = _storage(scripted)
    mw = _mw(storage.url("/f"), hide=[*DEFAULT_HIDE, "X-AMZ-*", "x-replica"])
    result = call(mw, "/r/f")
    assert result.body == b"hello"
    assert [name for name, _ in result.headers if name.lower() != "content-length"] == [
        "ETag",
        "Content-Type",
    ]


def test_hide_replaces_the_default(scripted):
    """R6.7: an empty ``hide`` relays the storage's Server header again."""
    storage = _storage(scripted)
    result = call(_mw(storage.url("/f"), hide=[]), "/r/f")
    assert result.header("Server") == "nginx/1.22.1"
    assert result.header("X-Accel-Buffering") == "no"


def test_hide_applies_to_the_file_server(file_server):
    """R6.7: the Python storage's ``Server: BaseHTTP/...`` is hidden too."""
    result = call(_mw(file_server.url("/files/small.txt")), "/r/f")
    assert result.body == FILES["small.txt"]
    assert "server" not in result.names()


@pytest.mark.parametrize("pattern", ["Content-Length", "content-range", "Content-*", "*"])
def test_hide_may_not_name_the_framing_headers(pattern):
    """R6.7, R4.4: the framing headers describe the bytes the client gets."""
    with pytest.raises(ValueError, match="hide may not hide content-"):
        ReproxyMiddleware(reproxy_app("http://s/f"), allow=["/"], hide=[pattern])


@pytest.mark.parametrize("pattern", ["X Amz", "", "X-Amz-*,", 42])
def test_hide_refuses_what_is_not_a_name_or_glob(pattern):
    with pytest.raises(ValueError, match="is not a header name or glob"):
        ReproxyMiddleware(reproxy_app("http://s/f"), allow=["/"], hide=[pattern])


def test_hide_refuses_a_bare_string():
    with pytest.raises(TypeError, match=r"hide=\['Server'\]"):
        ReproxyMiddleware(reproxy_app("http://s/f"), allow=["/"], hide="Server")


def test_hidden_headers_table():
    hidden = HiddenHeaders(["Server", "X-Amz-*", "X-Cache-?"])
    target = [
        ("server", "a"),
        ("X-Amz-Id-2", "b"),
        ("X-Cache-1", "c"),
        ("X-Cache-10", "d"),
        ("Connection", "close"),
        ("Age", "1"),
    ]
    assert clean_target_headers(target, hidden)[0] == [("X-Cache-10", "d"), ("Age", "1")]
    assert [name for name in sorted(FRAMING) if hidden.covers(name)] == []
    assert repr(hidden) == "HiddenHeaders(['Server', 'X-Amz-*', 'X-Cache-?'])"


# -- answers that keep the target's headers, or carry no body ----------------------------


def test_416_keeps_the_targets_content_type(file_server):
    """R6.7: preserve does not apply to a 416: its body is the storage's message."""
    result = call(
        _mw(file_server.url("/files/small.txt"), preserve=["Content-Type"]),
        "/r/f",
        headers={"Range": "bytes=999999-"},
    )
    assert result.code == 416
    assert result.header("Content-Type") == "text/plain"
    assert result.header("Content-Range") == f"bytes */{len(FILES['small.txt'])}"
    assert result.body == b"range not satisfiable\n"


def test_412_keeps_the_targets_headers(file_server):
    """R5.3, R6.7: a relayed 412 is the storage's answer, not the file: no app
    Content-Type or Content-Disposition on it."""
    mw = _mw(file_server.url("/files/small.txt"), preserve=["Content-Type", "Content-Disposition"])
    result = call(mw, "/r/f", headers={"If-Match": '"not-this-one"'})
    assert result.code == 412
    assert result.header("Content-Type") == "text/plain"
    assert result.header("Content-Disposition") is None
    assert result.body == b"precondition failed\n"


def test_200_still_takes_the_apps_content_type(file_server):
    """R6.2: the 412/416 rule leaves the usual case alone."""
    result = call(_mw(file_server.url("/files/small.txt"), preserve=["Content-Type"]), "/r/f")
    assert result.code == 200
    assert result.header("Content-Type") == "application/x-app"


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_502_to_head_has_no_body(refused_url, method):
    """R6.7: a HEAD answered 502 carries the headers a GET would, and no body."""
    result = call(_mw(refused_url), "/r/f", method=method)
    assert result.code == 502
    length = int(result.header("Content-Length"))
    assert length > 0
    assert result.body == (b"" if method == "HEAD" else result.body)
    assert len(result.body) == (0 if method == "HEAD" else length)


@pytest.mark.parametrize(
    "patterns",
    [["X-Accel-*"], ["X-Cache-?", "X-Accel-*"], ["*-Secret", "X-A[bc]-*"], ["x-*-id", "Server"]],
)
def test_hidden_headers_match_what_fnmatch_says(patterns):
    """Prefix globs take a quicker path than the others: both must hide what fnmatch
    matches, and nothing else."""
    from fnmatch import fnmatchcase

    names = [
        "X-Accel-Buffering",
        "X-Cache-1",
        "X-Cache-10",
        "X-Ab-1",
        "X-Ad-1",
        "My-Secret",
        "x-amz-id",
        "X-Request-Id",
        "Server",
        "Age",
        "X-Accel",
    ]
    hidden = HiddenHeaders(patterns)
    kept, _ = clean_target_headers([(name, "v") for name in names], hidden)
    expected = [
        name
        for name in names
        if not any(fnmatchcase(name.lower(), pattern.lower()) for pattern in patterns)
    ]
    assert [name for name, _ in kept] == expected
