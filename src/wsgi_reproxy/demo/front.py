"""The front: wsgiref's server, threaded, with an access log around the middleware."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, TypeAlias
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from .servers import ThreadedServer

__all__ = ["AccessLog", "FrontServer"]

log = logging.getLogger("wsgi_reproxy.demo")

ExcInfo: TypeAlias = (
    tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
)


class AccessLog:
    """Log one line per request once its body is done, naming the URL that served it.

    The middleware records that URL in ``environ["wsgi_reproxy.url"]`` (SPEC R7.2).
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        status: list[str] = []

        def start(
            status_line: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            status[:] = [status_line]
            return start_response(status_line, headers, exc_info)

        return _LoggedBody(self.app(environ, start), environ, status)


class _LoggedBody:
    """The app's iterable, counted; ``close()`` closes it and writes the log line."""

    def __init__(self, body: Iterable[bytes], environ: WSGIEnvironment, status: list[str]) -> None:
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
            log.info(
                "%s %s -> %s, %d bytes, from %s",
                self.environ.get("REQUEST_METHOD"),
                self.environ.get("PATH_INFO"),
                self.status[-1] if self.status else "-",
                self.sent,
                source,
            )


class QuietWSGIRequestHandler(WSGIRequestHandler):
    """The access log is :class:`AccessLog`'s; the stdlib's line per request goes to DEBUG."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("front: %s", format % args)


class FrontServer(ThreadedServer, WSGIServer):
    """wsgiref's server (HTTP/1.0, one request per connection), one thread per request."""

    def __init__(self, app: WSGIApplication, port: int = 0) -> None:
        super().__init__(port, QuietWSGIRequestHandler)
        self.set_app(app)
