"""Bounded load test of wsgi_reproxy under gunicorn gthread: the command line.

Runs :func:`loadtest.run` (local replicas, one of them dying, gunicorn loading
``load_app.py``, client threads that hang up mid-body), prints the report and exits with
status 1 when an expectation fails::

    python benchmarks/load.py --requests 2000 --clients 32 --hangup-share 0.1 --dying-share 0.2

What is tested, and why, is told in ``loadtest/__init__.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from loadtest import parse_args, run


def main(argv: Sequence[str] | None = None) -> int:
    report = run(parse_args(argv))
    print(report.render())
    if report.failures():
        print("\nfirst problems:\n" + report.details())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
