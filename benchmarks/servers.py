"""Which WSGI server settings serve reproxied files fastest, measured side by side.

The middleware costs the same under every server; what a request costs *around* it -- the
server's HTTP parsing, its threads and the GIL, whether it sets ``TCP_NODELAY`` -- differs
by a factor of two.  This runs ``servers_app.py`` (the anchors' candidate: the middleware
in front of a backend that answers ``X-Reproxy-Url``) under each server configuration in
turn, drives it with ``wrk`` (16 keep-alive connections by default), and prints requests/s,
p50 and p99 per file size with ratios against the first configuration.

Each configuration is checked first: one reproxied body must equal the storage's bytes.
The ``busy`` column counts the workers that did at least a tenth of the work during the
run: gunicorn workers sharing a listening socket sometimes get every connection on one
worker ("1/2"), which halves throughput for reasons that have nothing to do with the app
-- read such runs as what they are.

    python benchmarks/servers.py --storage http://127.0.0.1:18081/files/
    python benchmarks/servers.py --configs gunicorn-2x8,uwsgi-4x4 --sizes 1k --duration 10
    python benchmarks/servers.py --storage http://127.0.0.1:18081/files/ --big 1g.bin \
        --configs gunicorn-2x8,gunicorn-gevent-2,uwsgi-4x4,waitress-8,granian-2x8

``--big`` also downloads one large file of ``--storage`` with ``curl`` (``--big-runs``
times; the median MB/s): every server this project is tested under, in one run, for
small files and big ones.

To compare two versions of the middleware, check the other one out beside this one and
alternate them, one gthread worker at a time (no accept race between workers, and the
GIL's hand-offs between its threads count in full)::

    git worktree add /tmp/before HEAD~1
    python benchmarks/servers.py --storage http://127.0.0.1:18081/files/ \
        --configs gunicorn-1x8 --compare /tmp/before/src --rounds 3

Each configuration then runs ``--rounds`` times for this tree and for the other,
alternately, so that the machine's drift hits both alike; the summary gives medians and
the ratio of this tree to the other.  ``cpu µs/req`` is the server processes' CPU time
per request (from ``/proc``).

``--storage`` is a directory URL holding ``1k.bin``, ``64k.bin`` ... (the anchors'
nginx replica, or your own nginx); without it an embedded Python file server is started,
which is slower than any front and so only good for trying the script out.  Needs ``wrk``
and, for the uWSGI configurations, ``uwsgi`` (both skipped with a message if missing).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = {"1k": 1024, "64k": 64 * 1024, "1m": 1024 * 1024}


def _gunicorn(workers: int, threads: int, worker_class: str = "gthread") -> list[str]:
    concurrency = (
        ["--threads", str(threads)]
        if worker_class == "gthread"
        else ["--worker-connections", str(threads)]
    )
    return [
        *(sys.executable, "-m", "gunicorn", "-k", worker_class, "--keep-alive", "5"),
        *("--workers", str(workers), *concurrency, "--log-level", "warning"),
        *("--chdir", str(HERE), "--bind", "127.0.0.1:{port}", "{module}"),
    ]


def _uwsgi(processes: int, threads: int, *, nodelay: bool = True) -> list[str]:
    return [
        *("{uwsgi}", "--http11-socket", "127.0.0.1:{port}"),
        *("--processes", str(processes), "--threads", str(threads)),
        *(["--tcp-nodelay"] if nodelay else []),
        *("--master", "--disable-logging", "--thunder-lock", "--die-on-term"),
        *("--pythonpath", str(HERE), "--module", "{module}:application"),
    ]


def _waitress(threads: int) -> list[str]:
    return [
        *(sys.executable, "-m", "waitress", "--listen=127.0.0.1:{port}"),
        *(f"--threads={threads}", "{module}:application"),
    ]


def _granian(workers: int, threads: int) -> list[str]:
    return [
        *(sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1"),
        *("--port", "{port}", "--workers", str(workers), "--blocking-threads", str(threads)),
        *("--working-dir", str(HERE), "--log-level", "warning", "{module}:application"),
    ]


# name -> (command line with {port} and {uwsgi} to fill in; what it shows)
CONFIGS: dict[str, tuple[list[str], str]] = {
    "gunicorn-1x8": (_gunicorn(1, 8), "one gthread worker: for comparing versions"),
    "gunicorn-2x8": (_gunicorn(2, 8), "the anchors' candidate slot"),
    "gunicorn-4x4": (_gunicorn(4, 4), "more workers, fewer threads"),
    "gunicorn-gevent-2": (_gunicorn(2, 100, "gevent"), "greenlets instead of threads"),
    "uwsgi-2x8": (_uwsgi(2, 8), "uWSGI, the candidate's shape"),
    "uwsgi-4x4": (_uwsgi(4, 4), "recommended"),
    "uwsgi-8x2": (_uwsgi(8, 2), "fewer threads per GIL: lower p99"),
    "uwsgi-4x4-nagle": (_uwsgi(4, 4, nodelay=False), "without --tcp-nodelay: 40 ms stalls"),
    "waitress-8": (_waitress(8), "one process, 8 threads"),
    "granian-2x8": (_granian(2, 8), "Granian's WSGI interface, 2 workers x 8 blocking threads"),
}
DEFAULT_CONFIGS = "gunicorn-2x8,gunicorn-gevent-2,uwsgi-4x4,uwsgi-8x2,uwsgi-4x4-nagle"


@dataclass(frozen=True)
class Result:
    config: str
    size: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: str
    busy: str
    cpu_us: float = float("nan")
    version: str = "this tree"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        body: bytes = response.read()
        return body


def uwsgi_binary() -> str | None:
    beside_python = Path(sys.executable).with_name("uwsgi")
    return str(beside_python) if beside_python.exists() else shutil.which("uwsgi")


@contextlib.contextmanager
def running(
    config: str, port: int, storage: str, src: str | None = None, module: str = "servers_app"
) -> Iterator[subprocess.Popen[bytes]]:
    """``config`` serving ``module`` (of this folder) on ``port``; with ``src``, importing
    ``wsgi_reproxy`` from there."""
    argv, _ = CONFIGS[config]
    uwsgi = uwsgi_binary() or "uwsgi"
    command = [word.format(port=port, uwsgi=uwsgi, module=module) for word in argv]
    env = {**os.environ, "BENCH_STORAGE": storage}
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    # The server's output goes to a file: a pipe nobody reads fills up, and a server that
    # logs per request (waitress's queue warnings) then blocks on its next log line.
    log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        command,
        env=env,
        cwd=HERE,  # waitress imports the app from the working directory
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                fetch(f"http://127.0.0.1:{port}/n/ready")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    stderr = log.read()[-800:]
                    raise SystemExit(f"{config} did not start: {stderr!r}") from None
                time.sleep(0.2)
        yield process
    finally:
        # gunicorn stops quickly on SIGINT, uWSGI (--die-on-term) and the others on SIGTERM.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT if "gunicorn" in config else signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def cpu_us_per_request(before: dict[int, int], after: dict[int, int], requests: float) -> float:
    ticks = sum(after.values()) - sum(before.get(pid, 0) for pid in after)
    return ticks * 1e6 / os.sysconf("SC_CLK_TCK") / requests if requests else float("nan")


def worker_cpu_ticks(pid: int) -> dict[int, int]:
    """utime + stime of each child process (the workers) of ``pid``, or of ``pid`` itself
    when it has none (waitress serves in one process)."""
    ticks = {}
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for child in map(int, children or [str(pid)]):
            fields = Path(f"/proc/{child}/stat").read_text().rpartition(")")[2].split()
            ticks[child] = int(fields[11]) + int(fields[12])
    return ticks


def busy_workers(before: dict[int, int], after: dict[int, int]) -> str:
    """How many workers did at least a tenth of the run's work, out of how many."""
    spent = [after[pid] - before.get(pid, 0) for pid in after]
    total = sum(spent)
    if not total:
        return "-"
    return f"{sum(1 for ticks in spent if ticks >= total / 10)}/{len(spent)}"


def to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        return float("nan")
    value, unit = float(match[1]), match[2]
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def wrk(url: str, connections: int, seconds: int) -> tuple[float, float, float, str]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    errors = "; ".join(
        line.strip() for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line
    )
    return (
        float(rate[1]) if rate else 0.0,
        to_ms(p50[1]) if p50 else float("nan"),
        to_ms(p99[1]) if p99 else float("nan"),
        errors,
    )


def measure(
    config: str,
    storage: str,
    sizes: list[str],
    args: argparse.Namespace,
    src: str | None = None,
) -> list[Result]:
    port = free_port()
    results = []
    version = "this tree" if src is None else src
    with running(config, port, storage, src) as server:
        print(f"  {config}: {fetch(f'http://127.0.0.1:{port}/n/version').decode().strip()}")
        for size in sizes:
            url = f"http://127.0.0.1:{port}/r/{size}.bin"
            try:
                got, want = fetch(url), fetch(f"{storage}{size}.bin")
            except OSError as error:
                raise SystemExit(f"{config}: checking {url} failed: {error}") from error
            if hashlib.sha256(got).digest() != hashlib.sha256(want).digest():
                raise SystemExit(f"{config}: {url} gave {len(got)} wrong bytes; not measuring")
            wrk(url, args.connections, 2)  # warm-up
            before = worker_cpu_ticks(server.pid)
            rate, p50, p99, errors = wrk(url, args.connections, args.duration)
            after = worker_cpu_ticks(server.pid)
            busy = busy_workers(before, after)
            cpu = cpu_us_per_request(before, after, rate * args.duration)
            results.append(Result(config, size, rate, p50, p99, errors, busy, cpu, version))
            print(f"  {config} {size}: {rate:.0f} req/s, p99 {p99:.2f} ms", file=sys.stderr)
        if args.big:
            results.append(download(config, port, args.big, args.big_runs, version))
    return results


def download(config: str, port: int, name: str, runs: int, version: str) -> Result:
    """``curl`` of one large file, ``runs`` times: the median MB/s (10^6 bytes), stored in
    the ``requests_per_s`` field of a result whose size is the file's name."""
    speeds = []
    for _ in range(runs):
        argv = ["curl", "-s", "-o", "/dev/null", "--max-time", "300", "-w"]
        argv += ["%{http_code} %{size_download} %{time_total}", f"http://127.0.0.1:{port}/r/{name}"]
        code, size, seconds = subprocess.run(
            argv, capture_output=True, text=True, check=True
        ).stdout.split()
        if code != "200":
            raise SystemExit(f"{config}: {name} answered {code}")
        speeds.append(int(size) / float(seconds) / 1e6)
    speed = statistics.median(speeds)
    print(f"  {config} {name}: {speed:.0f} MB/s ({', '.join(f'{s:.0f}' for s in speeds)})")
    return Result(config, name, speed, float("nan"), float("nan"), "", "-", version=version)


def report(results: list[Result], configs: list[str]) -> None:
    print(
        f"\n| config | size | version | req/s (--big: MB/s) | p50 ms | p99 ms | cpu µs/req "
        f"| busy | |"
        f"\n|{'---|' * 9}"
    )
    for result in results:
        base = next(r for r in results if r.size == result.size and r.config == configs[0])
        ratio = result.requests_per_s / base.requests_per_s if base.requests_per_s else 0.0
        print(
            f"| {result.config} | {result.size} | {result.version} "
            f"| {result.requests_per_s:.0f} ({ratio:.2f}x) "
            f"| {result.p50_ms:.2f} | {result.p99_ms:.2f} | {result.cpu_us:.0f} | {result.busy} "
            f"| {CONFIGS[result.config][1]}{'; ' + result.errors if result.errors else ''} |"
        )


def compare_report(results: list[Result], other: str) -> None:
    """Medians per configuration and size, this tree against ``other``."""
    print(
        f"\n| config | size | this tree req/s | {other} req/s | ratio | cpu µs/req |\n|{'---|' * 6}"
    )
    keys = dict.fromkeys((r.config, r.size) for r in results)
    for config, size in keys:
        runs = [r for r in results if (r.config, r.size) == (config, size)]
        ours = [r for r in runs if r.version == "this tree"]
        theirs = [r for r in runs if r.version != "this tree"]
        rate = statistics.median(r.requests_per_s for r in ours)
        other_rate = statistics.median(r.requests_per_s for r in theirs)
        cpu = statistics.median(r.cpu_us for r in ours)
        other_cpu = statistics.median(r.cpu_us for r in theirs)
        ratio = rate / other_rate if other_rate else float("nan")
        print(
            f"| {config} | {size} | {rate:.0f} | {other_rate:.0f} | {ratio:.2f}x "
            f"| {cpu:.0f} vs {other_cpu:.0f} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", help="directory URL holding 1k.bin, 64k.bin ...")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help="from " + ",".join(CONFIGS))
    parser.add_argument("--sizes", default="1k,64k", help="from " + ",".join(SIZES))
    parser.add_argument("--duration", type=int, default=8, help="seconds of wrk per size")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--compare", help="another src/ folder with wsgi_reproxy: alternate")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each configuration")
    parser.add_argument("--big", help="also download this large file of --storage with curl")
    parser.add_argument("--big-runs", type=int, default=3, help="downloads of --big (median)")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("servers.py needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    configs = [name for name in args.configs.split(",") if name]
    unknown = [name for name in configs if name not in CONFIGS]
    if unknown:
        parser.error(f"unknown configs {unknown}; known: {', '.join(CONFIGS)}")
    if uwsgi_binary() is None:
        skipped = [name for name in configs if name.startswith("uwsgi")]
        print(f"uwsgi not found; skipping {skipped}", file=sys.stderr)
        configs = [name for name in configs if name not in skipped]
    sizes = args.sizes.split(",")
    storage, embedded = args.storage, None
    if storage is None:
        sys.path.insert(0, str(HERE))
        from inprocess import embedded_storage

        print("no --storage: embedded Python file server (it bounds every figure)", file=sys.stderr)
        storage, embedded = embedded_storage({name: SIZES[name] for name in sizes})
    try:
        versions: list[str | None] = [None] if args.compare is None else [None, args.compare]
        results = [
            result
            for _ in range(args.rounds)
            for config in configs
            for src in versions
            for result in measure(config, storage, sizes, args, src)
        ]
    finally:
        if embedded is not None:
            embedded.terminate()
            embedded.wait()
    report(results, configs)
    if args.compare is not None:
        compare_report(results, args.compare)
    print(
        f"\nwrk -t1 -c{args.connections} -d{args.duration}s after a 2 s warm-up; "
        f"{os.cpu_count()} cores; storage {storage}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
