"""Header rules: SPEC R5.2 and R6.2 as tables (no server)."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsgi_reproxy import DEFAULT_FORWARD, ReproxyMiddleware
from wsgi_reproxy.headers import (
    clean_value,
    merge_preserved,
    strip_reproxy_headers,
    upstream_request_headers,
)
from wsgi_reproxy.target_headers import (
    REMEMBERED_NAMES,
    HiddenHeaders,
    clean_target_headers,
    connection_tokens,
    is_token,
)

HOP = [
    "Connection",
    "Keep-Alive",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "TE",
    "Trailer",
    "Trailers",
    "Transfer-Encoding",
    "Upgrade",
]


@pytest.mark.parametrize("name", HOP + [n.upper() for n in HOP])
def test_hop_by_hop_headers_are_removed(name):
    """R6.2: hop-by-hop headers never reach the client."""
    kept, unsafe = clean_target_headers([("Content-Type", "a/b"), (name, "x")])
    assert kept == [("Content-Type", "a/b")]
    assert unsafe == []


def test_headers_named_in_connection_are_removed():
    """R6.2: any header named in the target's Connection header is hop-by-hop too."""
    target = [
        ("Connection", "X-Private, keep-alive"),
        ("x-private", "secret"),
        ("Connection", " X-Other "),
        ("X-Other", "1"),
        ("X-Public", "ok"),
    ]
    assert clean_target_headers(target)[0] == [("X-Public", "ok")]


def test_order_and_duplicates_are_kept():
    """R6.2: the target's headers, in order, duplicates kept (Set-Cookie)."""
    target = [("Set-Cookie", "a=1"), ("ETag", '"x"'), ("Set-Cookie", "b=2")]
    assert clean_target_headers(target)[0] == target


def test_target_reproxy_headers_are_removed():
    """R6.2: the target's own directive is never followed nor sent on (no loops)."""
    target = [
        ("X-Reproxy-Url", "http://h/loop"),
        ("x-reproxy-expected-size", "1"),
        ("X-Reproxyish", "kept"),
    ]
    assert clean_target_headers(target)[0] == [("X-Reproxyish", "kept")]


def test_folded_and_control_characters():
    """Header injection: obs-fold is unfolded, other controls drop the header."""
    kept, unsafe = clean_target_headers(
        [
            ("X-Folded", "a\r\n b"),
            ("X-Bad", "a\x00b"),
            ("X-Newline", "a\nb"),
            ("Bad Name", "v"),
            ("X-Tab", "a\tb"),
        ]
    )
    assert kept == [("X-Folded", "a b"), ("X-Tab", "a\tb")]
    assert unsafe == ["X-Bad", "X-Newline", "Bad Name"]


APP = [
    ("Content-Type", "application/pdf"),
    ("Content-Disposition", "attachment; f=a"),
    ("Set-Cookie", "s=1"),
    ("Set-Cookie", "t=2"),
    ("Content-Length", "7"),
]
TARGET = [
    ("Content-Type", "application/octet-stream"),
    ("Content-Length", "100"),
    ("ETag", '"e"'),
    ("content-type", "text/plain"),
]


def test_preserve_replaces_every_target_value_in_place():
    """R6.2: preserved names take the app's values, case-insensitively."""
    merged = merge_preserved(TARGET, APP, frozenset({"content-type"}), 200)
    assert merged == [
        ("Content-Type", "application/pdf"),
        ("Content-Length", "100"),
        ("ETag", '"e"'),
    ]


def test_preserve_adds_missing_headers_and_keeps_multiple_values():
    """R6.2: a preserved header the target lacks is added, all its values kept."""
    merged = merge_preserved(TARGET, APP, frozenset({"set-cookie", "content-disposition"}), 200)
    assert merged == [
        *TARGET,
        ("Content-Disposition", "attachment; f=a"),
        ("Set-Cookie", "s=1"),
        ("Set-Cookie", "t=2"),
    ]


def test_preserve_ignores_names_the_app_did_not_send():
    merged = merge_preserved(TARGET, APP, frozenset({"etag", "cache-control"}), 200)
    assert merged == TARGET


@pytest.mark.parametrize("status", [204, 304])
def test_preserve_adds_nothing_on_204_and_304(status):
    """R6.2: on 204 and 304 preserve adds nothing (a 304 carries no Content-Type)."""
    target = [("ETag", '"e"')]
    assert merge_preserved(target, APP, frozenset({"content-type"}), status) == target


def test_a_304_keeps_what_it_must_carry():
    """RFC 9110 §15.4.5: a 304 carries the Cache-Control, Expires, Vary and
    Content-Location its 200 would have: the app's, when preserved; never Content-Type."""
    app = [("Content-Type", "application/pdf"), ("Cache-Control", "private, max-age=60")]
    app += [("Vary", "Cookie"), ("X-Other", "1")]
    names = frozenset({"content-type", "cache-control", "vary", "x-other"})
    merged = merge_preserved([("ETag", '"e"')], app, names, 304)
    assert merged == [("ETag", '"e"'), ("Cache-Control", "private, max-age=60"), ("Vary", "Cookie")]
    assert merge_preserved([("ETag", '"e"')], app, names, 204) == [("ETag", '"e"')]


def test_the_apps_content_length_never_goes_out():
    """R4.4: framing headers come from the target only."""
    merged = merge_preserved(TARGET, APP, frozenset({"content-type"}), 200)
    assert ("Content-Length", "7") not in merged


def test_strip_reproxy_headers():
    headers = [("X-Reproxy-Url", "http://i/"), ("A", "1"), ("x-REPROXY-expected-size", "1")]
    assert strip_reproxy_headers(headers) == [("A", "1")]


def forwarded(environ, method="GET", forward=DEFAULT_FORWARD):
    mw = ReproxyMiddleware(lambda e, s: [], forward=forward)
    return upstream_request_headers(environ, mw.settings.forward_keys, method, "wsgi-reproxy/test")


def test_default_forward_list():
    """R5.2: Range, If-*, Accept-Encoding are forwarded; Host, Cookie, Authorization never."""
    environ = {
        "HTTP_RANGE": "bytes=0-9",
        "HTTP_IF_RANGE": '"e"',
        "HTTP_IF_NONE_MATCH": '"e"',
        "HTTP_IF_MATCH": '"f"',
        "HTTP_IF_MODIFIED_SINCE": "d1",
        "HTTP_IF_UNMODIFIED_SINCE": "d2",
        "HTTP_ACCEPT_ENCODING": "gzip",
        "HTTP_HOST": "front",
        "HTTP_COOKIE": "c=1",
        "HTTP_AUTHORIZATION": "Basic x",
        "HTTP_CONNECTION": "close",
        "HTTP_TE": "trailers",
        "HTTP_X_OTHER": "o",
    }
    assert forwarded(environ) == {
        "User-Agent": "wsgi-reproxy/test",
        "Range": "bytes=0-9",
        "If-Range": '"e"',
        "If-Modified-Since": "d1",
        "If-Unmodified-Since": "d2",
        "If-None-Match": '"e"',
        "If-Match": '"f"',
        "Accept-Encoding": "gzip",
    }


def test_range_is_not_sent_with_head():
    """A HEAD answers for the whole representation (some targets answer 416)."""
    environ = {"HTTP_RANGE": "bytes=0-9", "HTTP_IF_RANGE": '"e"', "HTTP_IF_NONE_MATCH": '"e"'}
    assert forwarded(environ, "HEAD") == {"User-Agent": "wsgi-reproxy/test", "If-None-Match": '"e"'}


def test_forward_replaces_the_default_list():
    """R1.1: forward replaces the default list; names are matched case-insensitively."""
    environ = {"HTTP_RANGE": "bytes=0-9", "HTTP_ACCEPT_LANGUAGE": "fr"}
    assert forwarded(environ, forward=["accept-language"]) == {
        "User-Agent": "wsgi-reproxy/test",
        "Accept-Language": "fr",
    }


def test_long_header_names_are_checked_but_not_cached():
    """A target's 60 KB header names must not stay pinned in a process-wide cache."""
    from wsgi_reproxy.target_headers import NOTHING_HIDDEN, _is_short_token

    before = _is_short_token.cache_info().currsize
    kept, unsafe = clean_target_headers([("X" * 60_000, "v"), ("Bad Name" * 10, "v")])
    assert (kept, unsafe) == ([("X" * 60_000, "v")], ["Bad Name" * 10])
    assert _is_short_token.cache_info().currsize == before
    assert "X" * 60_000 not in NOTHING_HIDDEN.names  # nor among the remembered verdicts
    assert "Bad Name" * 10 not in NOTHING_HIDDEN.names


# -- each name judged once: the same answer as judging every header -------------------

header_names = st.sampled_from(
    [
        "Content-Type",
        "content-length",
        "Connection",
        "Keep-Alive",
        "Close",
        "X-Foo",
        "x-foo",
        "X-Reproxy-Url",
        "X-Accel-Redirect",
        "X-Amz-Meta-A",
        "Set-Cookie",
        "Bad Name",
        "Ünicode",
        "Transfer-Encoding",
        "TE",
        "Date",
    ]
)
header_values = st.sampled_from(
    [
        "",
        "keep-alive",
        "close",
        "Keep-Alive",
        "x-foo",
        "keep-alive, x-foo",
        "a\r\n b",
        "a\nb",
        "a\x01b",
        "text/plain",
        "  spaced  ",
    ]
)


def _every_header_tested(
    headers: list[tuple[str, str]], hidden: HiddenHeaders
) -> tuple[list[tuple[str, str]], list[str]]:
    """The algorithm before names were judged once: every test on every header, the names
    ``Connection`` lists dropped with the hop-by-hop ones (the oracle of the test below)."""
    drop = hidden.drop | connection_tokens(headers)
    kept: list[tuple[str, str]] = []
    unsafe: list[str] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in drop or lowered[:10] == "x-reproxy-" or lowered.startswith(hidden.prefixes):
            continue
        if hidden.glob is not None and hidden.glob(lowered) is not None:
            continue
        cleaned = clean_value(value)
        if cleaned is None or not is_token(name):
            unsafe.append(name)
            continue
        kept.append((name, cleaned))
    return kept, unsafe


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(header_names, header_values), max_size=10),
    st.sampled_from([(), ("x-foo",), ("X-Accel-*",), ("x-amz-*", "date"), ("[xy]-foo",)]),
)
def test_judging_each_name_once_answers_as_judging_every_header(
    headers: list[tuple[str, str]], patterns: tuple[str, ...]
) -> None:
    hidden = HiddenHeaders(patterns)
    expected = _every_header_tested(headers, hidden)
    assert clean_target_headers(headers, hidden) == expected
    assert clean_target_headers(headers, hidden) == expected  # names now remembered


def test_remembered_names_are_bounded() -> None:
    """A target inventing a name per response cannot grow the memory: it starts over."""
    hidden = HiddenHeaders()
    for number in range(REMEMBERED_NAMES * 2 + 10):
        kept, _ = clean_target_headers([(f"X-Name-{number}", "v")], hidden)
        assert kept == [(f"X-Name-{number}", "v")]
        assert len(hidden.names) <= REMEMBERED_NAMES
    assert f"X-Name-{REMEMBERED_NAMES * 2 + 9}" in hidden.names
    long_name = "X-" + "a" * 100
    assert clean_target_headers([(long_name, "v")], HiddenHeaders())[0] == [(long_name, "v")]


def test_a_copied_setting_judges_as_the_original() -> None:
    """Verdicts are compared by value: a pickled, used setting drops nothing it kept."""
    hidden = HiddenHeaders(["X-Accel-*"])
    headers = [("Content-Type", "text/plain"), ("ETag", '"x"'), ("Bad Name", "v")]
    expected = clean_target_headers(headers, hidden)
    assert expected == ([("Content-Type", "text/plain"), ("ETag", '"x"')], ["Bad Name"])
    assert clean_target_headers(headers, pickle.loads(pickle.dumps(hidden))) == expected
