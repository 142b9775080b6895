"""The response bodies the middleware returns to the WSGI server (SPEC R6.3-R6.5).

Both are classes with ``__iter__`` and an idempotent ``close()`` (like Werkzeug's
``ClosingIterator`` or Rack's ``BodyProxy``), because PEP 3333 servers call ``close()``
once they are done, whether the client read everything or hung up halfway, and the app's
own iterable must be closed exactly once in either case.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn

from urllib3.exceptions import ReadTimeoutError

from .body_digest import DigestCheck, held_back, verdict
from .closing import close_iterable
from .errors import UpstreamBodyError, UpstreamError
from .failures import upstream_errors
from .report import Outcome, ReproxyReport
from .resume import NoResume, Resumer
from .settings import FIRST_PIECE_SIZE
from .target import Target
from .upstream import discard, release

__all__ = ["ReproxyBody"]

log = logging.getLogger(__name__)


class _Broken(Exception):
    """The current target's body broke; maybe another replica can continue it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ReproxyBody:
    """Stream the target's bytes as sent, and make a broken body impossible to miss.

    The target says how many bytes must come (:attr:`Target.expected_length`) and
    whether their end must be confirmed (:attr:`Target.confirm_end`: the length was
    announced by the middleware, not by the target, whose own ``Content-Length``
    http.client enforces; before the piece that completes it goes out, one more read
    must find the body's end, or the client -- holding every byte it was promised --
    would never see the abort).  A GET standing in for a refused HEAD is cut off, never
    read, when done.

    :param resume: how to continue from the next replica should this body break, or why
        that is impossible (see :mod:`wsgi_reproxy.resume`); may be a function that works
        it out, called only if the body breaks, so whole bodies never pay for it.
    :param finish: called once from ``close()`` with the outcome and the bytes sent (the
        request's report and its observer, R7.4).
    :param on_abort: called just before the body aborts, to cut the client's connection
        where the server would not do it at once (see :mod:`wsgi_reproxy.abort`).

    A read error or fewer bytes than expected first tries to resume; when that cannot be
    proven right, or when more bytes than expected arrive, :class:`UpstreamBodyError` is
    raised out of the iterator so the server aborts the connection instead of ending a
    short body as if it were whole (SPEC R6.4).
    """

    __slots__ = (
        "_aborted",
        "_app_iterable",
        "_check",
        "_chunk_size",
        "_closed",
        "_complete",
        "_finish",
        "_first",
        "_on_abort",
        "_report",
        "_response",
        "_resume",
        "_sent",
        "_target",
        "url",
    )

    def __init__(
        self,
        target: Target,
        *,
        chunk_size: int,
        app_iterable: Iterable[bytes] | Any,
        resume: Resumer | NoResume | Callable[[], Resumer | NoResume],
        report: ReproxyReport,
        finish: Callable[[Outcome, int], None] | None = None,
        on_abort: Callable[[], None] | None = None,
        check: DigestCheck | None = None,
    ) -> None:
        self._target = target
        self._response = target.response
        self._first, target.first_chunk = target.first_chunk, b""  # held here, once
        self.url = target.url
        self._chunk_size = chunk_size
        self._app_iterable = app_iterable
        self._resume = resume
        self._report = report
        self._finish = finish
        self._on_abort = on_abort
        self._check = check
        self._complete = not target.has_body
        self._aborted = False
        self._closed = False
        self._sent = 0

    def __iter__(self) -> Iterator[bytes]:
        if not self._target.has_body:
            return
        while True:
            try:
                yield from self._stream()
            except _Broken as broken:
                self._continue_elsewhere(broken.reason)
                continue
            self._complete = True
            return

    def _chunks(self) -> Iterator[bytes]:
        """The piece read before the response started, then the rest as it arrives."""
        if self._first:
            first, self._first = self._first, b""
            yield first
            if self._response.closed:
                return  # a small body came whole with the first read: no empty read to make
        read = self._response.read1
        largest = self._chunk_size
        size = min(FIRST_PIECE_SIZE, largest)
        while chunk := read(size, decode_content=False):
            yield chunk
            if len(chunk) == size and size < largest:
                size = min(size * 2, largest)  # the body proves long: fewer, larger pieces

    def _stream(self) -> Iterator[bytes]:
        expected = self._target.expected_length
        confirm_end = self._target.confirm_end
        check = self._check
        chunks = self._chunks()
        if check is not None and expected is None:
            chunks, check = held_back(chunks, check, self._verify), None  # it hashes and judges
        try:
            with upstream_errors(self.url):
                for chunk in chunks:
                    sent = self._sent + len(chunk)
                    if expected is not None and sent > expected:
                        self._abort(f"more than the {expected} bytes expected")
                    if sent == expected and confirm_end:
                        self._nothing_follows(expected)
                    if check is not None:
                        check.update(chunk)
                        if sent == expected:
                            self._verify(check)
                    self._sent = sent
                    yield chunk
        except UpstreamError as error:
            raise _Broken(error.reason) from error
        if check is not None and expected == 0:
            self._verify(check)  # no piece held it: judged before the response (Upstream)
        if expected is not None and self._sent != expected:
            raise _Broken(f"ended after {self._sent} of {expected} bytes")

    def _verify(self, check: DigestCheck) -> None:
        """The whole body is in hand: its last piece goes out only if it is the file."""
        mismatch = verdict(check, self._report)
        if mismatch is not None:
            self._abort(mismatch)

    def _nothing_follows(self, expected: int) -> None:
        """The body has its ``expected`` bytes: more would make it another file's.

        For a body that only the connection's end delimits, a read that times out finds
        nothing more: every promised byte is in hand, and a storage that neither chunks
        nor closes (uWSGI's ``--http11-socket`` without a length) only ends such a body
        with its idle timeout.  The connection, in an unknown state, is then closed rather
        than reused.  A chunked body ends with its last chunk, so there a timeout is one.
        """
        response = self._response
        if response.closed:
            return
        try:
            more = response.read1(FIRST_PIECE_SIZE, decode_content=False)
        except (ReadTimeoutError, TimeoutError):
            if response.chunked:
                raise
            discard(response)
            return
        if more:
            self._abort(f"more than the {expected} bytes expected")

    def _continue_elsewhere(self, reason: str) -> None:
        """Swap in the next replica's response for the rest of the body, or abort."""
        resume = self._resume
        if callable(resume):
            resume = resume()
        discard(self._response)
        if isinstance(resume, NoResume):
            self._abort(f"{reason}; cannot resume: {resume.reason}")
        found = resume.resume(self._sent, self._report)
        if found is None:
            self._abort(f"{reason}; no other URL could prove the rest of the body")
        # The validator is the whole proof that both hold the same bytes: say which, so a
        # validator that only reflects size and mtime can be recognised (docs/security.rst).
        log.warning(
            "reproxied body from %r broke after %d bytes (%s); resuming from %r, "
            "trusted as the same file by its %s %r",
            self.url,
            self._sent,
            reason,
            found[0].url,
            resume.validator_field,
            resume.validator,
        )
        target, self._resume = found
        self.url, self._response = target.url, target.response

    def _abort(self, reason: str) -> NoReturn:
        log.error("reproxied body broke, aborting the response: %r: %s", self.url, reason)
        self._aborted = True
        discard(self._response)
        if self._on_abort is not None:
            self._on_abort()
        raise UpstreamBodyError(self.url, reason, sent=self._sent)

    def close(self) -> None:
        """Close the app's iterable once, give the connection back or close it, and say
        how the body ended."""
        if self._closed:
            return
        self._closed = True
        try:
            close_iterable(self._app_iterable)
        finally:
            release(self._target, self._response, complete=self._complete)
            if self._finish is not None:
                self._finish(self._outcome(), self._sent)

    def _outcome(self) -> Outcome:
        if self._aborted:
            return "aborted"
        return "complete" if self._complete else "client_gone"
