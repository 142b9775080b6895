"""Through gunicorn, against real nginx and Apache httpd storage (SPEC R5.3, R5.5).

The middleware runs in gunicorn (tests/apps/storageapp.py); the storage is a real nginx
and a real Apache httpd serving static files (tests/real_storage.py), each logging every
request line exactly as received.  File names hold UTF-8, ``+``, spaces and every
sub-delimiter; the URLs name them with escapes in lower case, in mixed case, and not at
all, so any rewriting of the request target shows in the storage's own log:

* the request line the storage logs is the target as the app wrote it, byte for byte;
* a 412 (``If-Match: "nope"`` against the server's real ``ETag``) is relayed with the
  storage's own status and body, and the next URL is never asked;
* a plain ``PoolManager`` refuses to send a target it would change, and the next URL serves.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest
import urllib3

import real_storage
from real_storage import StorageProcess
from upstreams import FILES, FileServer
from wsgi_servers import ServerProcess

pytestmark = pytest.mark.slow

STORED = {
    "b/\u00fc x+y.txt": b"umlaut, space and plus\n",
    "c/a~b=c&d'e!f(g)h*i:j@k,l;m$n.txt": b"every sub-delimiter\n" * 1000,
}
UMLAUT = STORED["b/\u00fc x+y.txt"]
DELIMS = STORED["c/a~b=c&d'e!f(g)h*i:j@k,l;m$n.txt"]

# (target as the app writes it, the file it names)
TARGETS = [
    ("/b/%c3%bc%20x+y.txt", UMLAUT),
    ("/b/%C3%bc%20x%2by.txt", UMLAUT),
    ("/b/%c3%bc%20x%2By.txt?X-Amz-Signature=ab%2f%2B&X-Amz-Date=20240101T000000Z&e=", UMLAUT),
    ("/c/a~b=c&d'e!f(g)h*i:j@k,l;m$n.txt", DELIMS),
    ("/c/a%7eb%3dc%26d%27e%21f%28g%29h%2ai%3aj%40k%2cl%3bm%24n.txt?q=/?:@", DELIMS),
]


@pytest.fixture(scope="session")
def nginx() -> Iterator[StorageProcess]:
    storage = StorageProcess("nginx", STORED)
    yield storage
    storage.stop()


@pytest.fixture(scope="session")
def apache() -> Iterator[StorageProcess]:
    storage = StorageProcess("apache", STORED)
    yield storage
    storage.stop()


@pytest.fixture(params=["nginx", "apache"])
def storage(request: pytest.FixtureRequest) -> StorageProcess:
    found: StorageProcess = request.getfixturevalue(request.param)
    return found


@pytest.fixture(scope="module")
def gunicorn() -> Iterator[ServerProcess]:
    with ServerProcess(
        "gunicorn-gthread", {}, threads=4, app="storageapp:application", ready_path="/ready"
    ) as process:
        yield process


@pytest.fixture(scope="module")
def second() -> Iterator[FileServer]:
    """The URL after the storage's: asked only when the storage's failed."""
    with FileServer() as server:
        yield server


@pytest.fixture
def client() -> Iterator[urllib3.PoolManager]:
    with urllib3.PoolManager(retries=False, timeout=10) as pool:
        yield pool


def reproxied(
    client: urllib3.PoolManager,
    gunicorn: ServerProcess,
    *urls: str,
    route: str = "/o/",
    headers: dict[str, str] | None = None,
) -> urllib3.BaseHTTPResponse:
    """What a client of gunicorn gets when the app names ``urls``."""
    sent = {"X-Test-Urls": " ".join(urls), **(headers or {})}
    return client.request("GET", gunicorn.base + route + "f", headers=sent)


def direct(
    storage: StorageProcess, target: str, headers: dict[str, str] | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """The storage's own answer to ``target``, sent as is (http.client changes nothing)."""
    connection = http.client.HTTPConnection("127.0.0.1", storage.port, timeout=10)
    try:
        connection.request("GET", target, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(("target", "data"), TARGETS, ids=[t for t, _ in TARGETS])
def test_the_storage_receives_the_target_as_written(client, gunicorn, storage, target, data):
    """R5.5: byte for byte in the storage's own log, whatever the case of the escapes."""
    before = storage.settled_line_count()
    response = reproxied(client, gunicorn, storage.base + target)
    assert (response.status, response.data) == (200, data), gunicorn.output()
    assert storage.new_request_lines(before) == [f"GET {target} HTTP/1.1"], storage.output()


def test_412_is_relayed_as_the_storage_sent_it(client, gunicorn, storage, second):
    """R5.3: nginx and Apache answer If-Match: "nope" with 412 against their real ETags;
    the client gets that status and body, and the next URL is never asked."""
    target = TARGETS[0][0]
    nope = {"If-Match": '"nope"'}
    # Counted before any request: a server logs a request after its response has left.
    before = storage.settled_line_count()
    status, _, body = direct(storage, target, nope)
    assert status == 412
    asked_second = len(second.requests)
    response = reproxied(
        client, gunicorn, storage.base + target, second.url("/files/small.txt"), headers=nope
    )
    assert (response.status, response.data) == (412, body), gunicorn.output()
    assert len(second.requests) == asked_second
    assert storage.new_request_lines(before, expected=2) == [f"GET {target} HTTP/1.1"] * 2


def test_a_matching_if_match_serves_the_file(client, gunicorn, storage, second):
    target, data = TARGETS[1]
    _, headers, _ = direct(storage, target)
    etag = headers["ETag"]
    assert etag.startswith('"')
    response = reproxied(
        client,
        gunicorn,
        storage.base + target,
        second.url("/files/small.txt"),
        headers={"If-Match": etag},
    )
    assert (response.status, response.data) == (200, data)
    assert response.headers["ETag"] == etag


def test_a_plain_pool_does_not_send_what_it_would_change(client, gunicorn, storage, second):
    """With escapes in lower case a plain PoolManager would change the target: that URL is
    not sent, and the next one serves; in upper case it goes out as written."""
    lower, data = TARGETS[0]
    before = storage.settled_line_count()
    response = reproxied(
        client, gunicorn, storage.base + lower, second.url("/files/small.txt"), route="/p/"
    )
    assert (response.status, response.data) == (200, FILES["small.txt"])
    upper = "/b/%C3%BC%20x%2By.txt"
    response = reproxied(client, gunicorn, storage.base + upper, route="/p/")
    assert (response.status, response.data) == (200, data)
    assert storage.new_request_lines(before) == [f"GET {upper} HTTP/1.1"]


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_a_missing_server_skips_except_under_ci(monkeypatch, ci, outcome):
    """CI installs nginx and Apache: there a missing one fails instead of skipping."""
    monkeypatch.setattr(real_storage, "binary", lambda kind: None)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="nginx is not installed"):
        real_storage.require("nginx")
