"""Configuration: SPEC R1.1 and R1.2 (bad options raise in __init__, with what to fix)."""

from __future__ import annotations

import threading

import pytest
import urllib3

from wsgi_reproxy import DEFAULT_FORWARD, ReproxyMiddleware


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"allow": "/x"}, TypeError, "allow must be a list"),
        ({"preserve": "Content-Type"}, TypeError, "preserve must be a list"),
        ({"deny": b"/x"}, TypeError, "deny must be a list"),
        ({"forward": "Range"}, TypeError, "forward must be a list"),
        ({"upstream_hosts": "store-1"}, TypeError, "upstream_hosts must be a list"),
        ({"allow": [42]}, TypeError, "allow: a rule must be"),
        ({"allow": 5}, TypeError, "allow must be a list"),
        ({"chunk_size": 0}, ValueError, "chunk_size must be positive"),
        ({"chunk_size": -1}, ValueError, "chunk_size"),
        ({"chunk_size": 1.5}, TypeError, "chunk_size must be an int"),
        ({"chunk_size": True}, TypeError, "chunk_size must be an int"),
        ({"max_urls": 0}, ValueError, "max_urls must be positive"),
        ({"timeout": 0}, ValueError, "timeout must be positive"),
        ({"timeout": float("inf")}, ValueError, "at most"),
        ({"timeout": 1e300}, ValueError, "at most"),
        ({"timeout": float("nan")}, ValueError, "timeout must be positive"),
        ({"timeout": urllib3.Timeout(connect=2, read=float("inf"))}, ValueError, "read must"),
        ({"timeout": urllib3.Timeout(connect=1e300, read=2)}, ValueError, "connect must"),
        ({"timeout": urllib3.Timeout(total=float("inf"))}, ValueError, "total must"),
        ({"timeout": "5"}, TypeError, "timeout must be a number"),
        ({"timeout": True}, TypeError, "timeout"),
        ({"pool": object()}, TypeError, "pool must be a urllib3.PoolManager"),
        ({"preserve": ["Content-Length"]}, ValueError, "preserve may not name 'Content-Length'"),
        ({"preserve": ["transfer-encoding"]}, ValueError, "preserve may not name"),
        ({"preserve": ["Content-Range"]}, ValueError, "preserve may not name"),
        ({"preserve": ["Content-Encoding"]}, ValueError, "preserve may not name"),
        ({"preserve": ["Connection"]}, ValueError, "preserve may not name"),
        ({"preserve": ["Keep-Alive"]}, ValueError, "preserve may not name"),
        ({"preserve": ["X-Reproxy-Url"]}, ValueError, "preserve may not name"),
        ({"preserve": ["Bad Name"]}, ValueError, "is not a header name"),
        ({"forward": ["Host"]}, ValueError, "forward may not name 'Host'"),
        ({"forward": ["cookie"]}, ValueError, "forward may not name"),
        ({"forward": ["Authorization"]}, ValueError, "forward may not name"),
        ({"forward": ["TE"]}, ValueError, "forward may not name"),
        ({"forward": ["Upgrade"]}, ValueError, "forward may not name"),
        ({"forward": [None]}, ValueError, "is not a header name"),
        ({"resume": "yes"}, TypeError, "resume must be True or False"),
        ({"refuse_local": 1}, TypeError, "refuse_local must be True or False"),
        ({"pool_maxsize": 0}, ValueError, "pool_maxsize must be positive"),
        ({"pool_maxsize": "8"}, TypeError, "pool_maxsize must be an int"),
        ({"pool_block": "no"}, TypeError, "pool_block must be True or False"),
        (
            {"pool": urllib3.PoolManager(), "pool_maxsize": 8},
            ValueError,
            "size the pool you pass instead",
        ),
        ({"pool": urllib3.PoolManager(), "pool_block": True}, ValueError, "pool_block"),
        ({"pool_block": None}, TypeError, "pool_block must be True or False"),
    ],
)
def test_bad_configuration_raises_in_init(kwargs, error, message):
    """R1.1: bad configuration raises TypeError/ValueError in __init__, never per request."""
    with pytest.raises(error, match=message):
        ReproxyMiddleware(app, **kwargs)


def test_app_must_be_callable():
    with pytest.raises(TypeError, match="WSGI callable"):
        ReproxyMiddleware("app")  # type: ignore[arg-type]


def test_options_after_preserve_are_keyword_only():
    """R1.1: everything after preserve is keyword-only."""
    with pytest.raises(TypeError):
        ReproxyMiddleware(app, ["/x"], ["Content-Type"], ["/y"])  # type: ignore[misc]


def test_immutable_after_construction():
    """R1.1: the instance is immutable after construction."""
    mw = ReproxyMiddleware(app, allow=["/x"])
    with pytest.raises(AttributeError, match="immutable"):
        mw.chunk_size = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        mw.new_attribute = 1  # type: ignore[attr-defined]


def test_defaults():
    """R1.2: connect 5 s, read 30 s; an own pool with retries=False; forward default."""
    mw = ReproxyMiddleware(app)
    assert mw.timeout.connect_timeout == 5.0
    assert mw.timeout.read_timeout == 30.0
    assert isinstance(mw.pool, urllib3.PoolManager)
    assert mw.pool.connection_pool_kw["retries"].total is False
    assert mw.pool.connection_pool_kw["maxsize"] >= 16
    assert mw.forward == DEFAULT_FORWARD
    assert mw.chunk_size == 1024 * 1024
    assert mw.max_urls == 8


def test_number_timeout_sets_connect_and_read():
    """R1.2: a number is seconds for both connect and read."""
    mw = ReproxyMiddleware(app, timeout=2.5)
    assert (mw.timeout.connect_timeout, mw.timeout.read_timeout) == (2.5, 2.5)
    custom = urllib3.Timeout(connect=1, read=7)
    assert ReproxyMiddleware(app, timeout=custom).timeout is custom


def test_pool_size_options_shape_the_own_pool():
    """R1.1: pool_maxsize and pool_block size the middleware's own pool, guarded or not."""
    for refuse_local in (False, True):
        mw = ReproxyMiddleware(app, pool_maxsize=8, pool_block=True, refuse_local=refuse_local)
        assert mw.pool.connection_pool_kw["maxsize"] == 8
        assert mw.pool.connection_pool_kw["block"] is True
    assert ReproxyMiddleware(app).pool.connection_pool_kw["block"] is False


def test_shared_pool_is_used_as_given():
    """R1.2: a PoolManager passed in is shared, not copied."""
    pool = urllib3.PoolManager()
    try:
        assert ReproxyMiddleware(app, pool=pool).pool is pool
    finally:
        pool.clear()


def test_collections_of_any_kind_are_accepted():
    mw = ReproxyMiddleware(
        app,
        allow=("/a", "/b"),
        preserve={"Content-Type"},
        deny=iter(["/a/x"]),
        upstream_hosts=frozenset({"h"}),
    )
    assert mw.allow.rules == ("/a", "/b")
    assert mw.preserve == ("Content-Type",)
    assert mw.enabled({"PATH_INFO": "/a/y"}) is True
    assert mw.enabled({"PATH_INFO": "/a/x"}) is False


def test_one_instance_is_shared_across_threads():
    """R1.1: safe to share: per-request state never lives on the instance."""
    mw = ReproxyMiddleware(app, allow=["/x"])
    results = []

    def call():
        for _ in range(200):
            out: list[str] = []
            body = mw(
                {"PATH_INFO": "/y", "REQUEST_METHOD": "GET"},
                lambda s, h, e=None, out=out: out.append(s),
            )
            results.append((out[0], b"".join(body)))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [("200 OK", b"ok")] * 800
