"""In-process WSGI harness: call an app the way a server would, through PEP 3333 checks.

``call()`` runs the app under ``wsgiref.validate.validator`` (which asserts the protocol:
header types, hop-by-hop names, close() called ...), iterates the body and closes it, and
returns what a client would have received.  ``BackendApp`` is a scriptable app that records
how it was called, so tests can assert "closed exactly once" and "saw this environ".
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator


@dataclass
class Result:
    status: str
    headers: list[tuple[str, str]]
    body: bytes
    environ: dict[str, Any]

    @property
    def code(self) -> int:
        return int(self.status.split(" ", 1)[0])

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def names(self) -> list[str]:
        return [k.lower() for k, _ in self.headers]


def make_environ(
    path: str = "/", method: str = "GET", headers: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    path, _, query = path.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SCRIPT_NAME": "",
    }
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    environ.update(extra)
    setup_testing_defaults(environ)
    environ["wsgi.input"] = io.BytesIO(b"")
    environ["wsgi.errors"] = sys.stderr
    return environ


def call(
    app: Callable[..., Iterable[bytes]],
    path: str = "/",
    method: str = "GET",
    headers: dict[str, str] | None = None,
    *,
    validate: bool = True,
    **extra: Any,
) -> Result:
    """Call ``app`` like a server: start_response, iterate the body, close it."""
    environ = make_environ(path, method, headers, **extra)
    captured: dict[str, Any] = {}
    written: list[bytes] = []

    def start_response(status, response_headers, exc_info=None):
        captured["status"] = status
        captured["headers"] = list(response_headers)
        return written.append

    wrapped = validator(app) if validate else app
    iterable = wrapped(environ, start_response)
    try:
        chunks = list(iterable)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    return Result(captured["status"], captured["headers"], b"".join(written + chunks), environ)


@dataclass
class Recorder:
    """What a BackendApp saw and had done to it."""

    environ: dict[str, Any] | None = None
    closed: int = 0
    iterated: int = 0


class _Body:
    def __init__(self, chunks: list[bytes], recorder: Recorder) -> None:
        self._chunks = chunks
        self._recorder = recorder

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self._recorder.iterated += 1
            yield chunk

    def close(self) -> None:
        self._recorder.closed += 1


@dataclass
class BackendApp:
    """A WSGI app answering ``status`` + ``headers`` + ``body``, recording what happened.

    ``lazy=True`` calls start_response from inside the body iterator (a generator app);
    ``write`` passes data through the write() callable before returning the body.
    """

    headers: list[tuple[str, str]] = field(default_factory=lambda: [("Content-Type", "text/plain")])
    status: str = "200 OK"
    body: list[bytes] = field(default_factory=lambda: [b"IGNORED"])
    lazy: bool = False
    write: bytes | None = None
    record: Recorder = field(default_factory=Recorder)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        self.record.environ = dict(environ)
        if self.lazy:
            return self._lazy(start_response)
        write = start_response(self.status, list(self.headers))
        if self.write is not None:
            write(self.write)
        return _Body(list(self.body), self.record)

    def _lazy(self, start_response: Callable[..., Any]) -> Iterator[bytes]:
        try:
            start_response(self.status, list(self.headers))
            for chunk in self.body:
                self.record.iterated += 1
                yield chunk
        finally:
            self.record.closed += 1


def reproxy_app(*urls: str, **kwargs: Any) -> BackendApp:
    """A backend asking for ``urls``, with the usual Content-Type and Disposition."""
    headers = [
        ("Content-Type", "application/x-app"),
        ("Content-Disposition", "attachment; filename=f.bin"),
        ("Content-Length", "7"),
        ("X-Reproxy-Url", " ".join(urls)),
    ]
    headers += kwargs.pop("extra_headers", [])
    return BackendApp(headers=headers, **kwargs)


def own_pool_middleware(url: str, port: int, *, refuse_local: bool, **kwargs: Any) -> Any:
    """A middleware on its own pool (guarded with ``refuse_local``, then allowing the test
    server on 127.0.0.1:``port``) in front of a backend asking for ``url``."""
    from wsgi_reproxy import ReproxyMiddleware

    hosts = [f"127.0.0.1:{port}"] if refuse_local else None
    return ReproxyMiddleware(
        reproxy_app(url), allow=["/r/"], upstream_hosts=hosts, refuse_local=refuse_local, **kwargs
    )
