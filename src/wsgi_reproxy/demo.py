"""A self-contained demo: ``python -m wsgi_reproxy demo [--check] [--port N]``.

Everything runs in one process, in threads, on 127.0.0.1 only::

    client --> front (wsgiref, threaded)
                 AccessLog --> ReproxyMiddleware --> BackendApp     "what to send"
                                   |  X-Reproxy-Url: dead, A, B
                                   v
               dead URL (refuses)   replica A (no big.bin)   replica B   "the bytes"

The backend decides *what* a client gets (permissions, file name, content type) and answers
with an empty body plus the storage URLs; the middleware streams the first replica that
works.  Replica A lacks ``big.bin`` and the first URL refuses connections, so every download
shows failover.  ``lost.txt`` is in the backend's catalogue but on no replica: 502.

Sections, in order: the files, threaded servers that stop for real, the replicas, the
backend app, the front server, the running stack, the checks, and the two modes
(:func:`serve`, :func:`check`).  Nothing happens at import time; ``__main__`` parses the
command line.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import BaseRequestHandler, ThreadingMixIn
from types import FrameType, TracebackType
from typing import Any, TextIO, TypeAlias, TypeVar
from urllib.parse import quote, unquote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import urllib3

from . import ReproxyMiddleware, __version__, can_reproxy, reproxy_headers

__all__ = [
    "Check",
    "Demo",
    "DemoFile",
    "Storage",
    "check",
    "configured_middleware",
    "demo_files",
    "running_demo",
    "serve",
]

log = logging.getLogger("wsgi_reproxy.demo")

HOST = "127.0.0.1"
FILES_PATH = "/files/"
BIG_SIZE = 8 * 1024 * 1024
REPLICA_CONTENT_TYPE = "application/octet-stream"  # blob stores know no types: see `preserve`

ExcInfo: TypeAlias = (
    tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
)


# -- the files -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoFile:
    """One file of the backend's catalogue, with the digest used for ETag and checks."""

    name: str
    data: bytes
    content_type: str
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.data).hexdigest())

    @property
    def etag(self) -> str:
        return f'"{self.sha256[:16]}"'


def demo_files() -> dict[str, DemoFile]:
    """The catalogue, generated deterministically so that checksums are the same everywhere."""
    hello = b"".join(f"Hello from the storage tier! line {n}\n".encode() for n in range(1, 9))
    pdf = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + random.Random(1).randbytes(2048)
           + b"\n%%EOF\n")
    files = [
        DemoFile("hello.txt", hello, "text/plain; charset=utf-8"),
        DemoFile("report.pdf", pdf, "application/pdf"),
        DemoFile("big.bin", random.Random(0).randbytes(BIG_SIZE), "application/octet-stream"),
        DemoFile("lost.txt", b"every replica lost this file\n", "text/plain; charset=utf-8"),
    ]
    return {file.name: file for file in files}


# -- threaded servers that stop for real ---------------------------------------------------


class ThreadedServer(ThreadingMixIn, HTTPServer):
    """An HTTP server with one daemon thread per connection that :meth:`stop` really stops.

    ``server_close()`` joins the connection threads, but a keep-alive connection left idle
    by a client would make it wait forever; so open connections are recorded and shut down
    first, which wakes the threads blocked on them.
    """

    daemon_threads = True  # a stuck client never keeps the process alive

    def __init__(self, port: int, handler: type[BaseRequestHandler]) -> None:
        self._open_lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._loop: threading.Thread | None = None
        super().__init__((HOST, port), handler)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up is routine here (the middleware closes early on 404s)."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("%s: connection from %s dropped", self.url, client_address)
        else:
            super().handle_error(request, client_address)

    def start(self) -> None:
        self._loop = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                      name=f"serve {self.url}", daemon=True)
        self._loop.start()

    def stop(self) -> None:
        """Stop accepting, abort open connections, close, and join every thread."""
        if self._loop is not None:
            self.shutdown()
            self._loop.join()
        with self._open_lock:
            open_connections = list(self._open)
        for connection in open_connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.server_close()


_Server = TypeVar("_Server", bound=ThreadedServer)


@contextlib.contextmanager
def serving(server: _Server) -> Iterator[_Server]:
    """Run ``server`` in a thread for the duration of the block."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A port where connections are refused: bound but never listening.

    Holding the socket until the end keeps any other program from taking the port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        yield int(sock.getsockname()[1])


# -- the storage replicas ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """What a replica sends: status, headers and body (a view, so 8 MiB is never copied)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes | memoryview = b""


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, stop)`` of a single byte range, or None to send the whole file.

    A missing, malformed or multi-range header is ignored, as RFC 9110 §14.2 allows.
    :raises ValueError: the range is unsatisfiable (416).
    """
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:  # suffix range: the last N bytes
        if int(last) == 0:
            raise ValueError("empty suffix range")
        return max(0, size - int(last)), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise ValueError(f"range starts at {start}, past the end ({size})")
    return start, min(int(last) + 1, size) if last else size


def _none_match(if_none_match: str | None, etag: str) -> bool:
    """``If-None-Match``: a list of entity tags, or ``*`` (RFC 9110 §13.1.2)."""
    tags = [tag.strip() for tag in (if_none_match or "").split(",")]
    return etag in tags or "*" in tags


def answer(stored: DemoFile, headers: Message) -> Reply:
    """A replica's answer for a file it has: 200, 206, 304 or 416 (RFC 9110 §13, §14)."""
    common = [("ETag", stored.etag), ("Accept-Ranges", "bytes")]
    if _none_match(headers.get("If-None-Match"), stored.etag):
        return Reply(304, common)
    size = len(stored.data)
    range_header = headers.get("Range")
    if headers.get("If-Range", stored.etag) != stored.etag:
        range_header = None  # the client's partial copy is stale: send it all
    try:
        span = byte_range(range_header, size)
    except ValueError:
        return Reply(416, [*common, ("Content-Range", f"bytes */{size}"), ("Content-Length", "0")])
    start, stop = span or (0, size)
    common += [("Content-Type", REPLICA_CONTENT_TYPE), ("Content-Length", str(stop - start))]
    body = memoryview(stored.data)[start:stop]
    if span is None:
        return Reply(200, common, body)
    return Reply(206, [*common, ("Content-Range", f"bytes {start}-{stop - 1}/{size}")], body)


class ReplicaServer(ThreadedServer):
    """A storage node: serves its files under ``/files/<name>`` and names itself in X-Replica.

    ``hits`` records ``(method, name, status)`` of every request, so checks can show failover.
    """

    def __init__(self, name: str, files: Iterable[DemoFile], port: int = 0) -> None:
        self.name = name
        self.files = {file.name: file for file in files}
        self.hits: list[tuple[str, str, int]] = []
        super().__init__(port, ReplicaHandler)

    def file_url(self, name: str) -> str:
        return f"{self.url}{FILES_PATH}{quote(name)}"


class ReplicaHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, so the middleware's pool really reuses connections."""

    protocol_version = "HTTP/1.1"
    server: ReplicaServer

    def do_GET(self) -> None:
        self._send(self._reply(), body=True)

    def do_HEAD(self) -> None:
        self._send(self._reply(), body=False)

    def _reply(self) -> Reply:
        path = self.path.partition("?")[0]
        name = unquote(path.removeprefix(FILES_PATH)) if path.startswith(FILES_PATH) else ""
        stored = self.server.files.get(name)
        if stored is None:
            text = f"{name or path!r} is not stored on replica {self.server.name}\n".encode()
            reply = Reply(404, [("Content-Type", "text/plain; charset=utf-8"),
                                ("Content-Length", str(len(text)))], text)
        else:
            reply = answer(stored, self.headers)
        self.server.hits.append((self.command, name, reply.status))
        return reply

    def _send(self, reply: Reply, *, body: bool) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("X-Replica", self.server.name)
        self.end_headers()
        if body:
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("replica %s: %s", self.server.name, format % args)


# -- the backend app -----------------------------------------------------------------------


def _text_response(start_response: StartResponse, status: str, text: str) -> list[bytes]:
    data = text.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(data)))])
    return [data]


class BackendApp:
    """The application being accelerated: it decides *what* a client gets, not the bytes.

    ``/download/<name>`` answers with :func:`reproxy_headers` and an empty body when
    :func:`can_reproxy` says the middleware will honour them, and serves the bytes itself
    otherwise (no middleware, or a path where reproxying is off).  ``/inline/<name>``
    always serves the bytes itself, yet carries a stray ``X-Reproxy-Url`` as an app written
    for perlbal might: reproxying is off there, so the middleware must strip it (SPEC R4.2).
    """

    def __init__(self, catalogue: Mapping[str, DemoFile],
                 locate: Callable[[str], list[str]]) -> None:
        self.catalogue = catalogue
        self.locate = locate  # name -> storage URLs, in the order to try them

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if path == "/":
            return _text_response(start_response, "200 OK", self._index())
        route, _, name = path.lstrip("/").partition("/")
        stored = self.catalogue.get(name)
        if stored is None or route not in ("download", "inline"):
            return _text_response(start_response, "404 Not Found", "no such file\n")
        if route == "download" and can_reproxy(environ):
            return self._reproxy(stored, start_response)
        disposition = "attachment" if route == "download" else "inline"
        head = environ.get("REQUEST_METHOD") == "HEAD"
        return self._serve(stored, disposition, start_response, head=head)

    def _index(self) -> str:
        lines = ["wsgi-reproxy demo backend", ""]
        for name, stored in self.catalogue.items():
            lines.append(f"  /download/{name}  /inline/{name}  ({len(stored.data)} bytes)")
        return "\n".join(lines) + "\n"

    def _reproxy(self, stored: DemoFile, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [
            ("Content-Type", stored.content_type),
            ("Content-Disposition", f'attachment; filename="{stored.name}"'),
            *reproxy_headers(*self.locate(stored.name), expected_size=len(stored.data)),
        ])
        return []

    def _serve(self, stored: DemoFile, disposition: str, start_response: StartResponse,
               *, head: bool) -> list[bytes]:
        start_response("200 OK", [
            ("Content-Type", stored.content_type),
            ("Content-Length", str(len(stored.data))),
            ("Content-Disposition", f'{disposition}; filename="{stored.name}"'),
            *reproxy_headers(*self.locate(stored.name)),  # the stray one: must not leak
        ])
        return [] if head else [stored.data]


# -- the front server ----------------------------------------------------------------------


class AccessLog:
    """Log one line per request once its body is done, naming the URL that served it.

    The middleware records that URL in ``environ["wsgi_reproxy.url"]`` (SPEC R7.2).
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        status: list[str] = []

        def start(status_line: str, headers: list[tuple[str, str]],
                  exc_info: ExcInfo | None = None) -> Callable[[bytes], object]:
            status[:] = [status_line]
            return start_response(status_line, headers, exc_info)

        return _LoggedBody(self.app(environ, start), environ, status)


class _LoggedBody:
    """The app's iterable, counted; ``close()`` closes it and writes the log line."""

    def __init__(self, body: Iterable[bytes], environ: WSGIEnvironment,
                 status: list[str]) -> None:
        self.body, self.environ, self.status, self.sent = body, environ, status, 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.body:
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            source = self.environ.get("wsgi_reproxy.url") or "the app itself"
            log.info("%s %s -> %s, %d bytes, from %s", self.environ.get("REQUEST_METHOD"),
                     self.environ.get("PATH_INFO"), self.status[-1] if self.status else "-",
                     self.sent, source)


class QuietWSGIRequestHandler(WSGIRequestHandler):
    """The access log is :class:`AccessLog`'s; the stdlib's line per request goes to DEBUG."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("front: %s", format % args)


class FrontServer(ThreadedServer, WSGIServer):
    """wsgiref's server (HTTP/1.0, one request per connection), one thread per request."""

    def __init__(self, app: WSGIApplication, port: int = 0) -> None:
        super().__init__(port, QuietWSGIRequestHandler)
        self.set_app(app)


# -- the running stack ---------------------------------------------------------------------

STORED_ON = {"A": ("hello.txt", "report.pdf"), "B": ("hello.txt", "report.pdf", "big.bin")}


@dataclass(frozen=True, slots=True)
class Storage:
    """The storage tier: a dead node and the replicas, in the order the backend lists them."""

    dead_url: str
    replicas: Mapping[str, ReplicaServer]

    def urls(self, name: str) -> list[str]:
        """Where the backend says a file lives: the dead node first, then A, then B."""
        return [f"{self.dead_url}{FILES_PATH}{quote(name)}",
                *(replica.file_url(name) for replica in self.replicas.values())]


@dataclass(frozen=True, slots=True)
class Demo:
    """Everything :func:`running_demo` started, with the addresses a client needs."""

    files: Mapping[str, DemoFile]
    storage: Storage
    front: FrontServer
    middleware: ReproxyMiddleware

    @property
    def url(self) -> str:
        return self.front.url

    @property
    def replicas(self) -> Mapping[str, ReplicaServer]:
        return self.storage.replicas


def configured_middleware(backend: WSGIApplication) -> ReproxyMiddleware:
    """The middleware as a deployment would configure it: the point of the demo."""
    return ReproxyMiddleware(
        backend,
        allow=["/download/"],  # not /inline/: there the app's own answer passes through
        preserve=["Content-Type", "Content-Disposition"],  # the app knows; blob stores don't
        upstream_hosts=[f"{HOST}:*"],  # nothing else, whatever URL the app is tricked into
        timeout=5.0,
    )


@contextlib.contextmanager
def running_demo(port: int = 0) -> Iterator[Demo]:
    """Start replicas, backend and front; on exit stop them all, front first.

    Shutdown order matters: the front's requests end first (releasing their upstream
    connections), then the middleware's pool closes its idle keep-alive connections,
    then the replicas stop; nothing is left open, no thread left running.
    """
    files = demo_files()
    with contextlib.ExitStack() as stack:
        dead_port = stack.enter_context(refusing_port())
        replicas = {
            name: stack.enter_context(serving(ReplicaServer(name, [files[n] for n in names])))
            for name, names in STORED_ON.items()
        }
        storage = Storage(f"http://{HOST}:{dead_port}", replicas)
        middleware = configured_middleware(BackendApp(files, storage.urls))
        stack.callback(middleware.pool.clear)
        front = FrontServer(AccessLog(middleware), port)
        stack.enter_context(serving(front))
        yield Demo(files, storage, front, middleware)


# -- the checks ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one check, printed as one line."""

    name: str
    passed: bool
    detail: str

    def __str__(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.name:<22} {self.detail}"


@dataclass(frozen=True, slots=True)
class Answer:
    """A response the checks received, read whole."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    @property
    def replica(self) -> str:
        return self.header("X-Replica") or "none"

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


class _Recorder(logging.Handler):
    """Keeps the middleware's WARNING+ records: one per failed attempt (SPEC R7.1)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Checker:
    """Requests the running demo makes of itself, and what each must show."""

    def __init__(self, demo: Demo, http: urllib3.PoolManager, recorder: _Recorder) -> None:
        self.demo, self.http, self.recorder = demo, http, recorder
        self.answers: list[Answer] = []

    def run(self) -> list[Check]:
        checks = [self.full_download, self.first_replica, self.byte_range, self.preserved,
                  self.pass_through, self.head, self.conditional, self.all_fail, self.no_leak]
        return [self._safely(check) for check in checks]

    def _safely(self, check: Callable[[], Check]) -> Check:
        try:
            return check()
        except Exception as error:  # a check that crashes is a failed check, not a crash
            return Check(check.__name__.replace("_", " "), False, f"error: {error!r}")

    def fetch(self, method: str, path: str, **headers: str) -> Answer:
        response = self.http.request(method, self.demo.url + path, headers=headers,
                                     redirect=False, decode_content=False)
        answer = Answer(response.status, list(response.headers.items()), response.data)
        self.answers.append(answer)
        return answer

    def full_download(self) -> Check:
        big = self.demo.files["big.bin"]
        a_hits, logged = len(self.demo.replicas["A"].hits), len(self.recorder.records)
        got = self.fetch("GET", "/download/big.bin")
        failed = len(self.recorder.records) - logged
        a_said = [status for _, _, status in self.demo.replicas["A"].hits[a_hits:]]
        ok = (got.status == 200 and got.replica == "B" and got.body == big.data
              and a_said == [404] and failed == 2)
        return Check("GET big.bin", ok,
                     f"{got.status} from replica {got.replica} after dead + A {a_said}; "
                     f"{failed} failed attempts logged; {len(got.body)} bytes, "
                     f"sha256 {got.digest[:16]} {_same(got.digest, big.sha256)}")

    def first_replica(self) -> Check:
        hello = self.demo.files["hello.txt"]
        got = self.fetch("GET", "/download/hello.txt")
        ok = got.status == 200 and got.replica == "A" and got.body == hello.data
        return Check("GET hello.txt", ok,
                     f"{got.status} from replica {got.replica}, {len(got.body)} bytes, "
                     f"sha256 {got.digest[:16]} {_same(got.digest, hello.sha256)}")

    def byte_range(self) -> Check:
        big = self.demo.files["big.bin"]
        got = self.fetch("GET", "/download/big.bin", Range="bytes=100-199")
        content_range = got.header("Content-Range")
        ok = (got.status == 206 and got.body == big.data[100:200]
              and content_range == f"bytes 100-199/{BIG_SIZE}")
        return Check("Range big.bin", ok,
                     f"{got.status} from replica {got.replica}, Content-Range {content_range}, "
                     f"{len(got.body)} bytes {_same(got.body, big.data[100:200])}")

    def head(self) -> Check:
        got = self.fetch("HEAD", "/download/big.bin")
        length = got.header("Content-Length")
        ok = got.status == 200 and length == str(BIG_SIZE) and got.body == b""
        return Check("HEAD big.bin", ok,
                     f"{got.status} from replica {got.replica}, Content-Length {length}, "
                     f"body {len(got.body)} bytes")

    def conditional(self) -> Check:
        etag = self.demo.files["hello.txt"].etag
        got = self.fetch("GET", "/download/hello.txt", **{"If-None-Match": etag})
        ok = got.status == 304 and got.body == b"" and got.header("ETag") == etag
        return Check("If-None-Match", ok,
                     f"{got.status} from replica {got.replica}, ETag {got.header('ETag')}, "
                     f"body {len(got.body)} bytes")

    def preserved(self) -> Check:
        got = self.fetch("GET", "/download/report.pdf")
        disposition, content_type = got.header("Content-Disposition"), got.header("Content-Type")
        ok = (got.status == 200 and content_type == "application/pdf"
              and disposition == 'attachment; filename="report.pdf"'
              and got.body == self.demo.files["report.pdf"].data)
        return Check("app headers preserved", ok,
                     f"{got.status} from replica {got.replica} (which says "
                     f"{REPLICA_CONTENT_TYPE}): Content-Type {content_type}, "
                     f"Content-Disposition {disposition}")

    def pass_through(self) -> Check:
        hello = self.demo.files["hello.txt"]
        got = self.fetch("GET", "/inline/hello.txt")
        ok = got.status == 200 and got.replica == "none" and got.body == hello.data
        return Check("pass-through /inline/", ok,
                     f"{got.status} from the app itself (X-Replica: {got.replica}), "
                     f"{len(got.body)} bytes {_same(got.body, hello.data)}")

    def all_fail(self) -> Check:
        got = self.fetch("GET", "/download/lost.txt")
        leaks = [part for part in (HOST, FILES_PATH, "http:") if part.encode() in got.body]
        ok = got.status == 502 and not leaks
        return Check("every URL fails", ok,
                     f"{got.status}, body {got.body.decode(errors='replace').strip()!r}, "
                     f"internal URL parts in it: {leaks or 'none'}")

    def no_leak(self) -> Check:
        leaks = [name for answer in self.answers for name, _ in answer.headers
                 if name.lower().startswith("x-reproxy-")]
        return Check("no X-Reproxy-* header", not leaks,
                     f"{len(leaks)} in {len(self.answers)} responses {sorted(set(leaks))}")


def _same(got: object, expected: object) -> str:
    return "== expected" if got == expected else "!= EXPECTED"


# -- the two modes -------------------------------------------------------------------------


def banner(demo: Demo) -> str:
    return (f"wsgi-reproxy {__version__} demo: front {demo.url}/\n"
            f"  replica A {demo.replicas['A'].url} (no big.bin), replica B "
            f"{demo.replicas['B'].url}, dead {demo.storage.dead_url} (refuses connections)")


@contextlib.contextmanager
def recording_log() -> Iterator[_Recorder]:
    """Collect the middleware's warnings for the checks; the console stays for PASS/FAIL."""
    recorder = _Recorder()
    logger = logging.getLogger("wsgi_reproxy")
    logger.addHandler(recorder)
    try:
        yield recorder
    finally:
        logger.removeHandler(recorder)


def check(port: int = 0, out: TextIO | None = None) -> int:
    """Start the demo, check it from the inside, stop it: 0 when every check passed."""
    out = out or sys.stdout
    timeout = urllib3.Timeout(connect=2.0, read=10.0)
    with (recording_log() as recorder, running_demo(port) as demo,
          urllib3.PoolManager(retries=False, timeout=timeout) as http):
        print(banner(demo), file=out, flush=True)
        results = Checker(demo, http, recorder).run()
    for result in results:
        print(result, file=out)
    passed = sum(result.passed for result in results)
    print(f"{passed}/{len(results)} checks passed", file=out, flush=True)
    return 0 if passed == len(results) else 1


def instructions(demo: Demo) -> str:
    """What to print in interactive mode: the addresses, and curl commands to try."""
    url, big, hello = demo.url, demo.files["big.bin"], demo.files["hello.txt"]
    return "\n".join([
        banner(demo),
        "",
        "Try (and watch the failover warnings below):",
        f"  curl -s {url}/download/big.bin | sha256sum    # expect {big.sha256}",
        f"  curl -s -r 0-99 -D - {url}/download/hello.txt    # 206, the first 100 bytes",
        f"  curl -I {url}/download/big.bin    # HEAD: Content-Length {len(big.data)}, no body",
        f"  curl -s -o /dev/null -w '%{{http_code}}\\n' -H 'If-None-Match: {hello.etag}' "
        f"{url}/download/hello.txt    # 304",
        f"  curl -s -D - {url}/inline/hello.txt    # pass-through: the app's bytes, no X-Reproxy-*",
        f"  curl -s -D - {url}/download/lost.txt    # on no replica: 502",
        "",
        "Press Ctrl-C to stop.",
    ])


@contextlib.contextmanager
def interrupted_by_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into KeyboardInterrupt while serving, then restore them.

    SIGINT is set explicitly because a shell starts background jobs with it ignored, and
    ``kill -INT`` should still stop the demo cleanly; SIGTERM so that ``kill`` does too.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def serve(port: int = 0, out: TextIO | None = None) -> int:
    """Run the demo until Ctrl-C (or SIGTERM), then stop everything cleanly and return 0."""
    out = out or sys.stdout
    with interrupted_by_signals(), running_demo(port) as demo:
        print(instructions(demo), file=out, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", file=out, flush=True)
    print("stopped", file=out, flush=True)
    return 0
