"""``X-Reproxy-File`` under real WSGI servers (SPEC R9.3): byte-exact, ranges, HEAD,
failover, hang-ups, and sendfile where the server has it.

gunicorn hands a ``wsgi.file_wrapper`` to ``os.sendfile``: the app in tests/apps/fileapp.py
counts those calls, so the test knows a whole file went out without passing through Python,
while a range (read at its offset) did not use it.  uWSGI's wrapper sends from C;
waitress's reads in Python; Granian offers none: there the bytes are checked.
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import time

import pytest
import urllib3

from upstreams import FILES, FileServer
from wsgi_servers import ServerProcess

pytestmark = pytest.mark.slow

SIZE = 20 * 1024 * 1024
DATA = hashlib.sha256(b"seed").digest() * (SIZE // 32)
KINDS = ["gunicorn-gthread", "uwsgi", "waitress", "granian"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    directory = tmp_path_factory.mktemp("files")
    (directory / "big.bin").write_bytes(DATA)
    return directory


@pytest.fixture(scope="module")
def storage():
    with FileServer() as server:
        yield server


@pytest.fixture(scope="module", params=KINDS)
def server(request, root, storage):
    env = {"RP_FILE_ROOT": str(root), "RP_REPLICA": storage.base}
    with ServerProcess(request.param, env, threads=4, app="fileapp:application") as process:
        yield process


@pytest.fixture
def client():
    with urllib3.PoolManager(retries=False, timeout=30) as pool:
        yield pool


def stats(server, client):
    return json.loads(client.request("GET", server.base + "/stats").data)


def test_a_local_file_is_byte_exact(server, client):
    before = stats(server, client)
    response = client.request("GET", server.base + "/f/big.bin", preload_content=False)
    digest, size = hashlib.sha256(), 0
    for chunk in response.stream(1 << 20):
        digest.update(chunk)
        size += len(chunk)
    response.release_conn()
    assert response.status == 200
    assert response.headers["Content-Length"] == str(SIZE)
    assert response.headers["Accept-Ranges"] == "bytes"
    assert "X-Reproxy-File" not in response.headers
    assert (size, digest.digest()) == (SIZE, hashlib.sha256(DATA).digest())
    after = stats(server, client)
    if server.kind.startswith("gunicorn"):
        assert after["sendfile"] > before["sendfile"], server.output()


def test_range_and_head(server, client):
    before = stats(server, client)
    ranged = client.request(
        "GET", server.base + "/f/big.bin", headers={"Range": "bytes=5000000-5999999"}
    )
    assert ranged.status == 206
    assert ranged.headers["Content-Range"] == f"bytes 5000000-5999999/{SIZE}"
    assert ranged.data == DATA[5_000_000:6_000_000]
    head = client.request("HEAD", server.base + "/f/big.bin")
    assert (head.status, head.data) == (200, b"")
    assert head.headers["Content-Length"] == str(SIZE)
    etag = head.headers["ETag"]
    assert (
        client.request("GET", server.base + "/f/big.bin", headers={"If-None-Match": etag}).status
        == 304
    )
    assert stats(server, client)["sendfile"] == before["sendfile"]  # none of these sent a file


def test_a_missing_file_fails_over_to_the_url(server, client, storage):
    response = client.request("GET", server.base + "/fo/1m.bin")
    assert (response.status, response.data) == (200, FILES["1m.bin"])
    assert client.request("GET", server.base + "/f/1m.bin").status == 404


def test_hang_ups_close_every_iterable(server, client):
    before = stats(server, client)
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        try:
            sock.sendall(b"GET /f/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            assert sock.recv(65536)
        finally:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
    deadline = time.monotonic() + 15
    while True:
        now = stats(server, client)
        if now["closed"] == now["calls"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert now["calls"] - before["calls"] == 3
    assert now["closed"] == now["calls"], server.output()
    response = client.request("GET", server.base + "/f/big.bin")
    assert response.data == DATA
