"""The per-request report (SPEC R7.4): its helpers, its summary line, ``notify``, and the
gunicorn access-log recipe of docs/observability.rst run for real.

The report is filled in by the middleware; here reports are built by hand, as a table of
what a request can go through (failover, resume, every URL failing, a client hanging up).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3

import wsgi_reproxy
from wsgi_reproxy import AttemptReport, ReproxyReport
from wsgi_reproxy.report import REPORT_ENVIRON_KEY, notify
from wsgi_servers import free_port, stop_process

ROOT = Path(__file__).resolve().parent.parent

S1, S2, S3 = "http://store-1/f/42", "http://store-2/f/42", "http://store-3/f/42"


def failed(url: str, reason: str = "connection refused", **kw: object) -> AttemptReport:
    return AttemptReport(url, None, "failed", reason, **kw)  # type: ignore[arg-type]


FAILOVER = ReproxyReport(
    attempts=[failed(S1), AttemptReport(S2, 200, "served", seconds=0.004)],
    url=S2,
    outcome="complete",
    status=200,
    bytes=1048576,
    seconds=0.012,
    first_byte_seconds=0.005,
)
RESUMED = ReproxyReport(
    attempts=[
        AttemptReport(S1, 200, "served", seconds=0.001),
        failed(S2, "404 Not Found"),
        AttemptReport(S3, 206, "resumed", seconds=0.002),
    ],
    url=S1,
    outcome="complete",
    status=200,
    bytes=5242880,
    seconds=1.5,
)
ALL_FAILED = ReproxyReport(
    attempts=[failed(S1, "read timed out", timed_out=True), failed(S2, "503")],
    outcome="failed",
    status=504,
    seconds=2.25,
)
SKIPPED = ReproxyReport(
    attempts=[
        AttemptReport("http://evil/x", None, "skipped", "not in upstream_hosts"),
        AttemptReport(S2, 200, "served"),
    ],
    url=S2,
    outcome="client_gone",
    status=200,
    bytes=65536,
    seconds=0.5,
    cache="miss",
)


# -- The values ----------------------------------------------------------------------------


def test_public_names():
    assert wsgi_reproxy.ReproxyReport is ReproxyReport
    assert wsgi_reproxy.AttemptReport is AttemptReport
    assert {"AttemptReport", "ReproxyReport"} <= set(wsgi_reproxy.__all__)
    assert REPORT_ENVIRON_KEY == "wsgi_reproxy.report"


def test_defaults_are_a_report_of_nothing_yet():
    report = ReproxyReport()
    assert (report.attempts, report.url, report.outcome, report.status) == ([], None, None, None)
    assert (report.bytes, report.seconds, report.first_byte_seconds, report.cache) == (
        0,
        0.0,
        None,
        None,
    )
    assert ReproxyReport().attempts is not report.attempts  # no list shared between requests
    attempt = AttemptReport(S1, 200, "served")
    assert (attempt.reason, attempt.timed_out, attempt.seconds) == (None, False, None)


def test_the_middleware_fills_it_in_and_nothing_else_sticks():
    """Mutable, for the middleware; slots, so a misspelt field fails instead of vanishing."""
    report = ReproxyReport()
    report.attempts.append(AttemptReport(S1, 200, "served"))
    report.url, report.outcome, report.bytes = S1, "complete", 12
    assert report.served_url == S1
    with pytest.raises(AttributeError):
        report.outcom = "complete"  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        AttemptReport(S1, 200, "served").timedout = True  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("report", "served_url", "resumes", "failed_attempts"),
    [
        (ReproxyReport(), None, 0, 0),
        (FAILOVER, S2, 0, 1),
        (RESUMED, S3, 1, 1),
        (ALL_FAILED, None, 0, 2),
        (SKIPPED, S2, 0, 0),
        (ReproxyReport(url=S1), S1, 0, 0),  # no attempts recorded: the url field
        (
            ReproxyReport(
                attempts=[
                    AttemptReport(S1, 200, "served"),
                    AttemptReport(S2, 206, "resumed"),
                    AttemptReport(S3, 206, "resumed"),
                ],
                url=S1,
            ),
            S3,
            2,
            0,
        ),
    ],
    ids=["empty", "failover", "resumed", "all-failed", "skipped", "url-only", "resumed-twice"],
)
def test_helpers(report, served_url, resumes, failed_attempts):
    assert report.served_url == served_url
    assert report.resumes == resumes
    assert report.failed_attempts == failed_attempts


@pytest.mark.parametrize(
    ("report", "line"),
    [
        (FAILOVER, f"complete 200 1048576B 0.012s via {S2} (1 failed, 0 resumed)"),
        (RESUMED, f"complete 200 5242880B 1.500s via {S3} (1 failed, 1 resumed)"),
        (ALL_FAILED, "failed 504 0B 2.250s (2 failed, 0 resumed)"),
        (SKIPPED, f"client_gone 200 65536B 0.500s via {S2} (0 failed, 0 resumed) cache miss"),
        (ReproxyReport(), "streaming - 0B 0.000s (0 failed, 0 resumed)"),
        (
            ReproxyReport(url="http://x/a b\n127.0.0.1 forged", outcome="aborted", status=200),
            "aborted 200 0B 0.000s via 'http://x/a b\\n127.0.0.1 forged' (0 failed, 0 resumed)",
        ),
        (
            ReproxyReport(url="http://x/\x1b[2J", outcome="complete", status=200),
            "complete 200 0B 0.000s via 'http://x/\\x1b[2J' (0 failed, 0 resumed)",
        ),
        (
            ReproxyReport(url="http://x/caf\u00e9", outcome="complete", status=200),
            "complete 200 0B 0.000s via 'http://x/caf\u00e9' (0 failed, 0 resumed)",
        ),
    ],
    ids=["failover", "resumed", "all-failed", "cache", "streaming", "newline", "escape", "utf8"],
)
def test_summary(report, line):
    assert report.summary() == line
    assert str(report) == line
    assert "\n" not in line


# -- notify ----------------------------------------------------------------------------------


def test_notify_calls_the_observer_once_and_logs_nothing(caplog):
    seen: list[ReproxyReport] = []
    with caplog.at_level(logging.DEBUG, logger="wsgi_reproxy"):
        notify(seen.append, FAILOVER)
    assert seen == [FAILOVER]
    assert seen[0] is FAILOVER
    assert caplog.records == []


def test_notify_logs_and_swallows_what_the_observer_raises(caplog):
    def broken(report: ReproxyReport) -> None:
        raise RuntimeError("metrics backend is down")

    with caplog.at_level(logging.DEBUG, logger="wsgi_reproxy"):
        notify(broken, FAILOVER)  # does not raise
    [record] = caplog.records
    assert (record.name, record.levelname) == ("wsgi_reproxy.report", "ERROR")
    assert record.exc_info is not None
    assert record.exc_info[0] is RuntimeError
    assert "metrics backend is down" in caplog.text  # the traceback is in the log
    assert "broken" in record.getMessage()  # which observer
    assert FAILOVER.summary() in record.getMessage()  # which request


def test_notify_lets_a_worker_abort_through():
    """SystemExit (gunicorn's worker timeout) and KeyboardInterrupt are not the observer's
    bugs: they go on."""

    def interrupted(report: ReproxyReport) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        notify(interrupted, FAILOVER)


# -- The gunicorn access-log recipe (docs/observability.rst), for real -------------------------

DOCS_PAGE = ROOT / "docs" / "observability.rst"

# A stand-in for the middleware: it sets the environ keys as the middleware does (the URL
# before the body is returned, the report from the start) and makes the report final in the
# body's close(), the way ReproxyBody does.
FAKE_APP = """
import time

from wsgi_reproxy import AttemptReport, ReproxyReport

S1, S2 = "http://store-1/f/42", "http://store-2/f/42"


class Body:
    def __init__(self, report, chunks, started):
        self.report, self.chunks, self.started = report, chunks, started

    def __iter__(self):
        for chunk in self.chunks:
            self.report.bytes += len(chunk)
            yield chunk

    def close(self):
        self.report.outcome = "complete" if self.report.status == 200 else "failed"
        self.report.seconds = time.monotonic() - self.started


def application(environ, start_response):
    started = time.monotonic()
    report = environ["wsgi_reproxy.report"] = ReproxyReport()
    report.attempts.append(AttemptReport(S1, None, "failed", "connection refused"))
    if environ["PATH_INFO"] == "/files/42":
        report.attempts.append(AttemptReport(S2, 200, "served", seconds=0.001))
        report.url = environ["wsgi_reproxy.url"] = S2
        report.status = 200
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Body(report, [b"x" * 1000, b"y" * 24], started)
    report.attempts.append(AttemptReport(S2, 503, "failed", "503 Service Unavailable"))
    report.status = 502
    start_response("502 Bad Gateway", [("Content-Type", "text/plain")])
    return Body(report, [b"Bad Gateway\\n"], started)
"""


def documented_gunicorn_conf() -> str:
    """The ``gunicorn.conf.py`` block of the docs page, as written there."""
    text = DOCS_PAGE.read_text(encoding="utf-8")
    match = re.search(
        r"^\.\. code-block:: python\n   :caption: gunicorn\.conf\.py\n\n(?P<body>(?: {4}.*\n|\n)+)",
        text,
        re.MULTILINE,
    )
    assert match is not None, "docs/observability.rst lost its gunicorn.conf.py block"
    return textwrap.dedent(match["body"])


@pytest.fixture
def gunicorn_with_recipe(tmp_path, request) -> Iterator[tuple[str, Path, Path]]:
    """gunicorn with the documented gunicorn.conf.py and the fake app; the parameter is the
    worker class, then any more options; yields (base URL, access log, error log)."""
    worker, *options = request.param.split()
    (tmp_path / "gunicorn.conf.py").write_text(documented_gunicorn_conf())
    (tmp_path / "fakeapp.py").write_text(FAKE_APP)
    access, errors = tmp_path / "access.log", tmp_path / "error.log"
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(tmp_path)])}
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "gunicorn", "-c", str(tmp_path / "gunicorn.conf.py")),
            *("-b", f"127.0.0.1:{port}", "-k", worker, "--threads", "2"),
            *("--access-logfile", str(access), "--error-logfile", str(errors), *options),
            *("--chdir", str(tmp_path), "fakeapp:application"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(base), what=lambda: errors.read_text())
        yield base, access, errors
    finally:
        stop_process(process)


def answers(base: str) -> bool:
    with urllib3.PoolManager(retries=False) as pool:
        try:
            pool.request("GET", base + "/ready", timeout=1.0)
        except urllib3.exceptions.HTTPError:
            return False
    return True


def wait_until(condition, what, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; server log:\n{what()}")
        time.sleep(0.05)


WORKERS = ["sync", "gthread", "gevent"]


@pytest.mark.slow
@pytest.mark.parametrize("gunicorn_with_recipe", WORKERS, indirect=True)
def test_gunicorn_access_log_recipe(gunicorn_with_recipe):
    """The documented gunicorn.conf.py, unchanged: the access line names the storage URL
    (``%({wsgi_reproxy.url}e)s``, "-" when none served), and post_request logs the report
    once the body's close() made it final."""
    base, access, errors = gunicorn_with_recipe
    with urllib3.PoolManager(retries=False, timeout=10) as pool:
        assert pool.request("GET", base + "/files/42").status == 200
        assert pool.request("GET", base + "/files/gone").status == 502

    served, served_report, failed_line, failed_report = access_lines(access, errors, 4)
    assert re.fullmatch(
        r'127\.0\.0\.1 \[[^]]+\] "GET /files/42 HTTP/1\.1" 200 1024 \d+ms http://store-2/f/42',
        served,
    ), served
    assert re.fullmatch(
        r'reproxy "GET /files/42" complete 200 1024B \d+\.\d{3}s via http://store-2/f/42 '
        r"\(1 failed, 0 resumed\)",
        served_report,
    ), served_report
    assert re.fullmatch(
        r'127\.0\.0\.1 \[[^]]+\] "GET /files/gone HTTP/1\.1" 502 12 \d+ms -', failed_line
    ), failed_line
    assert re.fullmatch(
        r'reproxy "GET /files/gone" failed 502 12B \d+\.\d{3}s \(2 failed, 0 resumed\)',
        failed_report,
    ), failed_report
    assert "Traceback" not in errors.read_text()


def access_lines(access: Path, errors: Path, count: int) -> list[str]:
    """The access log's lines about /files/ (not the readiness probe), once there are
    ``count`` of them: post_request writes after the client got the response."""

    def lines() -> list[str]:
        return [line for line in access.read_text().splitlines() if "/files/" in line]

    wait_until(lambda: len(lines()) >= count, what=lambda: access.read_text() + errors.read_text())
    assert len(lines()) == count, lines()
    return lines()


@pytest.mark.slow
@pytest.mark.parametrize(
    "gunicorn_with_recipe",
    [f"{worker} --access-logformat %(U)s:%({{wsgi_reproxy.report}}e)s" for worker in WORKERS],
    ids=WORKERS,
    indirect=True,
)
def test_gunicorn_writes_its_access_line_before_close(gunicorn_with_recipe):
    """Why the recipe needs post_request: gunicorn formats its access line after the body was
    sent but before it calls the body's close(), so the report is not final there (the page
    says so; this fails the day gunicorn changes it)."""
    base, access, errors = gunicorn_with_recipe
    with urllib3.PoolManager(retries=False, timeout=10) as pool:
        assert pool.request("GET", base + "/files/42").status == 200
    at_access, after_close = access_lines(access, errors, 2)
    assert at_access.startswith("/files/42:streaming 200 1024B "), at_access
    assert after_close.startswith('reproxy "GET /files/42" complete 200 1024B '), after_close
