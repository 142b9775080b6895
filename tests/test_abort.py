"""Cutting the client off at once when a body aborts (:mod:`wsgi_reproxy.abort`).

Under real uWSGI this is ``test_servers.py::test_a_broken_body_is_cut_at_once``.  Here, in
process, uWSGI's own module (which exists only inside uWSGI) is stood in for by one whose
``connection_fd()`` is one end of a real socket pair, so the test sees what a client would:
its connection ending at once, or left alone.
"""

from __future__ import annotations

import logging
import socket
import sys
import types

import pytest

from harness import call, make_environ, reproxy_app
from upstreams import FILES, close_mid_body
from wsgi_reproxy import ReproxyMiddleware, UpstreamBodyError
from wsgi_reproxy.abort import abort_hook, shut_uwsgi_connection

UWSGI = {"uwsgi.version": b"2.0.30"}


def middleware(url):
    return ReproxyMiddleware(reproxy_app(url), allow=["/r/"], timeout=2)


@pytest.fixture
def client_end(monkeypatch):
    """The client's end of the connection uWSGI's stand-in hands out as its own."""
    server_end, client = socket.socketpair()
    module = types.ModuleType("uwsgi")
    module.connection_fd = server_end.fileno
    monkeypatch.setitem(sys.modules, "uwsgi", module)
    with server_end, client:
        client.settimeout(5)
        yield client


def test_only_uwsgi_gets_a_hook():
    assert abort_hook(make_environ()) is None
    assert abort_hook(make_environ(**UWSGI)) is shut_uwsgi_connection


def test_an_aborted_body_under_uwsgi_ends_the_clients_connection(scripted, client_end):
    dying = scripted(close_mid_body(100_000, 10_000))
    with pytest.raises(UpstreamBodyError):
        call(middleware(dying.url("/f")), "/r/f", **UWSGI)
    assert client_end.recv(1) == b""  # the end of the connection, not a timeout


def test_a_whole_body_leaves_the_connection_alone(file_server, client_end):
    result = call(middleware(file_server.url("/files/small.txt")), "/r/f", **UWSGI)
    assert result.body == FILES["small.txt"]
    client_end.setblocking(False)
    with pytest.raises(BlockingIOError):  # nothing to read, and no end: still open
        client_end.recv(1)


def test_outside_uwsgi_the_hook_only_logs(monkeypatch, caplog):
    """A failure only means the server's own, later close: never an error of its own."""
    monkeypatch.setitem(sys.modules, "uwsgi", None)  # import uwsgi: ImportError
    with caplog.at_level(logging.DEBUG, "wsgi_reproxy"):
        shut_uwsgi_connection()
    [record] = caplog.records
    assert record.getMessage().startswith(
        "could not shut the uWSGI client connection down: ModuleNotFoundError"
    )
