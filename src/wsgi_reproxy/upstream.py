"""The storage side: one request per URL through a shared urllib3 pool (SPEC R5).

:class:`Upstream` owns what every request to storage shares -- the pool, the timeout,
the forwarded headers and the chunk size -- and has one loop that tries URLs in order,
:meth:`Upstream.try_each`, used both for failover before the response starts and for
resume in the middle of a body (:mod:`wsgi_reproxy.resume`).  Each try reports to the
request's :class:`~wsgi_reproxy.report.ReproxyReport`.  Errors are translated in one
place, :func:`wsgi_reproxy.failures.upstream_errors`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from urllib3.exceptions import HTTPError
from urllib3.response import BaseHTTPResponse
from urllib3.util import Retry

from .body_digest import whole_body_mismatch
from .digest import ExpectedDigest
from .errors import AllUpstreamsFailed, Attempt, UpstreamError
from .failures import answered, as_upstream_error, closed_under_us, upstream_errors
from .headers import upstream_request_headers
from .report import AttemptReport, ReproxyReport
from .settings import FIRST_PIECE_SIZE, Settings
from .small_body import read_small_body
from .target import Target
from .transport.pools import urlopen_as_written
from .version import __version__

__all__ = ["HEAD_REFUSED", "USER_AGENT", "Upstream", "discard", "release"]

log = logging.getLogger(__name__)

USER_AGENT = f"wsgi-reproxy/{__version__}"
# What urllib3 builds from ``retries=False, redirect=False`` on every request, built once.
NO_RETRIES = Retry(False, redirect=False)
# Presigned URLs (S3, GCS) sign the method: a GET URL asked with HEAD answers 403; some
# servers answer 405 or 501.  The target's answer to GET tells the HEAD what it needs.
HEAD_REFUSED = frozenset({403, 405, 501})


def discard(response: BaseHTTPResponse) -> None:
    """Close a response we will not read and free its pool slot.

    ``close()`` first so the unread body is never drained or reused, then
    ``release_conn()``: a closed but unreleased connection still holds its slot, and a
    ``block=True`` pool then deadlocks (urllib3#2236).
    """
    response.close()
    response.release_conn()


def release(target: Target, response: BaseHTTPResponse, *, complete: bool) -> None:
    """Give the connection of a body that is done with back to the pool, or close it.

    ``response`` is the target's, or the replica's that resumed it.
    """
    if not target.has_body and not target.stands_in_for_head:
        # HEAD, 204, 304: nothing to read, but http.client still counts the response
        # as pending until it is read; released unread, the connection would answer
        # the next request with ResponseNotReady.
        response.drain_conn()
    elif complete and target.has_body:
        response.release_conn()
    else:
        # A body cut short, or a GET standing in for a refused HEAD: what is still on
        # the wire must never reach the next request on this connection.
        discard(response)


class Upstream:
    """Requests to storage for every request of one middleware (shared across threads)."""

    __slots__ = ("first_piece", "forward_keys", "pool", "timeout")

    def __init__(self, settings: Settings) -> None:
        self.pool = settings.pool
        self.timeout = settings.timeout
        self.forward_keys = settings.forward_keys
        self.first_piece = min(FIRST_PIECE_SIZE, settings.chunk_size)

    def request_headers(self, environ: Mapping[str, Any], method: str) -> dict[str, str]:
        """The headers every URL of this request is asked with (R5.2)."""
        return upstream_request_headers(environ, self.forward_keys, method, USER_AGENT)

    def try_each(
        self,
        urls: Sequence[str],
        attempt: Callable[[str], Target],
        report: ReproxyReport,
        *,
        served: Literal["served", "resumed"] = "served",
        failed_log: str = "reproxy attempt failed: %r: %s",
    ) -> tuple[int, Target]:
        """Call ``attempt`` on each URL in order until one returns; each failure is logged
        and reported.  Returns the index of the URL that served and what it returned;
        ``AllUpstreamsFailed`` when none did."""
        failures: list[Attempt] = []
        for index, url in enumerate(urls):
            try:
                result = attempt(url)
            except UpstreamError as error:
                log.warning(failed_log, url, error.reason)
                failures.append(error.attempt)
                report.attempts.append(_failed(error))
                continue
            report.attempts.append(
                AttemptReport(url, result.status, served, seconds=result.head_seconds)
            )
            return index, result
        raise AllUpstreamsFailed(failures)

    def first(
        self,
        urls: Sequence[str],
        method: str,
        headers: Mapping[str, str],
        expected_size: int | None,
        report: ReproxyReport,
        digest: ExpectedDigest | None = None,
    ) -> tuple[Target, tuple[str, ...]]:
        """The first URL that answers with a usable status and, unless it has no body, a
        first piece of it; and the URLs after it (for resume).  A body that came whole
        with that piece and does not match ``digest`` fails its URL (R10.1)."""
        index, target = self.try_each(
            urls,
            lambda url: self._attempt(url, method, headers, expected_size, digest, report),
            report,
        )
        return target, tuple(urls[index + 1 :])

    def open(self, url: str, method: str, headers: Mapping[str, str]) -> BaseHTTPResponse:
        """One request, body unread; any network or protocol error becomes UpstreamError.

        With ``retries=False`` urllib3 never repeats a request: failover is ours.  The one
        exception is a connection the target closed before any byte of a response --
        typically a kept-alive one whose idle timeout raced our reuse of it: it is sent
        once more, on a new connection, instead of failing a healthy URL (as nginx does
        for its upstream keep-alive).  GET and HEAD are safe to repeat.
        """
        log.debug("reproxy attempt: %s %r", method, url)
        for again in (False, True):
            try:
                return self._urlopen(url, method, headers)
            except (HTTPError, OSError) as error:
                if again or not closed_under_us(error):
                    raise as_upstream_error(url, error) from error
                log.debug("reproxy: %r closed a kept-alive connection, retrying once", url)
        raise AssertionError("unreachable")  # pragma: no cover

    def _urlopen(self, url: str, method: str, headers: Mapping[str, str]) -> BaseHTTPResponse:
        return urlopen_as_written(
            self.pool,
            method,
            url,
            headers=headers,
            redirect=False,
            retries=NO_RETRIES,
            preload_content=False,
            decode_content=False,
            timeout=self.timeout,
        )

    def _attempt(
        self,
        url: str,
        method: str,
        headers: Mapping[str, str],
        expected_size: int | None,
        digest: ExpectedDigest | None,
        report: ReproxyReport,
    ) -> Target:
        started = time.monotonic()
        response = self.open(url, method, headers)
        stands_in = method == "HEAD" and response.status in HEAD_REFUSED
        if stands_in:
            log.debug("reproxy: %r refused HEAD (%d); asking with GET", url, response.status)
            discard(response)
            response = self.open(url, "GET", headers)
        head_seconds = time.monotonic() - started
        try:
            target = Target.answer(
                url, response, method, expected_size, stands_in_for_head=stands_in
            )
            target.head_seconds = head_seconds
            target.first_chunk = self._first_chunk(target, expected_size)
            mismatch = whole_body_mismatch(digest, target)
            if mismatch is not None:
                report.digest = "mismatch"
                raise UpstreamError(url, mismatch, status=response.status)
            return target
        except UpstreamError as error:
            discard(response)
            answered(error, response.status, head_seconds)
            raise

    def _first_chunk(self, target: Target, expected_size: int | None) -> bytes:
        """Read the first piece of the body before the client's response starts.

        A target that dies before its first byte is then one more failed URL -- the next
        one serves, or the client gets a clean 502/504 -- instead of a response that
        starts and breaks at once, which servers can only answer by dropping the
        connection.  A small body is judged against the expected size meanwhile.
        """
        if not target.has_body:
            return b""  # (a GET standing in for a refused HEAD: its body is never read)
        with upstream_errors(target.url, "body broke before its first byte: "):
            first = target.response.read1(self.first_piece, decode_content=False)
        if expected_size is None:
            return first
        return read_small_body(target, first, expected_size, self.first_piece, self.timeout)


def _failed(error: UpstreamError) -> AttemptReport:
    return AttemptReport(
        error.url, error.status, "failed", error.reason, error.timed_out, seconds=error.seconds
    )
