"""Prometheus metrics of reproxied requests: an ``observer=`` for the middleware (SPEC R7.4).

Needs ``prometheus_client``: ``pip install 'wsgi-reproxy[prometheus]'``.  With the default
namespace it exports::

    wsgi_reproxy_requests_total{outcome}       complete | aborted | client_gone | failed
    wsgi_reproxy_attempts_total{outcome}       served | failed | skipped | resumed
    wsgi_reproxy_resumes_total                 broken bodies continued from another replica
    wsgi_reproxy_body_bytes_total              body bytes handed to the server
    wsgi_reproxy_first_byte_seconds            histogram: directive seen -> response started
    wsgi_reproxy_cache_total{result}           hit | miss | stored (with a decision cache)

No label ever carries a URL: storage URLs would multiply the series without bound and are
internal (see the security page).  Label values come from the fixed sets above; a report with
any other value is refused with :exc:`ValueError` before anything is counted (the
middleware's :func:`~wsgi_reproxy.report.notify` logs it).
"""

from __future__ import annotations

from collections.abc import Mapping

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
    from prometheus_client.registry import Collector
except ImportError as exc:
    raise ImportError(
        "wsgi_reproxy.prometheus needs prometheus_client: pip install 'wsgi-reproxy[prometheus]'",
        name=exc.name,
    ) from exc

from .report import ReproxyReport

__all__ = ["FIRST_BYTE_BUCKETS", "PrometheusObserver"]

REQUEST_OUTCOMES = ("complete", "aborted", "client_gone", "failed")
ATTEMPT_OUTCOMES = ("served", "failed", "skipped", "resumed")
CACHE_RESULTS = ("hit", "miss", "stored")

# Storage fetches: a local replica answers in about a millisecond, a cold object store in
# hundreds; past 10 s the connect/read timeouts have usually fired.
FIRST_BYTE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class PrometheusObserver:
    """Count each :class:`~wsgi_reproxy.ReproxyReport` into Prometheus metrics.

    >>> from prometheus_client import CollectorRegistry
    >>> from wsgi_reproxy import ReproxyReport
    >>> registry = CollectorRegistry()
    >>> observer = PrometheusObserver(registry)
    >>> observer(ReproxyReport(outcome="complete", status=200, bytes=5))
    >>> registry.get_sample_value("wsgi_reproxy_requests_total", {"outcome": "complete"})
    1.0

    :param registry: where the metrics are registered; None means
        ``prometheus_client.REGISTRY``, the one ``make_wsgi_app()`` exposes.
    :param namespace: the prefix of every metric name.
    :raises ValueError: the registry already holds these metrics, usually from a second
        observer: create one ``PrometheusObserver`` and give it to every middleware, or give
        each its own ``registry=`` or ``namespace=``.
    """

    __slots__ = (
        "_attempts",
        "_by_attempt",
        "_by_cache",
        "_by_outcome",
        "_bytes",
        "_cache",
        "_first_byte",
        "_requests",
        "_resumes",
        "namespace",
    )

    def __init__(
        self, registry: CollectorRegistry | None = None, namespace: str = "wsgi_reproxy"
    ) -> None:
        self.namespace = namespace

        def counter(name: str, documentation: str, *labels: str) -> Counter:
            return Counter(name, documentation, labels, namespace=namespace, registry=None)

        self._requests = counter("requests", "Reproxied requests, by how they ended.", "outcome")
        self._attempts = counter("attempts", "X-Reproxy-Url URLs, by outcome.", "outcome")
        self._resumes = counter("resumes", "Broken bodies continued from another replica.")
        self._bytes = counter("body_bytes", "Reproxied body bytes handed to the server.")
        self._cache = counter("cache", "Reproxy decision cache lookups, by result.", "result")
        self._first_byte = Histogram(
            "first_byte_seconds",
            "Time from the X-Reproxy-Url directive to the response start.",
            namespace=namespace,
            registry=None,
            buckets=FIRST_BYTE_BUCKETS,
        )
        # Every outcome's series exists from the start, at 0, so rate() and alerts see the
        # first one; each labelled child is looked up once, not per request.
        self._by_outcome = {o: self._requests.labels(o) for o in REQUEST_OUTCOMES}
        self._by_attempt = {o: self._attempts.labels(o) for o in ATTEMPT_OUTCOMES}
        self._by_cache: dict[str, Counter] = {}  # created when first seen: no cache, no series
        metrics = (self._requests, self._attempts, self._resumes, self._bytes, self._first_byte)
        _register(REGISTRY if registry is None else registry, [*metrics, self._cache], namespace)

    def __call__(self, report: ReproxyReport) -> None:
        """Count one finished report; :exc:`ValueError` if a value is outside the fixed sets
        (checked before anything is counted)."""
        request = _child(self._by_outcome, report.outcome, "outcome")
        attempts = [
            _child(self._by_attempt, attempt.outcome, "attempt outcome")
            for attempt in report.attempts
        ]
        cache = None if report.cache is None else self._cache_child(report.cache)
        if report.bytes < 0:
            raise ValueError(f"report bytes {report.bytes!r} is negative")
        request.inc()
        for attempt in attempts:
            attempt.inc()
        if cache is not None:
            cache.inc()
        resumes = report.resumes
        if resumes:
            self._resumes.inc(resumes)
        self._bytes.inc(report.bytes)
        if report.first_byte_seconds is not None:
            self._first_byte.observe(report.first_byte_seconds)

    def _cache_child(self, result: object) -> Counter:
        """The cache series of ``result``, created when first seen (no cache, no series)."""
        if result not in CACHE_RESULTS or not isinstance(result, str):
            raise ValueError(f"report cache {result!r} is not one of {', '.join(CACHE_RESULTS)}")
        child = self._by_cache.get(result)
        if child is None:
            child = self._by_cache[result] = self._cache.labels(result)
        return child

    def __repr__(self) -> str:
        return f"PrometheusObserver(namespace={self.namespace!r})"


def _register(registry: CollectorRegistry, metrics: list[Collector], namespace: str) -> None:
    """Register all of ``metrics`` or none of them, with an error that says what to do."""
    done: list[Collector] = []
    try:
        for metric in metrics:
            registry.register(metric)
            done.append(metric)
    except ValueError as exc:
        for metric in done:
            registry.unregister(metric)
        raise ValueError(
            f"the {namespace}_* metrics are already in this registry ({exc}): create one "
            "PrometheusObserver and pass it to every ReproxyMiddleware, or give each "
            "observer its own registry= or namespace="
        ) from exc


def _child(children: Mapping[str, Counter], value: object, what: str) -> Counter:
    """The labelled series for ``value``: only the fixed label values have one."""
    if isinstance(value, str) and value in children:
        return children[value]
    raise ValueError(f"report {what} {value!r} is not one of {', '.join(children)}")
