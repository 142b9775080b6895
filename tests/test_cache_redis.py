"""The decision cache on a real Redis: RedisCache itself, the middleware on it, and two
servers sharing one Redis while it goes down and comes back (SPEC R8.1, R8.5, R8.7).

No fake Redis: a ``redis-server`` started on a free port (tests/redis_server.py).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import pytest
import redis
import urllib3

from harness import call, reproxy_app
from redis_server import RedisServer
from upstreams import FILES, FileServer
from wsgi_reproxy import RedisCache, ReproxyMiddleware
from wsgi_reproxy.cache import MAX_ENTRY_BYTES
from wsgi_servers import APPS, ServerProcess

SMALL = FILES["small.txt"]


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.close()


@pytest.fixture
def redis_cache(redis_server: RedisServer) -> Iterator[RedisCache]:
    client = redis_server.client()
    client.flushdb()
    yield RedisCache(client, prefix="t:")
    client.close()


def test_redis_cache_keeps_values_for_their_ttl_under_its_prefix(
    redis_server: RedisServer, redis_cache: RedisCache
) -> None:
    redis_cache.set("k", b"v", 30)
    raw = redis_server.client()
    assert raw.get("t:k") == b"v"
    assert 28 <= raw.ttl("t:k") <= 30  # expiry is Redis's own: SET ... EX
    assert redis_cache.get("k") == b"v"
    assert redis_cache.get("missing") is None
    redis_cache.delete("k")
    redis_cache.delete("k")
    assert redis_cache.get("k") is None
    with pytest.raises(ValueError, match="over 16384"):
        redis_cache.set("big", b"x" * (MAX_ENTRY_BYTES + 1), 30)
    raw.close()


def test_a_client_that_decodes_responses_still_gets_bytes(redis_server: RedisServer) -> None:
    client = redis_server.client(decode_responses=True)
    cache = RedisCache(client, prefix="t:", local_seconds=0)
    cache.set("k", b'{"v":1}', 30)
    assert cache.get("k") == b'{"v":1}'
    client.close()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_process_keeps_what_it_read_for_local_seconds(redis_server: RedisServer) -> None:
    """Two workers on one Redis: what one read it serves without Redis for a second; a
    delete through either is seen by the other once that second is over."""
    raw = redis_server.client()
    raw.flushdb()
    clock = Clock()
    one = RedisCache(redis_server.client(), prefix="t:", clock=clock)
    two = RedisCache(redis_server.client(), prefix="t:", clock=clock)
    one.set("k", b"v1", 30)
    assert two.get("k") == b"v1"  # from Redis, now kept by two as well
    raw.set("t:k", b"v2")  # changed behind both
    assert (one.get("k"), two.get("k")) == (b"v1", b"v1")  # within the second: kept
    clock.now += 1.01
    assert (one.get("k"), two.get("k")) == (b"v2", b"v2")  # then read again
    one.delete("k")
    assert one.get("k") is None  # its own delete: at once
    assert two.get("k") == b"v2"  # the other's: within the second
    clock.now += 1.01
    assert two.get("k") is None
    redis_server.stop()
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            two.get("k")  # nothing kept: Redis is asked, and it is down
    finally:
        redis_server.start()
    for cache in (one, two):
        cache.client.close()
    raw.close()


def test_local_seconds_zero_asks_redis_every_time(redis_server: RedisServer) -> None:
    raw = redis_server.client()
    cache = RedisCache(redis_server.client(), prefix="t:", local_seconds=0)
    cache.set("k", b"v1", 30)
    raw.set("t:k", b"v2")
    assert cache.get("k") == b"v2"
    with pytest.raises(ValueError, match="local_seconds must be 0 or more"):
        RedisCache(raw, local_seconds=-1)
    with pytest.raises(TypeError, match="local_seconds must be a number"):
        RedisCache(raw, local_seconds="1")  # type: ignore[arg-type]
    cache.client.close()
    raw.close()


def test_from_url_builds_a_client_with_short_timeouts(redis_server: RedisServer) -> None:
    cache = RedisCache.from_url(redis_server.url, prefix="p:")
    kwargs = cache.client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.25
    cache.set("k", b"v", 5)
    assert cache.get("k") == b"v"
    assert repr(cache).startswith("RedisCache(")
    assert "prefix='p:'" in repr(cache)
    cache.client.close()


def test_the_middleware_stores_and_hits_through_redis(
    file_server: FileServer, redis_server: RedisServer, redis_cache: RedisCache
) -> None:
    app = reproxy_app(
        file_server.url("/files/small.txt"), extra_headers=[("X-Reproxy-Cache-For", "45")]
    )
    mw = ReproxyMiddleware(app, allow=["/r/"], preserve=["Content-Type"], cache=redis_cache)
    first, second = call(mw, "/r/f"), call(mw, "/r/f")
    assert (first.body, second.body) == (SMALL, SMALL)
    assert (first.environ["wsgi_reproxy.cache"], second.environ["wsgi_reproxy.cache"]) == (
        "stored",
        "hit",
    )
    assert app.record.closed == 1
    raw = redis_server.client()
    (key,) = raw.keys("t:*")
    assert 40 <= raw.ttl(key) <= 45
    raw.close()


def test_an_entry_written_into_redis_by_someone_else_is_checked(
    file_server: FileServer,
    redis_server: RedisServer,
    redis_cache: RedisCache,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """R8.5: Redis is shared; an entry pointing outside upstream_hosts is refused."""
    app = reproxy_app(
        file_server.url("/files/small.txt"), extra_headers=[("X-Reproxy-Cache-For", "45")]
    )
    hosts = [f"127.0.0.1:{file_server.port}"]
    mw = ReproxyMiddleware(app, allow=["/r/"], cache=redis_cache, upstream_hosts=hosts)
    planted = {"v": 1, "h": [["x-reproxy-url", "http://169.254.169.254/latest/meta-data/"]]}
    raw = redis_server.client()
    raw.set("t:127.0.0.1/r/f", json.dumps(planted))
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        result = call(mw, "/r/f")
    assert (result.code, result.body, app.record.closed) == (200, SMALL, 1)
    assert any("refused and deleted" in r.getMessage() for r in caplog.records)
    stored = json.loads(raw.get("t:127.0.0.1/r/f"))
    assert stored["h"][0] == ["x-reproxy-url", file_server.url("/files/small.txt")]
    raw.close()


# -- two servers, one Redis ------------------------------------------------------------


def _calls(client: urllib3.PoolManager, server: ServerProcess) -> int:
    return int(client.request("GET", server.base + "/calls").data)


# The servers stand behind one name, as a load balancer's backends do: the default key
# holds the Host header, and it is the same whichever server answers.
SITE = {"Host": "files.example"}


def test_two_servers_share_decisions_and_survive_redis_going_away(
    file_server: FileServer, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server = RedisServer()
    env = {"RP_STORAGE": file_server.base, "RP_REDIS": redis_server.url}
    try:
        with (
            ServerProcess(
                "gunicorn-gthread", env, app="cacheapp:application", chdir=APPS, ready_path="/calls"
            ) as one,
            ServerProcess(
                "gunicorn-gthread", env, app="cacheapp:application", chdir=APPS, ready_path="/calls"
            ) as two,
            urllib3.PoolManager(retries=False, timeout=10) as client,
        ):
            # a decision stored through one server is a hit through the other
            assert client.request("GET", one.base + "/r/small.txt", headers=SITE).data == SMALL
            for _ in range(3):
                assert client.request("GET", two.base + "/r/small.txt", headers=SITE).data == SMALL
            assert (_calls(client, one), _calls(client, two)) == (1, 0)

            # Redis goes away: every request is still served (the view is asked again)
            redis_server.stop()
            started = time.monotonic()
            for server in (one, two) * 10:
                response = client.request("GET", server.base + "/r/1m.bin", headers=SITE)
                assert (response.status, response.data) == (200, FILES["1m.bin"])
            assert time.monotonic() - started < 10  # no request waits long for Redis
            assert _calls(client, one) + _calls(client, two) == 1 + 20
            for server in (one, two):
                warnings = server.output().count("decision cache")
                assert 1 <= warnings <= 2, server.output()  # bounded: once a minute

            # Redis comes back (empty): decisions are stored and shared again
            redis_server.start()
            time.sleep(1.2)  # the pause after a failure
            assert (
                client.request("GET", one.base + "/r/empty.bin", headers=SITE).data
                == FILES["empty.bin"]
            )
            before = _calls(client, two)
            assert (
                client.request("GET", two.base + "/r/empty.bin", headers=SITE).data
                == FILES["empty.bin"]
            )
            assert _calls(client, two) == before
    finally:
        redis_server.close()
