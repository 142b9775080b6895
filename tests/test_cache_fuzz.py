"""Fuzzing the decision cache's two inputs from outside: the app's ``X-Reproxy-Cache-For``
value and the bytes a shared backend hands back (SPEC R8.2, R8.5).

Whatever they hold: no crash, no header a client receives with a line break in it, and no
URL fetched outside ``upstream_hosts``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import call, reproxy_app
from upstreams import FILES, FileServer
from wsgi_reproxy import ReproxyMiddleware
from wsgi_reproxy.cached_decision import CacheFor, parse_cache_for
from wsgi_reproxy.headers import TOKEN

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = "127.0.0.1/r/f"


@pytest.fixture(scope="module")
def storage() -> Iterator[FileServer]:
    with FileServer() as server:
        yield server


class DictCache:
    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.entries.get(key)

    def set(self, key: str, value: bytes, ttl: int) -> None:
        self.entries[key] = value

    def delete(self, key: str) -> None:
        self.entries.pop(key, None)


cache_for_values = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda n, sep, names: f"{n}{sep}{' '.join(names)}",
        st.integers(-5, 10**12),
        st.sampled_from(["", ";", "; ", " ;", ";\t", ",", "; ;"]),
        st.lists(st.text(min_size=0, max_size=12), max_size=4),
    ),
)


@FUZZ
@given(cache_for_values)
def test_any_cache_for_value_is_understood_or_refused(value: str) -> None:
    parsed = parse_cache_for(value)
    if isinstance(parsed, CacheFor):
        assert 1 <= parsed.seconds < 10**10
        assert all(TOKEN.fullmatch(name) and name == name.lower() for name in parsed.headers)
    else:
        assert isinstance(parsed, str)


@FUZZ
@given(value=cache_for_values)
def test_any_cache_for_value_still_serves_the_directive(storage: FileServer, value: str) -> None:
    if any(c in value for c in "\r\n\x00") or not value.isprintable():
        value = value.encode("ascii", "replace").decode().replace("?", "x")
    cache = DictCache()
    app = reproxy_app(
        storage.url("/files/small.txt"), extra_headers=[("X-Reproxy-Cache-For", value)]
    )
    mw = ReproxyMiddleware(app, allow=["/r/"], cache=cache)
    result = call(mw, "/r/f", HTTP_HOST="127.0.0.1")
    assert (result.code, result.body) == (200, FILES["small.txt"])
    assert result.environ["wsgi_reproxy.cache"] == ("stored" if cache.entries else "miss")
    assert result.header("X-Reproxy-Cache-For") is None


def _urls(storage: FileServer) -> st.SearchStrategy[str]:
    allowed = storage.url("/files/small.txt")
    return st.one_of(
        st.just(allowed),
        st.sampled_from(
            [
                "http://169.254.169.254/latest/meta-data/",
                "http://127.0.0.1:1/files/small.txt",  # a port upstream_hosts does not name
                "http://evil.example/x",
                allowed + "\r\nSet-Cookie: x=y",
                allowed.replace("/files/", "/files/../"),
                "file:///etc/passwd",
                "",
            ]
        ),
        st.text(max_size=30),
    )


def _headers(storage: FileServer) -> st.SearchStrategy[list[Any]]:
    url_header = st.builds(
        lambda urls: ["x-reproxy-url", " ".join(urls)], st.lists(_urls(storage), max_size=3)
    )
    other = st.lists(
        st.one_of(
            st.sampled_from(["Content-Type", "x-reproxy-expected-size", "Set-Cookie", "X-A"]),
            st.text(max_size=10),
            st.integers(),
        ),
        min_size=2,
        max_size=2,
    )
    value = st.one_of(st.text(max_size=20), st.sampled_from(["a\r\nb", "12", "-1", "\x00"]))
    return st.lists(
        st.one_of(url_header, other, st.builds(lambda v: ["Content-Type", v], value)),
        max_size=5,
    )


@st.composite
def entries(draw: st.DrawFn, storage: FileServer) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "entry"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(
            draw(
                st.recursive(
                    st.none() | st.integers() | st.text(max_size=8),
                    lambda inner: (
                        st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
                    ),
                    max_leaves=8,
                )
            )
        ).encode()
    version = draw(st.sampled_from([1, 1, 1, 2, "1"]))
    return json.dumps({"v": version, "h": draw(_headers(storage))}).encode()


@FUZZ
@given(data=st.data())
def test_whatever_a_backend_returns_nothing_leaks_or_crashes(
    storage: FileServer, data: st.DataObject
) -> None:
    entry = data.draw(entries(storage))
    cache = DictCache()
    cache.entries[KEY] = entry
    app = reproxy_app(storage.url("/files/small.txt"), extra_headers=[("X-Reproxy-Cache-For", "9")])
    hosts = [f"127.0.0.1:{storage.port}"]
    mw = ReproxyMiddleware(
        app, allow=["/r/"], cache=cache, upstream_hosts=hosts, preserve=["Content-Type", "X-A"]
    )
    result = call(mw, "/r/f", HTTP_HOST="127.0.0.1")
    assert (result.code, result.body) == (200, FILES["small.txt"])
    for name, value in result.headers:
        assert not set(value) & {"\r", "\n", "\x00"}, (name, value)
        assert name.lower() != "set-cookie"
    report = result.environ["wsgi_reproxy.report"]
    assert all(a.url.startswith(storage.base + "/files/small.txt") for a in report.attempts), [
        a.url for a in report.attempts
    ]
    assert result.environ["wsgi_reproxy.cache"] in ("hit", "stored")
