"""``--check``: the requests the running demo makes of itself, one PASS/FAIL line each."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TextIO

import urllib3

from .files import BIG_SIZE
from .replicas import FILES_PATH, REPLICA_CONTENT_TYPE
from .servers import HOST
from .stack import Demo, banner, running_demo

__all__ = ["Check", "Checker", "check"]


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
        # Order matters: `preserved` must be the next request to replica A after the 304
        # (see its docstring); the HEAD goes first, as its dead + A attempts would otherwise
        # take the connection the 304 left to A.
        checks = [
            self.full_download,
            self.first_replica,
            self.byte_range,
            self.head,
            self.conditional,
            self.preserved,
            self.pass_through,
            self.all_fail,
            self.no_leak,
        ]
        return [self._safely(check) for check in checks]

    def _safely(self, check: Callable[[], Check]) -> Check:
        try:
            return check()
        except Exception as error:  # a check that crashes is a failed check, not a crash
            return Check(check.__name__.replace("_", " "), False, f"error: {error!r}")

    def fetch(self, method: str, path: str, **headers: str) -> Answer:
        response = self.http.request(
            method, self.demo.url + path, headers=headers, redirect=False, decode_content=False
        )
        answer = Answer(response.status, list(response.headers.items()), response.data)
        self.answers.append(answer)
        return answer

    def full_download(self) -> Check:
        big = self.demo.files["big.bin"]
        a_hits, logged = len(self.demo.replicas["A"].hits), len(self.recorder.records)
        got = self.fetch("GET", "/download/big.bin")
        failed = len(self.recorder.records) - logged
        a_said = [status for _, _, status in self.demo.replicas["A"].hits[a_hits:]]
        ok = (
            got.status == 200
            and got.replica == "B"
            and got.body == big.data
            and a_said == [404]
            and failed == 2
        )
        after = f" after dead + A {a_said}; {failed} failed attempts logged"
        return _served("GET big.bin", got, ok, f"{after}; {_hashed(got, big.sha256)}")

    def first_replica(self) -> Check:
        hello = self.demo.files["hello.txt"]
        got = self.fetch("GET", "/download/hello.txt")
        ok = got.status == 200 and got.replica == "A" and got.body == hello.data
        return _served("GET hello.txt", got, ok, f", {_hashed(got, hello.sha256)}")

    def byte_range(self) -> Check:
        part = self.demo.files["big.bin"].data[100:200]
        got = self.fetch("GET", "/download/big.bin", Range="bytes=100-199")
        content_range = got.header("Content-Range")
        ok = got.status == 206 and got.body == part and content_range == f"bytes 100-199/{BIG_SIZE}"
        detail = f", Content-Range {content_range}, {len(got.body)} bytes {_same(got.body, part)}"
        return _served("Range big.bin", got, ok, detail)

    def head(self) -> Check:
        got = self.fetch("HEAD", "/download/big.bin")
        length = got.header("Content-Length")
        ok = got.status == 200 and length == str(BIG_SIZE) and got.body == b""
        return _served("HEAD big.bin", got, ok, f", Content-Length {length}, {_body_size(got)}")

    def conditional(self) -> Check:
        etag = self.demo.files["hello.txt"].etag
        got = self.fetch("GET", "/download/hello.txt", **{"If-None-Match": etag})
        ok = got.status == 304 and got.body == b"" and got.header("ETag") == etag
        return _served("If-None-Match", got, ok, f", ETag {got.header('ETag')}, {_body_size(got)}")

    def preserved(self) -> Check:
        """Runs right after the 304 from replica A and must be served by A, reusing the
        keep-alive connection that answer left in the middleware's pool.

        A bodiless answer (HEAD, 304) released unread leaves that connection unusable
        (ResponseNotReady), so B would serve.  Only while the unread response is alive,
        though: once wsgiref drops the body, ``IOBase.__del__`` closes it and the connection
        works again, so here that bug shows only if this request wins the race.
        """
        got = self.fetch("GET", "/download/report.pdf")
        disposition, content_type = got.header("Content-Disposition"), got.header("Content-Type")
        ok = (
            got.status == 200
            and got.replica == "A"
            and content_type == "application/pdf"
            and disposition == 'attachment; filename="report.pdf"'
            and got.body == self.demo.files["report.pdf"].data
        )
        detail = f"Content-Type {content_type}, Content-Disposition {disposition}"
        return _served(
            "app headers preserved", got, ok, f" (which says {REPLICA_CONTENT_TYPE}): {detail}"
        )

    def pass_through(self) -> Check:
        hello = self.demo.files["hello.txt"]
        got = self.fetch("GET", "/inline/hello.txt")
        ok = got.status == 200 and got.replica == "none" and got.body == hello.data
        detail = f"(X-Replica: {got.replica}), {len(got.body)} bytes {_same(got.body, hello.data)}"
        return Check("pass-through /inline/", ok, f"{got.status} from the app itself {detail}")

    def all_fail(self) -> Check:
        got = self.fetch("GET", "/download/lost.txt")
        leaks = [part for part in (HOST, FILES_PATH, "http:") if part.encode() in got.body]
        ok = got.status == 502 and not leaks
        return Check(
            "every URL fails",
            ok,
            f"{got.status}, body {got.body.decode(errors='replace').strip()!r}, "
            f"internal URL parts in it: {leaks or 'none'}",
        )

    def no_leak(self) -> Check:
        leaks = [
            name
            for answer in self.answers
            for name, _ in answer.headers
            if name.lower().startswith("x-reproxy-")
        ]
        return Check(
            "no X-Reproxy-* header",
            not leaks,
            f"{len(leaks)} in {len(self.answers)} responses {sorted(set(leaks))}",
        )


def _served(name: str, got: Answer, ok: bool, detail: str) -> Check:
    """Most checks read an answer a replica served: their line opens with its status and
    replica, the part that proves or disproves the fallback; ``detail`` is what follows."""
    return Check(name, ok, f"{got.status} from replica {got.replica}{detail}")


def _hashed(got: Answer, sha256: str) -> str:
    return f"{len(got.body)} bytes, sha256 {got.digest[:16]} {_same(got.digest, sha256)}"


def _body_size(got: Answer) -> str:
    return f"body {len(got.body)} bytes"


def _same(got: object, expected: object) -> str:
    return "== expected" if got == expected else "!= EXPECTED"


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
    with (
        recording_log() as recorder,
        running_demo(port) as demo,
        urllib3.PoolManager(retries=False, timeout=timeout) as http,
    ):
        print(banner(demo), file=out, flush=True)
        results = Checker(demo, http, recorder).run()
    for result in results:
        print(result, file=out)
    passed = sum(result.passed for result in results)
    print(f"{passed}/{len(results)} checks passed", file=out, flush=True)
    return 0 if passed == len(results) else 1
