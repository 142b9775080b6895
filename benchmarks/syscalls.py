"""System calls per request, under a real server: what the server, the fetch and the
middleware each ask of the kernel.

Requests a second on a shared 2-core machine drift by a third from one hour to the
next; system calls do not.  And under a threaded Python server each blocking call
(``poll``, ``sendto``, ``recvfrom``, even the ``ioctl`` behind ``settimeout``) lets go of
the GIL, so its count says how often a request's threads may hand the GIL over; the
``futex`` column counts the lock waits and wakes themselves (the GIL's, the server's
queues').  This serves ``ceiling_app.py``'s kinds (``static``:
the server alone; ``pool``: the fetch alone, through the middleware's pool; ``hit``: the
middleware with a ``MemoryCache``, every request a hit) under one server configuration,
attaches ``strace -f -c`` to its workers, sends exactly ``--requests`` requests over
``--connections`` kept-alive connections, and divides::

    python benchmarks/syscalls.py --storage http://127.0.0.1:18081/files/
    python benchmarks/syscalls.py --storage http://127.0.0.1:18081/files/ \
        --configs gunicorn-1x8,uwsgi-4x4 --kinds static,pool,hit --sizes 1k,64k

The counts include what the server does meanwhile on its own (gunicorn's heartbeat:
``utimensat``, ``getppid``), and ``futex`` and ``epoll_wait`` vary with how the threads
happen to meet; nearly every other count is exact to the request.  Under ``strace`` a
server runs several times slower: read the counts, never the speed.  Needs ``strace``
(``apt-get install strace``) and, for the uWSGI configurations, ``uwsgi``; ``--storage``
as in ``servers.py``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.client
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ceiling import KINDS
from servers import CONFIGS, SIZES, fetch, free_port, running, worker_cpu_ticks

SHOWN = 7  # system calls named per row, the most frequent first
ATTACH_SECONDS = 10


@dataclass(frozen=True)
class Cell:
    config: str
    size: str
    kind: str
    per_request: dict[str, float]  # system call -> calls per request


def parse_summary(text: str) -> Counter[str]:
    """Calls per system call from ``strace -c``'s table (the ``errors`` column may be
    empty, so the call count is the fourth field and the name the last)."""
    calls: Counter[str] = Counter()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[3].isdigit() and fields[-1] != "total":
            calls[fields[-1]] += int(fields[3])
    return calls


def send_requests(url: str, requests: int, connections: int) -> None:
    """Exactly ``requests`` GETs of ``url`` over ``connections`` kept-alive connections;
    any answer but a whole 200 stops the run."""
    host, _, path = url.removeprefix("http://").partition("/")
    shares = [requests // connections + (i < requests % connections) for i in range(connections)]
    failures: list[str] = []

    def client(count: int) -> None:
        connection = http.client.HTTPConnection(host, timeout=60)
        try:
            for _ in range(count):
                connection.request("GET", "/" + path)
                response = connection.getresponse()
                body = response.read()
                length = response.headers.get("Content-Length")
                if response.status != 200 or (length is not None and len(body) != int(length)):
                    failures.append(f"{url}: {response.status}, {len(body)} bytes")
                    return
                if response.will_close:  # a new connection per request would be counted too
                    failures.append(f"{url}: the server closes the connection after a response")
                    return
        except Exception as error:  # any failure: the count would be short
            failures.append(f"{url}: {error!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(failures[0])


def traced(pids: list[int], run: Callable[[], None]) -> Counter[str]:
    """``strace -f -c`` on ``pids`` (every thread) around ``run()``; exits when strace
    cannot attach to every one of them, or gives no summary."""
    if not pids:
        raise SystemExit("no worker to trace")
    with tempfile.NamedTemporaryFile(suffix=".strace") as summary:
        argv = ["strace", "-f", "-c", "-o", summary.name]
        for pid in pids:
            argv += ["-p", str(pid)]
        tracer = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        try:
            _wait_until_attached(_lines(tracer), len(pids))
            run()
        finally:
            tracer.send_signal(signal.SIGINT)
            tracer.wait(timeout=30)
        text = Path(summary.name).read_text()
    if not re.search(r"^\S.* total$", text, re.MULTILINE):
        raise SystemExit(f"strace gave no summary (exit status {tracer.returncode})")
    return parse_summary(text)


def _lines(tracer: subprocess.Popen[str]) -> queue.Queue[str]:
    """strace's messages, line by line, read on a thread until it ends (so that a full
    pipe never stalls it); an empty string at the end."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert tracer.stderr is not None
        for line in tracer.stderr:
            lines.put(line)
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    return lines


def _wait_until_attached(lines: queue.Queue[str], processes: int) -> None:
    """strace says "Process N attached" once per ``-p``; any failure to attach fails."""
    deadline = time.monotonic() + ATTACH_SECONDS
    attached = 0
    while attached < processes:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            line = ""
        if not line or "ptrace(" in line or "attach:" in line:
            raise SystemExit(f"strace did not attach to every worker: {line.strip()!r}")
        attached += "attached" in line


def measure(config: str, storage: str, args: argparse.Namespace) -> list[Cell]:
    port = free_port()
    cells = []
    with running(config, port, storage, module="ceiling_app") as server:
        for size in args.sizes:
            want = hashlib.sha256(fetch(f"{storage}{size}.bin")).digest()
            for kind in args.kinds:
                url = f"http://127.0.0.1:{port}/{kind}/{size}.bin"
                if hashlib.sha256(fetch(url)).digest() != want:
                    raise SystemExit(f"{config}: {url} gave wrong bytes; not counting")
                warm = args.connections * 20  # every thread's connection made, the decision kept
                send_requests(url, warm, args.connections)
                pids = sorted(worker_cpu_ticks(server.pid))  # (uWSGI forks its last ones late)
                calls = traced(
                    pids, functools.partial(send_requests, url, args.requests, args.connections)
                )
                if calls["connect"]:
                    warn = f"  {config} {kind}: a worker connected to storage inside the count"
                    print(warn, file=sys.stderr)
                per_request = {name: count / args.requests for name, count in calls.items()}
                cells.append(Cell(config, size, kind, per_request))
                print(f"  {config} {size} {kind}: {sum(calls.values())} calls", file=sys.stderr)
    return cells


def report(cells: list[Cell]) -> None:
    print("\n| config | size | kind | all | futex | the others, most frequent first |")
    print("|---|---|---|---:|---:|---|")
    for cell in cells:
        calls = cell.per_request
        others = sorted((name for name in calls if name != "futex"), key=lambda n: -calls[n])
        named = ", ".join(f"{name} {calls[name]:.2f}" for name in others[:SHOWN])
        print(
            f"| {cell.config} | {cell.size} | {cell.kind} | {sum(calls.values()):.1f} | "
            f"{calls.get('futex', 0.0):.1f} | {named} |"
        )
    print("\nsystem calls per request, every thread of the server's workers (strace -f -c)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", required=True, help="directory URL holding 1k.bin ...")
    parser.add_argument("--configs", default="gunicorn-1x8,uwsgi-4x4", help=",".join(CONFIGS))
    parser.add_argument("--kinds", default="static,pool,hit", help="from " + ",".join(KINDS))
    parser.add_argument("--sizes", default="1k", help="from " + ",".join(SIZES))
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    args.kinds = [kind for kind in args.kinds.split(",") if kind]
    args.sizes = [size for size in args.sizes.split(",") if size]
    configs = [name for name in args.configs.split(",") if name]
    unknown = [n for n in configs if n not in CONFIGS] + [k for k in args.kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown configs or kinds {unknown}")
    if args.requests < args.connections or args.connections < 1:
        parser.error("--requests must be at least --connections, which must be positive")
    if shutil.which("strace") is None:
        parser.error("needs strace (apt-get install strace)")
    report([cell for config in configs for cell in measure(config, args.storage, args)])
    print(f"{args.requests} requests over {args.connections} connections; {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    start = time.monotonic()
    status = main()
    print(f"({time.monotonic() - start:.0f} s)", file=sys.stderr)
    sys.exit(status)
