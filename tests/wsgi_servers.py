"""Real WSGI servers as subprocesses on 127.0.0.1, serving tests/apps/serverapp.py.

``ServerProcess(kind)`` starts gunicorn (sync, gthread, gevent), waitress, uWSGI or Granian
with the same app, waits until it answers, and stops it (SIGTERM, then SIGKILL) at exit.  Its output
goes to a log file that is printed when a test fails, so a crash in the server is visible.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import urllib3

APPS = Path(__file__).parent / "apps"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command(kind: str, port: int, threads: int, app: str, chdir: Path) -> list[str]:
    bind = f"127.0.0.1:{port}"
    if kind.startswith("gunicorn-"):
        # "gunicorn-gevent-preload": the app imported before the worker patches sockets.
        worker, _, preload = kind.removeprefix("gunicorn-").partition("-")
        return [
            *([sys.executable, "-m", "gunicorn"] + (["--preload"] if preload else [])),
            "-b",
            bind,
            "-w",
            "1",
            "-k",
            worker,
            "--threads",
            str(threads),
            "--timeout",
            "60",
            "--graceful-timeout",
            "1",
            "--chdir",
            str(chdir),
            app,
        ]
    if kind == "waitress":
        return [
            sys.executable,
            "-m",
            "waitress",
            f"--listen={bind}",
            f"--threads={threads}",
            app,
        ]
    if kind == "uwsgi":
        return [
            uwsgi_binary(),
            "--http11-socket",
            bind,
            "--master",
            "--processes",
            "1",
            "--threads",
            str(threads),
            "--chdir",
            str(chdir),
            "--module",
            app,
            "--die-on-term",
            "--need-app",
            "--disable-logging",
        ]
    if kind == "granian":
        # WSGI calls run on blocking threads, one each for the whole body (as gthread's
        # threads); --backpressure, which counts connections, keeps its default (1024).
        return [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "wsgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--blocking-threads",
            str(threads),
            "--working-dir",
            str(chdir),
            "--workers-kill-timeout",
            "1",
            app,
        ]
    raise ValueError(kind)


def uwsgi_binary() -> str:
    """The ``uwsgi`` command of this Python: the ``pyuwsgi`` wheel (the ``test`` extra)
    installs it beside the interpreter, where a PATH lookup could find another Python's."""
    beside_python = Path(sys.executable).with_name("uwsgi")
    return str(beside_python) if beside_python.exists() else shutil.which("uwsgi") or "uwsgi"


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process's group (it was started in a session of its own), SIGKILL
    if it lingers: nothing it started outlives the test."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


class ServerProcess:
    """``kind`` serving ``app`` (``module:callable``) from ``chdir``, answering on ``base``."""

    def __init__(
        self,
        kind: str,
        env: dict[str, str],
        threads: int = 4,
        *,
        app: str = "serverapp:application",
        chdir: Path = APPS,
        ready_path: str = "/stats",
    ) -> None:
        self.kind = kind
        self._ready_path = ready_path
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the server
            prefix=f"{kind}-", suffix=".log", delete=False
        )
        environ = {
            **os.environ,
            **env,
            "PYTHONPATH": os.pathsep.join([str(chdir), os.environ.get("PYTHONPATH", "")]),
        }
        self.process = subprocess.Popen(
            command(kind, self.port, threads, app, chdir),
            env=environ,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with urllib3.PoolManager(retries=False) as pool:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.kind} exited early:\n{self.output()}")
                try:
                    pool.request("GET", self.base + self._ready_path, timeout=1.0)
                except urllib3.exceptions.HTTPError:
                    time.sleep(0.1)
                    continue
                return  # any HTTP answer: the app is loaded
        output = self.output()
        self.stop()
        raise RuntimeError(f"{self.kind} did not answer within {timeout}s:\n{output}")

    def output(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        Path(self._log.name).unlink(missing_ok=True)
