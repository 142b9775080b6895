"""Bounded load test: the middleware under gunicorn ``gthread``, many clients, a dying replica.

Why: the unit and fault tests prove each promise of SPEC R6 once, one request at a time.
This package checks that they still hold together under concurrency, on a real server::

    32 client threads --> gunicorn -k gthread -w 1 --threads 8    --> replicas (threads here)
      (raw sockets)       ReproxyMiddleware(load_app.backend),        good-a, good-b: keep-alive,
                          PoolManager(maxsize=8, block=True)          ETag, Range/If-Range
                                                                      dying: cuts bodies short

Each request is planned in advance (seeded): most are served by a good replica; a share
hangs up abruptly (RST) mid-body; a share is sent to the dying replica first, which cuts the
body after a random number of bytes (FIN or RST), with a good replica after it (the body
must be *resumed*, R6.4 + resume.py) or alone (the response must be *aborted*, never end
short as if complete).  Clients check status, ``Content-Length``, ``Content-Type``
(``preserve``) and the body's sha256 against the known file.

Expected, and :meth:`LoadReport.failures` lists what broke: no wrong byte; no truncated body
that looks complete; every request that could be served was served; the replicas never see
more connections open at once than the pool allows (R6.5: a leaked slot or socket shows
here); every app iterable closed; the worker's RSS flat after warm-up (R6.3).

One concern a module::

    files.py     the files served, their sha256 and ETags
    wire.py      the raw-socket HTTP/1.1 pieces replicas and clients share
    replicas.py  the upstream file servers, one of which cuts bodies where planned
    server.py    gunicorn running ../load_app.py, its /stats, its log
    plan.py      what each request does, decided in advance from a seed
    clients.py   the client threads: one raw-socket exchange per request
    verdicts.py  the truncation judge: what a client got against what it must get
    report.py    the expectations, and the report as a table
    config.py    one run's parameters, and the command line that sets them
    runner.py    start everything, run the plan, measure, stop everything

``benchmarks/load.py`` is the command line; ``tests/test_load.py`` runs a small version of
:func:`run` as a correctness test.  Everything listens on 127.0.0.1, is bounded in count
and time, and stops by itself.
"""

from .config import LoadConfig, parse_args
from .files import APP_CONTENT_TYPE, FILES, KIB, MIB
from .plan import Planned, make_plan
from .report import LoadReport
from .runner import run
from .server import unexpected_tracebacks
from .verdicts import Outcome, Response, judge

__all__ = [
    "APP_CONTENT_TYPE",
    "FILES",
    "KIB",
    "MIB",
    "LoadConfig",
    "LoadReport",
    "Outcome",
    "Planned",
    "Response",
    "judge",
    "make_plan",
    "parse_args",
    "run",
    "unexpected_tracebacks",
]
