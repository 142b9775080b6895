"""The server under test: gunicorn gthread running ``load_app.py``, as a subprocess.

Its worker tells what it saw from the inside on ``GET /stats`` (:class:`WorkerStats`); its
log is read once it has stopped, for tracebacks that are not planned aborts.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parents[1]  # where load_app.py is


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """What ``/stats`` says about the gunicorn worker (see load_app.py)."""

    rss_kib: int
    hwm_kib: int
    objects: int
    app_created: int
    app_closed: int
    events: dict[str, int]
    # malloc's memory in use (mallinfo2), and VmRSS after malloc_trim(0) (asked for at the
    # end only); None when malloc is not glibc's
    malloc_in_use_kib: int | None = None
    trimmed_rss_kib: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkerStats:
        app = data["app"]
        return cls(
            int(data["rss_kib"]),
            int(data["hwm_kib"]),
            int(data["objects"]),
            int(app.get("created", 0)),
            int(app.get("closed", 0)),
            dict(data["events"]),
            _kib_or_none(data.get("malloc_in_use_kib")),
            _kib_or_none(data.get("trimmed_rss_kib")),
        )


def _kib_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _no_control_socket() -> list[str]:
    """``--no-control-socket`` where gunicorn has a control socket: it lives at one path in
    $HOME by default, which every other gunicorn running on the machine would contend for."""
    from gunicorn.config import KNOWN_SETTINGS  # type: ignore[import-untyped]

    known = {name for setting in KNOWN_SETTINGS for name in setting.cli or ()}
    return ["--no-control-socket"] if "--no-control-socket" in known else []


class Gunicorn:
    """``gunicorn -k gthread -w 1 --threads N load_app:application`` on 127.0.0.1.

    One worker, so that ``/stats`` always describes the process that served the load.  Its
    output goes to a temporary file, kept as :attr:`output` after :meth:`close`.
    """

    def __init__(self, env: Mapping[str, str], threads: int) -> None:
        self.port = _free_port()
        self.output = ""
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the server
            prefix="load-gunicorn-", suffix=".log", delete=False
        )
        options = {
            "-b": f"127.0.0.1:{self.port}",
            "-w": "1",
            "-k": "gthread",
            "--threads": str(threads),
            "--timeout": "60",
            "--graceful-timeout": "2",
            "--backlog": "256",
            "--chdir": str(BENCHMARKS),
        }
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn"),
                *chain.from_iterable(options.items()),
                *_no_control_socket(),
                "load_app:application",
            ],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self._read_log()}")
            try:
                self.stats()
            except OSError:
                time.sleep(0.1)
                continue
            return
        raise RuntimeError(f"gunicorn did not answer in {timeout}s:\n{self._read_log()}")

    def stats(self, *, trim: bool = False) -> WorkerStats:
        """The worker's own view: log events, app iterables, memory (``trim``: also the
        RSS once the allocator has returned the freed memory it keeps)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", "/stats?trim=1" if trim else "/stats")
            response = conn.getresponse()
            if response.status != 200:
                raise OSError(f"/stats answered {response.status}")
            return WorkerStats.from_json(json.loads(response.read()))
        finally:
            conn.close()

    def settled_stats(self, timeout: float = 10.0, *, trim: bool = False) -> WorkerStats:
        """Stats once every app iterable the worker created has been closed (or the timeout):
        gunicorn closes a response after the client already has its last byte."""
        deadline = time.monotonic() + timeout
        stats = self.stats()
        while stats.app_created != stats.app_closed and time.monotonic() < deadline:
            time.sleep(0.1)
            stats = self.stats()
        if trim:
            stats = self.stats(trim=True)
        return stats

    def _read_log(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")

    def close(self) -> None:
        """SIGTERM the process group, SIGKILL after 10 s; keep the log text, delete the file."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.output = self._read_log()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)


_LOG_RECORD = re.compile(r"^\[\d{4}-\d\d-\d\d [^]]*\] ", re.MULTILINE)


def unexpected_tracebacks(log: str) -> list[str]:
    """The final exception of each traceback in gunicorn's log that is not an abort.

    An aborted response (R6.4) raises ``UpstreamBodyError`` out of the body iterator, which
    gunicorn logs with its traceback (chained to the upstream's error); anything else that
    ends a record with a traceback is a crash worth reading.
    """
    ends = []
    for record in _LOG_RECORD.split(log):
        if "Traceback (most recent call last)" in record:
            lines = [ln for ln in record.splitlines() if ln and not ln[0].isspace()]
            ends.append(lines[-1])
    return [end for end in ends if not end.startswith("wsgi_reproxy.errors.UpstreamBodyError")]
