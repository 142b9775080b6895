"""``X-Reproxy-File``: local files, confined to ``file_roots`` (SPEC R9).

In-process through the PEP 3333 validator, against real files in a temporary directory:
every refusal (relative, ``..``, outside, symlinks out, a symlink swapped while the file is
opened, FIFO, directory, device, unreadable), the failover order, and webob's answers to
ranges and conditional requests.  The real servers (sendfile under gunicorn) are in
tests/test_local_files_servers.py.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from email.utils import formatdate
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import BackendApp, call
from wsgi_reproxy import ReproxyMiddleware, UpstreamBodyError, reproxy_headers
from wsgi_reproxy.file_roots import FileRefused, FileRoots

DATA = bytes(range(256)) * 1024  # 256 KiB
SECRET = b"outside the roots\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``root/`` with files, links in and out, and ``outside/secret``."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "data.bin").write_bytes(DATA)
    (root / "sub" / "page.html").write_bytes(b"<p>hi</p>\n")
    (root / "archive.tar.gz").write_bytes(b"\x1f\x8b not really")
    (root / "noext").write_bytes(b"?")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_bytes(SECRET)
    (root / "link-in").symlink_to(root / "data.bin")
    (root / "link-out").symlink_to(tmp_path / "outside" / "secret")
    (root / "dir-out").symlink_to(tmp_path / "outside")
    return root


def file_app(path: str, *urls: str, headers: list[tuple[str, str]] | None = None) -> BackendApp:
    answer = [("Content-Type", "text/x-app"), ("Content-Disposition", "attachment")]
    answer += [("X-Reproxy-File", path)]
    if urls:
        answer.append(("X-Reproxy-Url", " ".join(urls)))
    return BackendApp(headers=answer + (headers or []), body=[b"IGNORED"])


def middleware(app: BackendApp, root: Path, **options: object) -> ReproxyMiddleware:
    options.setdefault("file_roots", [root])
    return ReproxyMiddleware(app, allow=["/f/"], preserve=["Content-Disposition"], **options)


# -- serving -----------------------------------------------------------------------------


def test_a_file_is_served_whole_with_its_validators(tree):
    app = file_app(str(tree / "data.bin"))
    result = call(middleware(app, tree), "/f/x")
    assert result.code == 200
    assert result.body == DATA
    assert result.header("Content-Length") == str(len(DATA))
    assert result.header("Accept-Ranges") == "bytes"
    info = os.stat(tree / "data.bin")
    assert result.header("ETag") == f'"{info.st_size:x}-{info.st_mtime_ns:x}"'
    assert result.header("Last-Modified") == formatdate(int(info.st_mtime), usegmt=True)
    assert result.header("Content-Type") == "application/octet-stream"  # .bin, not text/html
    assert result.header("Content-Disposition") == "attachment"  # preserve
    assert not any(name.startswith("x-reproxy") for name in result.names())
    assert app.record.closed == 1
    report = result.environ["wsgi_reproxy.report"]
    assert (report.url, report.status, report.outcome, report.bytes) == (
        str(tree / "data.bin"),
        200,
        "complete",
        len(DATA),
    )
    assert result.environ["wsgi_reproxy.url"] == str(tree / "data.bin")


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("sub/page.html", "text/html"),  # no charset is made up
        ("archive.tar.gz", "application/gzip"),  # the bytes on disk, no Content-Encoding
        ("noext", "application/octet-stream"),
    ],
)
def test_the_type_is_guessed_from_the_name(tree, name, content_type):
    result = call(middleware(file_app(str(tree / name)), tree), "/f/x")
    assert result.header("Content-Type") == content_type
    assert result.header("Content-Encoding") is None


def test_the_apps_content_type_wins_when_preserved(tree):
    app = file_app(str(tree / "data.bin"))
    mw = ReproxyMiddleware(app, allow=["/f/"], preserve=["Content-Type"], file_roots=[tree])
    assert call(mw, "/f/x").header("Content-Type") == "text/x-app"


def test_a_symlink_inside_the_roots_is_followed(tree):
    assert call(middleware(file_app(str(tree / "link-in")), tree), "/f/x").body == DATA


@pytest.mark.parametrize(
    ("client_headers", "status", "body"),
    [
        ({"Range": "bytes=100-199"}, 206, DATA[100:200]),
        ({"Range": "bytes=-10"}, 206, DATA[-10:]),
        ({"Range": f"bytes={len(DATA) - 5}-"}, 206, DATA[-5:]),
        # Several ranges: the whole file (RFC 9110 §14.2 lets a server ignore Range).
        ({"Range": "bytes=0-0,5-6"}, 200, DATA),
    ],
    ids=["first-last", "suffix", "open-ended", "several"],
)
def test_ranges(tree, client_headers, status, body):
    result = call(
        middleware(file_app(str(tree / "data.bin")), tree), "/f/x", headers=client_headers
    )
    assert result.code == status
    assert result.body == body
    assert result.header("Content-Length") == str(len(body))
    if status == 206:
        first = (
            len(DATA) - len(body)
            if client_headers["Range"][6] == "-"
            else int(client_headers["Range"][6:].split("-")[0])
        )
        assert result.header("Content-Range") == (
            f"bytes {first}-{first + len(body) - 1}/{len(DATA)}"
        )
        report = result.environ["wsgi_reproxy.report"]
        assert (report.status, report.outcome, report.bytes) == (206, "complete", len(body))


def test_an_unsatisfiable_range_is_416(tree):
    app = file_app(str(tree / "data.bin"))
    result = call(middleware(app, tree), "/f/x", headers={"Range": f"bytes={len(DATA)}-"})
    assert result.code == 416
    assert result.header("Content-Range") == f"bytes */{len(DATA)}"
    assert result.header("Content-Disposition") is None  # the app's headers describe the file
    assert app.record.closed == 1


def test_conditionals_answer_304(tree):
    mw = middleware(file_app(str(tree / "data.bin")), tree)
    first = call(mw, "/f/x")
    etag, last_modified = first.header("ETag"), first.header("Last-Modified")
    for condition in ({"If-None-Match": etag}, {"If-Modified-Since": last_modified}):
        result = call(mw, "/f/x", headers=condition)
        assert (result.code, result.body) == (304, b"")
        assert result.header("ETag") == etag
        assert result.header("Content-Type") is None
    assert call(mw, "/f/x", headers={"If-None-Match": '"other"'}).code == 200


def test_if_range_gives_the_range_only_for_the_same_file(tree):
    mw = middleware(file_app(str(tree / "data.bin")), tree)
    etag = call(mw, "/f/x", method="HEAD").header("ETag")
    same = call(mw, "/f/x", headers={"Range": "bytes=0-9", "If-Range": etag})
    assert (same.code, same.body) == (206, DATA[:10])
    changed = call(mw, "/f/x", headers={"Range": "bytes=0-9", "If-Range": '"1-2-3"'})
    assert (changed.code, changed.body) == (200, DATA)


def test_head_has_the_headers_and_no_body(tree):
    app = file_app(str(tree / "data.bin"))
    result = call(middleware(app, tree), "/f/x", method="HEAD")
    assert (result.code, result.body) == (200, b"")
    assert result.header("Content-Length") == str(len(DATA))
    assert app.record.closed == 1
    assert result.environ["wsgi_reproxy.report"].outcome == "complete"


def test_the_servers_file_wrapper_gets_the_whole_file(tree):
    """A whole body goes to wsgi.file_wrapper (sendfile); a range is read at its offset."""

    class Wrapper:
        made: ClassVar[list[Wrapper]] = []

        def __init__(self, filelike, block_size=8192):
            self.filelike = filelike
            Wrapper.made.append(self)

        def __iter__(self):
            return iter(lambda: self.filelike.read(8192), b"")

        def close(self):
            self.filelike.close()

    app = file_app(str(tree / "data.bin"))
    mw = middleware(app, tree)
    result = call(mw, "/f/x", validate=False, **{"wsgi.file_wrapper": Wrapper})
    assert result.body == DATA
    assert len(Wrapper.made) == 1
    assert result.environ["wsgi_reproxy.report"].outcome == "complete"
    ranged = call(
        mw, "/f/x", headers={"Range": "bytes=7-9"}, validate=False, **{"wsgi.file_wrapper": Wrapper}
    )
    assert ranged.body == DATA[7:10]
    assert len(Wrapper.made) == 2  # made, but the range is not sent through it
    assert app.record.closed == 2


def test_a_client_that_hangs_up_closes_the_file_and_the_app(tree):
    app = file_app(str(tree / "data.bin"))

    def start_response(status, headers, exc_info=None):
        return lambda data: None

    from harness import make_environ

    environ = make_environ("/f/x")
    body = middleware(app, tree)(environ, start_response)
    iterator = iter(body)
    next(iterator)
    body.close()
    body.close()
    assert app.record.closed == 1
    assert environ["wsgi_reproxy.report"].outcome == "client_gone"


def test_a_file_that_shrinks_while_served_aborts(tree):
    path = tree / "shrinks.bin"
    path.write_bytes(DATA)
    app = file_app(str(path))
    from harness import make_environ

    environ = make_environ("/f/x")
    body = middleware(app, tree)(environ, lambda status, headers, exc_info=None: None)
    iterator = iter(body)
    first = next(iterator)
    with open(path, "r+b") as shrinking:
        shrinking.truncate(len(first) + 10)
    with pytest.raises(UpstreamBodyError, match="ended after"):
        list(iterator)
    body.close()
    assert environ["wsgi_reproxy.report"].outcome == "aborted"


# -- failover and refusals ----------------------------------------------------------------


def test_the_file_comes_first_and_the_urls_are_the_failover(tree, file_server):
    url = file_server.url("/files/small.txt")
    served = call(middleware(file_app(str(tree / "data.bin"), url), tree), "/f/x")
    assert served.body == DATA
    assert file_server.requests == []
    missing = call(middleware(file_app(str(tree / "gone.bin"), url), tree), "/f/x")
    assert missing.code == 200
    assert missing.body == file_server_body("small.txt")
    attempts = missing.environ["wsgi_reproxy.report"].attempts
    assert [(a.url, a.status, a.outcome) for a in attempts] == [
        (str(tree / "gone.bin"), 404, "failed"),
        (url, 200, "served"),
    ]


def file_server_body(name: str) -> bytes:
    from upstreams import FILES

    return FILES[name]


def test_a_missing_file_alone_is_404(tree, caplog):
    app = file_app(str(tree / "gone.bin"))
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        result = call(middleware(app, tree), "/f/x")
    assert result.code == 404
    assert str(tree) not in result.body.decode()
    assert "no such file" in caplog.text
    assert app.record.closed == 1


def refusals(tree: Path) -> dict[str, str]:
    os.mkfifo(tree / "fifo")
    return {
        "dot-dot": f"{tree}/sub/../../outside/secret",
        "outside": str(tree.parent / "outside" / "secret"),
        "symlink-out": str(tree / "link-out"),
        "through-a-linked-dir": str(tree / "dir-out" / "secret"),
        "directory": str(tree / "sub"),
        "fifo": str(tree / "fifo"),
        "device": "/dev/zero",
        "the-root-itself": str(tree),
    }


@pytest.mark.parametrize(
    "case",
    [
        "dot-dot",
        "outside",
        "symlink-out",
        "through-a-linked-dir",
        "directory",
        "fifo",
        "device",
        "the-root-itself",
    ],
)
def test_refused_paths_are_502_and_never_served(tree, case, caplog):
    path = refusals(tree)[case]
    app = file_app(path)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        result = call(middleware(app, tree), "/f/x")
    assert time.monotonic() - started < 5  # a FIFO is never opened, so nothing blocks
    assert result.code == 502
    assert SECRET not in result.body
    assert path not in result.body.decode()
    assert "not served" in caplog.text
    assert app.record.closed == 1


def test_refused_then_the_url_serves(tree, file_server):
    url = file_server.url("/files/small.txt")
    result = call(middleware(file_app(str(tree / "link-out"), url), tree), "/f/x")
    assert result.body == file_server_body("small.txt")
    [file_attempt, _] = result.environ["wsgi_reproxy.report"].attempts
    assert file_attempt.outcome == "failed"
    assert "outside file_roots" in file_attempt.reason


def test_an_unreadable_file_is_refused():
    """A file the server's user may not read is refused (502), never half-served.  Root
    reads whatever the mode says, so as root the request runs in a child process that
    has become ``nobody`` first (CI runs as root)."""
    root = Path(tempfile.mkdtemp(prefix="unreadable-"))
    try:
        root.chmod(0o755)  # nobody may look inside, not read the file
        locked = root / "locked.bin"
        locked.write_bytes(SECRET)
        locked.chmod(0)
        mw = middleware(file_app(str(locked)), root)
        if os.geteuid() != 0:
            assert call(mw, "/f/x").code == 502
            return
        pid = os.fork()
        if pid == 0:  # the child: exit 0 only if nobody gets a clean 502
            code = 1
            try:
                os.setgid(65534)
                os.setuid(65534)
                result = call(mw, "/f/x")
                code = 0 if result.code == 502 and SECRET not in result.body else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        shutil.rmtree(root)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("relative/path", "not an absolute path"),
        ("./data.bin", "not an absolute path"),
        ("/tmp/a\x01b", "control character"),
    ],
)
def test_paths_that_name_no_local_file_are_502(tree, value, reason, caplog):
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        result = call(middleware(file_app(value), tree), "/f/x", validate=False)
    assert result.code == 502
    assert reason in caplog.text


def test_without_file_roots_the_header_is_refused(tree, file_server, caplog):
    alone = ReproxyMiddleware(file_app(str(tree / "data.bin")), allow=["/f/"])
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        assert call(alone, "/f/x").code == 502
    assert "no file_roots" in caplog.text
    url = file_server.url("/files/small.txt")
    with_url = ReproxyMiddleware(file_app(str(tree / "data.bin"), url), allow=["/f/"])
    result = call(with_url, "/f/x")
    assert result.body == file_server_body("small.txt")
    assert result.environ["wsgi_reproxy.report"].attempts[0].outcome == "skipped"


def test_two_different_files_are_refused(tree):
    app = BackendApp(
        headers=[
            ("X-Reproxy-File", str(tree / "data.bin")),
            ("X-Reproxy-File", str(tree / "noext")),
        ]
    )
    assert call(middleware(app, tree), "/f/x").code == 502


def test_the_file_checked_is_the_file_read(tree):
    """The check is made on the file held, not on the name: a descriptor holding a file
    outside the roots is refused even when the name given points inside."""
    roots = FileRoots([tree])
    outside = os.open(tree.parent / "outside" / "secret", os.O_RDONLY)
    try:
        refused = roots._open_pinned(outside, str(tree / "data.bin"))
    finally:
        os.close(outside)
    assert isinstance(refused, FileRefused)
    assert "outside file_roots" in refused.reason


def _flip(name: str, outside: str, seconds: float) -> None:
    """Turn ``name`` into a regular file, then a symlink to ``outside``, and so on."""
    deadline = time.monotonic() + seconds
    turn = 0
    while time.monotonic() < deadline:
        turn += 1
        spare = f"{name}.{turn}"
        if turn % 2:
            os.symlink(outside, spare)
        else:
            with open(spare, "wb") as regular:
                regular.write(DATA[:100])
        os.replace(spare, name)


def test_a_name_flipping_between_a_file_and_a_link_out_never_serves_the_outside(tree):
    """A real race, from another process (no GIL between them): a name inside the roots
    is, in turn, a regular file and a symlink to a file outside.  Every answer is the
    inside file or a refusal, never the outside one, never an exception."""
    import multiprocessing

    name, outside = tree / "flips", tree.parent / "outside" / "secret"
    name.write_bytes(DATA[:100])
    mw = middleware(file_app(str(name)), tree)
    flipper = multiprocessing.get_context("fork").Process(
        target=_flip, args=(str(name), str(outside), 2.0)
    )
    flipper.start()
    try:
        codes: dict[int, int] = {}
        while flipper.is_alive():
            result = call(mw, "/f/x")
            assert SECRET not in result.body
            assert result.body == DATA[:100] or result.code in (404, 502)
            codes[result.code] = codes.get(result.code, 0) + 1
    finally:
        flipper.join()
    assert codes.get(200), codes  # both sides of the race were met
    assert codes.get(502), codes


def test_a_symlink_flipping_under_load_never_serves_the_outside(tree):
    """A real race: a thread flips a link between a file inside and one outside while
    requests are served; every answer is the inside file or a refusal."""
    link = tree / "flipping"
    inside, outside = tree / "data.bin", tree.parent / "outside" / "secret"
    stop = threading.Event()

    def flip() -> None:
        target = inside
        while not stop.is_set():
            spare = tree / "flipping.new"
            spare.unlink(missing_ok=True)
            spare.symlink_to(target)
            spare.replace(link)
            target = outside if target == inside else inside

    link.symlink_to(inside)
    mw = middleware(file_app(str(link)), tree)
    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        codes = set()
        for _ in range(300):
            result = call(mw, "/f/x")
            assert SECRET not in result.body
            assert result.body == DATA or result.code in (404, 502)
            codes.add(result.code)
    finally:
        stop.set()
        flipper.join()
    assert 200 in codes or 502 in codes


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    parts=st.lists(
        st.sampled_from(
            ["..", ".", "", "sub", "data.bin", "link-out", "dir-out", "secret", "outside"]
        )
        | st.text(min_size=1, max_size=8),
        max_size=6,
    )
)
def test_no_path_escapes_the_roots(tree, parts):
    path = "/".join([str(tree), *parts])
    opened = FileRoots([tree]).open(path)
    if isinstance(opened, FileRefused):
        return
    try:
        real = os.path.realpath(path)
        assert real.startswith(str(tree) + os.sep)
        assert opened.file.read() != SECRET
    finally:
        opened.file.close()


# -- options and helpers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("roots", "error"),
    [
        ("/srv", TypeError),
        (["relative"], ValueError),
        (["/no/such/dir"], ValueError),
        ([], ValueError),
        ([42], TypeError),
    ],
)
def test_bad_file_roots_fail_at_start_up(roots, error):
    with pytest.raises(error):
        ReproxyMiddleware(BackendApp(), allow=["/f/"], file_roots=roots)


def test_file_roots_show_in_repr(tree):
    mw = middleware(BackendApp(), tree)
    assert repr(mw).endswith(f"file_roots=[{str(tree)!r}])")


def test_reproxy_headers_with_a_file(tree):
    assert reproxy_headers("http://store/f", file="/srv/f") == [
        ("X-Reproxy-File", "/srv/f"),
        ("X-Reproxy-Url", "http://store/f"),
    ]
    assert reproxy_headers(file="/srv/f") == [("X-Reproxy-File", "/srv/f")]
    with pytest.raises(ValueError, match="absolute"):
        reproxy_headers(file="srv/f")
    with pytest.raises(ValueError, match="at least one URL or a file"):
        reproxy_headers()


# -- what webob reads wrong, set right before it answers (file_conditions.py) -------------


@pytest.mark.parametrize(
    ("value", "status", "body"),
    [
        ("bytes=-", 200, DATA),  # webob raised on it: a 500
        ("bytes=5-2", 200, DATA),  # invalid: ignored
        ("bytes=0-1,5-6", 200, DATA),  # several: the whole file
        (f"bytes=-{len(DATA) * 2}", 206, DATA),  # a suffix longer than the file: all of it
        ("bytes=-0", 416, None),  # nothing to send
        ("items=0-1", 200, DATA),  # another unit: ignored
    ],
    ids=["empty-suffix", "backwards", "several", "long-suffix", "zero-suffix", "other-unit"],
)
def test_ranges_webob_reads_wrong(tree, value, status, body):
    app = file_app(str(tree / "data.bin"))
    result = call(middleware(app, tree), "/f/x", headers={"Range": value})
    assert result.code == status
    if body is not None:
        assert result.body == body
    if status == 206:
        assert result.header("Content-Range") == f"bytes 0-{len(DATA) - 1}/{len(DATA)}"
    assert app.record.closed == 1


def test_if_range_with_a_date_must_match_exactly(tree):
    """A file rolled back to an older copy must not be spliced into a download: an
    If-Range date keeps the range only when it is the file's very Last-Modified."""
    mw = middleware(file_app(str(tree / "data.bin")), tree)
    last_modified = call(mw, "/f/x", method="HEAD").header("Last-Modified")
    mtime = os.stat(tree / "data.bin").st_mtime
    later = formatdate(int(mtime) + 3600, usegmt=True)
    exact = call(mw, "/f/x", headers={"Range": "bytes=0-9", "If-Range": last_modified})
    assert (exact.code, exact.body) == (206, DATA[:10])
    newer = call(mw, "/f/x", headers={"Range": "bytes=0-9", "If-Range": later})
    assert (newer.code, newer.body) == (200, DATA)
    weak = call(mw, "/f/x", headers={"Range": "bytes=0-9", "If-Range": 'W/"x"'})
    assert weak.code == 200


def test_if_match_and_if_unmodified_since_answer_412(tree):
    mw = middleware(file_app(str(tree / "data.bin")), tree)
    head = call(mw, "/f/x", method="HEAD")
    etag, mtime = head.header("ETag"), os.stat(tree / "data.bin").st_mtime
    before, after = (
        formatdate(int(mtime) - 60, usegmt=True),
        formatdate(int(mtime) + 60, usegmt=True),
    )
    cases = [
        ({"If-Match": etag}, 200),
        ({"If-Match": '"other", ' + etag}, 200),
        ({"If-Match": "*"}, 200),
        ({"If-Match": '"other"'}, 412),
        ({"If-Match": "W/" + etag}, 412),  # If-Match compares strongly
        ({"If-Match": '"other"', "Range": "bytes=0-9"}, 412),  # a stale resume
        ({"If-Unmodified-Since": after}, 200),
        ({"If-Unmodified-Since": before}, 412),
        ({"If-Match": etag, "If-Unmodified-Since": before}, 200),  # If-Match wins
        ({"If-Unmodified-Since": "not a date"}, 200),
    ]
    for headers, status in cases:
        result = call(mw, "/f/x", headers=headers)
        assert result.code == status, headers
        if status == 412:
            assert DATA[:100] not in result.body
            assert result.header("ETag") == etag


def test_if_none_match_star_is_304(tree):
    mw = middleware(file_app(str(tree / "data.bin")), tree)
    result = call(mw, "/f/x", headers={"If-None-Match": "*"})
    assert (result.code, result.body) == (304, b"")


def test_a_304_keeps_the_apps_cache_control(tree):
    app = file_app(str(tree / "data.bin"), headers=[("Cache-Control", "max-age=60")])
    mw = ReproxyMiddleware(
        app, allow=["/f/"], preserve=["Cache-Control", "Content-Type"], file_roots=[tree]
    )
    etag = call(mw, "/f/x", method="HEAD").header("ETag")
    result = call(mw, "/f/x", headers={"If-None-Match": etag})
    assert result.code == 304
    assert result.all("Cache-Control") == ["max-age=60"]  # RFC 9110 §15.4.5
    assert result.header("Content-Type") is None


def test_a_file_of_another_size_than_expected_fails_over(tree, file_server):
    url = file_server.url("/files/small.txt")
    size = len(file_server_body("small.txt"))
    app = file_app(str(tree / "data.bin"), url, headers=[("X-Reproxy-Expected-Size", str(size))])
    result = call(middleware(app, tree), "/f/x")
    assert (result.code, result.body) == (200, file_server_body("small.txt"))
    [file_attempt, url_attempt] = result.environ["wsgi_reproxy.report"].attempts
    assert f"differs from X-Reproxy-Expected-Size {size}" in file_attempt.reason
    assert url_attempt.outcome == "served"


def test_a_file_that_shrinks_under_the_servers_wrapper_aborts(tree):
    """Read through a wsgi.file_wrapper that calls read() (no sendfile), a file cut short
    must raise, never end quietly short."""
    from wsgiref.util import FileWrapper

    from harness import make_environ

    path = tree / "shrinking.bin"
    path.write_bytes(DATA)
    environ = make_environ("/f/x", **{"wsgi.file_wrapper": FileWrapper})
    body = middleware(file_app(str(path)), tree)(environ, lambda s, h, e=None: None)
    iterator = iter(body)
    next(iterator)
    with open(path, "r+b") as shrinking:
        shrinking.truncate(100)
    with pytest.raises(UpstreamBodyError, match="ended after"):
        list(iterator)
    body.close()
    assert environ["wsgi_reproxy.report"].outcome == "aborted"


def test_a_missing_copy_with_urls_left_is_not_a_warning(tree, file_server, caplog):
    """A partial local mirror misses files all day: INFO, while a refused file warns."""
    url = file_server.url("/files/small.txt")
    with caplog.at_level(logging.INFO, "wsgi_reproxy"):
        call(middleware(file_app(str(tree / "gone.bin"), url), tree), "/f/x")
        call(middleware(file_app(str(tree / "link-out"), url), tree), "/f/x")
    levels = {
        r.getMessage().split(":")[0]: r.levelno
        for r in caplog.records
        if "not served" in r.getMessage()
    }
    assert levels == {
        f"reproxy file {str(tree / 'gone.bin')!r} not served": logging.INFO,
        f"reproxy file {str(tree / 'link-out')!r} not served": logging.WARNING,
    }
