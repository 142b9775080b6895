"""``upstream_hosts`` misconfiguration is never silent (SPEC R7.3, R4.3).

A pattern written as a URL, or two hosts run together, would match nothing and turn every
download into a 502 with a log line that does not say why; a pattern without a port that
meets a URL with one is the other easy mistake.  The first are refused at construction,
with the fix; the second says so in the line that logs the skipped URL.
"""

from __future__ import annotations

import logging

import pytest

from harness import call, reproxy_app
from upstreams import FILES
from wsgi_reproxy import ReproxyMiddleware
from wsgi_reproxy.directive import HostPatterns, check_url

REFUSED = "is not on a host allowed by upstream_hosts"


@pytest.mark.parametrize(
    ("pattern", "fix"),
    [
        ("http://store:8080", "has a scheme, and a pattern is a host with an optional port"),
        ("http://store:8080", "write 'store:8080'"),
        ("HTTPS://store-*.internal/", "write 'store-*.internal'"),
        ("http://[::1]:8080/x", "write '[::1]:8080'"),
        ("store/files", "has a path"),
        ("store/files", "write 'store'"),
        ("store:8080/files/", "write 'store:8080'"),
        ("store#x", "write 'store'"),
        ("a b", "holds whitespace or a comma, which no host has"),
        ("a b", "['a', 'b']"),
        ("store-1,store-2", "['store-1', 'store-2']"),
        ("store-1, store-2:8080", "['store-1', 'store-2:8080']"),
        ("a\tb", "['a', 'b']"),
    ],
)
def test_patterns_written_as_urls_or_lists_are_refused_with_the_fix(pattern, fix):
    with pytest.raises(ValueError, match="upstream_hosts") as refused:
        HostPatterns([pattern])
    assert fix in str(refused.value)
    assert repr(pattern) in str(refused.value)
    with pytest.raises(ValueError, match="upstream_hosts"):
        ReproxyMiddleware(reproxy_app(), allow=["/r/"], upstream_hosts=["ok.internal", pattern])


@pytest.mark.parametrize(
    "pattern", ["store-?.internal", "store-[12].internal:80", " store:8080 ", "[::1]:*", "::1"]
)
def test_globs_and_surrounding_blanks_are_still_patterns(pattern):
    assert HostPatterns([pattern]).patterns == (pattern,)


PORT_CASES = [
    (
        ["store"],
        "http://store:8080/f",
        f"{REFUSED}: 'store' matches but port 8080 does not "
        "(a pattern without a port allows only port 80; write 'store:8080')",
    ),
    (
        ["store-*.internal"],
        "https://store-1.internal:8443/f",
        f"{REFUSED}: 'store-*.internal' matches but port 8443 does not "
        "(a pattern without a port allows only port 443; write 'store-*.internal:8443')",
    ),
    (
        ["store"],
        "https://store:80/f",
        f"{REFUSED}: 'store' matches but port 80 does not "
        "(a pattern without a port allows only port 443; write 'store:80')",
    ),
    (
        ["::1"],
        "http://[::1]:8080/f",
        f"{REFUSED}: '::1' matches but port 8080 does not "
        "(a pattern without a port allows only port 80; write '[::1]:8080')",
    ),
    (
        ["other", "10.1.2.3:8080"],
        "http://10.1.2.3:8081/f",
        f"{REFUSED}: '10.1.2.3:8080' matches but port 8081 does not (write '10.1.2.3:8081')",
    ),
    (["store:8080"], "http://elsewhere:8080/f", REFUSED),
    ([], "http://store/f", REFUSED),
]


@pytest.mark.parametrize(
    ("patterns", "url", "reason"), PORT_CASES, ids=[url for _, url, _ in PORT_CASES]
)
def test_a_url_refused_only_for_its_port_says_so(patterns, url, reason):
    """R7.3: the reason names the pattern whose host matched, the port, and the fix."""
    assert check_url(url, HostPatterns(patterns)) == reason


def test_the_skipped_url_is_logged_with_the_port_and_the_fix(file_server, caplog):
    """R7.3 at the WSGI boundary: the WARNING line for the skipped URL says what to write."""
    url = file_server.url("/files/small.txt")
    app = reproxy_app(url)
    middleware = ReproxyMiddleware(app, allow=["/r/"], upstream_hosts=["127.0.0.1"])
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        assert call(middleware, "/r/f").code == 502
    port = file_server.port
    assert file_server.requests == []
    assert (
        f"reproxy URL skipped: {url!r} {REFUSED}: '127.0.0.1' matches but port {port} does not "
        f"(a pattern without a port allows only port 80; write '127.0.0.1:{port}')"
    ) in [r.getMessage() for r in caplog.records]
    fixed = ReproxyMiddleware(app, allow=["/r/"], upstream_hosts=[f"127.0.0.1:{port}"])
    assert call(fixed, "/r/f").body == FILES["small.txt"]


def test_repr_is_the_constructor_call():
    """R7.3: readable in a debugger or a log, and evaluates to the same patterns."""
    hosts = HostPatterns(["store-*.internal", "10.1.2.3:8080"])
    assert repr(hosts) == "HostPatterns(['store-*.internal', '10.1.2.3:8080'])"
    assert eval(repr(hosts)).patterns == hosts.patterns
    middleware = ReproxyMiddleware(reproxy_app(), allow=["/r/"], upstream_hosts=["[::1]:*"])
    assert repr(middleware.upstream_hosts) == "HostPatterns(['[::1]:*'])"
