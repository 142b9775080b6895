"""``benchmarks/syscalls.py``: its two parts that are not ``strace`` itself.

The count per request is only as true as the division: exactly ``--requests`` requests
must reach the server, over exactly ``--connections`` kept-alive connections (a new
connection per request would add ``accept4`` and ``close`` to every row), and
``strace -c``'s table must be read whole, its empty ``errors`` cells included.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from upstreams import FileServer

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

# ``strace -f -c`` on a gunicorn gthread worker serving 2,572 requests (this machine,
# 7 December): the errors column is empty on most lines.
STRACE_SUMMARY = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 96.52   14.079016          88    159819     18704 futex
  1.27    0.184883          14     12861           ioctl
  1.09    0.159535          31      5136        13 sendto
  0.35    0.051671          10      5127           epoll_ctl
  0.34    0.049594          19      2573           recvfrom
  0.32    0.047088          18      2572           write
------ ----------- ----------- --------- --------- ----------------
100.00   14.571677          77    188088     18717 total
"""


@pytest.fixture(scope="module")
def syscalls() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCHMARKS))  # it imports servers.py and ceiling.py beside it
    siblings = {"servers", "ceiling"} - set(sys.modules)
    try:
        spec = importlib.util.spec_from_file_location("syscalls", BENCHMARKS / "syscalls.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["syscalls"] = module  # (its dataclass looks itself up there)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("syscalls", None)
        for name in siblings:
            sys.modules.pop(name, None)
        sys.path.remove(str(BENCHMARKS))


def test_the_summary_is_read_whole(syscalls: ModuleType) -> None:
    calls = syscalls.parse_summary(STRACE_SUMMARY)
    assert calls == {
        "futex": 159819,
        "ioctl": 12861,
        "sendto": 5136,
        "epoll_ctl": 5127,
        "recvfrom": 2573,
        "write": 2572,
    }
    assert sum(calls.values()) == 188088  # what strace's own total says


def test_exactly_the_requests_asked_for_over_kept_connections(syscalls: ModuleType) -> None:
    with FileServer() as files:
        syscalls.send_requests(files.url("/files/small.txt"), 23, 4)
        assert len(files.requests) == 23
        assert {request.path for request in files.requests} == {"/files/small.txt"}
        assert files.connections == 4


def test_a_wrong_answer_stops_the_run(syscalls: ModuleType) -> None:
    with FileServer() as files:
        with pytest.raises(SystemExit, match="no-such-file: 404"):
            syscalls.send_requests(files.url("/files/no-such-file"), 4, 2)
        syscalls.send_requests(files.url("/files/small.txt"), 2, 2)  # (the server was serving)
        assert files.requests[-1].path == "/files/small.txt"


def test_nothing_to_trace_is_refused_before_strace_runs(syscalls: ModuleType) -> None:
    with pytest.raises(SystemExit, match="no worker to trace"):
        syscalls.traced([], lambda: None)
