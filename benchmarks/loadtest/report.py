"""The report: everything one run measured, the expectations it checks, the printed table."""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import LoadConfig
from .files import KIB, MIB
from .plan import Kind
from .replicas import Replica
from .server import WorkerStats
from .verdicts import Outcome, Verdict


@dataclass(frozen=True, slots=True)
class ReplicaCounts:
    label: str
    accepted: int
    peak_open: int
    open_after: int
    requests: int
    cut_by_peer: int

    @classmethod
    def of(cls, replica: Replica) -> ReplicaCounts:
        return cls(
            replica.label,
            replica.accepted,
            replica.peak_open,
            replica.open_now(),
            replica.requests,
            replica.cut_by_peer,
        )


@dataclass(frozen=True, slots=True)
class LoadReport:
    """Everything measured in one run; :meth:`failures` says which expectations broke."""

    config: LoadConfig
    outcomes: list[Outcome]
    replicas: list[ReplicaCounts]
    start: WorkerStats
    warm: WorkerStats  # after the warm-up requests
    end: WorkerStats
    wall: float
    unexpected_tracebacks: list[str] = field(default_factory=list)

    def count(self, verdict: Verdict, *kinds: Kind) -> int:
        return sum(
            1 for o in self.outcomes if o.verdict == verdict and (not kinds or o.plan.kind in kinds)
        )

    def planned(self, *kinds: Kind) -> int:
        return sum(1 for o in self.outcomes if o.plan.kind in kinds)

    def event(self, kind: str) -> int:
        return self.end.events.get(kind, 0)

    @property
    def verified_bytes(self) -> int:
        return sum(o.received for o in self.outcomes if o.verdict == "ok")

    @property
    def allowance(self) -> int:
        """Connections one replica may see open at once: 1 worker x one pool per host."""
        return 1 * self.config.pool_maxsize

    @property
    def rss_growth_kib(self) -> int:
        return self.end.rss_kib - self.warm.rss_kib

    @property
    def in_use_growth_kib(self) -> int | None:
        """Growth after warm-up of what malloc has handed out and not had back: unlike RSS,
        not counting freed memory that glibc keeps for reuse (None: not glibc's malloc)."""
        warm, end = self.warm.malloc_in_use_kib, self.end.malloc_in_use_kib
        return None if warm is None or end is None else end - warm

    def failures(self) -> list[str]:
        """Each expectation that did not hold, in words; empty when the run passed."""
        checks = [
            (self.count("wrong bytes") == 0, "wrong bytes were served"),
            (self.count("truncated but looked complete") == 0, "a truncated body looked complete"),
            (self.count("error") + self.count("not sent") == 0, "requests failed or were not sent"),
            (
                self.count("ok") == self.planned("normal", "dying"),
                "not every servable request was served whole",
            ),
            (self.count("hung up") == self.planned("hangup"), "a hang-up went wrong"),
            (
                self.event("resume") + self.event("failover") == self.planned("dying"),
                "a resumable request was not resumed (or failed over) exactly once",
            ),
            (
                self.count("aborted", "dying-alone") + self.count("refused")
                == self.event("abort") + self.event("all_failed")
                == self.planned("dying-alone"),
                "a body that could not be continued was not aborted visibly",
            ),
            (
                all(r.peak_open <= self.allowance for r in self.replicas),
                "more upstream connections open at once than the pool allows",
            ),
            (
                self.end.app_created
                == self.end.app_closed
                == len(self.outcomes) - self.count("not sent") - self.count("error"),
                "an app iterable was not closed",
            ),
            (
                self.rss_growth_kib <= self.config.rss_limit_mib * KIB,
                f"worker RSS grew by more than {self.config.rss_limit_mib:g} MiB after warm-up",
            ),
            (
                self.in_use_growth_kib is None
                or self.in_use_growth_kib <= self.config.in_use_limit_mib * KIB,
                f"the worker's memory in use grew by more than "
                f"{self.config.in_use_limit_mib:g} MiB after warm-up",
            ),
            (not self.unexpected_tracebacks, "the server logged unexpected tracebacks"),
        ]
        return [message for passed, message in checks if not passed]

    def render(self) -> str:
        """The report as a plain-text table."""
        rows = [*self._request_rows(), *self._upstream_rows(), *self._worker_rows()]
        failures = self.failures()
        rows.append(("result", "FAIL: " + "; ".join(failures) if failures else "PASS"))
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)

    def _request_rows(self) -> list[tuple[str, str]]:
        config, count = self.config, self.count
        return [
            (
                "requests sent",
                f"{len(self.outcomes) - count('not sent')} of {config.requests}"
                f" ({config.clients} clients, seed {config.seed})",
            ),
            ("  planned normal / hang-up", f"{self.planned('normal')} / {self.planned('hangup')}"),
            (
                "  planned dying: resumable / alone",
                f"{self.planned('dying')} / {self.planned('dying-alone')}",
            ),
            ("served OK (whole file, sha256 verified)", str(count("ok"))),
            ("verified bytes", f"{self.verified_bytes / MIB:.1f} MiB"),
            ("early hang-ups (client RST mid-body)", str(count("hung up"))),
            (
                "  seen upstream (replica cut off mid-body)",
                str(sum(r.cut_by_peer for r in self.replicas)),
            ),
            ("resumes (server log)", str(self.event("resume"))),
            ("failovers before the body (server log)", str(self.event("failover"))),
            ("aborts (server log)", str(self.event("abort"))),
            ("  client saw a short body (as expected)", str(count("aborted", "dying-alone"))),
            ("  client saw a 5xx (as expected)", str(count("refused"))),
            ("  aborted unexpectedly", str(count("aborted", "normal", "dying"))),
            ("wrong bytes", str(count("wrong bytes"))),
            ("truncated but looked complete", str(count("truncated but looked complete"))),
            ("errors / not sent", f"{count('error')} / {count('not sent')}"),
        ]

    def _upstream_rows(self) -> list[tuple[str, str]]:
        rows = [
            (
                "upstream TCP connections, per replica",
                f"allowance {self.allowance} open at once "
                f"(1 worker x maxsize {self.config.pool_maxsize})",
            )
        ]
        rows += [
            (
                f"  {r.label}: opened / peak open at once / open after",
                f"{r.accepted} / {r.peak_open} / {r.open_after}",
            )
            for r in self.replicas
        ]
        return rows

    def _in_use_row(self) -> str:
        growth = self.in_use_growth_kib
        if growth is None:
            return "not measured (malloc is not glibc's)"
        return (
            f"{self.warm.malloc_in_use_kib / KIB:.1f} / {self.end.malloc_in_use_kib / KIB:.1f}"
            f" MiB ({growth / KIB:+.1f}, limit {self.config.in_use_limit_mib:g})"
        )

    def _trimmed_row(self) -> str:
        trimmed = self.end.trimmed_rss_kib
        if trimmed is None:
            return "not measured (malloc is not glibc's)"
        kept = self.end.rss_kib - trimmed
        return f"{trimmed / KIB:.1f} MiB (malloc kept {kept / KIB:.1f} MiB of freed memory)"

    def _worker_rows(self) -> list[tuple[str, str]]:
        start, warm, end, wall = self.start, self.warm, self.end, self.wall
        return [
            ("app iterables created / closed", f"{end.app_created} / {end.app_closed}"),
            (
                "worker RSS start / after warm-up / end",
                " / ".join(f"{s.rss_kib / KIB:.1f}" for s in (start, warm, end)) + " MiB",
            ),
            (
                "worker peak RSS (VmHWM) after warm-up / end",
                f"{warm.hwm_kib / KIB:.1f} / {end.hwm_kib / KIB:.1f} MiB",
            ),
            (
                "RSS growth after warm-up",
                f"{self.rss_growth_kib / KIB:+.1f} MiB (limit {self.config.rss_limit_mib:g})",
            ),
            ("malloc'd memory in use after warm-up / end", self._in_use_row()),
            ("worker RSS at the end after malloc_trim(0)", self._trimmed_row()),
            (
                "python objects (gc) start / after warm-up / end",
                f"{start.objects} / {warm.objects} / {end.objects}",
            ),
            ("unexpected server tracebacks", str(len(self.unexpected_tracebacks))),
            (
                "wall time (load only)",
                f"{wall:.1f} s ({len(self.outcomes) / wall:.0f} req/s, "
                f"{self.verified_bytes / MIB / wall:.0f} MiB/s verified)",
            ),
        ]

    def details(self, limit: int = 10) -> str:
        """The first few outcomes that are errors or worse, for a failing run."""
        bad = [
            o
            for o in self.outcomes
            if o.verdict in ("error", "wrong bytes", "truncated but looked complete")
            or (o.verdict == "aborted" and o.plan.servable)
        ]
        lines = [
            f"  #{o.plan.index} {o.plan.path()} [{o.plan.kind}]: {o.verdict} "
            f"({o.received} bytes) {o.detail}"
            for o in bad[:limit]
        ]
        lines += [f"  server: {end}" for end in self.unexpected_tracebacks[:limit]]
        return "\n".join(lines)
