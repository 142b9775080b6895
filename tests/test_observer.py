"""One report per reproxied request, handed to ``observer=`` from ``close()`` (SPEC R7.4).

Every outcome at the WSGI boundary, against real upstream servers: complete, failover,
skipped URLs, every URL failed (502, 504), a body aborted, a client gone, a resumed body;
and an observer that raises never reaches the request.
"""

from __future__ import annotations

import logging
import time

import pytest

from harness import BackendApp, call, make_environ, reproxy_app
from upstreams import FILES, etag_for, respond, response_head, stall_before_status
from wsgi_reproxy import ReproxyMiddleware, ReproxyReport, UpstreamBodyError

DATA = FILES["1m.bin"]


class Reports(list[ReproxyReport]):
    """An observer that keeps what it is given."""

    def __call__(self, report: ReproxyReport) -> None:
        self.append(report)


def _mw(app, observer, **kwargs):
    return ReproxyMiddleware(
        app, allow=["/r/"], preserve=["Content-Type"], timeout=2, observer=observer, **kwargs
    )


def test_a_complete_body_is_reported_once_after_close(file_server):
    reports = Reports()
    url = file_server.url("/files/1m.bin")
    result = call(_mw(reproxy_app(url), reports), "/r/f")
    assert result.body == DATA
    [report] = reports
    assert result.environ["wsgi_reproxy.report"] is report
    assert (report.outcome, report.status, report.bytes) == ("complete", 200, len(DATA))
    assert report.url == report.served_url == url
    [attempt] = report.attempts
    assert (attempt.url, attempt.status, attempt.outcome) == (url, 200, "served")
    assert attempt.seconds is not None
    assert attempt.seconds >= 0
    assert report.first_byte_seconds is not None
    assert report.seconds >= report.first_byte_seconds


def test_failover_and_skipped_urls_are_attempts(file_server, refused_url):
    """Skipped (invalid), failed (refused, 404) and served attempts, in order."""
    reports = Reports()
    missing = file_server.url("/files/no-such-file")
    good = file_server.url("/files/small.txt")
    app = reproxy_app("ftp://x/f", refused_url, missing, good)
    result = call(_mw(app, reports), "/r/f")
    assert result.body == FILES["small.txt"]
    [report] = reports
    outcomes = [(a.url, a.status, a.outcome) for a in report.attempts]
    assert outcomes == [
        ("ftp://x/f", None, "skipped"),
        (refused_url, None, "failed"),
        (missing, 404, "failed"),
        (good, 200, "served"),
    ]
    assert report.attempts[1].reason.startswith("connection failed")
    assert report.attempts[2].reason == "status 404"
    assert report.failed_attempts == 2
    assert report.outcome == "complete"


def test_every_url_failed_is_reported_as_failed(refused_url):
    reports = Reports()
    result = call(_mw(reproxy_app(refused_url), reports), "/r/f")
    assert result.code == 502
    [report] = reports
    assert (report.outcome, report.status, report.bytes, report.url) == ("failed", 502, 0, None)
    assert [a.outcome for a in report.attempts] == ["failed"]
    assert report.first_byte_seconds is None


def test_a_timeout_is_flagged(scripted):
    reports = Reports()
    stalled = scripted(stall_before_status())
    mw = ReproxyMiddleware(
        reproxy_app(stalled.url("/f")), allow=["/r/"], timeout=0.3, observer=reports
    )
    assert call(mw, "/r/f").code == 504
    [attempt] = reports[0].attempts
    assert attempt.timed_out
    assert attempt.status is None


def test_an_unusable_directive_is_reported_as_failed():
    reports = Reports()
    result = call(_mw(reproxy_app("not-a-url"), reports), "/r/f")
    assert result.code == 502
    [report] = reports
    assert report.outcome == "failed"
    assert [(a.url, a.outcome) for a in report.attempts] == [("not-a-url", "skipped")]


def test_an_aborted_body_is_reported_as_aborted(scripted):
    reports = Reports()
    head = response_head("200 OK", [("Content-Type", "a/b"), ("Content-Length", "1000")])
    dying = scripted(respond(head + b"x" * 100))
    with pytest.raises(UpstreamBodyError):
        call(_mw(reproxy_app(dying.url("/f")), reports), "/r/f")
    [report] = reports
    assert (report.outcome, report.bytes, report.status) == ("aborted", 100, 200)


def test_a_client_gone_is_reported(file_server):
    """The server stops iterating and closes: the bytes handed over so far are counted."""
    reports = Reports()
    mw = _mw(reproxy_app(file_server.url("/files/1m.bin")), reports, chunk_size=1024)
    body = mw(make_environ("/r/f"), lambda status, headers, exc_info=None: None)
    first = next(iter(body))
    assert reports == []  # not before close()
    body.close()
    body.close()
    [report] = reports
    assert (report.outcome, report.bytes) == ("client_gone", len(first))


def test_a_resumed_body_reports_the_replica(scripted, file_server):
    reports = Reports()
    head = response_head(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(len(DATA))),
            ("ETag", etag_for("1m.bin")),
        ],
    )
    dying = scripted(respond(head + DATA[:300_000]))
    replica = file_server.url("/files/1m.bin")
    result = call(_mw(reproxy_app(dying.url("/f"), replica), reports), "/r/f")
    assert result.body == DATA
    [report] = reports
    assert [(a.url, a.outcome, a.status) for a in report.attempts] == [
        (dying.url("/f"), "served", 200),
        (replica, "resumed", 206),
    ]
    assert report.url == dying.url("/f")
    assert report.served_url == replica
    assert (report.resumes, report.outcome, report.bytes) == (1, "complete", len(DATA))


def test_an_observer_that_raises_is_logged_never_raised(file_server, caplog):
    def broken_observer(report):
        raise RuntimeError("metrics backend down")

    mw = _mw(reproxy_app(file_server.url("/files/small.txt")), broken_observer)
    with caplog.at_level(logging.ERROR, "wsgi_reproxy"):
        result = call(mw, "/r/f")
    assert result.body == FILES["small.txt"]
    [record] = caplog.records
    assert "metrics backend down" in record.exc_text


def test_pass_through_has_no_report():
    reports = Reports()
    result = call(_mw(BackendApp(body=[b"plain"]), reports), "/r/f")
    assert result.body == b"plain"
    assert "wsgi_reproxy.report" not in result.environ
    assert reports == []


@pytest.mark.parametrize("observer", ["not callable", lambda: None])
def test_observer_must_take_the_report(observer):
    with pytest.raises(TypeError, match="observer"):
        ReproxyMiddleware(BackendApp(), observer=observer)


def test_an_attempt_whose_body_broke_before_it_began_keeps_its_status(scripted, file_server):
    """R7.4: a head came (200), then the connection closed before any body byte: the
    attempt failed with the status it answered, and its time to that head."""
    head = response_head("200 OK", [("Content-Type", "a/b"), ("Content-Length", "100")])
    dying = scripted(respond(head))
    reports = Reports()
    good = file_server.url("/files/small.txt")
    result = call(_mw(reproxy_app(dying.url("/f"), good), reports), "/r/f")
    assert result.body == FILES["small.txt"]
    first, second = reports[0].attempts
    assert (first.status, first.outcome) == (200, "failed")
    assert first.reason.startswith("body broke before its first byte")
    assert first.seconds is not None
    assert (second.status, second.outcome) == (200, "served")


def test_an_attempt_without_a_head_has_no_time_to_it(refused_url, file_server):
    """R7.4: ``seconds`` is the time to the response head: None when none came."""
    reports = Reports()
    app = reproxy_app(refused_url, file_server.url("/files/small.txt"))
    call(_mw(app, reports), "/r/f")
    refused, served = reports[0].attempts
    assert refused.seconds is None
    assert served.seconds is not None


def test_the_time_to_the_head_leaves_the_body_out(scripted):
    """R7.4: a head at once and the first body byte later: the attempt's seconds is the
    head's time, the report's first_byte_seconds includes the wait for the body."""

    def late_body(conn, server):
        if server.read_request(conn):
            conn.sendall(
                response_head("200 OK", [("Content-Type", "a/b"), ("Content-Length", "2")])
            )
            time.sleep(0.5)
            conn.sendall(b"ok")

    reports = Reports()
    result = call(_mw(reproxy_app(scripted(late_body).url("/f")), reports), "/r/f")
    assert result.body == b"ok"
    [attempt] = reports[0].attempts
    # the body came 0.5 s after the head: the head's time must leave that wait out
    assert reports[0].first_byte_seconds - attempt.seconds >= 0.25


def test_the_first_piece_is_not_kept_once_sent(file_server):
    """The body holds its first piece until it is sent, and no longer (memory per
    download: one piece)."""
    mw = _mw(reproxy_app(file_server.url("/files/1m.bin")), None, chunk_size=65536)
    body = mw(make_environ("/r/f"), lambda status, headers, exc_info=None: None)
    chunks = iter(body)
    next(chunks)
    assert body._target.first_chunk == b""
    assert body._first == b""
    body.close()
