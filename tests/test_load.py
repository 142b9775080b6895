"""The bounded load test of ``benchmarks/load.py`` (``benchmarks/loadtest/``), made small.

Why in the suite: SPEC R6.4 (a broken body never looks complete) and R6.5 (no connection
leaks, whatever the client does) are promises about many requests at once on a real
server, which the one-request tests cannot show.  This runs the benchmark's own machinery --
gunicorn gthread, local replicas, a dying one, clients that hang up -- with a few hundred
requests, and asserts the report's expectations one by one, never its timings.

The pool is smaller than gunicorn's thread count here, so that ``block=True`` really makes
threads wait for a slot: a single slot not given back would stall every later request.

The quick tests at the end check the benchmark's client judge itself: a load test whose
detector cannot see a truncated body would pass for the wrong reason.
"""

from __future__ import annotations

import importlib.util
import platform
import sys
from pathlib import Path
from types import ModuleType

import pytest

LOADTEST = Path(__file__).resolve().parents[1] / "benchmarks" / "loadtest"


def _import_loadtest() -> ModuleType:
    """Import the benchmarks/loadtest package by path: benchmarks/ is not on sys.path."""
    spec = importlib.util.spec_from_file_location(
        "loadtest", LOADTEST / "__init__.py", submodule_search_locations=[str(LOADTEST)]
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its modules import each other through it
    spec.loader.exec_module(module)
    return module


loadtest = _import_loadtest()

CONFIG = loadtest.LoadConfig(
    requests=300,
    clients=24,
    warmup=60,
    threads=8,
    pool_maxsize=4,
    timeout=10.0,
    deadline=30.0,
    seed=7,
    in_use_limit_mib=2.0,
)


@pytest.fixture(scope="module")
def report():
    """One run shared by the tests below (a few seconds); each asserts one expectation."""
    return loadtest.run(CONFIG)


@pytest.mark.slow
def test_the_run_exercised_every_path(report):
    assert len(report.outcomes) == CONFIG.requests
    for kind in ("normal", "hangup", "dying", "dying-alone"):
        assert report.planned(kind) > 0, kind
    assert report.count("not sent") == 0
    assert report.count("error") == 0, report.details()


@pytest.mark.slow
def test_every_servable_request_is_served_whole(report):
    assert report.count("ok") == report.planned("normal", "dying"), report.details()
    assert report.verified_bytes == sum(
        len(loadtest.FILES[o.plan.name]) for o in report.outcomes if o.plan.servable
    )


@pytest.mark.slow
def test_no_wrong_byte_and_no_truncation_that_looks_complete(report):
    assert report.count("wrong bytes") == 0, report.details()
    assert report.count("truncated but looked complete") == 0, report.details()


@pytest.mark.slow
def test_broken_bodies_are_resumed_or_aborted_visibly(report):
    assert report.event("resume") + report.event("failover") == report.planned("dying")
    assert report.event("resume") > 0
    alone = report.planned("dying-alone")
    assert report.event("abort") + report.event("all_failed") == alone
    assert report.count("aborted", "dying-alone") + report.count("refused") == alone
    assert report.count("aborted", "normal", "dying") == 0


@pytest.mark.slow
def test_client_hang_ups_reach_the_upstream_and_leak_nothing(report):
    assert report.count("hung up") == report.planned("hangup")
    assert sum(r.cut_by_peer for r in report.replicas) > 0  # the discard path really ran
    assert report.end.app_created == report.end.app_closed == CONFIG.requests


@pytest.mark.slow
def test_upstream_connections_stay_within_the_pool(report):
    assert report.allowance == CONFIG.pool_maxsize
    for replica in report.replicas:
        assert replica.peak_open <= report.allowance, replica
        assert replica.open_after <= report.allowance, replica


@pytest.mark.slow
def test_worker_memory_stays_flat_and_the_log_clean(report):
    assert report.rss_growth_kib <= CONFIG.rss_limit_mib * loadtest.KIB
    assert report.unexpected_tracebacks == []
    assert report.failures() == []


@pytest.mark.slow
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_memory_in_use_stays_flat_after_warm_up(report):
    """RSS also counts freed memory that malloc keeps for reuse; what malloc has handed out
    and not had back must not grow with requests, and giving the kept memory back at the
    end shrinks RSS."""
    growth = report.in_use_growth_kib
    assert growth is not None
    assert growth <= CONFIG.in_use_limit_mib * loadtest.KIB
    assert report.end.trimmed_rss_kib <= report.end.rss_kib
    assert "malloc kept" in report.render()


# -- the client's judge, without a server ------------------------------------------------------

NAME = "200k.bin"
DATA = loadtest.FILES[NAME]
PLAN = loadtest.Planned(0, NAME, "dying-alone", cut=1000)
OK_HEADERS = {"content-type": loadtest.APP_CONTENT_TYPE}


def _chunked(payload: bytes, *, last: bool) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload) + (b"0\r\n\r\n" if last else b"")


@pytest.mark.parametrize(
    ("headers", "raw", "reset", "verdict"),
    [
        pytest.param({"content-length": str(len(DATA))}, DATA, False, "ok", id="whole"),
        pytest.param(
            {"content-length": str(len(DATA))},
            DATA[:1000],
            False,
            "aborted",
            id="short of Content-Length",
        ),
        pytest.param(
            {"content-length": str(len(DATA))},
            DATA[:1000],
            True,
            "aborted",
            id="short of Content-Length, reset",
        ),
        pytest.param(
            {"content-length": "1000"},
            DATA[:1000],
            False,
            "truncated but looked complete",
            id="short Content-Length",
        ),
        pytest.param(
            {"content-length": str(len(DATA))},
            DATA + b"x",
            False,
            "wrong bytes",
            id="bytes after Content-Length",
        ),
        pytest.param(
            {"content-length": str(len(DATA))},
            b"x" + DATA[1:],
            False,
            "wrong bytes",
            id="one byte differs",
        ),
        pytest.param(
            {"transfer-encoding": "chunked"},
            _chunked(DATA[:1000], last=True),
            False,
            "truncated but looked complete",
            id="chunked, ended early",
        ),
        pytest.param(
            {"transfer-encoding": "chunked"},
            _chunked(DATA[:1000], last=False),
            False,
            "aborted",
            id="chunked, no last chunk",
        ),
        pytest.param(
            {"transfer-encoding": "chunked"},
            _chunked(DATA, last=True),
            False,
            "ok",
            id="chunked, whole",
        ),
        pytest.param(
            {}, DATA[:1000], False, "truncated but looked complete", id="until close, closed early"
        ),
        pytest.param({}, DATA[:1000], True, "aborted", id="until close, reset"),
    ],
)
def test_judge_tells_a_truncated_body_from_a_whole_one(headers, raw, reset, verdict):
    response = loadtest.Response(200, {**OK_HEADERS, **headers}, raw, reset, hung_up=False)
    assert loadtest.judge(PLAN, response).verdict == verdict


def test_judge_counts_a_5xx_as_visible_only_where_nothing_could_serve():
    response = loadtest.Response(502, {"content-length": "3"}, b"bad", False, hung_up=False)
    assert loadtest.judge(PLAN, response).verdict == "refused"
    servable = loadtest.Planned(0, NAME, "normal")
    assert loadtest.judge(servable, response).verdict == "error"


def test_judge_wants_the_apps_content_type():
    headers = {"content-type": "application/octet-stream", "content-length": str(len(DATA))}
    response = loadtest.Response(200, headers, DATA, False, hung_up=False)
    assert loadtest.judge(loadtest.Planned(0, NAME, "normal"), response).verdict == "error"


def test_only_aborts_are_expected_tracebacks():
    log = (
        "[2026-01-01 00:00:00 +0000] [1] [ERROR] Socket error processing request.\n"
        'Traceback (most recent call last):\n  File "x", line 1\n'
        "ConnectionResetError: [Errno 104] Connection reset by peer\n\n"
        "During handling of the above exception, another exception occurred:\n\n"
        'Traceback (most recent call last):\n  File "y", line 2\n'
        "wsgi_reproxy.errors.UpstreamBodyError: body broke\n"
        "[2026-01-01 00:00:01 +0000] [1] [ERROR] Error handling request /r/x\n"
        'Traceback (most recent call last):\n  File "z", line 3\n'
        "KeyError: 'boom'\n"
        "[2026-01-01 00:00:02 +0000] [1] [INFO] Worker exiting\n"
    )
    assert loadtest.unexpected_tracebacks(log) == ["KeyError: 'boom'"]
