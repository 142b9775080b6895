"""The per-request report (SPEC R7.4): its helpers, its summary line, ``notify``.

The report is filled in by the middleware; here reports are built by hand, as a table of
what a request can go through (failover, resume, every URL failing, a client hanging up).
"""

from __future__ import annotations

import logging

import pytest

import wsgi_reproxy
from wsgi_reproxy import AttemptReport, ReproxyReport
from wsgi_reproxy.report import REPORT_ENVIRON_KEY, notify

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
    assert (record.name, record.levelname) == ("wsgi_reproxy", "ERROR")
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
