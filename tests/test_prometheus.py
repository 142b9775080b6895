"""PrometheusObserver (SPEC R7.4) against real prometheus_client registries.

Hand-built reports are fed in; the values are read back with ``get_sample_value`` and the
exposition text (what Prometheus scrapes) is parsed to prove that no URL reaches it and
that every label value comes from a fixed set.  The example app (examples/metrics_app.py)
runs under gunicorn once the middleware takes ``observer=``.
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
from pathlib import Path

import pytest
import urllib3
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import wsgi_reproxy.prometheus as prometheus_module
from upstreams import FILES
from wsgi_reproxy import AttemptReport, ReproxyReport
from wsgi_reproxy.prometheus import FIRST_BYTE_BUCKETS, PrometheusObserver
from wsgi_reproxy.report import notify
from wsgi_servers import ServerProcess

ROOT = Path(__file__).resolve().parent.parent

S1, S2, S3 = "http://store-1.internal/f/42", "http://store-2.internal/f/42", "http://s3/f/42"

FIXED_LABELS = {
    "outcome": {"complete", "aborted", "client_gone", "failed"} | {"served", "skipped", "resumed"},
    "result": {"hit", "miss", "stored"},
}

REPORTS = [
    ReproxyReport(  # failover
        attempts=[
            AttemptReport(S1, None, "failed", "connection refused"),
            AttemptReport(S2, 200, "served", seconds=0.003),
        ],
        url=S2,
        outcome="complete",
        status=200,
        bytes=1000,
        seconds=0.01,
        first_byte_seconds=0.004,
        cache="miss",
    ),
    ReproxyReport(  # resumed twice, the first resume attempt failing
        attempts=[
            AttemptReport(S1, 200, "served", seconds=0.0005),
            AttemptReport(S2, 206, "resumed", seconds=0.02),
            AttemptReport(S3, 503, "failed", "503 Service Unavailable"),
            AttemptReport(S3, 206, "resumed", seconds=0.02),
        ],
        url=S1,
        outcome="complete",
        status=200,
        bytes=5000,
        seconds=1.0,
        first_byte_seconds=0.0008,
        cache="hit",
    ),
    ReproxyReport(  # every URL failed: 504, no response from storage
        attempts=[
            AttemptReport(S1, None, "failed", "read timed out", timed_out=True),
            AttemptReport("http://evil.example/x", None, "skipped", "not in upstream_hosts"),
        ],
        outcome="failed",
        status=504,
        seconds=30.0,
        first_byte_seconds=30.0,
    ),
    ReproxyReport(  # broke mid-body, no replica to resume from
        attempts=[AttemptReport(S1, 200, "served", seconds=0.001)],
        url=S1,
        outcome="aborted",
        status=200,
        bytes=700,
        seconds=2.0,
        first_byte_seconds=0.002,
        cache="stored",
    ),
    ReproxyReport(  # the client hung up
        attempts=[AttemptReport(S2, 206, "served", seconds=0.001)],
        url=S2,
        outcome="client_gone",
        status=206,
        bytes=300,
        seconds=5.0,
        first_byte_seconds=0.3,
    ),
]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of the exposition text, parsed back the way Prometheus reads it."""
    text = generate_latest(registry).decode()
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


# -- Counting --------------------------------------------------------------------------------


def test_every_series_starts_at_zero(registry):
    PrometheusObserver(registry)
    for outcome in ("complete", "aborted", "client_gone", "failed"):
        assert value(registry, "wsgi_reproxy_requests_total", outcome=outcome) == 0.0
    for outcome in ("served", "failed", "skipped", "resumed"):
        assert value(registry, "wsgi_reproxy_attempts_total", outcome=outcome) == 0.0
    assert value(registry, "wsgi_reproxy_resumes_total") == 0.0
    assert value(registry, "wsgi_reproxy_body_bytes_total") == 0.0
    assert value(registry, "wsgi_reproxy_first_byte_seconds_count") == 0.0
    # No decision cache configured, no cache series yet.
    assert value(registry, "wsgi_reproxy_cache_total", result="hit") is None


def test_reports_are_counted(registry):
    observer = PrometheusObserver(registry)
    for report in REPORTS:
        observer(report)

    requests = {
        outcome: value(registry, "wsgi_reproxy_requests_total", outcome=outcome)
        for outcome in ("complete", "aborted", "client_gone", "failed")
    }
    assert requests == {"complete": 2.0, "aborted": 1.0, "client_gone": 1.0, "failed": 1.0}
    attempts = {
        outcome: value(registry, "wsgi_reproxy_attempts_total", outcome=outcome)
        for outcome in ("served", "failed", "skipped", "resumed")
    }
    assert attempts == {"served": 4.0, "failed": 3.0, "skipped": 1.0, "resumed": 2.0}
    assert value(registry, "wsgi_reproxy_resumes_total") == 2.0
    assert value(registry, "wsgi_reproxy_body_bytes_total") == 7000.0
    cache = {
        result: value(registry, "wsgi_reproxy_cache_total", result=result)
        for result in ("hit", "miss", "stored")
    }
    assert cache == {"hit": 1.0, "miss": 1.0, "stored": 1.0}

    histogram = "wsgi_reproxy_first_byte_seconds"
    assert value(registry, histogram + "_count") == 5.0
    assert value(registry, histogram + "_sum") == pytest.approx(30.3068)
    assert value(registry, histogram + "_bucket", le="0.001") == 1.0  # 0.0008
    assert value(registry, histogram + "_bucket", le="0.005") == 3.0  # + 0.002, 0.004
    assert value(registry, histogram + "_bucket", le="0.5") == 4.0  # + 0.3
    assert value(registry, histogram + "_bucket", le="10.0") == 4.0  # 30 s is past 10 s
    assert value(registry, histogram + "_bucket", le="+Inf") == 5.0


def test_a_report_without_first_byte_is_not_observed(registry):
    observer = PrometheusObserver(registry)
    observer(ReproxyReport(outcome="failed", status=502))
    assert value(registry, "wsgi_reproxy_first_byte_seconds_count") == 0.0
    assert value(registry, "wsgi_reproxy_requests_total", outcome="failed") == 1.0


def test_buckets_suit_storage_fetches():
    assert FIRST_BYTE_BUCKETS[0] == 0.001
    assert FIRST_BYTE_BUCKETS[-1] == 10
    assert list(FIRST_BYTE_BUCKETS) == sorted(FIRST_BYTE_BUCKETS)


# -- No URL, fixed label values ------------------------------------------------------------------


def test_no_url_in_the_exposition_and_fixed_label_values(registry):
    observer = PrometheusObserver(registry)
    for report in REPORTS:
        observer(report)
    text = generate_latest(registry).decode()
    for fragment in ("://", "store-1", "store-2", "s3/", "evil", "/f/42", "refused", "timed out"):
        assert fragment not in text
    found = samples(registry)
    assert {name for name, _, _ in found} >= {
        "wsgi_reproxy_requests_total",
        "wsgi_reproxy_attempts_total",
        "wsgi_reproxy_resumes_total",
        "wsgi_reproxy_body_bytes_total",
        "wsgi_reproxy_first_byte_seconds_bucket",
        "wsgi_reproxy_cache_total",
    }
    for name, labels, _ in found:
        for label, label_value in labels.items():
            if label == "le":
                assert name == "wsgi_reproxy_first_byte_seconds_bucket"
                continue
            assert label_value in FIXED_LABELS[label], (name, label, label_value)


@pytest.mark.parametrize(
    "report",
    [
        ReproxyReport(),  # not finished: outcome None
        ReproxyReport(outcome="http://store-1/f"),  # type: ignore[arg-type]
        ReproxyReport(
            outcome="complete",
            attempts=[AttemptReport(S1, 200, S1)],  # type: ignore[arg-type]
        ),
        ReproxyReport(outcome="complete", cache=S1),
        ReproxyReport(outcome="complete", bytes=-1),
    ],
    ids=["unfinished", "url-as-outcome", "url-as-attempt-outcome", "url-as-cache", "negative"],
)
def test_values_outside_the_fixed_sets_are_refused_before_counting(registry, report):
    observer = PrometheusObserver(registry)
    before = samples(registry)
    with pytest.raises(ValueError, match=r"^report "):
        observer(report)
    after = samples(registry)
    assert after == before  # nothing counted, no new series
    assert "://" not in generate_latest(registry).decode()


def test_a_refused_report_is_logged_not_raised_through_notify(registry, caplog):
    observer = PrometheusObserver(registry)
    with caplog.at_level(logging.ERROR, logger="wsgi_reproxy"):
        notify(observer, ReproxyReport())
    [record] = caplog.records
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)
    assert "outcome None" in str(record.exc_info[1])


# -- Registries ------------------------------------------------------------------------------


def test_a_second_observer_on_the_same_registry_is_refused(registry):
    first = PrometheusObserver(registry)
    before = samples(registry)
    with pytest.raises(ValueError, match="create one PrometheusObserver and pass it to every"):
        PrometheusObserver(registry)
    assert samples(registry) == before
    first(REPORTS[0])  # the first one still counts, into the same series
    assert value(registry, "wsgi_reproxy_requests_total", outcome="complete") == 1.0


def test_a_clash_registers_none_of_the_metrics(registry):
    """A name already taken halfway through (here by the application's own counter) leaves
    the registry as it was, so a fixed configuration can register them all again."""
    own = Counter("wsgi_reproxy_resumes", "the application's own", registry=registry)
    with pytest.raises(ValueError, match="wsgi_reproxy_resumes"):
        PrometheusObserver(registry)
    assert value(registry, "wsgi_reproxy_requests_total", outcome="complete") is None
    registry.unregister(own)
    PrometheusObserver(registry)(REPORTS[0])
    assert value(registry, "wsgi_reproxy_requests_total", outcome="complete") == 1.0


def test_namespaces_and_registries_are_separate(registry):
    other = CollectorRegistry()
    downloads = PrometheusObserver(registry, namespace="downloads")
    default = PrometheusObserver(registry)
    elsewhere = PrometheusObserver(other)
    downloads(REPORTS[0])
    downloads(REPORTS[1])
    default(REPORTS[2])
    assert value(registry, "downloads_requests_total", outcome="complete") == 2.0
    assert value(registry, "wsgi_reproxy_requests_total", outcome="complete") == 0.0
    assert value(registry, "wsgi_reproxy_requests_total", outcome="failed") == 1.0
    assert value(other, "wsgi_reproxy_requests_total", outcome="failed") == 0.0
    assert repr(downloads) == "PrometheusObserver(namespace='downloads')"
    assert repr(elsewhere) == "PrometheusObserver(namespace='wsgi_reproxy')"


def test_no_registry_means_the_default_one(monkeypatch):
    default = CollectorRegistry()
    monkeypatch.setattr(prometheus_module, "REGISTRY", default)  # keep the real one clean
    PrometheusObserver()(REPORTS[0])
    assert value(default, "wsgi_reproxy_requests_total", outcome="complete") == 1.0


def test_without_prometheus_client_the_import_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "wsgi_reproxy.prometheus")
    with pytest.raises(ImportError, match=r"pip install 'wsgi-reproxy\[prometheus\]'"):
        importlib.import_module("wsgi_reproxy.prometheus")


# -- The example, under gunicorn -------------------------------------------------------------


@pytest.mark.slow
def test_metrics_example_under_gunicorn(file_server, refused_url):
    """examples/metrics_app.py as its docstring runs it: a failover counted, /metrics not."""
    replicas = f"{refused_url.rsplit('/', 1)[0]} {file_server.base}"
    with (
        ServerProcess(
            "gunicorn-gthread",
            {"STORAGE_REPLICAS": replicas},
            app="examples.metrics_app:application",
            chdir=ROOT,
            ready_path="/metrics",
        ) as server,
        urllib3.PoolManager(retries=False, timeout=10) as http,
    ):
        response = http.request("GET", server.base + "/files/small.txt")
        assert (response.status, response.data) == (200, FILES["small.txt"]), server.output()

        def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            text = http.request("GET", server.base + "/metrics").data.decode()
            assert "127.0.0.1" not in text
            return {
                (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
            }

        deadline = time.monotonic() + 10
        complete = ("wsgi_reproxy_requests_total", (("outcome", "complete"),))
        while (found := scrape()).get(complete) != 1.0 and time.monotonic() < deadline:
            time.sleep(0.05)  # the observer runs in close(), after the client has the body
        assert found[complete] == 1.0, server.output()
        assert found[("wsgi_reproxy_attempts_total", (("outcome", "failed"),))] == 1.0
        assert found[("wsgi_reproxy_attempts_total", (("outcome", "served"),))] == 1.0
        assert found[("wsgi_reproxy_body_bytes_total", ())] == len(FILES["small.txt"])
        assert http.request("GET", server.base + "/files/nope/x").status == 404
        assert "Traceback" not in server.output(), server.output()
