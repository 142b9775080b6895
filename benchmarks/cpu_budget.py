"""CPU per request, process group by process group, while ``wrk`` drives one URL.

On a machine whose cores every process shares, what decides the request rate is the CPU
each process spends per request, all of them counted -- the front, the app behind it,
the storage, the load generator.  This script reads each group's user + system time from
``/proc/<pid>/stat`` before and after a ``wrk`` run (the processes listening on a port,
and their children), and ``wrk``'s own from ``getrusage``, and divides by the requests
served.  Linux only; needs ``wrk`` and ``ss``::

    python benchmarks/cpu_budget.py --url http://127.0.0.1:18500/r/1k.bin?urls=good \\
        --group front=18500 --group storage=18081 --rounds 3

    python benchmarks/cpu_budget.py --url http://127.0.0.1:18200/x/1k.bin \\
        --group front=18200 --group backend=18000 --group storage=18081

Each round runs ``wrk`` for a 2 s warm-up, then measures ``--duration`` seconds; the
figures printed are the medians over the rounds.  ``busy`` counts the processes of the
first group that did at least a quarter of the busiest one's work (gunicorn workers
sharing a socket sometimes leave all connections on one).  Used for the table "Where the
CPU goes, front by front" in ``docs/measurements.rst``.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def listening_pids(port: int) -> set[int]:
    """The processes with a listening socket on ``port``, and all their children."""
    shown = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    parents = {int(pid) for pid in re.findall(r"pid=(\d+)", shown)}
    if not parents:
        raise SystemExit(f"nothing listens on port {port}")
    return parents | {pid for pid in _all_pids() if _parent(pid) in parents}


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _parent(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[1])


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command name (which may hold spaces)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_ticks(pid: int) -> int:
    """User + system clock ticks of ``pid`` so far (0 once it is gone)."""
    fields = _stat_fields(pid)
    return 0 if fields is None else int(fields[11]) + int(fields[12])


def wrk(url: str, seconds: int, connections: int) -> int:
    """Run ``wrk`` against ``url``; the number of requests it completed."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url]
    shown = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    found = re.search(r"(\d+) requests in", shown)
    if found is None:
        raise SystemExit(f"wrk printed no request count:\n{shown}")
    return int(found.group(1))


def one_round(
    url: str, groups: dict[str, set[int]], seconds: int, connections: int
) -> dict[str, float]:
    """µs of CPU per request for each group and for wrk, the rate, and the busy count."""
    wrk(url, 2, connections)  # warm-up: connections opened, caches filled
    before = {pid: cpu_ticks(pid) for pids in groups.values() for pid in pids}
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    requests = wrk(url, seconds, connections)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent = {pid: cpu_ticks(pid) - ticks for pid, ticks in before.items()}
    figures = {
        name: sum(spent[pid] for pid in pids) / TICKS_PER_SECOND / requests * 1e6
        for name, pids in groups.items()
    }
    wrk_seconds = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    figures["wrk"] = wrk_seconds / requests * 1e6
    first = sorted((spent[pid] for pid in next(iter(groups.values()))), reverse=True)
    figures["busy"] = sum(1 for ticks in first if first[0] and ticks >= first[0] / 4)
    figures["req/s"] = requests / seconds
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="what wrk asks for")
    parser.add_argument(
        "--group",
        action="append",
        required=True,
        metavar="NAME=PORT",
        help="a process group: the processes listening on PORT and their children",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds measured per round")
    parser.add_argument("--connections", type=int, default=16)
    options = parser.parse_args()
    groups = {}
    for spec in options.group:
        name, _, port = spec.partition("=")
        groups[name] = listening_pids(int(port))
    rounds = [
        one_round(options.url, groups, options.duration, options.connections)
        for _ in range(options.rounds)
    ]
    medians = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
    total = sum(medians[name] for name in [*groups, "wrk"])
    print(f"{options.url}: {medians['req/s']:.0f} req/s, median of {options.rounds} rounds")
    for name in [*groups, "wrk"]:
        print(f"  {name:<12} {medians[name]:7.0f} µs of CPU per request")
    print(f"  {'total':<12} {total:7.0f} µs of CPU per request")
    first = next(iter(groups))
    print(f"  busy processes in {first}: {medians['busy']:.0f} of {len(groups[first])}")


if __name__ == "__main__":
    main()
