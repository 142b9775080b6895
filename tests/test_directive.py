"""The app's directive: SPEC R4.1, R4.3 and R1.3, as tables (no server)."""

from __future__ import annotations

import pytest

from wsgi_reproxy import reproxy_headers
from wsgi_reproxy.directive import (
    Directive,
    HostPatterns,
    InvalidDirective,
    Rejected,
    check_url,
    parse_directive,
)

A = "http://store-1.internal/f/1"
B = "https://store-2.internal:8443/f/1"


def parse(*headers, max_urls=8, hosts=None, rejected=None):
    return parse_directive(list(headers), max_urls=max_urls, hosts=hosts, rejected=rejected)


@pytest.mark.parametrize("sep", [" ", "\t", "\r\n", "\n", "\f", "  \t "])
def test_urls_split_on_http_whitespace(sep):
    """R4.1: values split on SP, HT, CR, LF, FF."""
    assert parse(("X-Reproxy-Url", f"{A}{sep}{B}")) == Directive((A, B))


@pytest.mark.parametrize("sep", ["\u00a0", "\u0085", "\u2003", "\v"])
def test_other_unicode_spaces_do_not_split(sep):
    """R4.1: not every character str.split() treats as space; the token is then invalid."""
    rejected: list[Rejected] = []
    result = parse(("X-Reproxy-Url", f"{A}{sep}{B}"), rejected=rejected)
    assert isinstance(result, InvalidDirective)
    assert [r.url for r in rejected] == [f"{A}{sep}{B}"]


def test_header_name_is_case_insensitive_and_repeats_are_joined_in_order():
    """R4.1: several X-Reproxy-Url headers are joined in order."""
    result = parse(("x-reproxy-url", A), ("Content-Type", "a/b"), ("X-REPROXY-URL", B))
    assert result == Directive((A, B))


@pytest.mark.parametrize("value", ["", "   ", "\t\r\n"])
def test_empty_directive_counts_as_absent(value):
    """R4.2: an empty or all-whitespace X-Reproxy-Url counts as absent."""
    assert parse(("X-Reproxy-Url", value)) is None


def test_no_directive():
    assert parse(("Content-Type", "text/plain")) is None


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("1048576", 1048576), (" 12 ", 12)])
def test_expected_size(value, expected):
    """R4.1: X-Reproxy-Expected-Size is a non-negative integer."""
    result = parse(("X-Reproxy-Url", A), ("X-Reproxy-Expected-Size", value))
    assert result == Directive((A,), expected)


@pytest.mark.parametrize("value", ["-1", "+1", "1.0", "0x10", "1_000", "\u0661", "", "abc"])
def test_bad_expected_size_makes_the_directive_invalid(value):
    """R4.1: a value that is not a non-negative integer makes the directive invalid (502)."""
    result = parse(("X-Reproxy-Url", A), ("X-Reproxy-Expected-Size", value))
    assert isinstance(result, InvalidDirective)
    assert "Expected-Size" in result.reason


def test_conflicting_expected_sizes_are_invalid():
    result = parse(
        ("X-Reproxy-Url", A), ("X-Reproxy-Expected-Size", "1"), ("X-Reproxy-Expected-Size", "2")
    )
    assert isinstance(result, InvalidDirective)


BAD_URLS = [
    ("/relative/path", "absolute"),
    ("ftp://h/x", "absolute"),
    ("file:///etc/passwd", "absolute"),
    ("http:/h/x", "absolute"),
    ("//h/x", "absolute"),
    ("http:///x", "no host"),
    ("http://user:pw@h/x", "userinfo"),
    ("http://@h/x", "userinfo"),
    ("http://h/x\x00", "control"),
    ("http://h/x\x1b[31m", "control"),
    ("http://h/x\x7f", "control"),
    ("http://h/caf\u00e9", "non-ASCII"),
    ("http://h:99999/", "not a valid URL"),
    ("http://h:0/", "port 0"),
    ("http://%6c%6fcalhost/", "percent-encoded host"),
    ("javascript:alert(1)", "absolute"),
    ("http://h/bucket/../secret", ". or .. segment"),
    ("http://h/bucket/..", ". or .. segment"),
    ("http://h/bucket/./x", ". or .. segment"),
    ("http://h/bucket/%2e%2e/secret", ". or .. segment"),
    ("http://h/bucket/%2E%2e", ". or .. segment"),
    ("http://h/bucket/..%2fsecret", ". or .. segment"),
    ("http://h/bucket/..%5csecret", ". or .. segment"),
    ("http://h:80\\..\\..\\secret", ". or .. segment"),
]


@pytest.mark.parametrize(("url", "why"), BAD_URLS, ids=[repr(u) for u, _ in BAD_URLS])
def test_invalid_urls_are_rejected(url, why):
    """R4.3: absolute http/https, a host, no userinfo, no C0/DEL; and no dot segment,
    which urllib3 and storage servers resolve: a way out of the app's prefix."""
    reason = check_url(url)
    assert reason is not None
    assert why in reason


@pytest.mark.parametrize(
    "url",
    [
        "http://h/x",
        "HTTP://H/X",
        "https://h:8443/a%20b?c=d",
        "http://[::1]:8080/x",
        "http://10.0.0.1/x#frag",
        "http://h",
        "http://h/bucket/file..txt",
        "http://h/bucket/.hidden/...",
        "http://h/x?next=../y",
        "http://h/x#../y",
    ],
)
def test_valid_urls_pass(url):
    assert check_url(url) is None


def test_invalid_urls_are_skipped_and_reported():
    """R4.3: invalid URLs are skipped; the rest are kept in order."""
    rejected: list[Rejected] = []
    result = parse(("X-Reproxy-Url", f"ftp://x/ {A} http://u:p@h/ {B}"), rejected=rejected)
    assert result == Directive((A, B))
    assert [r.url for r in rejected] == ["ftp://x/", "http://u:p@h/"]


def test_only_the_first_max_urls_tokens_count_valid_or_not():
    """R4.3: only the first max_urls tokens are considered, valid or not."""
    result = parse(("X-Reproxy-Url", f"ftp://x/ {A} {B}"), max_urls=2)
    assert result == Directive((A,))
    result = parse(("X-Reproxy-Url", f"ftp://x/ ftp://y/ {A}"), max_urls=2)
    assert isinstance(result, InvalidDirective)


HOST_CASES = [
    (["store-*.internal"], "http://store-1.internal/x", True),
    (["store-*.internal"], "https://store-1.internal/x", True),
    (["store-*.internal"], "http://store-1.internal:6379/x", False),
    (["store-*.internal"], "http://STORE-1.INTERNAL./x", True),
    (["store-*.internal"], "http://evil.com/x", False),
    (["store-*.internal"], "http://store-1.internal.evil.com/x", False),
    (["10.1.2.3:8080"], "http://10.1.2.3:8080/x", True),
    (["10.1.2.3:8080"], "http://10.1.2.3/x", False),
    (["10.1.2.3:8080"], "http://10.1.2.3:8081/x", False),
    (["127.0.0.1:*"], "http://127.0.0.1:18081/x", True),
    (["[::1]:8080"], "http://[::1]:8080/x", True),
    (["[::1]:8080"], "http://[::2]:8080/x", False),
    (["::1"], "http://[::1]/x", True),
    (["h:80"], "http://h/x", True),
    (["h"], "https://h:80/x", False),
    (["h"], "http://h:443/x", False),
    (["h"], "https://h/x", True),
    ([], "http://h/x", False),
]


@pytest.mark.parametrize(
    ("patterns", "url", "allowed"), HOST_CASES, ids=[f"{p}~{u}" for p, u, _ in HOST_CASES]
)
def test_upstream_hosts(patterns, url, allowed):
    """R4.3: host (and port) must match upstream_hosts; default ports 80/443 otherwise."""
    assert (check_url(url, HostPatterns(patterns)) is None) is allowed


@pytest.mark.parametrize("bad", ["", "h:x", "[::1", 42])
def test_bad_host_patterns(bad):
    with pytest.raises((TypeError, ValueError), match="upstream_hosts"):
        HostPatterns([bad])


def test_reproxy_headers():
    """R1.3: the header tuples to send, validated like the middleware does."""
    assert reproxy_headers(A, B) == [("X-Reproxy-Url", f"{A} {B}")]
    assert reproxy_headers(A, expected_size=0) == [
        ("X-Reproxy-Url", A),
        ("X-Reproxy-Expected-Size", "0"),
    ]


@pytest.mark.parametrize(
    ("urls", "kwargs"),
    [
        ((), {}),
        (("ftp://h/x",), {}),
        (("http://h/a b",), {}),
        ((A,), {"expected_size": -1}),
        ((A,), {"expected_size": 1.5}),
        ((A,), {"expected_size": True}),
        ((A,), {"expected_size": "10"}),
    ],
)
def test_reproxy_headers_refuses_bad_input(urls, kwargs):
    """R1.3: ValueError for no URL, an invalid URL, or a bad expected_size."""
    with pytest.raises(ValueError):
        reproxy_headers(*urls, **kwargs)


def test_reproxy_headers_refuses_non_str_urls():
    with pytest.raises(TypeError):
        reproxy_headers(b"http://h/x")  # type: ignore[arg-type]


def test_long_urls_are_checked_but_not_cached():
    """A process-wide cache keyed by URLs must not pin 4096 URLs of 64 KiB each."""
    from wsgi_reproxy.directive import CACHED_URL_MAX, _check_url_cached

    before = _check_url_cached.cache_info().currsize
    long_url = "http://h/" + "a" * CACHED_URL_MAX
    assert check_url(long_url) is None
    assert check_url(long_url + "/../x") is not None
    assert _check_url_cached.cache_info().currsize == before
    assert check_url("http://h/short-and-new") is None
    assert _check_url_cached.cache_info().currsize == before + 1
