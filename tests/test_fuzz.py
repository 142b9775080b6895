"""Property-based tests: whatever the app, the target or the client send, the middleware
never raises (except the deliberate mid-stream abort), never emits an unsafe header, and
never sends a request to a URL that validation rejected."""

from __future__ import annotations

import re
import string

import pytest
import urllib3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import BackendApp, call
from upstreams import FileServer
from wsgi_reproxy import ReproxyMiddleware, UpstreamBodyError
from wsgi_reproxy.directive import HostPatterns, check_url
from wsgi_reproxy.headers import HOP_BY_HOP, merge_preserved
from wsgi_reproxy.target_headers import clean_target_headers

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
UNSAFE_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

any_text = st.text(st.characters(codec="utf-8"), max_size=40)
header_text = st.text(st.characters(max_codepoint=0xFF), max_size=30)
names = st.one_of(
    st.sampled_from(
        [
            "Connection",
            "Keep-Alive",
            "TE",
            "Transfer-Encoding",
            "Upgrade",
            "Trailer",
            "X-Reproxy-Url",
            "x-reproxy-expected-size",
            "Content-Type",
            "Set-Cookie",
            "X-Private",
            "Proxy-Authenticate",
            "Content-Length",
        ]
    ),
    st.text(string.ascii_letters + "-", min_size=1, max_size=12),
    header_text.filter(bool),
)


class RecordingPool(urllib3.PoolManager):
    """A real PoolManager that also remembers every URL it was asked to open."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.opened: list[str] = []

    def urlopen(self, method, url, redirect=True, **kw):
        self.opened.append(url)
        return super().urlopen(method, url, redirect=redirect, **kw)


@pytest.fixture(scope="module")
def server():
    with FileServer() as file_server:
        yield file_server


def assert_safe(headers):
    names_seen = [name.lower() for name, _ in headers]
    connection_listed = set()
    for name, value in headers:
        assert TOKEN.fullmatch(name), name
        assert not UNSAFE_VALUE.search(value), (name, value)
        if name.lower() == "connection":
            connection_listed.update(t.strip().lower() for t in value.split(","))
    assert not HOP_BY_HOP & set(names_seen)
    assert not [n for n in names_seen if n.startswith("x-reproxy-")]


@FUZZ
@given(
    st.lists(st.tuples(names, header_text), max_size=12),
    st.lists(
        st.sampled_from(["X-Private", "keep-alive", "Content-Type", "X-A", " x-b "]), max_size=4
    ),
)
def test_clean_target_headers_is_always_safe(target, connection_tokens):
    if connection_tokens:
        target = [*target, ("Connection", ", ".join(connection_tokens))]
    kept, _ = clean_target_headers(target)
    assert_safe(kept)
    listed = {t.strip().lower() for t in connection_tokens}
    assert not [n for n, _ in kept if n.lower() in listed]


@FUZZ
@given(
    st.lists(st.tuples(names, header_text), max_size=8),
    st.lists(
        st.tuples(st.sampled_from(["Content-Type", "Content-Disposition", "X-A"]), header_text),
        max_size=6,
    ),
    st.sampled_from([200, 204, 206, 304]),
)
def test_merged_headers_are_always_safe(target, app, status):
    kept, _ = clean_target_headers(target)
    merged = merge_preserved(kept, app, frozenset({"content-type", "content-disposition"}), status)
    assert_safe(merged)


url_tokens = st.one_of(
    any_text,
    st.sampled_from(
        [
            "http://",
            "https://",
            "ftp://x/",
            "/rel",
            "http://u:p@127.0.0.1/",
            "http://127.0.0.1:1/",
            "http://[::1]/",
            "http://store.invalid/",
            "http://%31%32%37.0.0.1/",
            "HTTP://127.0.0.1./x",
            "http://127.0.0.1:0/",
        ]
    ),
)


@FUZZ
@given(
    directive=st.lists(st.one_of(url_tokens, st.just("GOOD")), max_size=10),
    separator=st.sampled_from([" ", "\t", "\r\n", "  ", "\u00a0", ","]),
    size=st.one_of(st.none(), any_text, st.integers(-5, 2_000_000).map(str)),
    path=any_text,
    method=st.sampled_from(["GET", "HEAD", "POST"]),
    client=st.dictionaries(
        st.sampled_from(
            ["Range", "If-None-Match", "Connection", "X-Reproxy-Url", "X-Proxy-Capabilities"]
        ),
        st.text(string.printable.strip(), max_size=20),
        max_size=3,
    ),
)
def test_middleware_never_raises_or_leaks(server, directive, separator, size, path, method, client):
    good = server.url("/files/small.txt")
    value = separator.join(good if token == "GOOD" else token for token in directive)
    headers = [("Content-Type", "text/plain"), ("X-Reproxy-Url", value)]
    if size is not None:
        headers.append(("X-Reproxy-Expected-Size", size))
    pool = RecordingPool(retries=False, timeout=1)
    hosts = ["127.0.0.1:*"]
    mw = ReproxyMiddleware(
        BackendApp(headers=headers, body=[b"app"]),
        allow=["/"],
        upstream_hosts=hosts,
        pool=pool,
        timeout=1,
    )
    try:
        result = call(
            mw, "/" + path.replace("?", ""), method=method, headers=client, validate=False
        )
    except UpstreamBodyError:
        result = None
    finally:
        pool.clear()
    for url in pool.opened:
        assert check_url(url, HostPatterns(hosts)) is None, url
    if result is not None:
        assert_safe(result.headers)
        if result.code in (502, 504):
            assert b"127.0.0.1" not in result.body


@FUZZ
@given(path=any_text, script=any_text)
def test_rules_never_raise_on_any_path(path, script):
    mw = ReproxyMiddleware(
        BackendApp(), allow=["/a", "*.iso", "/m/*.b[0-9]", re.compile("x+")], deny=["/a/private"]
    )
    assert mw.enabled({"PATH_INFO": path, "SCRIPT_NAME": script}) in (True, False)
