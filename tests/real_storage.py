"""Real storage servers -- nginx and Apache httpd -- as subprocesses on 127.0.0.1.

``StorageProcess(kind, files)`` writes ``files`` into a fresh document root, generates a
self-contained configuration for ``kind`` ("nginx" or "apache") in the same temporary
directory, starts the server in the foreground on a free port, waits until it answers,
and at :meth:`~StorageProcess.stop` ends it by its PID and removes the directory.  Both
serve static files with their own ``ETag`` and ``Last-Modified`` (so ``If-Match``
answers 412) and log each request line exactly as received (nginx ``$request``, Apache
``%r``), which :meth:`~StorageProcess.new_request_lines` reads.

The binaries come from the system (Debian: ``nginx-light``, ``apache2``).  When one is
missing the tests that need it skip -- except under CI (``CI=true``), which installs
them: there a missing server fails the test.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import urllib3

from wsgi_servers import free_port, stop_process

APACHE_MODULE_DIRS = [
    "/usr/lib/apache2/modules",
    "/usr/lib64/httpd/modules",
    "/usr/lib/httpd/modules",
]
_APACHE_MODULES = ("mpm_event", "authz_core")
_MTIME = 1_704_067_200  # 2024-01-01, as the other file servers' Last-Modified


def binary(kind: str) -> str | None:
    """The server's executable, or None when it is not installed."""
    names = {"nginx": ["nginx"], "apache": ["apache2", "httpd"]}[kind]
    for name in names:
        for found in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/local/sbin/{name}"):
            if found and os.access(found, os.X_OK):
                return found
    return None


def require(kind: str) -> str:
    """The executable of ``kind``; skip without it, or fail under CI, which installs it."""
    found = binary(kind)
    if found is None:
        reason = f"{kind} is not installed (Debian: apt-get install nginx-light apache2)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must install it")
        pytest.skip(reason)
    return found


def _apache_modules() -> str:
    for directory in APACHE_MODULE_DIRS:
        if all(Path(directory, f"mod_{name}.so").exists() for name in _APACHE_MODULES):
            return directory
    raise RuntimeError(f"no Apache modules {_APACHE_MODULES} in {APACHE_MODULE_DIRS}")


def nginx_config(root: Path, port: int) -> str:
    # master_process off: one process, the one started, so stopping it by PID stops all.
    temp = root / "temp"
    return f"""
master_process off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 64; }}
http {{
    default_type application/octet-stream;
    log_format raw '$request';
    access_log {root}/access.log raw;
    client_body_temp_path {temp}; proxy_temp_path {temp}; fastcgi_temp_path {temp};
    uwsgi_temp_path {temp}; scgi_temp_path {temp};
    server {{
        listen 127.0.0.1:{port};
        root {root}/files;
    }}
}}
"""


def apache_config(root: Path, port: int) -> str:
    modules = _apache_modules()
    # Apache refuses to serve as root: its children switch to an unprivileged user, which
    # must be able to read the files (the directory is world-readable for that).
    if os.geteuid() == 0:
        user = _first_existing(pwd.getpwnam, "www-data", "apache", "nobody")
        group = _first_existing(grp.getgrnam, "www-data", "apache", "nogroup", "nobody")
        identity = f"User {user}\nGroup {group}"
    else:
        identity = ""
    return f"""
ServerRoot "{root}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{root}/httpd.pid"
DefaultRuntimeDir "{root}"
ErrorLog "{root}/error.log"
LogLevel warn
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
{identity}
StartServers 1
ServerLimit 1
ThreadsPerChild 16
MaxRequestWorkers 16
MinSpareThreads 1
MaxSpareThreads 16
LogFormat "%r" raw
CustomLog "{root}/access.log" raw
DocumentRoot "{root}/files"
<Directory "{root}/files">
    Require all granted
</Directory>
"""


def _first_existing(lookup: Callable[[str], object], *names: str) -> str:
    for name in names:
        try:
            lookup(name)
        except KeyError:
            continue
        return name
    raise RuntimeError(f"none of {names} exists")


class StorageProcess:
    """``kind`` serving ``files`` (relative path -> bytes) on ``base``, until :meth:`stop`."""

    def __init__(self, kind: str, files: dict[str, bytes]) -> None:
        self.kind = kind
        executable = require(kind)
        self.root = Path(tempfile.mkdtemp(prefix=f"{kind}-storage-"))
        self.root.chmod(0o755)  # an unprivileged worker reads the files
        (self.root / "temp").mkdir()
        for name, data in files.items():
            path = self.root / "files" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        for path in self.root.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
            # Apache makes the ETag of a file modified within the last second weak, and a
            # weak ETag never satisfies If-Match.
            os.utime(path, (_MTIME, _MTIME))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = self.root / f"{kind}.conf"
        if kind == "nginx":
            config.write_text(nginx_config(self.root, self.port))
            early_log = str(self.root / "error.log")  # before the configuration is read
            command = [executable, "-c", str(config), "-p", str(self.root), "-e", early_log]
            command += ["-g", "daemon off;"]
        else:
            config.write_text(apache_config(self.root, self.port))
            command = [executable, "-f", str(config), "-DFOREGROUND"]
        self._output = (self.root / "output.log").open("wb")
        self.process = subprocess.Popen(
            command, stdout=self._output, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with urllib3.PoolManager(retries=False) as pool:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    self._output.close()
                    output = self.output()
                    self.stop()
                    raise RuntimeError(f"{self.kind} exited early:\n{output}")
                try:
                    pool.request("GET", self.base + "/", timeout=1.0)
                except urllib3.exceptions.HTTPError:
                    time.sleep(0.1)
                    continue
                # its log line comes after the answer: tests count lines from here on
                if self.new_request_lines(0, timeout=deadline - time.monotonic()):
                    return
        output = self.output()
        self.stop()
        raise RuntimeError(f"{self.kind} did not answer within {timeout}s:\n{output}")

    def output(self) -> str:
        """The server's own output and error log, for failure messages."""
        texts = []
        for name in ("output.log", "error.log"):
            path = self.root / name
            if path.exists():
                texts.append(path.read_text(errors="replace"))
        return "\n".join(texts)

    def request_lines(self) -> list[str]:
        """Every request line logged so far, as received."""
        path = self.root / "access.log"
        return path.read_text("latin-1").splitlines() if path.exists() else []

    def settled_line_count(self, quiet: float = 0.2) -> int:
        """How many request lines are logged, once no new one came for ``quiet`` seconds
        (the previous test's last line may still be on its way to the log)."""
        count = len(self.request_lines())
        while True:
            time.sleep(quiet)
            now = len(self.request_lines())
            if now == count:
                return count
            count = now

    def new_request_lines(self, before: int, expected: int = 1, timeout: float = 10.0) -> list[str]:
        """The lines logged after the first ``before``, once there are ``expected`` of them
        (a server writes its log line after the response has left)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.request_lines()[before:]
            if len(lines) >= expected or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM by PID (SIGKILL if it lingers), then remove the directory."""
        stop_process(self.process)
        if not self._output.closed:
            self._output.close()
        shutil.rmtree(self.root, ignore_errors=True)
