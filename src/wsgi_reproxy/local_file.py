"""Serving an ``X-Reproxy-File`` from local disk (SPEC R9.3), with webob's semantics.

What a client may ask of a file -- ``Range`` (206 or 416), ``If-None-Match`` and
``If-Modified-Since`` (304), ``If-Range``, ``HEAD`` -- is answered by webob's
``Response.conditional_response_app``, the code behind ``webob.static.FileApp``, once
:mod:`wsgi_reproxy.file_conditions` has set right what webob reads wrong.  Unlike
``FileApp``: the file is the one :mod:`wsgi_reproxy.file_roots` pinned and confined
(FileApp opens by name, reopening the race), it gets a strong ``ETag``, a whole body goes
to the server's ``wsgi.file_wrapper`` (sendfile) while a range is read from its offset,
and the type guessed from the name is never ``text/html`` for an unknown one nor a
``Content-Encoding`` (``.tar.gz`` is the bytes on disk, ``application/gzip``).
"""

from __future__ import annotations

import logging
import mimetypes
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO, NoReturn
from wsgiref.types import StartResponse

with warnings.catch_warnings():
    # WebOb 1.8 imports the cgi module, deprecated on Python 3.11 and 3.12 (not used
    # here): an app run with -W error must not fail on our import.
    warnings.filterwarnings("ignore", "'cgi' is deprecated", DeprecationWarning)
    from webob import Response

from .body_digest import DigestCheck
from .closing import ClosingIterable
from .errors import UpstreamBodyError
from .file_conditions import failed_precondition, webob_ready
from .file_roots import OpenedFile
from .report import Outcome

__all__ = ["FileBody", "guess_type", "serve_file"]

log = logging.getLogger(__name__)

BLOCK_SIZE = 64 * 1024
UNKNOWN_TYPE = "application/octet-stream"
# mimetypes reads a compressed file's type as the content's, plus an encoding; the bytes
# on disk are the compressed file.
_ENCODED_TYPES = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "compress": "application/x-compress",
    "br": "application/x-brotli",
}


def guess_type(path: str) -> str:
    """The ``Content-Type`` for a file named ``path`` when the app set none."""
    content_type, encoding = mimetypes.guess_type(path, strict=False)
    if encoding is not None:
        return _ENCODED_TYPES.get(encoding, UNKNOWN_TYPE)
    return content_type or UNKNOWN_TYPE


def strong_etag(opened: OpenedFile) -> str:
    """Size and modification time to the nanosecond: a rewrite changes it, and copies
    made with their times (``rsync -a``) agree across hosts.  No inode: it differs from
    host to host and tells a scanner about the disk (CVE-2003-1418)."""
    info = opened.stat
    return f"{info.st_size:x}-{info.st_mtime_ns:x}"


class FileBody:
    """Bytes ``start`` to ``stop`` of an open file: an iterable, and the file-like a
    ``wsgi.file_wrapper`` takes (``read``, ``fileno``, ``close``).

    ``close()`` closes the file once and calls ``on_close`` (set when this object is
    what the server gets: it is then the only sign the response is over).  With a
    ``check``, the piece that completes the body is only sent once the digest matches;
    a mismatch raises :class:`UpstreamBodyError`, so the server cuts the connection
    short of the announced length (SPEC R10.1).
    """

    __slots__ = (
        "aborted",
        "check",
        "closed",
        "file",
        "on_abort",
        "on_close",
        "path",
        "sendfile",
        "sent",
        "start",
        "stop",
    )

    def __init__(
        self,
        file: BinaryIO,
        path: str,
        start: int,
        stop: int,
        *,
        check: DigestCheck | None = None,
        on_abort: Callable[[], None] | None = None,
    ) -> None:
        self.file, self.path = file, path
        self.start, self.stop = start, stop
        self.check = check
        self.on_abort = on_abort
        self.on_close: Callable[[], None] | None = None
        self.sent = 0
        self.sendfile = False  # the server took the descriptor: it sends the bytes itself
        self.aborted = self.closed = False

    @property
    def outcome(self) -> Outcome:
        if self.aborted:
            return "aborted"
        if self.sent == self.stop - self.start or (self.sendfile and not self.sent):
            return "complete"
        return "client_gone"

    def fileno(self) -> int:
        self.sendfile = True
        return self.file.fileno()

    def read(self, size: int = -1) -> bytes:
        """For a wrapper that reads instead of sendfile: never past ``stop``."""
        left = self.stop - self.start - self.sent
        chunk = self.file.read(left if size is None or size < 0 else min(size, left))
        if not chunk and left and size:
            self._abort(f"the file ended after {self.sent} of {left + self.sent} bytes")
        self.sent += len(chunk)
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        if self.start:
            self.file.seek(self.start)
        length = self.stop - self.start
        while self.sent < length:
            chunk = self.file.read(min(BLOCK_SIZE, length - self.sent))
            if not chunk:
                self._abort(f"the file ended after {self.sent} of {length} bytes")
            if self.check is not None:
                self.check.update(chunk)
                if self.sent + len(chunk) == length:
                    self._verify(self.check)
            self.sent += len(chunk)
            yield chunk

    def _verify(self, check: DigestCheck) -> None:
        mismatch = check.mismatch()
        if mismatch is not None:
            self._abort(mismatch)

    def _abort(self, reason: str) -> NoReturn:
        log.error("local file not sent whole, aborting the response: %r: %s", self.path, reason)
        self.aborted = True
        if self.on_abort is not None:
            self.on_abort()
        raise UpstreamBodyError(self.path, reason, sent=self.sent)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.file.close()
        finally:
            if self.on_close is not None:
                self.on_close()


class _FileResponse(Response):
    """webob's response, whose ranges are read from the file at their offset."""

    def __init__(self, body: FileBody, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.file_body = body
        self.range_body: FileBody | None = None

    # webob's stubs name its own AppIterRange; any WSGI iterable will do (webob's docs).
    def app_iter_range(self, start: int, stop: int | None) -> FileBody:  # type: ignore[override]
        whole = self.file_body
        end = whole.stop if stop is None else stop
        self.range_body = FileBody(whole.file, whole.path, start, end, on_abort=whole.on_abort)
        return self.range_body


def _precondition_failed(file: _FileResponse) -> Response:
    """412 (RFC 9110 §13.2.2), with the file's validators; the file is closed."""
    file.file_body.close()
    body = b"412 Precondition Failed: the file is not the one the request names.\n"
    failed = Response(body=body, status=412, content_type="text/plain")
    failed.etag, failed.last_modified = file.etag, file.last_modified
    return failed


def serve_file(
    opened: OpenedFile,
    environ: dict[str, Any],
    start_response: StartResponse,
    *,
    check: DigestCheck | None,
    on_abort: Callable[[], None] | None,
    done: Callable[[Outcome, int], None],
) -> Iterable[bytes]:
    """Answer the request from the opened file; ``done(outcome, bytes)`` is called once,
    when the server closes what this returns.

    A whole body is returned as the server's ``wsgi.file_wrapper`` around the file when
    there is one and no digest to check, so that the server can sendfile it.
    """
    size = opened.stat.st_size
    whole = FileBody(opened.file, opened.path, 0, size, check=check, on_abort=on_abort)
    wrapper = environ.get("wsgi.file_wrapper")
    app_iter = whole if wrapper is None or check is not None else wrapper(whole, BLOCK_SIZE)
    response = _file_response(opened, whole, app_iter)
    etag, mtime = strong_etag(opened), int(opened.stat.st_mtime)
    answer: Response = response
    if failed_precondition(environ, etag, mtime):
        answer = _precondition_failed(response)
    try:
        result = answer(webob_ready(environ, etag, mtime, size), start_response)
    except BaseException:
        whole.close()
        raise
    if result is app_iter:
        whole.on_close = lambda: done(whole.outcome, whole.sent or size * whole.sendfile)
        return result
    part = response.range_body if result is response.range_body else None
    if part is None:  # HEAD, 304, 412, 416: no file bytes
        return ClosingIterable([], result, result, lambda: done("complete", 0))
    return ClosingIterable([], result, result, lambda: done(part.outcome, part.sent))


def _file_response(opened: OpenedFile, whole: FileBody, app_iter: Any) -> _FileResponse:
    """webob's conditional response for the file, before the request is applied."""
    response = _FileResponse(
        whole,
        app_iter=app_iter,
        content_length=opened.stat.st_size,
        content_type=guess_type(opened.path),
        charset=None,
        last_modified=opened.stat.st_mtime,
        accept_ranges="bytes",
        conditional_response=True,
    )
    response.etag = strong_etag(opened)
    return response
