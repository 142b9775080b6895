"""What a cached hit costs, layer by layer, under one server: the ceiling of a Python front.

A kept decision (``X-Reproxy-Cache-For``) skips the view, so a hit costs the server, one
fetch from storage and the middleware around it.  This serves the same small files six
ways under one server configuration (``ceiling_app.py`` says what each does) and drives
each with ``wrk``: from memory (the server's ceiling), a raw-socket fetch (a fetch without
a client library), plain urllib3, the middleware's own pool, a hit of
``ReproxyMiddleware`` with a ``MemoryCache``, and the middleware without a cache.  Ratios
are against the hit, measured in the same run.  ``cpu µs/req`` is the server's processes'
CPU time per request (from ``/proc``).  Every body is checked against the storage first.

    python benchmarks/ceiling.py --storage http://127.0.0.1:18081/files/
    python benchmarks/ceiling.py --storage http://127.0.0.1:18081/files/ \
        --configs uwsgi-4x4,gunicorn-2x8 --sizes 1k,64k --rounds 2

It answers whether a goal is the middleware's to reach: when nginx's ``X-Accel-Redirect``
front does N requests a second with a 1 ms view, "2.0x nginx" needs 2N hits a second,
and the ``pool`` row -- the fetch alone, without the middleware -- says whether the client
can do 2N at all on this machine.  Needs ``wrk`` and, for the uWSGI configurations,
``uwsgi``; ``--storage`` as in ``servers.py`` (the anchors' nginx replica).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
from dataclasses import dataclass

from servers import (
    CONFIGS,
    SIZES,
    cpu_us_per_request,
    fetch,
    free_port,
    running,
    worker_cpu_ticks,
    wrk,
)

KINDS = ["static", "socket", "urllib3", "pool", "hit", "r"]
WHAT = {
    "static": "from memory: the server alone",
    "socket": "raw socket fetch, no client library",
    "urllib3": "plain urllib3 pool",
    "pool": "the middleware's pool, no middleware",
    "hit": "ReproxyMiddleware + MemoryCache, every request a hit",
    "r": "ReproxyMiddleware, no cache, a view that costs nothing",
}


@dataclass(frozen=True)
class Cell:
    config: str
    size: str
    kind: str
    requests_per_s: float
    cpu_us: float


def measure(config: str, storage: str, sizes: list[str], args: argparse.Namespace) -> list[Cell]:
    port = free_port()
    cells = []
    with running(config, port, storage, module="ceiling_app") as server:
        for size in sizes:
            want = hashlib.sha256(fetch(f"{storage}{size}.bin")).digest()
            for kind in KINDS:
                url = f"http://127.0.0.1:{port}/{kind}/{size}.bin"
                if hashlib.sha256(fetch(url)).digest() != want:
                    raise SystemExit(f"{config}: {url} gave wrong bytes; not measuring")
                wrk(url, args.connections, 2)  # warm-up (and, for hit, the decision kept)
                before = worker_cpu_ticks(server.pid)
                rate, _, _, errors = wrk(url, args.connections, args.duration)
                after = worker_cpu_ticks(server.pid)
                if errors:
                    raise SystemExit(f"{config} {url}: {errors}")
                cpu = cpu_us_per_request(before, after, rate * args.duration)
                cells.append(Cell(config, size, kind, rate, cpu))
                print(f"  {config} {size} {kind}: {rate:.0f} req/s", file=sys.stderr)
    return cells


def report(cells: list[Cell]) -> None:
    print(f"\n| config | size | {' | '.join(KINDS)} |\n|{'---|' * (len(KINDS) + 2)}")
    for config, size in dict.fromkeys((c.config, c.size) for c in cells):
        mine = [c for c in cells if (c.config, c.size) == (config, size)]
        rate = {k: statistics.median(c.requests_per_s for c in mine if c.kind == k) for k in KINDS}
        cpu = {k: statistics.median(c.cpu_us for c in mine if c.kind == k) for k in KINDS}
        row = [f"{rate[k]:.0f} ({rate[k] / rate['hit']:.2f}x, {cpu[k]:.0f} µs)" for k in KINDS]
        print(f"| {config} | {size} | {' | '.join(row)} |")
    print("\nreq/s (ratio to hit, server CPU per request); medians over the rounds")
    for kind in KINDS:
        print(f"  {kind}: {WHAT[kind]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", required=True, help="directory URL holding 1k.bin ...")
    parser.add_argument("--configs", default="uwsgi-4x4,gunicorn-2x8", help=",".join(CONFIGS))
    parser.add_argument("--sizes", default="1k,64k", help="from " + ",".join(SIZES))
    parser.add_argument("--duration", type=int, default=5, help="seconds of wrk per cell")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    configs = [name for name in args.configs.split(",") if name]
    unknown = [name for name in configs if name not in CONFIGS]
    if unknown:
        parser.error(f"unknown configs {unknown}; known: {', '.join(CONFIGS)}")
    sizes = args.sizes.split(",")
    cells = [
        cell
        for _ in range(args.rounds)
        for config in configs
        for cell in measure(config, args.storage, sizes, args)
    ]
    report(cells)
    warm_up = "after a 2 s warm-up"
    print(f"wrk -t1 -c{args.connections} -d{args.duration}s {warm_up}; {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
