"""Bounded load test: the middleware under gunicorn ``gthread``, many clients, a dying replica.

Why: the unit and fault tests prove each promise of SPEC R6 once, one request at a time.
This script checks that they still hold together under concurrency, on a real server::

    32 client threads --> gunicorn -k gthread -w 1 --threads 8    --> replicas (threads here)
      (raw sockets)       ReproxyMiddleware(load_app.backend),        good-a, good-b: keep-alive,
                          PoolManager(maxsize=8, block=True)          ETag, Range/If-Range
                                                                      dying: cuts bodies short

Each request is planned in advance (seeded): most are served by a good replica; a share
hangs up abruptly (RST) mid-body; a share is sent to the dying replica first, which cuts the
body after a random number of bytes (FIN or RST), with a good replica after it (the body
must be *resumed*, R6.4 + resume.py) or alone (the response must be *aborted*, never end
short as if complete).  Clients check status, ``Content-Length``, ``Content-Type``
(``preserve``) and the body's sha256 against the known file.

Expected, and the exit status is 1 otherwise: no wrong byte; no truncated body that looks
complete; every request that could be served was served; the replicas never see more
connections open at once than the pool allows (R6.5: a leaked slot or socket shows here);
every app iterable closed; the worker's RSS flat after warm-up (R6.3).

    python benchmarks/load.py --requests 2000 --clients 32 --hangup-share 0.1 --dying-share 0.2

Everything listens on 127.0.0.1, is bounded in count and time, and stops by itself.
``tests/test_load.py`` runs a small version of :func:`run` as a correctness test.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve().parent
KIB = 1024
MIB = 1024 * KIB

# ---------------------------------------------------------------------------------------------
# Files: deterministic, incompressible, of sizes below and well above the 64 KiB chunk size
# ---------------------------------------------------------------------------------------------

FILE_SIZES = {
    "16k.bin": 16 * KIB,
    "200k.bin": 200 * KIB,
    "1m.bin": MIB,
    "3m.bin": 3 * MIB,
    "12m.bin": 12 * MIB,
}
FILES = {name: random.Random(name).randbytes(size) for name, size in FILE_SIZES.items()}
SHA256 = {name: hashlib.sha256(data).digest() for name, data in FILES.items()}
ETAGS = {name: '"' + digest.hex()[:16] + '"' for name, digest in SHA256.items()}
APP_CONTENT_TYPE = "application/x-load-test"  # the app's, kept by preserve=["Content-Type"]

# Hang-ups fetch this one: larger than what the kernel buffers between gunicorn and a client
# (up to a 4 MiB send buffer, and the client's receive buffer, set small), so that most of
# them reach the middleware as a client gone mid-body, not after the last write.
HANGUP_FILE = "12m.bin"
SERVED_FILES = sorted(set(FILES) - {HANGUP_FILE})
_HANGUP_RCVBUF = 64 * KIB
_HEAD_READ = 64 * KIB  # clients read the response head with this: body bytes may come along
_BODY_READ = 256 * KIB

# ---------------------------------------------------------------------------------------------
# Replicas: a raw-socket HTTP/1.1 file store, so a body can be cut exactly where planned
# ---------------------------------------------------------------------------------------------

_RANGE = re.compile(r"bytes=(\d+)-(\d*)", re.ASCII)
_REASONS = {200: "OK", 206: "Partial Content", 404: "Not Found", 416: "Range Not Satisfiable"}
_TCP_ESTABLISHED = 1  # tcp_info.tcpi_state (linux/tcp_states.h)
_SEND_SLICE = 256 * KIB


@dataclass(frozen=True, slots=True)
class Reply:
    """What a replica sends; ``cut`` bytes of the body only, then a FIN or (``reset``) RST."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: memoryview
    cut: int | None = None
    reset: bool = False

    def head(self) -> bytes:
        lines = [
            f"HTTP/1.1 {self.status} {_REASONS[self.status]}",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _byte_range(headers: Mapping[str, str], etag: str, size: int) -> range | None:
    """The single range to send, or None for the whole file (RFC 9110 §14.2, §13.1.5).

    Only ``bytes=N-`` and ``bytes=N-M`` are understood -- what the middleware sends to resume
    -- and a ``Range`` whose ``If-Range`` is not this replica's ETag is ignored.
    """
    match = _RANGE.fullmatch(headers.get("range", "").strip())
    if match is None or headers.get("if-range", etag) != etag:
        return None
    start, last = int(match[1]), match[2]
    if start >= size:
        return range(0)  # unsatisfiable: 416
    stop = min(int(last) + 1, size) if last else size
    return range(start, stop) if start < stop else None


def _cut(query: str) -> tuple[int | None, bool]:
    params = parse_qs(query)
    if "cut" not in params:
        return None, False
    return int(params["cut"][0]), params.get("how") == ["rst"]


def reply_for(target: str, headers: Mapping[str, str], *, dying: bool) -> Reply:
    """The answer to ``GET target``: ``/files/<name>`` with a strong ETag and ranges."""
    url = urlsplit(target)
    name = url.path.removeprefix("/files/")
    if not url.path.startswith("/files/") or name not in FILES:
        return Reply(404, (("Content-Length", "0"),), memoryview(b""))
    data = memoryview(FILES[name])
    common = (
        ("Content-Type", "application/octet-stream"),
        ("ETag", ETAGS[name]),
        ("Accept-Ranges", "bytes"),
    )
    part = _byte_range(headers, ETAGS[name], len(data))
    if part is not None and not part:
        return Reply(
            416,
            (("Content-Range", f"bytes */{len(data)}"), ("Content-Length", "0")),
            memoryview(b""),
        )
    extra: tuple[tuple[str, str], ...] = ()
    status, body = 200, data
    if part is not None:
        status, body = 206, data[part.start : part.stop]
        extra = (("Content-Range", f"bytes {part.start}-{part.stop - 1}/{len(data)}"),)
    cut, reset = _cut(url.query) if dying else (None, False)
    return Reply(status, (*common, *extra, ("Content-Length", str(len(body)))), body, cut, reset)


def _read_head(conn: socket.socket, pending: bytes) -> tuple[bytes | None, bytes]:
    """One request head (GETs carry no body) and the bytes after it; None at EOF."""
    while b"\r\n\r\n" not in pending:
        data = conn.recv(64 * KIB)
        if not data:
            return None, b""
        pending += data
    head, _, rest = pending.partition(b"\r\n\r\n")
    return head, rest


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    fields = (line.partition(":") for line in lines)
    return method, target, {name.strip().lower(): value.strip() for name, _, value in fields}


def _send(conn: socket.socket, method: str, reply: Reply) -> bool:
    """Send ``reply``; False when the connection must end (the body was cut)."""
    conn.sendall(reply.head())
    body = reply.body if method != "HEAD" else memoryview(b"")
    if reply.cut is not None:
        body = body[: reply.cut]
    for start in range(0, len(body), _SEND_SLICE):
        conn.sendall(body[start : start + _SEND_SLICE])
    if reply.cut is None:
        return True
    if reply.reset:  # SO_LINGER on, zero timeout: close() sends RST, not FIN
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return False


def _established(sock: socket.socket) -> bool:
    """Is ``sock`` still ESTABLISHED?  A peer's FIN or RST ends it in the kernel at once,
    whereas the thread owning the socket may only notice later."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0] == _TCP_ESTABLISHED
    except OSError:
        return False


class Replica:
    """A threaded keep-alive HTTP/1.1 file server for :data:`FILES` on 127.0.0.1.

    Counts TCP connections accepted, requests, and the most connections ESTABLISHED at
    once -- measured at each accept, the only moment that number can grow, from the
    kernel's view, so that a client that closes one connection and then opens another is
    never counted twice however late this server's threads notice the close.

    ``dying=True``: ``?cut=N&how=fin|rst`` in the URL sends only N body bytes, then hangs up.
    """

    def __init__(self, label: str, *, dying: bool = False) -> None:
        self.label = label
        self.dying = dying
        self.accepted = 0
        self.requests = 0
        self.peak_open = 0
        self.cut_by_peer = 0  # responses the client (the middleware) hung up on mid-body
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._listener.settimeout(0.05)  # how often the accept loop looks at _stop
        self.port: int = self._listener.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._acceptor = threading.Thread(
            target=self._accept_loop, daemon=True, name=f"replica-{label}"
        )
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(30.0)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(
                target=self._serve, args=(conn,), daemon=True, name=f"replica-{self.label}-conn"
            )
            with self._lock:
                self.accepted += 1
                self._open.add(conn)
                self.peak_open = max(self.peak_open, sum(map(_established, self._open)))
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._converse(conn)
        except OSError:
            pass  # the peer went away (a discarded upstream connection) or close() cut it
        finally:
            with self._lock:
                self._open.discard(conn)
            conn.close()

    def _converse(self, conn: socket.socket) -> None:
        pending = b""
        while not self._stop.is_set():
            head, pending = _read_head(conn, pending)
            if head is None:
                return
            method, target, headers = _parse_head(head)
            with self._lock:
                self.requests += 1
            try:
                if not _send(conn, method, reply_for(target, headers, dying=self.dying)):
                    return
            except ConnectionError:
                with self._lock:
                    self.cut_by_peer += 1
                return
            if headers.get("connection", "").lower() == "close":
                return

    def open_now(self) -> int:
        with self._lock:
            return sum(map(_established, self._open))

    def close(self) -> None:
        """Stop accepting, cut open connections (waking their threads), join everything."""
        self._stop.set()
        self._acceptor.join()
        self._listener.close()
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# The server under test: gunicorn gthread running load_app.py, as a subprocess
# ---------------------------------------------------------------------------------------------


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
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-b",
            f"127.0.0.1:{self.port}",
            "-w",
            "1",
            "-k",
            "gthread",
            "--threads",
            str(threads),
            "--timeout",
            "60",
            "--graceful-timeout",
            "2",
            "--backlog",
            "256",
            "--chdir",
            str(HERE),
            *_no_control_socket(),
            "load_app:application",
        ]
        self.process = subprocess.Popen(
            command,
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

    def stats(self) -> dict[str, Any]:
        """The worker's own view: log events, app iterables, memory."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", "/stats")
            response = conn.getresponse()
            if response.status != 200:
                raise OSError(f"/stats answered {response.status}")
            return dict(json.loads(response.read()))
        finally:
            conn.close()

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

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


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


# ---------------------------------------------------------------------------------------------
# The plan: what each request does, decided in advance from a seed
# ---------------------------------------------------------------------------------------------

Kind = Literal["normal", "hangup", "dying", "dying-alone"]


@dataclass(frozen=True, slots=True)
class Planned:
    """One request.  ``cut``: body bytes the dying replica sends; ``hang_at``: body bytes a
    hang-up client reads before closing abruptly."""

    index: int
    name: str
    kind: Kind
    cut: int = 0
    how: Literal["fin", "rst"] = "fin"
    hang_at: int = 0

    def path(self) -> str:
        query = f"first={self.index % 2}"
        if self.kind in ("dying", "dying-alone"):
            query += f"&dying={self.cut}:{self.how}"
        if self.kind == "dying-alone":
            query += "&alone=1"
        return f"/r/{self.name}?{query}"

    @property
    def servable(self) -> bool:
        """Should the client get the whole file?  (A hang-up stops reading on purpose.)"""
        return self.kind in ("normal", "dying")


def make_plan(
    requests: int, hangup_share: float, dying_share: float, alone_share: float, seed: int
) -> list[Planned]:
    """``requests`` planned requests; ``alone_share`` of the dying ones have no replica
    to resume from, so that aborts are exercised as well as resumes."""
    rng = random.Random(seed)
    plans = []
    for index in range(requests):
        name = SERVED_FILES[index % len(SERVED_FILES)]
        size, draw = len(FILES[name]), rng.random()
        if draw < hangup_share:
            hang_at = rng.randrange(_HEAD_READ, len(FILES[HANGUP_FILE]))
            plans.append(Planned(index, HANGUP_FILE, "hangup", hang_at=hang_at))
        elif draw < hangup_share + dying_share:
            kind: Kind = "dying-alone" if rng.random() < alone_share else "dying"
            how: Literal["fin", "rst"] = rng.choice(("fin", "rst"))
            plans.append(Planned(index, name, kind, cut=rng.randrange(1, size), how=how))
        else:
            plans.append(Planned(index, name, "normal"))
    return plans


# ---------------------------------------------------------------------------------------------
# Clients: raw sockets, one connection per request, everything checked
# ---------------------------------------------------------------------------------------------

Verdict = Literal[
    "ok",
    "hung up",
    "aborted",
    "refused",
    "wrong bytes",
    "truncated but looked complete",
    "error",
    "not sent",
]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one planned request, as the client judged it."""

    plan: Planned
    verdict: Verdict
    received: int = 0
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Response:
    """A response as read off the socket, before any judgement."""

    status: int
    headers: dict[str, str]
    raw_body: bytes  # as received, framing included (chunked)
    reset: bool  # the server reset the connection instead of closing it
    hung_up: bool  # the client stopped reading on purpose


def _read_response_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    pending = b""
    while b"\r\n\r\n" not in pending:
        data = sock.recv(_HEAD_READ)
        if not data:
            raise ConnectionError(f"closed before the response head ({len(pending)} bytes)")
        pending += data
    head, _, body = pending.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields = (line.partition(":") for line in lines)
    headers = {name.strip().lower(): value.strip() for name, _, value in fields}
    return int(status_line.split(" ", 2)[1]), headers, body


def _read_body(sock: socket.socket, body: bytearray, stop_at: int | None) -> bool:
    """Read until EOF (``Connection: close``) or ``stop_at`` bytes; True when reset."""
    try:
        while stop_at is None or len(body) < stop_at:
            wanted = _BODY_READ if stop_at is None else min(_BODY_READ, stop_at - len(body))
            data = sock.recv(wanted)
            if not data:
                return False
            body += data
    except ConnectionResetError:
        return True
    return False


def exchange(port: int, plan: Planned, timeout: float) -> Response:
    """Send ``plan``'s GET; read the whole answer, or hang up abruptly at ``hang_at``."""
    with socket.socket() as sock:
        if plan.kind == "hangup":  # before connect, so that the window is small from the start
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _HANGUP_RCVBUF)
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        request = f"GET {plan.path()} HTTP/1.1\r\nHost: load\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode("ascii"))
        status, headers, first = _read_response_head(sock)
        body = bytearray(first)
        hang_up = plan.kind == "hangup" and status == 200
        reset = _read_body(sock, body, plan.hang_at if hang_up else None)
        if hang_up:  # an abrupt close mid-body: RST, unread data discarded
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return Response(status, headers, bytes(body), reset, hang_up)


def _dechunk(raw: bytes) -> tuple[bytes, bool]:
    """The payload of a chunked body, and whether its last chunk arrived (RFC 9112 §7.1)."""
    payload, pos = bytearray(), 0
    while (end := raw.find(b"\r\n", pos)) >= 0:
        size = int(raw[pos:end].split(b";")[0], 16)
        if size == 0:
            return bytes(payload), True
        start = end + 2
        payload += raw[start : start + size]
        pos = start + size + 2
    return bytes(payload), False


@dataclass(frozen=True, slots=True)
class Framed:
    """A body without its framing, and what the framing says about it."""

    body: bytes
    complete: bool  # the framing says the body ended where it should
    framing: str
    excess: int = 0  # bytes after the end the framing announced


def unframe(response: Response) -> Framed:
    """The client's only way to tell a whole body from a truncated one: its framing."""
    raw, headers, hung_up = response.raw_body, response.headers, response.hung_up
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body, complete = _dechunk(raw)
        return Framed(body, complete and not hung_up, "chunked")
    length = headers.get("content-length")
    if length is not None:
        announced = int(length)
        return Framed(
            raw[:announced],
            len(raw) >= announced and not hung_up,
            "Content-Length",
            max(0, len(raw) - announced),
        )
    return Framed(raw, not (response.reset or hung_up), "until close")


def judge(plan: Planned, response: Response) -> Outcome:
    """Compare what the client got with what it must get; see :data:`Verdict`."""
    data = FILES[plan.name]
    if response.status != 200:
        if response.status >= 500 and plan.kind == "dying-alone":
            return Outcome(plan, "refused", len(response.raw_body))  # failed before any byte
        return Outcome(plan, "error", len(response.raw_body), f"status {response.status}")
    if response.headers.get("content-type") != APP_CONTENT_TYPE:
        return Outcome(plan, "error", len(response.raw_body), "Content-Type not preserved")
    framed = unframe(response)
    size = len(framed.body)
    if framed.excess or framed.body != data[:size]:
        return Outcome(
            plan,
            "wrong bytes",
            size,
            f"{framed.framing}: not a prefix of the file, or {framed.excess} bytes too many",
        )
    if not framed.complete:
        return Outcome(plan, "hung up" if response.hung_up else "aborted", size, framed.framing)
    if size < len(data):
        return Outcome(plan, "truncated but looked complete", size, framed.framing)
    if hashlib.sha256(framed.body).digest() != SHA256[plan.name]:
        return Outcome(plan, "wrong bytes", size, "sha256 differs")
    return Outcome(plan, "ok", size)


def run_one(port: int, plan: Planned, deadline: float, timeout: float) -> Outcome:
    """One request, bounded by the socket timeout and the run's deadline."""
    if time.monotonic() > deadline:
        return Outcome(plan, "not sent", detail="deadline passed")
    try:
        return judge(plan, exchange(port, plan, timeout))
    except (OSError, ValueError, IndexError) as error:
        return Outcome(plan, "error", detail=f"{type(error).__name__}: {error}")


def drive(
    port: int, plans: Sequence[Planned], clients: int, deadline: float, timeout: float
) -> list[Outcome]:
    """Run ``plans`` with ``clients`` concurrent client threads."""
    with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="client") as pool:
        return list(pool.map(lambda plan: run_one(port, plan, deadline, timeout), plans))


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """One run's parameters; the defaults are the command line's."""

    requests: int = 2000
    clients: int = 32
    hangup_share: float = 0.1
    dying_share: float = 0.2
    alone_share: float = 0.25
    threads: int = 8
    pool_maxsize: int = 8
    warmup: int = 200
    rss_limit_mib: float = 20.0
    timeout: float = 30.0  # per client socket operation
    deadline: float = 240.0  # no request is sent after this many seconds of load
    seed: int = 1


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """What ``/stats`` says about the gunicorn worker (see load_app.py)."""

    rss_kib: int
    hwm_kib: int
    objects: int
    app_created: int
    app_closed: int
    events: dict[str, int]

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
        )


@dataclass(frozen=True, slots=True)
class ReplicaCounts:
    label: str
    accepted: int
    peak_open: int
    open_after: int
    requests: int
    cut_by_peer: int

    @classmethod
    def of(cls, replica: Replica) -> ReplicaCounts:
        return cls(
            replica.label,
            replica.accepted,
            replica.peak_open,
            replica.open_now(),
            replica.requests,
            replica.cut_by_peer,
        )


@dataclass(frozen=True, slots=True)
class LoadReport:
    """Everything measured in one run; :meth:`failures` says which expectations broke."""

    config: LoadConfig
    outcomes: list[Outcome]
    replicas: list[ReplicaCounts]
    start: WorkerStats
    warm: WorkerStats  # after the warm-up requests
    end: WorkerStats
    wall: float
    unexpected_tracebacks: list[str] = field(default_factory=list)

    def count(self, verdict: Verdict, *kinds: Kind) -> int:
        return sum(
            1 for o in self.outcomes if o.verdict == verdict and (not kinds or o.plan.kind in kinds)
        )

    def planned(self, *kinds: Kind) -> int:
        return sum(1 for o in self.outcomes if o.plan.kind in kinds)

    def event(self, kind: str) -> int:
        return self.end.events.get(kind, 0)

    @property
    def verified_bytes(self) -> int:
        return sum(o.received for o in self.outcomes if o.verdict == "ok")

    @property
    def allowance(self) -> int:
        """Connections one replica may see open at once: 1 worker x one pool per host."""
        return 1 * self.config.pool_maxsize

    @property
    def rss_growth_kib(self) -> int:
        return self.end.rss_kib - self.warm.rss_kib

    def failures(self) -> list[str]:
        """Each expectation that did not hold, in words; empty when the run passed."""
        checks = [
            (self.count("wrong bytes") == 0, "wrong bytes were served"),
            (self.count("truncated but looked complete") == 0, "a truncated body looked complete"),
            (self.count("error") + self.count("not sent") == 0, "requests failed or were not sent"),
            (
                self.count("ok") == self.planned("normal", "dying"),
                "not every servable request was served whole",
            ),
            (self.count("hung up") == self.planned("hangup"), "a hang-up went wrong"),
            (
                self.event("resume") + self.event("failover") == self.planned("dying"),
                "a resumable request was not resumed (or failed over) exactly once",
            ),
            (
                self.count("aborted", "dying-alone") + self.count("refused")
                == self.event("abort") + self.event("all_failed")
                == self.planned("dying-alone"),
                "a body that could not be continued was not aborted visibly",
            ),
            (
                all(r.peak_open <= self.allowance for r in self.replicas),
                "more upstream connections open at once than the pool allows",
            ),
            (
                self.end.app_created
                == self.end.app_closed
                == len(self.outcomes) - self.count("not sent") - self.count("error"),
                "an app iterable was not closed",
            ),
            (
                self.rss_growth_kib <= self.config.rss_limit_mib * KIB,
                f"worker RSS grew by more than {self.config.rss_limit_mib:g} MiB after warm-up",
            ),
            (not self.unexpected_tracebacks, "the server logged unexpected tracebacks"),
        ]
        return [message for passed, message in checks if not passed]

    def render(self) -> str:
        """The report as a plain-text table."""
        rows = [*self._request_rows(), *self._upstream_rows(), *self._worker_rows()]
        failures = self.failures()
        rows.append(("result", "FAIL: " + "; ".join(failures) if failures else "PASS"))
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)

    def _request_rows(self) -> list[tuple[str, str]]:
        config, count = self.config, self.count
        return [
            (
                "requests sent",
                f"{len(self.outcomes) - count('not sent')} of {config.requests}"
                f" ({config.clients} clients, seed {config.seed})",
            ),
            ("  planned normal / hang-up", f"{self.planned('normal')} / {self.planned('hangup')}"),
            (
                "  planned dying: resumable / alone",
                f"{self.planned('dying')} / {self.planned('dying-alone')}",
            ),
            ("served OK (whole file, sha256 verified)", str(count("ok"))),
            ("verified bytes", f"{self.verified_bytes / MIB:.1f} MiB"),
            ("early hang-ups (client RST mid-body)", str(count("hung up"))),
            (
                "  seen upstream (replica cut off mid-body)",
                str(sum(r.cut_by_peer for r in self.replicas)),
            ),
            ("resumes (server log)", str(self.event("resume"))),
            ("failovers before the body (server log)", str(self.event("failover"))),
            ("aborts (server log)", str(self.event("abort"))),
            ("  client saw a short body (as expected)", str(count("aborted", "dying-alone"))),
            ("  client saw a 5xx (as expected)", str(count("refused"))),
            ("  aborted unexpectedly", str(count("aborted", "normal", "dying"))),
            ("wrong bytes", str(count("wrong bytes"))),
            ("truncated but looked complete", str(count("truncated but looked complete"))),
            ("errors / not sent", f"{count('error')} / {count('not sent')}"),
        ]

    def _upstream_rows(self) -> list[tuple[str, str]]:
        rows = [
            (
                "upstream TCP connections, per replica",
                f"allowance {self.allowance} open at once "
                f"(1 worker x maxsize {self.config.pool_maxsize})",
            )
        ]
        rows += [
            (
                f"  {r.label}: opened / peak open at once / open after",
                f"{r.accepted} / {r.peak_open} / {r.open_after}",
            )
            for r in self.replicas
        ]
        return rows

    def _worker_rows(self) -> list[tuple[str, str]]:
        start, warm, end, wall = self.start, self.warm, self.end, self.wall
        return [
            ("app iterables created / closed", f"{end.app_created} / {end.app_closed}"),
            (
                "worker RSS start / after warm-up / end",
                " / ".join(f"{s.rss_kib / KIB:.1f}" for s in (start, warm, end)) + " MiB",
            ),
            (
                "worker peak RSS (VmHWM) after warm-up / end",
                f"{warm.hwm_kib / KIB:.1f} / {end.hwm_kib / KIB:.1f} MiB",
            ),
            (
                "RSS growth after warm-up",
                f"{self.rss_growth_kib / KIB:+.1f} MiB (limit {self.config.rss_limit_mib:g})",
            ),
            (
                "python objects (gc) start / after warm-up / end",
                f"{start.objects} / {warm.objects} / {end.objects}",
            ),
            ("unexpected server tracebacks", str(len(self.unexpected_tracebacks))),
            (
                "wall time (load only)",
                f"{wall:.1f} s ({len(self.outcomes) / wall:.0f} req/s, "
                f"{self.verified_bytes / MIB / wall:.0f} MiB/s verified)",
            ),
        ]

    def details(self, limit: int = 10) -> str:
        """The first few outcomes that are errors or worse, for a failing run."""
        bad = [
            o
            for o in self.outcomes
            if o.verdict in ("error", "wrong bytes", "truncated but looked complete")
            or (o.verdict == "aborted" and o.plan.servable)
        ]
        lines = [
            f"  #{o.plan.index} {o.plan.path()} [{o.plan.kind}]: {o.verdict} "
            f"({o.received} bytes) {o.detail}"
            for o in bad[:limit]
        ]
        lines += [f"  server: {end}" for end in self.unexpected_tracebacks[:limit]]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def _settled_stats(server: Gunicorn, timeout: float = 10.0) -> WorkerStats:
    """Stats once every app iterable the server created has been closed (or the timeout):
    gunicorn closes a response after the client already has its last byte."""
    deadline = time.monotonic() + timeout
    stats = WorkerStats.from_json(server.stats())
    while stats.app_created != stats.app_closed and time.monotonic() < deadline:
        time.sleep(0.1)
        stats = WorkerStats.from_json(server.stats())
    return stats


def _measure(
    server: Gunicorn, replicas: Sequence[Replica], plans: Sequence[Planned], config: LoadConfig
) -> LoadReport:
    """Run the warm-up, then the rest; worker stats at start, after warm-up and at the end."""
    warmup = min(config.warmup, len(plans))
    start = WorkerStats.from_json(server.stats())
    began = time.monotonic()
    deadline = began + config.deadline
    outcomes = drive(server.port, plans[:warmup], config.clients, deadline, config.timeout)
    warm = _settled_stats(server)
    outcomes += drive(server.port, plans[warmup:], config.clients, deadline, config.timeout)
    wall = time.monotonic() - began
    end = _settled_stats(server)
    return LoadReport(
        config, outcomes, [ReplicaCounts.of(r) for r in replicas], start, warm, end, wall
    )


def run(config: LoadConfig) -> LoadReport:
    """Start the replicas and gunicorn, run the plan, measure, stop everything."""
    plans = make_plan(
        config.requests, config.hangup_share, config.dying_share, config.alone_share, config.seed
    )
    with contextlib.ExitStack() as stack:
        good = [stack.enter_context(Replica(label)) for label in ("good-a", "good-b")]
        dying = stack.enter_context(Replica("dying", dying=True))
        env = {
            "LOAD_GOOD": " ".join(r.base for r in good),
            "LOAD_DYING": dying.base,
            "LOAD_POOL_MAXSIZE": str(config.pool_maxsize),
        }
        server = stack.enter_context(Gunicorn(env, config.threads))
        report = _measure(server, (*good, dying), plans, config)
    # gunicorn has stopped: its whole log can be read now
    return replace(report, unexpected_tracebacks=unexpected_tracebacks(server.output))


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    d = LoadConfig()
    parser = argparse.ArgumentParser(
        description="Bounded load test of wsgi_reproxy under gunicorn gthread, with local "
        "replicas, clients that hang up mid-body and a dying replica. Prints a "
        "report; the exit status is 1 when an expectation fails."
    )
    add = parser.add_argument
    add(
        "--requests",
        type=_positive_int,
        default=d.requests,
        help="requests in all, warm-up included (default %(default)s)",
    )
    add(
        "--clients",
        type=_positive_int,
        default=d.clients,
        help="concurrent client threads (default %(default)s)",
    )
    add(
        "--hangup-share",
        type=_share,
        default=d.hangup_share,
        help="share of requests that hang up abruptly mid-body (default %(default)s)",
    )
    add(
        "--dying-share",
        type=_share,
        default=d.dying_share,
        help="share of requests sent to the dying replica first (default %(default)s)",
    )
    add(
        "--alone-share",
        type=_share,
        default=d.alone_share,
        help="share of those with no replica to resume from: they must be aborted "
        "(default %(default)s)",
    )
    add(
        "--threads",
        type=_positive_int,
        default=d.threads,
        help="gunicorn gthread threads (default %(default)s)",
    )
    add(
        "--pool-maxsize",
        type=_positive_int,
        default=None,
        help="maxsize of the block=True upstream pool (default: --threads)",
    )
    add(
        "--warmup",
        type=int,
        default=d.warmup,
        help="requests before the warm-up RSS sample (default %(default)s)",
    )
    add(
        "--rss-limit-mib",
        type=float,
        default=d.rss_limit_mib,
        help="allowed worker RSS growth after warm-up (default %(default)s)",
    )
    add(
        "--timeout",
        type=_positive_float,
        default=d.timeout,
        help="client socket timeout, seconds (default %(default)s)",
    )
    add(
        "--deadline",
        type=_positive_float,
        default=d.deadline,
        help="seconds of load after which no request is sent (default %(default)s)",
    )
    add("--seed", type=int, default=d.seed, help="seed of the request plan (default %(default)s)")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> LoadConfig:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.hangup_share + args.dying_share > 1:
        parser.error("--hangup-share and --dying-share add up to more than 1")
    args.pool_maxsize = args.pool_maxsize or args.threads
    return LoadConfig(**vars(args))


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    report = run(config)
    print(report.render())
    if report.failures():
        print("\nfirst problems:\n" + report.details())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
