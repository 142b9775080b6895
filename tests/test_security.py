"""Security: SSRF, spoofing and leaks (issue: never lose, leak or fake a byte, section 5)."""

from __future__ import annotations

import logging

import pytest
import urllib3

from harness import BackendApp, call, reproxy_app
from upstreams import FILES
from wsgi_reproxy import ReproxyMiddleware, ReproxyPoolManager
from wsgi_reproxy.transport.guard import is_local_address

SMALL = FILES["small.txt"]


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("169.254.169.254", True),
        ("fe80::1", True),
        ("fe80::1%eth0", True),
        ("0.0.0.0", True),
        ("::ffff:127.0.0.1", True),
        ("fd00:ec2::254", True),  # AWS's IPv6 metadata service
        ("100.100.100.200", True),  # Alibaba Cloud's metadata service
        ("::ffff:100.100.100.200", True),
        ("100.100.100.201", False),
        ("10.1.2.3", False),
        ("192.168.1.1", False),
        ("93.184.216.34", False),
        ("fd00::1", False),
    ],
)
def test_local_addresses(address, local):
    assert is_local_address(address) is local


def test_refuse_local_refuses_loopback_targets(file_server, caplog):
    """refuse_local: a name or literal that reaches 127.0.0.1 is refused before any request."""
    for url in (
        file_server.url("/files/small.txt"),
        f"http://localhost:{file_server.port}/files/small.txt",
    ):
        mw = ReproxyMiddleware(reproxy_app(url), allow=["/r/"], refuse_local=True, timeout=2)
        with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
            result = call(mw, "/r/f")
        mw.pool.clear()
        assert result.code == 502
    assert file_server.requests == []
    assert any("local address" in r.getMessage() for r in caplog.records)


def test_refuse_local_allows_addresses_named_in_upstream_hosts(file_server):
    """...unless upstream_hosts names the address itself."""
    url = f"http://localhost:{file_server.port}/files/small.txt"
    mw = ReproxyMiddleware(
        reproxy_app(url),
        allow=["/r/"],
        refuse_local=True,
        timeout=2,
        upstream_hosts=["localhost:*", f"127.0.0.1:{file_server.port}"],
    )
    try:
        assert call(mw, "/r/f").body == SMALL
    finally:
        mw.pool.clear()


@pytest.mark.parametrize(
    "pool", [urllib3.PoolManager(), ReproxyPoolManager()], ids=["PoolManager", "unguarded"]
)
def test_refuse_local_needs_a_pool_that_checks_addresses(pool):
    """A pool that does not check addresses is refused, with the way to build one that does."""
    with pytest.raises(ValueError, match=r"ReproxyPoolManager\(refuse_local=True"):
        ReproxyMiddleware(BackendApp(), refuse_local=True, pool=pool)


def test_refuse_local_takes_a_guarded_pool_of_ones_own():
    pool = ReproxyPoolManager(refuse_local=True, upstream_hosts=["127.0.0.1:8080"])
    assert ReproxyMiddleware(BackendApp(), refuse_local=True, pool=pool).pool is pool


def test_a_guarded_pool_refuses_local_targets_whatever_the_middleware_says(file_server):
    """The pool does the checking: a middleware without refuse_local still gets refusals,
    and the named address still goes through."""
    url = file_server.url("/files/small.txt")
    refusing = ReproxyPoolManager(refuse_local=True, retries=False)
    allowing = ReproxyPoolManager(
        refuse_local=True, upstream_hosts=[f"127.0.0.1:{file_server.port}"]
    )
    try:
        refused = call(ReproxyMiddleware(reproxy_app(url), allow=["/r/"], pool=refusing), "/r/f")
        served = call(ReproxyMiddleware(reproxy_app(url), allow=["/r/"], pool=allowing), "/r/f")
    finally:
        refusing.clear()
        allowing.clear()
    assert refused.code == 502
    assert (served.code, served.body) == (200, SMALL)
    assert len(file_server.requests) == 1


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"refuse_local": 1}, TypeError, "refuse_local must be True or False"),
        ({"upstream_hosts": ["127.0.0.1:80"]}, ValueError, "without refuse_local"),
        ({"refuse_local": True, "upstream_hosts": "127.0.0.1"}, TypeError, "list of values"),
        ({"refuse_local": True, "upstream_hosts": ["127.0.0.1:x"]}, ValueError, "bad port"),
    ],
)
def test_pool_refuse_local_options_are_checked(options, error, message):
    with pytest.raises(error, match=message):
        ReproxyPoolManager(**options)


@pytest.mark.parametrize(
    ("pattern", "allowed"),
    [
        ("127.0.0.1:{port}", True),
        ("127.0.0.1:*", True),
        ("*:*", False),
        ("*:{port}", False),
        ("127.0.0.*:{port}", False),
        ("127.0.0.?:*", False),
        ("1*:*", False),
    ],
)
def test_refuse_local_lets_through_only_an_address_named_without_wildcards(
    file_server, pattern, allowed
):
    """A wildcard host pattern allows names, but names no address: ``"*:*"`` must not
    switch refuse_local off (169.254.169.254 would be one of the hosts it matches)."""
    url = file_server.url("/files/small.txt")
    hosts = [pattern.format(port=file_server.port)]
    mw = ReproxyMiddleware(
        reproxy_app(url), allow=["/r/"], refuse_local=True, timeout=2, upstream_hosts=hosts
    )
    try:
        result = call(mw, "/r/f")
    finally:
        mw.pool.clear()
    assert (result.code, result.body) == ((200, SMALL) if allowed else (502, result.body))
    assert len(file_server.requests) == (1 if allowed else 0)


def test_refuse_local_guards_https_too(file_server):
    """The guard sits in the connection, before TLS: https to a local port is refused."""
    url = f"https://127.0.0.1:{file_server.port}/files/small.txt"
    mw = ReproxyMiddleware(reproxy_app(url), allow=["/r/"], refuse_local=True, timeout=2)
    try:
        assert call(mw, "/r/f").code == 502
    finally:
        mw.pool.clear()
    assert file_server.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://STORE-1.INTERNAL./f",
        "http://store-1.internal:80/f",
        "https://store-1.internal/f",
    ],
)
def test_upstream_hosts_normalises_before_matching(url):
    """Upper case, trailing dots and explicit default ports all name the same host."""
    from wsgi_reproxy.directive import HostPatterns, check_url

    assert check_url(url, HostPatterns(["store-*.internal"])) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://store-1.internal@127.0.0.1/f",  # userinfo hiding the real host
        "http://127.0.0.1#@store-1.internal/f",  # fragment trick
        "http://store-1.internal%2f@127.0.0.1/",  # encoded slash in userinfo
        "http://%73tore-1.internal/f",  # percent-encoded host
        "http://[::1]/f",
        "http://0x7f000001/f",
        "http://2130706433/f",
        "http://store-1.internal:6379/f",  # other port than the default
        "http://store-1.internal.evil.example/f",
    ],
)
def test_upstream_hosts_cannot_be_tricked(url):
    from wsgi_reproxy.directive import HostPatterns, check_url

    assert check_url(url, HostPatterns(["store-*.internal"])) is not None


def test_redirect_is_never_followed_even_to_an_allowed_host(file_server):
    """A 302 from a target fails that URL: redirects bypass allow-lists."""
    result = call(
        ReproxyMiddleware(reproxy_app(file_server.url("/status/302")), allow=["/r/"]), "/r/f"
    )
    assert result.code == 502
    assert [r.path for r in file_server.requests] == ["/status/302"]


def test_no_internal_url_in_any_client_answer(file_server, refused_url):
    """Leaks: neither error bodies nor headers carry an internal URL or host."""
    urls = [refused_url, file_server.url("/status/404")]
    for path in ("/r/f", "/n/f"):
        result = call(ReproxyMiddleware(reproxy_app(*urls), allow=["/r/"]), path)
        text = result.body + repr(result.headers).encode()
        assert b"127.0.0.1" not in text
        assert b"/status/404" not in text
