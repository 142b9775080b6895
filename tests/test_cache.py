"""The decision cache, in-process against real file servers (SPEC R8, X-Reproxy-Cache-For).

Every test goes through the WSGI boundary: a counting app behind the middleware, real HTTP
to threaded storage servers on 127.0.0.1.  The clock of :class:`MemoryCache` is the one
thing replaced (expiry is about time passing).  Redis, and servers sharing one, are in
``tests/test_cache_redis.py``.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import BackendApp, call, reproxy_app
from upstreams import FILES, FileServer
from wsgi_reproxy import MemoryCache, RedisCache, ReproxyMiddleware, default_cache_key
from wsgi_reproxy.cache import MAX_ENTRY_BYTES, CacheBackend

SMALL = FILES["small.txt"]


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class DictCache:
    """A backend of the user's own: the three methods, over a dict (R8.1: any object)."""

    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}
        self.ttls: dict[str, int] = {}

    def get(self, key: str) -> bytes | None:
        return self.entries.get(key)

    def set(self, key: str, value: bytes, ttl: int) -> None:
        self.entries[key] = value
        self.ttls[key] = ttl

    def delete(self, key: str) -> None:
        self.entries.pop(key, None)


class FailingCache:
    """A backend whose every call fails, as a Redis that is down does (R8.7)."""

    def __init__(self) -> None:
        self.calls = 0

    def _fail(self, *args: object) -> Any:
        self.calls += 1
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    get = set = delete = _fail


def cached_app(url: str, cache_for: str = "30", **kwargs: Any) -> BackendApp:
    extra = kwargs.pop("extra_headers", [])
    return reproxy_app(url, extra_headers=[("X-Reproxy-Cache-For", cache_for), *extra], **kwargs)


def middleware(app: BackendApp, cache: Any, **options: Any) -> ReproxyMiddleware:
    options.setdefault("preserve", ["Content-Type", "Content-Disposition"])
    return ReproxyMiddleware(app, allow=["/r/"], cache=cache, **options)


def app_calls(app: BackendApp) -> int:
    return app.record.closed


# -- R8.1: honoured only with cache=, never reaches a client ----------------------------


def test_without_a_cache_the_header_is_ignored(file_server: FileServer) -> None:
    app = cached_app(file_server.url("/files/small.txt"))
    mw = ReproxyMiddleware(app, allow=["/r/"])
    for _ in range(2):
        result = call(mw, "/r/f")
        assert (result.code, result.body) == (200, SMALL)
        assert result.header("X-Reproxy-Cache-For") is None
        assert "wsgi_reproxy.cache" not in result.environ
    assert app_calls(app) == 2


@pytest.mark.parametrize("make_cache", [MemoryCache, DictCache], ids=["memory", "own"])
def test_a_decision_is_stored_then_served_without_the_app(
    file_server: FileServer, make_cache: Any
) -> None:
    app = cached_app(file_server.url("/files/small.txt"))
    mw = middleware(app, make_cache())
    first = call(mw, "/r/f")
    second = call(mw, "/r/f")
    assert app_calls(app) == 1  # R8.4: the app is not called on a hit
    assert (first.code, first.body) == (second.code, second.body) == (200, SMALL)
    # preserve included; the storage's Date may have moved on by a second in between
    assert without_date(first.headers) == without_date(second.headers)
    assert second.header("Content-Type") == "application/x-app"
    assert second.header("Content-Disposition") == "attachment; filename=f.bin"
    assert first.header("X-Reproxy-Cache-For") is second.header("X-Reproxy-Cache-For") is None
    assert first.environ["wsgi_reproxy.cache"] == "stored"
    assert second.environ["wsgi_reproxy.cache"] == "hit"
    assert second.environ["wsgi_reproxy.report"].cache == "hit"
    assert second.environ["wsgi_reproxy.url"] == file_server.url("/files/small.txt")
    assert isinstance(make_cache(), CacheBackend)


def test_a_request_without_cache_for_is_a_miss_and_nothing_is_stored(
    file_server: FileServer,
) -> None:
    cache = MemoryCache()
    app = reproxy_app(file_server.url("/files/small.txt"))
    mw = middleware(app, cache)
    assert call(mw, "/r/f").environ["wsgi_reproxy.cache"] == "miss"
    assert call(mw, "/r/f").environ["wsgi_reproxy.cache"] == "miss"
    assert app_calls(app) == 2
    assert len(cache) == 0


def test_a_hit_answers_ranges_and_head_as_the_target_does(file_server: FileServer) -> None:
    app = cached_app(file_server.url("/files/small.txt"))
    mw = middleware(app, MemoryCache())
    call(mw, "/r/f")
    ranged = call(mw, "/r/f", headers={"Range": "bytes=2-5"})
    assert (ranged.code, ranged.body) == (206, SMALL[2:6])
    head = call(mw, "/r/f", method="HEAD")  # GET and HEAD share the entry (R8.3)
    assert (head.code, head.body, head.header("Content-Length")) == (200, b"", str(len(SMALL)))
    assert ranged.environ["wsgi_reproxy.cache"] == head.environ["wsgi_reproxy.cache"] == "hit"
    assert app_calls(app) == 1
    assert file_server.requests[-1].method == "HEAD"


# -- R8.2: what is stored, for how long ------------------------------------------------


def test_the_entry_holds_urls_size_and_the_listed_and_preserved_headers(
    file_server: FileServer,
) -> None:
    cache = DictCache()
    url = file_server.url("/files/small.txt")
    app = cached_app(
        url,
        "30; X-Listed, Etag",
        extra_headers=[
            ("X-Reproxy-Expected-Size", str(len(SMALL))),
            ("X-Listed", "kept"),
            ("X-Other", "not kept"),
            ("Set-Cookie", "session=one-users"),
        ],
    )
    mw = middleware(app, cache, preserve=["Content-Type", "Set-Cookie"])
    call(mw, "/r/f")
    (entry,) = cache.entries.values()
    assert json.loads(entry)["h"] == [
        ["x-reproxy-url", url],
        ["x-reproxy-expected-size", str(len(SMALL))],
        ["Content-Type", "application/x-app"],
        ["X-Listed", "kept"],
    ]
    # a cookie is one user's: never stored, so a hit never hands it to another user
    hit = call(mw, "/r/f")
    assert hit.environ["wsgi_reproxy.cache"] == "hit"
    assert hit.header("Set-Cookie") is None


@pytest.mark.parametrize(("cache_for", "max_age", "ttl"), [("30", 3600, 30), ("7200", 60, 60)])
def test_the_time_kept_is_the_shorter_of_cache_for_and_cache_max_age(
    file_server: FileServer, cache_for: str, max_age: int, ttl: int
) -> None:
    clock = Clock()
    cache = MemoryCache(clock=clock)
    app = cached_app(file_server.url("/files/small.txt"), cache_for)
    mw = middleware(app, cache, cache_max_age=max_age)
    call(mw, "/r/f")
    clock.now += ttl - 0.5
    assert call(mw, "/r/f").environ["wsgi_reproxy.cache"] == "hit"
    clock.now += 1
    assert call(mw, "/r/f").environ["wsgi_reproxy.cache"] == "stored"  # expired: asked again
    assert app_calls(app) == 2


@pytest.mark.parametrize("cache_for", ["0", "-1", "abc", "1.5", "", "30; Bad Name:", "99999999999"])
def test_a_bad_cache_for_stores_nothing_and_still_serves(
    file_server: FileServer, cache_for: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = MemoryCache()
    app = cached_app(file_server.url("/files/small.txt"), cache_for)
    mw = middleware(app, cache)
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        result = call(mw, "/r/f")
    assert (result.code, result.body) == (200, SMALL)
    assert result.environ["wsgi_reproxy.cache"] == "miss"
    assert len(cache) == 0
    assert any("X-Reproxy-Cache-For ignored" in r.getMessage() for r in caplog.records)


def test_a_decision_is_stored_only_once_a_url_answered(file_server: FileServer) -> None:
    cache = MemoryCache()
    app = cached_app(file_server.url("/files/missing.bin"))
    mw = middleware(app, cache)
    assert call(mw, "/r/f").code == 502
    assert len(cache) == 0


def test_an_entry_over_16_kib_is_not_stored(
    file_server: FileServer, caplog: pytest.LogCaptureFixture
) -> None:
    cache = MemoryCache()
    big = "x" * MAX_ENTRY_BYTES
    app = cached_app(file_server.url("/files/small.txt"), extra_headers=[("X-Big", big)])
    mw = middleware(app, cache, preserve=["X-Big"])
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        result = call(mw, "/r/f")
    assert (result.code, result.body, result.header("X-Big")) == (200, SMALL, big)
    assert len(cache) == 0
    assert any("over 16 KiB" in r.getMessage() for r in caplog.records)


# -- R8.3: the key ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers"),
    [("POST", {}), ("PUT", {}), ("GET", {"Authorization": "Bearer secret"})],
    ids=["post", "put", "authorization"],
)
def test_the_default_key_leaves_out_other_methods_and_authorized_requests(
    file_server: FileServer, method: str, headers: dict[str, str]
) -> None:
    cache = MemoryCache()
    app = cached_app(file_server.url("/files/small.txt"))
    mw = middleware(app, cache)
    call(mw, "/r/f")  # a GET stores the decision
    result = call(mw, "/r/f", method=method, headers=headers)
    assert result.environ["wsgi_reproxy.cache"] == "miss"  # neither served from the cache
    assert app_calls(app) == 2
    assert len(cache) == 1  # ... nor stored


def test_the_default_key_is_host_script_path_and_query() -> None:
    environ = {"REQUEST_METHOD": "GET", "HTTP_HOST": "example.org", "SCRIPT_NAME": "/app"}
    environ |= {"PATH_INFO": "/r/f", "QUERY_STRING": "v=2"}
    assert default_cache_key(environ) == "example.org/app/r/f?v=2"
    assert default_cache_key(environ | {"QUERY_STRING": ""}) == "example.org/app/r/f"
    no_host = {"SERVER_NAME": "h", "SERVER_PORT": "81"} | environ
    del no_host["HTTP_HOST"]
    assert default_cache_key(no_host) == "h:81/app/r/f?v=2"


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ({"PATH_INFO": "/a?b"}, {"PATH_INFO": "/a", "QUERY_STRING": "b"}),
        ({"HTTP_HOST": "h/files", "PATH_INFO": "/a"}, {"HTTP_HOST": "h", "PATH_INFO": "/files/a"}),
    ],
    ids=["decoded-question-mark", "slash-in-host"],
)
def test_the_default_key_is_unambiguous(one: dict[str, str], other: dict[str, str]) -> None:
    base = {"REQUEST_METHOD": "GET", "HTTP_HOST": "h", "SCRIPT_NAME": "", "QUERY_STRING": ""}
    assert default_cache_key(base | one) != default_cache_key(base | other)


def test_reproxy_headers_listed_in_cache_for_are_not_stored(file_server: FileServer) -> None:
    """The directive is stored as the directive; listing its own headers changes nothing
    (an entry holding them would be refused on the way back, and stored again forever)."""
    cache = DictCache()
    app = cached_app(file_server.url("/files/small.txt"), "30; X-Reproxy-Cache-For X-Reproxy-Url")
    mw = middleware(app, cache)
    assert call(mw, "/r/f").environ["wsgi_reproxy.cache"] == "stored"
    assert call(mw, "/r/f").environ["wsgi_reproxy.cache"] == "hit"
    (entry,) = cache.entries.values()
    assert [name for name, _ in json.loads(entry)["h"]] == [
        "x-reproxy-url",
        "Content-Type",
        "Content-Disposition",
    ]


def test_queries_and_hosts_get_entries_of_their_own(file_server: FileServer) -> None:
    app = cached_app(file_server.url("/files/small.txt"))
    mw = middleware(app, MemoryCache())
    call(mw, "/r/f?a=1")
    assert call(mw, "/r/f?a=2").environ["wsgi_reproxy.cache"] == "stored"
    assert call(mw, "/r/f?a=1", HTTP_HOST="other.example").environ["wsgi_reproxy.cache"] == "stored"
    assert call(mw, "/r/f?a=1").environ["wsgi_reproxy.cache"] == "hit"


def test_a_cache_key_of_the_users_own_separates_users(file_server: FileServer) -> None:
    def per_user(environ: dict[str, Any]) -> str | None:
        user = environ.get("HTTP_X_USER")
        return None if user is None else f"{user}:{environ['PATH_INFO']}"

    app = cached_app(file_server.url("/files/small.txt"))
    mw = middleware(app, MemoryCache(), cache_key=per_user)
    assert call(mw, "/r/f", headers={"X-User": "ann"}).environ["wsgi_reproxy.cache"] == "stored"
    assert call(mw, "/r/f", headers={"X-User": "bob"}).environ["wsgi_reproxy.cache"] == "stored"
    assert call(mw, "/r/f", headers={"X-User": "ann"}).environ["wsgi_reproxy.cache"] == "hit"
    assert call(mw, "/r/f").environ["wsgi_reproxy.cache"] == "miss"  # None: not cached
    assert app_calls(app) == 3


@pytest.mark.parametrize("bad", [lambda environ: 1 / 0, lambda environ: 42], ids=["raises", "int"])
def test_a_cache_key_that_fails_leaves_the_request_uncached(
    file_server: FileServer, bad: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = cached_app(file_server.url("/files/small.txt"))
    mw = middleware(app, MemoryCache(), cache_key=bad)
    with caplog.at_level(logging.ERROR, "wsgi_reproxy"):
        result = call(mw, "/r/f")
    assert (result.code, result.body, result.environ["wsgi_reproxy.cache"]) == (200, SMALL, "miss")
    assert any("cache_key" in r.getMessage() for r in caplog.records)


def test_a_very_long_key_is_hashed(file_server: FileServer) -> None:
    cache = DictCache()
    app = cached_app(file_server.url("/files/small.txt"))
    mw = middleware(app, cache)
    call(mw, "/r/f?" + "q" * 5000)
    (key,) = cache.entries
    assert key.startswith("sha256:")
    assert len(key) == 7 + 64
    assert call(mw, "/r/f?" + "q" * 5000).environ["wsgi_reproxy.cache"] == "hit"


# -- R8.5: an entry read back is outside input ------------------------------------------


def _entry(*headers: tuple[str, str]) -> bytes:
    return json.dumps({"v": 1, "h": [list(h) for h in headers]}).encode()


CORRUPT = {
    "not-json": b"\x00\xffgarbage",
    "other-version": json.dumps({"v": 2, "h": [["x-reproxy-url", "http://x/"]]}).encode(),
    "not-a-list": json.dumps({"v": 1, "h": "x-reproxy-url"}).encode(),
    "crlf-in-a-value": _entry(("x-reproxy-url", "{url}"), ("Content-Type", "a\r\nSet-Cookie: x")),
    "bad-name": _entry(("x-reproxy-url", "{url}"), ("Bad Name", "v")),
    "set-cookie": _entry(("x-reproxy-url", "{url}"), ("Set-Cookie", "session=stolen")),
    "no-url-first": _entry(("Content-Type", "a/b"), ("x-reproxy-url", "{url}")),
    "host-not-allowed": _entry(("x-reproxy-url", "http://169.254.169.254/latest/meta-data/")),
    "bad-url": _entry(("x-reproxy-url", "http://127.0.0.1:1/../../etc/passwd")),
    "bad-size": _entry(("x-reproxy-url", "{url}"), ("x-reproxy-expected-size", "-5")),
    "too-big": b"{" + b" " * MAX_ENTRY_BYTES + b"}",
}


@pytest.mark.parametrize("name", list(CORRUPT))
def test_a_corrupt_or_disallowed_entry_is_deleted_and_the_app_asked(
    file_server: FileServer, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = DictCache()
    url = file_server.url("/files/small.txt")
    app = cached_app(url, "30; X-Listed", extra_headers=[("X-Listed", "fresh")])
    hosts = [f"127.0.0.1:{file_server.port}"]
    mw = middleware(app, cache, upstream_hosts=hosts, preserve=["Content-Type", "X-Listed"])
    key = f"127.0.0.1{'/r/f'}"
    cache.entries[key] = CORRUPT[name].replace(b"{url}", url.encode())
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        result = call(mw, "/r/f", HTTP_HOST="127.0.0.1")
    assert (result.code, result.body) == (200, SMALL)
    assert result.header("Set-Cookie") is None
    assert result.header("X-Listed") == "fresh"  # the app's own answer
    assert app_calls(app) == 1
    assert any("refused and deleted" in r.getMessage() for r in caplog.records)
    assert json.loads(cache.entries[key])["h"][0] == ["x-reproxy-url", url]  # stored afresh


@pytest.mark.parametrize("value", ["a str", bytearray(b"{}"), 42], ids=["str", "bytearray", "int"])
def test_a_backend_returning_something_else_than_bytes_is_refused(
    file_server: FileServer, value: Any
) -> None:
    cache = DictCache()
    app = cached_app(file_server.url("/files/small.txt"))
    mw = middleware(app, cache)
    cache.entries["127.0.0.1/r/f"] = value
    result = call(mw, "/r/f", HTTP_HOST="127.0.0.1")
    assert (result.code, result.body, app_calls(app)) == (200, SMALL, 1)
    assert result.environ["wsgi_reproxy.cache"] == "stored"


def test_a_hot_entry_is_checked_once_and_a_bad_one_every_time_it_comes_back(
    file_server: FileServer,
) -> None:
    cache = DictCache()
    app = cached_app(file_server.url("/files/small.txt"))
    mw = middleware(app, cache)
    call(mw, "/r/f")
    for _ in range(3):
        assert call(mw, "/r/f").environ["wsgi_reproxy.cache"] == "hit"
    decisions = mw.settings.cache
    assert decisions is not None
    assert decisions._checked.cache_info().misses == 1  # the same bytes, checked once
    planted = _entry(("x-reproxy-url", "http://169.254.169.254/"))
    for _ in range(2):  # refused each time it is written back, though remembered
        cache.entries["127.0.0.1/r/f"] = planted
        result = call(mw, "/r/f", HTTP_HOST="127.0.0.1")
        assert result.environ["wsgi_reproxy.cache"] == "stored"
        assert cache.entries["127.0.0.1/r/f"] != planted
    assert app_calls(app) == 3


def test_an_entry_with_more_urls_than_max_urls_is_cut_like_a_directive(
    file_server: FileServer,
) -> None:
    cache = DictCache()
    good, gone = file_server.url("/files/small.txt"), file_server.url("/files/missing.bin")
    app = cached_app(good)
    mw = middleware(app, cache, max_urls=1)
    cache.entries["127.0.0.1/r/f"] = _entry(("x-reproxy-url", f"{gone} {good}"))
    result = call(mw, "/r/f", HTTP_HOST="127.0.0.1")
    # the one URL considered fails: the entry goes and the app answers (R8.6)
    assert (result.code, result.body, app_calls(app)) == (200, SMALL, 1)
    assert [r.path for r in file_server.requests] == ["/files/missing.bin", "/files/small.txt"]


# -- R8.6: a cached decision whose URLs all fail ----------------------------------------


def test_a_moved_file_is_asked_of_the_app_in_the_same_request(
    file_server: FileServer, caplog: pytest.LogCaptureFixture
) -> None:
    cache = MemoryCache()
    app = cached_app(file_server.url("/files/small.txt"))
    mw = middleware(app, cache)
    call(mw, "/r/f")
    # the file moves: the kept decision now points where it is no more
    app.headers = [
        (n, file_server.url("/files/1m.bin") if n == "X-Reproxy-Url" else v) for n, v in app.headers
    ]
    cache.set(
        default_cache_key(call(mw, "/r/f").environ) or "",
        _entry(("x-reproxy-url", file_server.url("/files/missing.bin"))),
        30,
    )
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        result = call(mw, "/r/f")
    assert (result.code, result.body) == (200, FILES["1m.bin"])
    assert result.environ["wsgi_reproxy.cache"] == "stored"
    report = result.environ["wsgi_reproxy.report"]
    assert [a.outcome for a in report.attempts] == ["failed", "served"]
    assert any("every URL failed" in r.getMessage() for r in caplog.records)
    assert call(mw, "/r/f").environ["wsgi_reproxy.cache"] == "hit"


# -- R8.7: a failing backend, and the bounds --------------------------------------------


def test_a_failing_backend_never_fails_a_request(
    file_server: FileServer, caplog: pytest.LogCaptureFixture
) -> None:
    cache = FailingCache()
    app = cached_app(file_server.url("/files/small.txt"))
    mw = middleware(app, cache)
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        results = [call(mw, "/r/f") for _ in range(20)]
    assert all((r.code, r.body) == (200, SMALL) for r in results)
    assert {r.environ["wsgi_reproxy.cache"] for r in results} == {"miss"}
    warnings = [r for r in caplog.records if "decision cache" in r.getMessage()]
    assert len(warnings) == 1  # rate limited
    assert "ConnectionError" in warnings[0].getMessage()
    assert cache.calls == 1  # left alone for a second after failing: no timeout per request


def test_a_failing_backend_is_asked_again_after_a_pause(
    file_server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wsgi_reproxy import decision_cache

    monkeypatch.setattr(decision_cache, "RETRY_AFTER_FAILURE", 0.0)
    cache = FailingCache()
    mw = middleware(cached_app(file_server.url("/files/small.txt")), cache)
    for _ in range(3):
        assert call(mw, "/r/f").code == 200
    assert cache.calls == 6  # a get and a set per request: asked again each time


def test_memory_cache_keeps_maxsize_entries_least_recently_used_out() -> None:
    cache = MemoryCache(maxsize=2)
    cache.set("a", b"1", 30)
    cache.set("b", b"2", 30)
    assert cache.get("a") == b"1"  # a is now the most recently used
    cache.set("c", b"3", 30)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (b"1", None, b"3")
    assert len(cache) == 2
    cache.delete("a")
    cache.delete("nothing")
    assert cache.get("a") is None
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError, match="over 16384"):
        cache.set("big", b"x" * (MAX_ENTRY_BYTES + 1), 30)
    assert repr(MemoryCache(5)) == "MemoryCache(maxsize=5)"


@pytest.mark.parametrize("maxsize", [0, -1, 1.5, True, "10"])
def test_memory_cache_refuses_a_bad_maxsize(maxsize: Any) -> None:
    with pytest.raises(ValueError, match="maxsize must be a positive int"):
        MemoryCache(maxsize)


# -- configuration ---------------------------------------------------------------------


def test_bad_cache_options_are_refused_at_start_up() -> None:
    app = BackendApp()
    with pytest.raises(TypeError, match="has no get, set, delete"):
        ReproxyMiddleware(app, allow=["/r/"], cache=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cache_key needs cache="):
        ReproxyMiddleware(app, allow=["/r/"], cache_key=default_cache_key)
    with pytest.raises(TypeError, match="cache_key must be a callable"):
        ReproxyMiddleware(app, allow=["/r/"], cache=MemoryCache(), cache_key="host")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cannot be called with one argument"):
        ReproxyMiddleware(app, allow=["/r/"], cache=MemoryCache(), cache_key=lambda: "k")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cache_max_age"):
        ReproxyMiddleware(app, allow=["/r/"], cache=MemoryCache(), cache_max_age=0)
    with pytest.raises(TypeError, match=r"client must be a redis\.Redis"):
        RedisCache(object())


def test_the_cache_options_show_in_repr() -> None:
    def by_user(environ: dict[str, Any]) -> str | None:
        return None

    mw = ReproxyMiddleware(BackendApp(), allow=["/r/"], cache=MemoryCache(7), cache_max_age=60)
    assert repr(mw).endswith("cache=MemoryCache(maxsize=7), cache_max_age=60)")
    keyed = ReproxyMiddleware(BackendApp(), allow=["/r/"], cache=MemoryCache(), cache_key=by_user)
    assert f"cache_key={by_user!r}" in repr(keyed)
    assert "cache=" not in repr(ReproxyMiddleware(BackendApp(), allow=["/r/"]))


def without_date(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers if name.lower() != "date"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12), st.text(max_size=20))
def test_the_default_key_quotes_as_urllib_does(host: str, path: str) -> None:
    """Hosts and paths that need no quoting skip it; the key is the same either way."""
    environ = {"REQUEST_METHOD": "GET", "HTTP_HOST": host or "h", "PATH_INFO": path}
    expected = quote(host or "h", safe=":[]") + quote(path, safe="/")
    assert default_cache_key(environ) == expected
