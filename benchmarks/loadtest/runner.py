"""The run: start the replicas and gunicorn, send the plan, measure, stop everything."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import replace

from .clients import drive
from .config import LoadConfig
from .plan import Planned, make_plan
from .replicas import Replica
from .report import LoadReport, ReplicaCounts
from .server import Gunicorn, unexpected_tracebacks


def _measure(
    server: Gunicorn, replicas: Sequence[Replica], plans: Sequence[Planned], config: LoadConfig
) -> LoadReport:
    """Run the warm-up, then the rest; worker stats at start, after warm-up and at the end
    (at the end also the RSS left once malloc has returned the freed memory it keeps)."""
    warmup = min(config.warmup, len(plans))
    start = server.stats()
    began = time.monotonic()
    deadline = began + config.deadline
    outcomes = drive(server.port, plans[:warmup], config.clients, deadline, config.timeout)
    warm = server.settled_stats()
    outcomes += drive(server.port, plans[warmup:], config.clients, deadline, config.timeout)
    wall = time.monotonic() - began
    end = server.settled_stats(trim=True)
    return LoadReport(
        config, outcomes, [ReplicaCounts.of(r) for r in replicas], start, warm, end, wall
    )


def run(config: LoadConfig) -> LoadReport:
    """Start the replicas and gunicorn, run the plan, measure, stop everything."""
    plans = make_plan(
        config.requests, config.hangup_share, config.dying_share, config.alone_share, config.seed
    )
    with contextlib.ExitStack() as stack:
        good = [
            stack.enter_context(contextlib.closing(Replica(label)))
            for label in ("good-a", "good-b")
        ]
        dying = stack.enter_context(contextlib.closing(Replica("dying", dying=True)))
        env = {
            "LOAD_GOOD": " ".join(r.base for r in good),
            "LOAD_DYING": dying.base,
            "LOAD_POOL_MAXSIZE": str(config.pool_maxsize),
        }
        server = stack.enter_context(contextlib.closing(Gunicorn(env, config.threads)))
        report = _measure(server, (*good, dying), plans, config)
    # gunicorn has stopped: its whole log can be read now
    return replace(report, unexpected_tracebacks=unexpected_tracebacks(server.output))
