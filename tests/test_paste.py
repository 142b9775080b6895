"""PasteDeploy (SPEC R1.4): ``use = egg:wsgi-reproxy`` in a real ini file, every option as
a string, and clear errors for bad values."""

from __future__ import annotations

import logging
import re
import textwrap

import pytest
import urllib3
from paste.deploy import loadapp

from harness import BackendApp, call
from upstreams import FILES
from wsgi_reproxy import ReproxyMiddleware
from wsgi_reproxy.paste import filter_app_factory, options_from_strings

BACKEND = BackendApp()


def make_backend(global_conf, **local_conf):
    """app factory the ini files below load with ``use = call:test_paste:make_backend``."""
    return BACKEND


def is_iso_host(environ):
    return environ.get("HTTP_HOST") == "isos.example"


def load(tmp_path, filter_options):
    ini = tmp_path / "app.ini"
    ini.write_text(
        textwrap.dedent("""
        [pipeline:main]
        pipeline = reproxy backend

        [app:backend]
        use = call:test_paste:make_backend

        [filter:reproxy]
        use = egg:wsgi-reproxy
    """)
        + filter_options
    )
    return loadapp(f"config:{ini}")


def test_ini_file_builds_the_middleware(tmp_path, file_server):
    """R1.4: the documented example works, and requests are reproxied through it."""
    mw = load(
        tmp_path,
        textwrap.dedent(f"""
        allow = /downloads /media/*.iso re:^/v[0-9]+/blobs/ call:test_paste:is_iso_host
        deny = /downloads/private
        preserve = Content-Type Content-Disposition
        upstream_hosts = store-*.internal 127.0.0.1:{file_server.port}
        forward = Range If-Range
        timeout = connect=2 read=60
        chunk_size = 256K
        max_urls = 4
        resume = false
        refuse_local = no
        pool_maxsize = 8
        pool_block = true
    """),
    )
    assert isinstance(mw, ReproxyMiddleware)
    assert mw.allow.rules[:2] == ("/downloads", "/media/*.iso")
    assert mw.allow.rules[2].pattern == "^/v[0-9]+/blobs/"
    assert mw.allow.rules[3] is is_iso_host
    assert mw.preserve == ("Content-Type", "Content-Disposition")
    assert mw.forward == ("Range", "If-Range")
    assert (mw.timeout.connect_timeout, mw.timeout.read_timeout) == (2.0, 60.0)
    assert (mw.chunk_size, mw.max_urls, mw.resume) == (256 * 1024, 4, False)
    assert mw.pool.connection_pool_kw["maxsize"] == 8
    assert mw.pool.connection_pool_kw["block"] is True
    BACKEND.headers = [
        ("Content-Type", "application/x-iso"),
        ("X-Reproxy-Url", file_server.url("/files/small.txt")),
    ]
    result = call(mw, "/media/x.iso")
    assert result.body == FILES["small.txt"]
    assert result.header("Content-Type") == "application/x-iso"
    assert call(mw, "/downloads/private/x").body == b"IGNORED"
    mw.pool.clear()


def test_an_option_also_in_default_is_refused_not_silently_dropped(tmp_path):
    """PasteDeploy drops a section's ``timeout`` when [DEFAULT] has one: the filter would
    run with the built-in default without a word.  Refused, with the way out."""
    ini = "\n[DEFAULT]\ntimeout = 10\n"
    with pytest.raises(ValueError, match=r"timeout also set in \[DEFAULT\].*get timeout"):
        load(tmp_path, "allow = /downloads\ntimeout = connect=1 read=7\n" + ini)
    mw = load(tmp_path, "allow = /downloads\nget timeout = timeout\n" + ini)
    assert (mw.timeout.connect_timeout, mw.timeout.read_timeout) == (10.0, 10.0)
    # a [DEFAULT] value meant for the app, and none of the filter's own: nothing is lost
    mw = load(tmp_path, "allow = /downloads\n" + ini)
    assert (mw.timeout.connect_timeout, mw.timeout.read_timeout) == (5.0, 30.0)


def test_another_filters_value_does_not_count_against_this_one(tmp_path):
    """Only the section being loaded is judged: another wsgi-reproxy filter of the same
    file, for another pipeline, may set an option [DEFAULT] shadows."""
    extra = "\n[DEFAULT]\ntimeout = 10\n\n[filter:other]\nuse = egg:wsgi-reproxy\nallow = /x\n"
    mw = load(tmp_path, "allow = /downloads\n" + extra + "timeout = 3\n")
    assert (mw.allow.rules, mw.timeout.read_timeout) == (("/downloads",), 30.0)


def test_an_interpolated_section_is_still_recognised(tmp_path):
    """PasteDeploy expands %(name)s; the section's raw text does not match it, but the
    section is still the one being loaded, and its dropped timeout is still refused."""
    ini = "\n[DEFAULT]\ntimeout = 120\nprefix = /downloads\n"
    with pytest.raises(ValueError, match="timeout also set in"):
        load(tmp_path, "allow = %(prefix)s\ntimeout = 600\n" + ini)


def test_look_alike_sections_give_a_warning_not_an_error(tmp_path, caplog):
    """Two filters the loaded options cannot tell apart, one of which set its own timeout:
    which one is loaded is unknown, so the possible loss is logged, not refused."""
    extra = (
        "\n[DEFAULT]\ntimeout = 120\n\n[filter:slow]\nuse = egg:wsgi-reproxy\n"
        "allow = /downloads\ntimeout = 600\n"
    )
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        mw = load(tmp_path, "allow = /downloads\n" + extra)
    assert mw.timeout.read_timeout == 30.0
    assert any("may have dropped its own timeout" in r.getMessage() for r in caplog.records)


def test_an_option_given_with_set_is_refused_too(tmp_path):
    """``set timeout = 5`` changes only PasteDeploy's global values, which the filter's
    options never come from: refused, like a value [DEFAULT] shadows."""
    with pytest.raises(ValueError, match="timeout also set in"):
        load(tmp_path, "allow = /downloads\nset timeout = 5\n")


def test_minimal_ini(tmp_path):
    mw = load(tmp_path, "allow = /downloads\n")
    assert mw.allow.rules == ("/downloads",)
    assert mw.upstream_hosts is None
    mw.pool.clear()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": "soon"}, "timeout = 'soon'"),
        ({"timeout": "connect=1 write=2"}, "timeout"),
        ({"chunk_size": "big"}, "chunk_size = 'big'"),
        ({"chunk_size": "0"}, "chunk_size must be positive"),
        ({"max_urls": "eight"}, "max_urls = 'eight'"),
        ({"resume": "maybe"}, "resume = 'maybe'"),
        ({"allow": "re:(unclosed"}, "bad regex"),
        ({"allow": "call:no.such.module:rule"}, "cannot import"),
        ({"preserve": "Content-Length"}, "preserve may not name"),
        ({"upstream_hosts": "h:port"}, "upstream_hosts"),
        ({"colour": "blue"}, "unknown wsgi-reproxy option 'colour'"),
        ({"timeout": "inf"}, "timeout must be positive and at most"),
        ({"timeout": "connect=2 read=inf"}, "timeout's read must be positive and at most"),
        ({"timeout": "read=nan"}, "timeout's read must be positive"),
    ],
)
def test_bad_values_raise_with_the_option_named(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ReproxyMiddleware(BackendApp(), **options_from_strings(options))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        (" 2.5 ", 2.5),
        ("connect=1", (1.0, 30.0)),
        ("read=9 connect=1", (1.0, 9.0)),
    ],
)
def test_timeout_strings(value, expected):
    timeout = options_from_strings({"timeout": value})["timeout"]
    if isinstance(expected, float):
        assert timeout == expected
    else:
        assert isinstance(timeout, urllib3.Timeout)
        assert (timeout.connect_timeout, timeout.read_timeout) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("65536", 65536),
        ("64K", 65536),
        ("64k", 65536),
        ("1M", 1048576),
        ("1MiB", 1048576),
        ("2 KB", 2048),
    ],
)
def test_size_strings(value, expected):
    assert options_from_strings({"chunk_size": value})["chunk_size"] == expected


def test_pool_options_size_the_middlewares_own_pool():
    options = options_from_strings({"timeout": "7", "pool_maxsize": "3", "pool_block": "yes"})
    assert options == {"timeout": 7.0, "pool_maxsize": 3, "pool_block": True}
    pool = ReproxyMiddleware(lambda environ, start_response: [], **options).pool
    assert pool.connection_pool_kw["timeout"].read_timeout == 7.0
    assert pool.connection_pool_kw["maxsize"] == 3


def test_empty_upstream_hosts_allows_nothing():
    assert options_from_strings({"upstream_hosts": ""})["upstream_hosts"] == []


@pytest.mark.parametrize("ini", [None, "missing", "unparsable"])
def test_a_default_option_without_a_readable_ini_file_is_no_error(tmp_path, ini):
    """Without the ini file to read, nothing shows that a section value was dropped."""
    global_conf = {"timeout": "10"}
    if ini is not None:
        path = tmp_path / "app.ini"
        if ini == "unparsable":
            path.write_text("timeout = 1\n[filter:x]\nuse = egg:wsgi-reproxy\n")
        global_conf["__file__"] = str(path)
    mw = filter_app_factory(BackendApp(), global_conf, allow="/downloads")
    assert mw.timeout.read_timeout == 30.0


def test_hide_as_a_string():
    """R6.7, R1.4: ``hide`` is a whitespace-separated list of names and globs."""
    options = options_from_strings({"allow": "/r/", "hide": "Server X-Amz-*"})
    assert options["hide"] == ["Server", "X-Amz-*"]
    mw = ReproxyMiddleware(BACKEND, **options)
    assert mw.hide.patterns == ("Server", "X-Amz-*")
    assert ReproxyMiddleware(BACKEND, **options_from_strings({"hide": ""})).hide.patterns == ()


def test_comma_separated_hide_is_refused():
    with pytest.raises(ValueError, match="is not a header name or glob"):
        ReproxyMiddleware(BACKEND, **options_from_strings({"hide": "Server, X-Pad"}))


def observe(report):
    """An observer the ini test below names: ``observer = test_paste:observe``."""


class Observing:
    """An observer class: PasteDeploy's ``observer`` makes one instance of it."""

    def __call__(self, report):
        pass


def test_observer_as_a_string():
    """R1.1: observer = module:attribute; a class is instantiated, once."""
    assert options_from_strings({"observer": "test_paste:observe"})["observer"] is observe
    assert options_from_strings({"observer": "call:test_paste:observe"})["observer"] is observe
    made = options_from_strings({"observer": "test_paste:Observing"})["observer"]
    assert isinstance(made, Observing)
    assert options_from_strings({"observer": ""})["observer"] is None
    mw = ReproxyMiddleware(BACKEND, **options_from_strings({"observer": "test_paste:observe"}))
    assert mw.observer is observe


def test_observer_that_cannot_be_imported_is_refused():
    with pytest.raises(ValueError, match="observer: cannot import 'no_such_module:x'"):
        options_from_strings({"observer": "no_such_module:x"})
