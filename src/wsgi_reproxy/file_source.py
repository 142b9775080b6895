"""The local file of a directive as one more source, tried before its URLs (SPEC R9).

A mixin of :class:`~wsgi_reproxy.exchange.Exchange`, kept apart because only a middleware
with ``file_roots`` ever gets a directive with a file (without them ``X-Reproxy-File`` is
refused when the directive is read).  A file that is missing or refused is one more
failed source, reported like a URL that failed; a file that opens answers the request
through webob (:mod:`wsgi_reproxy.local_file`) with the app's ``preserve`` headers.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.types import StartResponse

from .abort import abort_hook
from .body_digest import DigestCheck
from .closing import close_iterable
from .directive import Directive
from .errors import Attempt
from .file_roots import FileRefused, OpenedFile
from .headers import merge_preserved
from .local_file import serve_file
from .report import AttemptReport, Outcome, ReproxyReport
from .settings import FIRST_PIECE_SIZE, Settings

__all__ = ["URL_ENVIRON_KEY", "FileSource"]

log = logging.getLogger(__name__)

URL_ENVIRON_KEY = "wsgi_reproxy.url"


# A file that a URL's first read would bring whole is judged against the digest before the
# response starts, as such a body is (upstream.py): a wrong copy fails over.
JUDGED_WHOLE = FIRST_PIECE_SIZE


class FileSource:
    """Serving ``X-Reproxy-File`` for an exchange (whose attributes are named below)."""

    __slots__ = ()

    settings: Settings
    environ: dict[str, Any]
    start_response: StartResponse
    app_headers: list[tuple[str, str]]
    report: ReproxyReport
    started_at: float

    def _found(self, directive: Directive) -> None:
        """A source of the app's directive answered (a hook: the decision cache stores it)."""

    def _finish(self, outcome: Outcome, sent: int) -> None:
        raise NotImplementedError

    def _serve_file(
        self, directive: Directive, app_iterable: Iterable[bytes] | Any
    ) -> Iterable[bytes] | Attempt:
        """The response from the directive's file, or why it failed: missing, refused, or
        not the file the directive describes (size, or a small one's digest)."""
        roots, path = self.settings.file_roots, directive.file
        assert roots is not None, "a directive has a file only with file_roots"
        assert path is not None
        opened = roots.open(path)
        check = None if directive.digest is None else DigestCheck(directive.digest)
        if not isinstance(opened, FileRefused):
            opened = self._judged(opened, directive)
        if isinstance(opened, FileRefused):
            # A missing local copy with URLs to fall back on is routine (a partial mirror).
            quiet = opened.missing and directive.urls
            level = logging.INFO if quiet else logging.WARNING
            log.log(level, "reproxy file %r not served: %s", path, opened.reason)
            status = 404 if opened.missing else None
            self.report.attempts.append(AttemptReport(path, status, "failed", opened.reason))
            return Attempt(path, opened.reason)
        self.report.attempts.append(AttemptReport(path, None, "served", seconds=0.0))
        self._found(directive)
        return serve_file(
            opened,
            self.environ,
            functools.partial(self._start_file, path),
            check=check,
            on_abort=abort_hook(self.environ),
            done=functools.partial(self._file_done, app_iterable, check),
        )

    def _judged(self, opened: OpenedFile, directive: Directive) -> OpenedFile | FileRefused:
        """The opened file, or refused when it is not the one the directive describes:
        another size than ``X-Reproxy-Expected-Size`` (R4.1), or, for a file small enough
        to read before the response starts, another digest (the next source is then
        tried, as for a small body from a URL).  A larger file is checked as it goes."""
        size, expected = opened.stat.st_size, directive.expected_size
        refused = None
        if expected is not None and size != expected:
            refused = f"size {size} differs from X-Reproxy-Expected-Size {expected}"
        elif directive.digest is not None and size <= JUDGED_WHOLE:
            check = DigestCheck(directive.digest)
            check.update(os.pread(opened.file.fileno(), size, 0))
            refused = check.mismatch()
            self.report.digest = check.verdict
        if refused is None:
            return opened
        opened.file.close()
        return FileRefused(refused)

    def _start_file(
        self, path: str, status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> Callable[[bytes], object]:
        """webob's answer, with the app's ``preserve`` headers, to the client."""
        code = int(status[:3])
        headers = merge_preserved(headers, self.app_headers, self.settings.preserved, code)
        write = self.start_response(status, headers)
        report = self.report
        report.url, report.status = path, code
        if code != 200:
            report.digest = None  # a 206, 304 or 416 is not checked (R10.1)
        report.attempts[-1].status = code
        report.first_byte_seconds = time.monotonic() - self.started_at
        self.environ[URL_ENVIRON_KEY] = path
        log.debug("reproxying the local file %r: %d", path, code)
        return write

    def _file_done(
        self,
        app_iterable: Iterable[bytes] | Any,
        check: DigestCheck | None,
        outcome: Outcome,
        sent: int,
    ) -> None:
        try:
            close_iterable(app_iterable)
        finally:
            report = self.report
            if check is not None:
                report.digest = check.verdict
            if outcome == "aborted":
                attempt = report.attempts[-1]
                attempt.outcome = "failed"
                attempt.reason = (
                    "digest mismatch" if check and check.verdict == "mismatch" else "file broke"
                )
            self._finish(outcome, sent)
