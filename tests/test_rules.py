"""Where reproxying is enabled: SPEC R2 as tables."""

from __future__ import annotations

import re

import pytest

from wsgi_reproxy import ReproxyMiddleware
from wsgi_reproxy.rules import compile_rules, request_path


def app(environ, start_response):  # pragma: no cover - never called here
    raise AssertionError


def enabled(allow, path, deny=(), **environ):
    mw = ReproxyMiddleware(app, allow=allow, deny=deny)
    return mw.enabled({"SCRIPT_NAME": "", "PATH_INFO": path, **environ})


PREFIX_CASES = [
    ("/downloads", "/downloads", True),
    ("/downloads", "/downloads/", True),
    ("/downloads", "/downloads/a/b", True),
    ("/downloads", "/downloadsX", False),
    ("/downloads", "/downloads.zip", False),
    ("/downloads/", "/downloads", True),
    ("/downloads/", "/downloads/a", True),
    ("/downloads/", "/downloadsX/a", False),
    ("/downloads", "/other/downloads", False),
    ("/", "/", True),
    ("/", "/anything/at/all", True),
    ("/a/b", "/a", False),
]


@pytest.mark.parametrize(
    ("rule", "path", "expected"), PREFIX_CASES, ids=[f"{r}~{p}" for r, p, _ in PREFIX_CASES]
)
def test_prefix_rules_match_on_segment_boundaries(rule, path, expected):
    """R2.2: a plain string is a path prefix on segment boundaries."""
    assert enabled([rule], path) is expected


GLOB_CASES = [
    ("*.iso", "/media/disk.iso", True),
    ("*.iso", "/disk.iso", True),
    ("*.iso", "/media/disk.iso/readme", False),
    ("*.iso", "/media/disk.ISO", False),
    ("/media/*.iso", "/media/disk.iso", True),
    ("/media/*.iso", "/media/sub/disk.iso", True),  # fnmatchcase: '*' crosses '/'
    ("/media/*.iso", "/other/disk.iso", False),
    ("disk?.bin", "/x/disk1.bin", True),
    ("disk[0-9].bin", "/x/diskA.bin", False),
]


@pytest.mark.parametrize(
    ("rule", "path", "expected"), GLOB_CASES, ids=[f"{r}~{p}" for r, p, _ in GLOB_CASES]
)
def test_glob_rules(rule, path, expected):
    """R2.2: globs with '/' match the whole path, without one the last segment."""
    assert enabled([rule], path) is expected


def test_regex_rules_use_search():
    """R2.2: a compiled pattern matches with pattern.search(path)."""
    rule = re.compile(r"/v[0-9]+/blobs/")
    assert enabled([rule], "/api/v2/blobs/x") is True
    assert enabled([rule], "/api/vX/blobs/x") is False


def test_callable_rules_receive_the_environ():
    """R2.2: a callable decides from the environ (host, method ...)."""

    def rule(environ):
        return environ["HTTP_HOST"] == "files.example"

    assert enabled([rule], "/x", HTTP_HOST="files.example") is True
    assert enabled([rule], "/x", HTTP_HOST="www.example") is False


def test_nothing_is_enabled_by_default():
    """R2.1: allow=() enables nothing, not even '/'."""
    assert enabled((), "/") is False


def test_deny_wins_over_allow():
    """R2.3: enabled when some allow rule matches and no deny rule does."""
    assert enabled(["/files"], "/files/private/x", deny=["/files/private"]) is False
    assert enabled(["/files"], "/files/public/x", deny=["/files/private"]) is True
    assert enabled(["/files"], "/files/a.tmp", deny=["*.tmp"]) is False


def test_path_is_script_name_plus_path_info():
    """R2.2: the full path the client asked for, mount point included."""
    environ = {"SCRIPT_NAME": "/app", "PATH_INFO": "/downloads/x"}
    assert request_path(environ) == "/app/downloads/x"
    mw = ReproxyMiddleware(app, allow=["/app/downloads"])
    assert mw.enabled(environ) is True
    assert ReproxyMiddleware(app, allow=["/downloads"]).enabled(environ) is False


@pytest.mark.parametrize("bad", [b"/x", 42, None, 3.5])
def test_bad_rule_types_raise_type_error(bad):
    """R1.1: an unknown rule type raises TypeError in __init__."""
    with pytest.raises(TypeError, match="allow"):
        compile_rules([bad], "allow")


def test_bytes_pattern_is_refused():
    with pytest.raises(TypeError, match="str patterns"):
        compile_rules([re.compile(rb"/x")], "deny")


@pytest.mark.parametrize("option", ["allow", "deny"])
def test_bare_string_is_refused(option):
    """R1.1: allow="/x" would be read character by character: TypeError."""
    with pytest.raises(TypeError, match=rf"{option}=\['/x'\]"):
        ReproxyMiddleware(app, **{option: "/x"})


def test_relative_prefix_is_refused():
    with pytest.raises(ValueError, match="must start with '/'"):
        ReproxyMiddleware(app, allow=["downloads"])
