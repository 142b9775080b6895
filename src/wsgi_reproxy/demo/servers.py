"""Threaded HTTP servers on 127.0.0.1 that stop for real, and a port that refuses."""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import HTTPServer
from socketserver import BaseRequestHandler, ThreadingMixIn
from typing import Any, TypeVar

__all__ = ["HOST", "ThreadedServer", "refusing_port", "serving"]

log = logging.getLogger("wsgi_reproxy.demo")

HOST = "127.0.0.1"


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
        self._loop = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"serve {self.url}",
            daemon=True,
        )
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
