"""The client misbehaves: it hangs up at every stage, many more times than the pool holds.

With ``PoolManager(maxsize=2, block=True)`` a single leaked pool slot deadlocks the next
request, so these tests would hang (and time out) on any leak.  Half-read upstream
connections must be closed, never returned to the pool; the app's iterable is closed
exactly once per request.  Tested twice: by calling ``close()`` early in-process, and with
real sockets that hang up on a real gunicorn server.
"""

from __future__ import annotations

import json
import socket
import struct
import time

import pytest
import urllib3

from harness import call, reproxy_app
from upstreams import FILES
from wsgi_reproxy import ReproxyMiddleware
from wsgi_servers import ServerProcess

BIG = FILES["5m.bin"]
REPEAT = 12  # six times the pool size


@pytest.fixture
def blocking_pool():
    pool = urllib3.PoolManager(maxsize=2, block=True, retries=False)
    yield pool
    pool.clear()


def _hang_up(body, stage):
    """Consume ``body`` up to ``stage``, then close it as a server does on a gone client."""
    received = 0
    if stage != "before first byte":
        for chunk in body:
            received += len(chunk)
            if stage == "mid body" or received == len(BIG):
                break  # "on the last chunk": everything read, StopIteration not reached
    body.close()
    return received


@pytest.mark.parametrize("stage", ["before first byte", "mid body", "on the last chunk"])
def test_early_close_in_process(stage, file_server, blocking_pool):
    app = reproxy_app(file_server.url("/files/5m.bin"))
    mw = ReproxyMiddleware(
        app, allow=["/r/"], pool=blocking_pool, timeout=urllib3.Timeout(connect=2, read=2)
    )
    for _ in range(REPEAT):
        body = mw({"REQUEST_METHOD": "GET", "PATH_INFO": "/r/f"}, lambda s, h, e=None: None)
        received = _hang_up(body, stage)
        assert received <= len(BIG)
    assert app.record.closed == REPEAT
    assert file_server.wait_open_connections(at_most=2) <= 2
    result = call(mw, "/r/f")  # would block forever on a leaked slot
    assert result.body == BIG
    assert app.record.closed == REPEAT + 1


def test_half_read_connections_are_never_reused(file_server, blocking_pool):
    """A connection closed mid-body is replaced: one new upstream connection per hang-up."""
    app = reproxy_app(file_server.url("/files/5m.bin"))
    mw = ReproxyMiddleware(app, allow=["/r/"], pool=blocking_pool, timeout=2)
    for _ in range(REPEAT):
        body = mw({"REQUEST_METHOD": "GET", "PATH_INFO": "/r/f"}, lambda s, h, e=None: None)
        _hang_up(body, "mid body")
    assert file_server.connections == REPEAT
    assert file_server.wait_open_connections(at_most=0) == 0


# -- a real server, real sockets ---------------------------------------------------------


def _raw_client(port, stage):
    """Send a GET, read to ``stage``, then hang up abruptly (RST)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock.sendall(b"GET /r/5m.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        wanted = {
            "before first byte": 0,
            "mid body": 300_000,
            "on the last chunk": len(BIG) - 1000,
        }[stage]
        received = b""
        while len(received) < wanted:
            data = sock.recv(65536)
            if not data:
                break
            received += data
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def _stats(pool, server):
    return json.loads(pool.request("GET", server.base + "/stats", timeout=5).data)


@pytest.mark.slow
def test_hang_ups_on_a_real_gunicorn_server(file_server):
    env = {"RP_REPLICAS": file_server.base, "RP_POOL_SIZE": "2"}
    with (
        ServerProcess("gunicorn-gthread", env, threads=4) as server,
        urllib3.PoolManager(retries=False) as client,
    ):
        for _ in range(4):
            for stage in ("before first byte", "mid body", "on the last chunk"):
                _raw_client(server.port, stage)
        response = client.request("GET", server.base + "/r/5m.bin", timeout=10)
        assert response.status == 200
        assert response.data == BIG
        deadline = time.monotonic() + 10
        while (stats := _stats(client, server))["closed"] < stats["calls"]:
            assert time.monotonic() < deadline, (stats, server.output())
            time.sleep(0.1)
        assert stats == {"calls": 13, "closed": 13}  # 12 hang-ups and the full GET
        assert file_server.wait_open_connections(at_most=2) <= 2, server.output()
        assert "Traceback" not in server.output()
