"""A real ``redis-server`` on 127.0.0.1, for the decision cache's tests (SPEC R8).

Started on a free port with nothing written to disk (``--save '' --appendonly no``),
stopped by its PID.  The binary comes from the system (Debian: ``redis-server``); when
it is missing the tests that need it skip -- except under CI (``CI=true``), which
installs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

import pytest
import redis

from wsgi_servers import free_port, stop_process


def require_redis() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )
    if found is None:
        reason = "redis-server is not installed (Debian: apt-get install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must install it")
        pytest.skip(reason)
    return found


class RedisServer:
    """``redis-server`` on a free port; :meth:`stop` and :meth:`start` again on the same
    port (a Redis that goes down and comes back)."""

    def __init__(self) -> None:
        self.binary = require_redis()
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = tempfile.mkdtemp(prefix="redis-")
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.directory,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        client = self.client()
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
            finally:
                client.close()

    def client(self, **options: object) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=1, **options)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
