"""The framework examples (examples/flask_app, examples/django_project) against real storage,
and examples/cached_app.py, whose second request must skip the view.

Each example is run the way its README says: wrapped in ReproxyMiddleware, with its replicas
pointed at the real :class:`~upstreams.FileServer` (and, for failover, at a port that refuses
connections).  In process through WebTest's ``lint=True`` (PEP 3333 checks), and once per
framework under a real gunicorn (gthread) subprocess.

The examples are imported by putting their directories on ``sys.path`` for this module only
(:func:`importable` restores ``sys.path`` and ``sys.modules``).  Django can be set up once per
process: the module-scoped :func:`django_example` does it; each test then changes only
``STORAGE_REPLICAS`` / ``REPROXY_ALLOW`` with ``override_settings`` and wraps a fresh
``get_wsgi_application()`` with the example's own ``project.wsgi.with_reproxy``.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
import urllib3
import webtest
from werkzeug.http import parse_options_header

from harness import make_environ
from upstreams import FILES, etag_for
from wsgi_reproxy import __version__
from wsgi_servers import ServerProcess

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FLASK_DIR = EXAMPLES / "flask_app"
DJANGO_DIR = EXAMPLES / "django_project"

# What the examples' catalogues say (the FileServer sends application/octet-stream for all).
CONTENT_TYPES = {
    "small.txt": "text/plain; charset=utf-8",
    "1m.bin": "application/octet-stream",
    "5m.bin": "application/octet-stream",
}
UPSTREAM_UA = f"wsgi-reproxy/{__version__}"


# -- Importing the examples ----------------------------------------------------------------


def _owned(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


@contextlib.contextmanager
def importable(directory: Path, *packages: str) -> Iterator[None]:
    """Put ``directory`` first on ``sys.path``; at exit restore ``sys.path`` and forget the
    example's modules (``packages`` and their submodules), putting back any they shadowed."""
    saved_path = list(sys.path)
    shadowed = {name: mod for name, mod in sys.modules.items() if _owned(name, packages)}
    for name in shadowed:
        del sys.modules[name]
    sys.path.insert(0, str(directory))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path[:] = saved_path
        for name in [name for name in sys.modules if _owned(name, packages)]:
            del sys.modules[name]
        sys.modules.update(shadowed)


@pytest.fixture(scope="module")
def flask_example() -> Iterator[ModuleType]:
    """examples/flask_app/app.py, imported."""
    with importable(FLASK_DIR, "app"):
        yield importlib.import_module("app")


@pytest.fixture(scope="module")
def django_example() -> Iterator[SimpleNamespace]:
    """examples/django_project, set up once: ``project.wsgi`` and ``downloads.storage``."""
    import django
    from django.conf import settings

    if settings.configured and settings.SETTINGS_MODULE != "project.settings":
        pytest.skip(f"Django is already set up with {settings.SETTINGS_MODULE!r}")
    with importable(DJANGO_DIR, "project", "downloads"), pytest.MonkeyPatch.context() as mp:
        mp.setenv("DJANGO_SETTINGS_MODULE", "project.settings")
        django.setup()
        wsgi = importlib.import_module("project.wsgi")
        storage = importlib.import_module("downloads.storage")
        try:
            yield SimpleNamespace(wsgi=wsgi, storage=storage)
        finally:
            wsgi.application.pool.clear()
            storage.pool.clear()


Build = Callable[..., Any]


@pytest.fixture(params=["flask", "django"])
def build(request: pytest.FixtureRequest) -> Iterator[Build]:
    """``build(replicas, allow=None)``: the example's WSGI application, as deployed
    (wrapped in the middleware), with ``STORAGE_REPLICAS = replicas`` and, if given,
    ``REPROXY_ALLOW = allow``.  Every pool it creates is cleared at teardown."""
    with contextlib.ExitStack() as stack:
        if request.param == "flask":
            module = request.getfixturevalue("flask_example")

            def build_flask(replicas: list[str], allow: list[str] | None = None) -> Any:
                config: dict[str, Any] = {"STORAGE_REPLICAS": list(replicas)}
                if allow is not None:
                    config["REPROXY_ALLOW"] = list(allow)
                app = module.create_app(config)
                stack.callback(app.extensions["storage_pool"].clear)
                stack.callback(app.wsgi_app.pool.clear)
                return app

            yield build_flask
        else:
            example = request.getfixturevalue("django_example")
            from django.core.wsgi import get_wsgi_application
            from django.test import override_settings

            def build_django(replicas: list[str], allow: list[str] | None = None) -> Any:
                overrides: dict[str, Any] = {"STORAGE_REPLICAS": list(replicas)}
                if allow is not None:
                    overrides["REPROXY_ALLOW"] = list(allow)
                stack.enter_context(override_settings(**overrides))
                application = example.wsgi.with_reproxy(get_wsgi_application())
                stack.callback(application.pool.clear)
                stack.callback(example.storage.pool.clear)
                return application

            yield build_django


def client(application: Any) -> webtest.TestApp:
    return webtest.TestApp(application, lint=True)


def base_of(url: str) -> str:
    """``http://host:port`` of a URL: a replica base for ``refused_url``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def filename(response: webtest.TestResponse) -> str:
    kind, options = parse_options_header(response.headers["Content-Disposition"])
    assert kind == "attachment"
    return options["filename"]


def assert_no_reproxy_headers(response: webtest.TestResponse) -> None:
    leaked = [name for name in response.headers if name.lower().startswith("x-reproxy-")]
    assert not leaked, leaked


# -- Reproxied downloads -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["small.txt", "1m.bin", "5m.bin"])
def test_download_is_reproxied_byte_exact(build, file_server, name):
    """The view answers X-Reproxy-Url; the client gets the replica's bytes, exactly, with
    the replica's validators and the view's Content-Type and Content-Disposition."""
    response = client(build([file_server.base])).get(f"/downloads/{name}")
    assert response.status_int == 200
    assert response.body == FILES[name]
    assert response.headers["Content-Length"] == str(len(FILES[name]))
    assert response.headers["ETag"] == etag_for(name)  # from the replica: it was reproxied
    assert response.headers["Content-Type"] == CONTENT_TYPES[name]  # from the view
    assert filename(response) == name
    assert_no_reproxy_headers(response)
    [upstream] = file_server.requests
    assert (upstream.method, upstream.path) == ("GET", f"/files/{name}")
    assert upstream.header("User-Agent") == UPSTREAM_UA


def test_head_is_reproxied_as_head(build, file_server):
    """HEAD reaches the replica as HEAD: length and validators, no body, view's headers."""
    response = client(build([file_server.base])).head("/downloads/small.txt")
    assert response.status_int == 200
    assert response.body == b""
    assert response.headers["Content-Length"] == str(len(FILES["small.txt"]))
    assert response.headers["Content-Type"] == CONTENT_TYPES["small.txt"]
    assert filename(response) == "small.txt"
    assert_no_reproxy_headers(response)
    assert [(r.method, r.path) for r in file_server.requests] == [("HEAD", "/files/small.txt")]


def test_range_is_forwarded_and_relayed(build, file_server):
    """A Range request gets the replica's 206 and exactly those bytes."""
    data = FILES["1m.bin"]
    response = client(build([file_server.base])).get(
        "/downloads/1m.bin", headers={"Range": "bytes=1000-1999"}, status=206
    )
    assert response.body == data[1000:2000]
    assert response.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    assert response.headers["Content-Length"] == "1000"
    assert filename(response) == "1m.bin"
    assert file_server.requests[0].header("Range") == "bytes=1000-1999"


def test_failover_from_a_refused_replica(build, file_server, refused_url):
    """The first replica refuses connections: the second one serves, byte-exact."""
    application = build([base_of(refused_url), file_server.base])
    response = client(application).get("/downloads/5m.bin")
    assert response.status_int == 200
    assert response.body == FILES["5m.bin"]
    assert filename(response) == "5m.bin"
    assert [(r.method, r.path) for r in file_server.requests] == [("GET", "/files/5m.bin")]


# -- Where reproxying is not enabled: the view serves the bytes itself -------------------


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_path_not_enabled_is_served_by_the_view(build, file_server, method):
    """Outside REPROXY_ALLOW the view sees no capability (even a spoofed one) and streams
    the file itself from the replica: byte-exact, and no X-Reproxy-* header anywhere."""
    application = build([file_server.base], allow=["/elsewhere/"])
    spoofed = {"X-Proxy-Capabilities": "reproxy-file", "X-Reproxy-Url": "http://evil.invalid/"}
    response = client(application).request("/downloads/5m.bin", method=method, headers=spoofed)
    assert response.status_int == 200
    assert response.body == (FILES["5m.bin"] if method == "GET" else b"")
    assert response.headers["Content-Length"] == str(len(FILES["5m.bin"]))
    assert response.headers["Content-Type"] == CONTENT_TYPES["5m.bin"]
    assert filename(response) == "5m.bin"
    assert "ETag" not in response.headers  # the view's own answer, not the replica's
    assert_no_reproxy_headers(response)
    [upstream] = file_server.requests
    assert (upstream.method, upstream.path) == (method, "/files/5m.bin")
    assert upstream.header("User-Agent") != UPSTREAM_UA  # the view's urllib3, not ours


def test_fallback_streams_in_pieces_and_frees_connections(build, file_server, refused_url):
    """Plain WSGI calls: the fallback body comes in pieces of at most 64 KiB (never the whole
    file at once), fails over like the middleware, and a client hanging up after the first
    piece leaves no connection open; the next request still gets every byte."""
    application = build([base_of(refused_url), file_server.base], allow=[])
    data = FILES["5m.bin"]

    def start_response(status, headers, exc_info=None):
        assert status.startswith("200 ")
        return lambda chunk: pytest.fail("write() used")

    hung_up = application(make_environ("/downloads/5m.bin"), start_response)
    first = next(iter(hung_up))
    hung_up.close()
    assert first == data[: len(first)]
    assert file_server.wait_open_connections(at_most=0) == 0

    body = application(make_environ("/downloads/5m.bin"), start_response)
    try:
        pieces = list(body)
    finally:
        body.close()
    assert b"".join(pieces) == data
    assert len(pieces) > 1
    assert max(map(len, pieces)) <= 64 * 1024


# -- Unknown names -------------------------------------------------------------------------


@pytest.mark.parametrize("allow", [None, []], ids=["enabled", "not-enabled"])
def test_unknown_name_is_404(build, file_server, allow):
    """A name not in the catalogue is a 404 from the view; storage is never asked."""
    response = client(build([file_server.base], allow=allow)).get("/downloads/nope.bin", status=404)
    assert_no_reproxy_headers(response)
    assert file_server.requests == []


# -- examples/cached_app.py: the decision cache ---------------------------------------------


@pytest.fixture
def cached_example() -> Iterator[ModuleType]:
    """examples/cached_app.py, imported (its module-level ``application`` is not used)."""
    with importable(EXAMPLES, "cached_app"):
        module = importlib.import_module("cached_app")
        try:
            yield module
        finally:
            module.application.pool.clear()


def test_cached_example_serves_the_second_request_without_the_view(
    cached_example, file_server, refused_url
):
    """The view's decision is stored on the first request; the second is a hit: the view
    (its costly lookup) is not called again, and the client gets the replica's bytes, the
    view's Content-Type and nothing of X-Reproxy-* -- failover from a dead replica
    included, on the hit as on the miss."""
    application = cached_example.make_application([base_of(refused_url), file_server.base])
    try:
        app = client(application)
        first = app.get("/files/small.txt")
        second = app.get("/files/small.txt")
        head = app.head("/files/small.txt")  # GET and HEAD share the decision
    finally:
        application.pool.clear()
    view = application.app
    assert view.lookups == 1
    for response in (first, second):
        assert response.status_int == 200
        assert response.body == FILES["small.txt"]
        assert response.headers["Content-Length"] == str(len(FILES["small.txt"]))
        assert response.headers["ETag"] == etag_for("small.txt")  # from the replica
        # the view's (storage says application/octet-stream), kept with the decision
        assert response.headers["Content-Type"] == "text/plain"
        assert_no_reproxy_headers(response)
    assert (head.status_int, head.body) == (200, b"")
    environs = [response.request.environ for response in (first, second, head)]
    assert [environ["wsgi_reproxy.cache"] for environ in environs] == ["stored", "hit", "hit"]
    hit = environs[1]["wsgi_reproxy.report"]
    assert [attempt.outcome for attempt in hit.attempts] == ["failed", "served"]
    assert [(r.method, r.path) for r in file_server.requests] == [
        ("GET", "/files/small.txt"),
        ("GET", "/files/small.txt"),
        ("HEAD", "/files/small.txt"),
    ]


# -- Under a real gunicorn -----------------------------------------------------------------


GUNICORN_TARGETS = {
    "flask": (FLASK_DIR, "app:create_app()", {}),
    "django": (
        DJANGO_DIR,
        "project.wsgi:application",
        {"DJANGO_SETTINGS_MODULE": "project.settings"},
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("framework", list(GUNICORN_TARGETS))
def test_example_under_gunicorn(framework, file_server, refused_url):
    """The example as deployed: gunicorn gthread, replicas from $STORAGE_REPLICAS (the
    first one refusing), fetched over real sockets with urllib3: GET, Range and HEAD."""
    directory, target, env = GUNICORN_TARGETS[framework]
    env = {
        **env,
        "STORAGE_REPLICAS": f"{base_of(refused_url)} {file_server.base}",
        "REPROXY_ALLOW": "/downloads/",
    }
    data = FILES["5m.bin"]
    with (
        ServerProcess(
            "gunicorn-gthread", env, app=target, chdir=directory, ready_path="/downloads/"
        ) as server,
        urllib3.PoolManager(retries=False, timeout=10) as http,
    ):
        url = server.base + "/downloads/5m.bin"
        response = http.request("GET", url)
        assert response.status == 200, server.output()
        assert response.data == data
        assert response.headers["Content-Type"] == CONTENT_TYPES["5m.bin"]
        assert parse_options_header(response.headers["Content-Disposition"]) == (
            "attachment",
            {"filename": "5m.bin"},
        )
        assert response.headers["ETag"] == etag_for("5m.bin")
        assert not [h for h in response.headers if h.lower().startswith("x-reproxy-")]

        ranged = http.request("GET", url, headers={"Range": "bytes=-100"})
        assert (ranged.status, ranged.data) == (206, data[-100:])

        head = http.request("HEAD", url)
        assert (head.status, head.data) == (200, b"")
        assert head.headers["Content-Length"] == str(len(data))

        assert http.request("GET", server.base + "/downloads/nope.bin").status == 404
        assert "Traceback" not in server.output(), server.output()
    assert [r.method for r in file_server.requests] == ["GET", "GET", "HEAD"]
