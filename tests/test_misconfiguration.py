"""Misconfiguration is never silent (SPEC R7.3): refused at start-up with the fix, or
logged (bounded) when it can only show at request time.

Each case is one a new user met: a forgotten ``allow``, a regex written as a string, an
ini list with commas, a rule that takes no argument, the middleware listed in Django's
``settings.MIDDLEWARE``.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import textwrap

import pytest
import urllib3

from harness import BackendApp, call, reproxy_app
from wsgi_reproxy import ReproxyMiddleware, ReproxyPoolManager
from wsgi_reproxy.paste import options_from_strings
from wsgi_reproxy.stray import MAX_PREFIXES, OTHER_PATHS, path_prefix

DIRECTIVE = [("X-Reproxy-Url", "http://store.internal/f/1"), ("Content-Type", "text/plain")]


def _records(caplog):
    return [r for r in caplog.records if r.name.startswith("wsgi_reproxy")]


# -- a directive on a request allow= does not enable -------------------------------------


def test_directive_outside_allow_is_logged_naming_path_and_rules(caplog):
    """R7.3: the header is removed (R4.2) and a WARNING says where and why."""
    mw = ReproxyMiddleware(BackendApp(headers=DIRECTIVE, body=[b""]), allow=["/downloads/"])
    with caplog.at_level(logging.DEBUG, logger="wsgi_reproxy"):
        result = call(mw, "/files/1")
    assert result.code == 200
    assert "x-reproxy-url" not in result.names()
    [record] = _records(caplog)
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "'/files/1'" in message
    assert "allow=['/downloads/']" in message
    assert "store.internal" not in message  # the URL itself stays out of the log line


def test_directive_outside_allow_is_logged_once_per_prefix_then_counted(caplog):
    """R7.3: once per path prefix of two segments; then counted, and the count logged at
    each power of ten."""
    mw = ReproxyMiddleware(BackendApp(headers=DIRECTIVE, body=[b""]), allow=["/downloads/"])
    with caplog.at_level(logging.WARNING, logger="wsgi_reproxy"):
        for n in range(100):
            call(mw, f"/files/a/{n}")
        call(mw, "/files/b/1")
        call(mw, "/media/x")
    messages = [r.getMessage() for r in _records(caplog)]
    assert len(messages) == 5  # /files/a first, x10, x100; /files/b; /media/x
    assert "10 times under '/files/a'" in messages[1]
    assert "100 times under '/files/a'" in messages[2]
    assert mw.ignored_directives() == {"/files/a": 100, "/files/b": 1, "/media/x": 1}


def test_prefixes_remembered_are_bounded(caplog):
    """R7.3: paths chosen by clients cannot grow the record without limit."""
    mw = ReproxyMiddleware(BackendApp(headers=DIRECTIVE, body=[b""]), allow=["/downloads/"])
    with caplog.at_level(logging.WARNING, logger="wsgi_reproxy"):
        for n in range(MAX_PREFIXES + 50):
            call(mw, f"/p{n}")
    counts = mw.ignored_directives()
    assert len(counts) == MAX_PREFIXES + 1
    assert counts[OTHER_PATHS] == 50
    assert len(_records(caplog)) == MAX_PREFIXES + 1 + 1  # + OTHER_PATHS's x10


@pytest.mark.parametrize(
    ("headers", "exc_info"),
    [
        ([("X-Reproxy-Url", "  "), ("Content-Type", "a/b")], False),  # blank: none (R4.2)
        ([("X-Reproxy-Expected-Size", "5"), ("Content-Type", "a/b")], False),  # no URL
        ([("Content-Type", "text/plain")], False),
        (DIRECTIVE, True),  # the app's error page
    ],
)
def test_nothing_is_logged_without_a_directive(caplog, headers, exc_info):
    """R7.1: the pass-through path logs nothing, unless a real directive was dropped."""

    def app(environ, start_response):
        if exc_info:
            try:
                raise RuntimeError("boom")
            except RuntimeError:
                start_response("500 Internal Server Error", list(headers), sys.exc_info())
        else:
            start_response("200 OK", list(headers))
        return [b"body"]

    with caplog.at_level(logging.DEBUG, logger="wsgi_reproxy"):
        result = call(ReproxyMiddleware(app, allow=["/downloads/"]), "/files/1")
    assert result.body == b"body"
    assert _records(caplog) == []


@pytest.mark.parametrize(
    ("path", "prefix"),
    [("/files/2026/a.bin", "/files/2026"), ("/a.bin", "/a.bin"), ("/", "/"), ("", "")],
)
def test_path_prefix(path, prefix):
    assert path_prefix(path) == prefix


# -- refused in __init__, with the fix ---------------------------------------------------


@pytest.mark.parametrize("rule", ["^/files/.*", "/files/.*", "/files/$", r"/v\d+/blobs"])
@pytest.mark.parametrize("option", ["allow", "deny"])
def test_regex_written_as_a_string_is_refused(option, rule):
    """R7.3: a string rule is a prefix or glob; a regex there would never match."""
    with pytest.raises(ValueError, match=re.escape(f"pass re.compile({rule!r})")):
        ReproxyMiddleware(BackendApp(), **{"allow": ["/"], option: [rule]})


@pytest.mark.parametrize("rule", ["/files", "*.iso", "/media/*.iso", "/a[.]b", "/v1.2/x"])
def test_ordinary_rules_are_not_mistaken_for_regexes(rule):
    ReproxyMiddleware(BackendApp(), allow=[rule])


def test_regex_rules_still_work():
    mw = ReproxyMiddleware(BackendApp(), allow=[re.compile(r"^/v\d+/blobs/")])
    assert mw.enabled({"PATH_INFO": "/v2/blobs/x", "SCRIPT_NAME": ""})


def test_ini_list_with_commas_is_refused():
    """R7.3: ``allow = /files/, /media/`` would make the rule '/files/,'."""
    with pytest.raises(ValueError, match="ends with a comma"):
        ReproxyMiddleware(BackendApp(), **options_from_strings({"allow": "/files/, /media/"}))


@pytest.mark.parametrize(
    "rule",
    [lambda: True, lambda environ, path: True, lambda *, environ: True],
    ids=["no-argument", "two-arguments", "keyword-only"],
)
def test_callable_rule_that_cannot_take_the_environ_is_refused(rule):
    """R7.3: it would otherwise fail every request with a 500."""
    with pytest.raises(TypeError, match=r"define it as rule\(environ\) -> bool"):
        ReproxyMiddleware(BackendApp(), allow=[rule])


@pytest.mark.parametrize(
    "rule",
    [lambda environ: True, lambda *args: True, lambda environ, extra=1: True, bool],
    ids=["one", "varargs", "default", "builtin"],
)
def test_callable_rules_that_take_the_environ_are_accepted(rule):
    ReproxyMiddleware(BackendApp(), allow=[rule])


# -- repr ------------------------------------------------------------------------------------


def _app(environ, start_response):  # a named app, for a readable repr
    start_response("200 OK", [])
    return [b""]


def test_repr_shows_every_option_in_constructor_form():
    """R7.3: what a log or a shell shows is what was configured."""
    mw = ReproxyMiddleware(
        _app,
        allow=["/downloads/", re.compile("^/v[0-9]/")],
        preserve=["content-type"],
        deny=["*.tmp"],
        upstream_hosts=["store-*.internal", "10.1.2.3:8080"],
        forward=["Range"],
        timeout=urllib3.Timeout(connect=1.0, read=2.0),
        pool_maxsize=4,
        chunk_size=1024,
        max_urls=2,
        resume=False,
        hide=["Server"],
    )
    text = repr(mw)
    assert text.startswith("ReproxyMiddleware(<function _app at ")
    assert text.endswith(
        ", allow=['/downloads/', re.compile('^/v[0-9]/')], preserve=['Content-Type'], "
        "deny=['*.tmp'], upstream_hosts=['store-*.internal', '10.1.2.3:8080'], "
        "forward=['Range'], timeout=Timeout(connect=1.0, read=2.0, total=None), "
        "pool_maxsize=4, pool_block=False, chunk_size=1024, max_urls=2, resume=False, "
        "refuse_local=False, hide=['Server'], observer=None)"
    )


def test_repr_shows_a_pool_that_was_passed_in():
    pool = ReproxyPoolManager()
    text = repr(ReproxyMiddleware(_app, pool=pool))
    assert f"pool={pool!r}," in text
    assert "pool_maxsize" not in text
    assert "upstream_hosts=None" in text


def test_rule_sets_print_as_their_rules():
    mw = ReproxyMiddleware(_app, allow=["/a", "*.iso"])
    assert repr(mw.allow) == "['/a', '*.iso']"


# -- Django's settings.MIDDLEWARE ------------------------------------------------------------


def test_called_with_one_argument_says_to_wrap_the_wsgi_app():
    """R7.3: Django middleware is called as middleware(request)."""
    mw = ReproxyMiddleware(reproxy_app("http://s/f"), allow=["/"])
    with pytest.raises(TypeError, match=r"wrap the WSGI application in wsgi\.py"):
        mw(object())


DJANGO_SETTINGS_MIDDLEWARE = textwrap.dedent(
    """
    import django
    from django.conf import settings
    from django.http import HttpResponse
    from django.urls import path

    urlpatterns = [path("f", lambda request: HttpResponse("x"))]
    settings.configure(
        ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], SECRET_KEY="x",
        MIDDLEWARE=["wsgi_reproxy.ReproxyMiddleware"],
    )
    django.setup()
    from django.core.wsgi import get_wsgi_application
    try:
        application = get_wsgi_application()
        application({"REQUEST_METHOD": "GET", "PATH_INFO": "/f", "wsgi.input": None,
                     "SERVER_NAME": "t", "SERVER_PORT": "80", "wsgi.url_scheme": "http"},
                    lambda status, headers, exc_info=None: None)
    except TypeError as error:
        print("TypeError:", error)
    """
)


def test_listed_in_django_settings_middleware_fails_at_start_up():
    """R7.3: with a real Django, the mistake is reported when the app is built, naming
    the fix, instead of a 500 on every request."""
    done = subprocess.run(
        [sys.executable, "-c", DJANGO_SETTINGS_MIDDLEWARE],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.startswith("TypeError: ReproxyMiddleware is WSGI middleware, not Django")
    assert "wrap the WSGI application in wsgi.py" in done.stdout
