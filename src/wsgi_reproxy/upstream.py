"""Fetching the target: one request per URL through a shared urllib3 pool (SPEC R5).

This is the one module that knows urllib3's exception classes: everything that can go
wrong with one URL becomes an :class:`~wsgi_reproxy.errors.UpstreamError` with a short
reason and a ``timed_out`` flag, and :func:`fetch_first` turns a list of those into
:class:`~wsgi_reproxy.errors.AllUpstreamsFailed`.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.client import RemoteDisconnected

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.response import BaseHTTPResponse
from urllib3.util import Retry

from .directive import Directive
from .errors import AllUpstreamsFailed, Attempt, UpstreamError
from .framing import check_framing, full_length, is_encoded
from .headers import is_multipart_ranges
from .pools import urlopen_as_written

__all__ = ["Fetched", "discard", "fetch_first", "open_url"]

log = logging.getLogger("wsgi_reproxy")

# The client's own conditional or range answers are successes: relay them (SPEC R5.3).
# If-Match and If-Unmodified-Since are forwarded, so their 412 is the client's too (nginx).
_SUCCESS_OTHER = frozenset({304, 412, 416})
# Answers about the request, whose lengths are not the file's: no expected-size check.
_NOT_THE_FILE = frozenset({412, 416})
# Responses that never carry a body, whatever their headers say (RFC 9110 §6.4.1).
NO_BODY_STATUSES = frozenset({204, 304})
# What urllib3 builds from ``retries=False, redirect=False`` on every request, built once.
NO_RETRIES = Retry(False, redirect=False)


@dataclass(frozen=True, slots=True)
class Fetched:
    """The target that answered, with the first piece of its body already read."""

    url: str
    response: BaseHTTPResponse
    first_chunk: bytes
    stands_in_for_head: bool
    attempts: tuple[Attempt, ...]
    later_urls: tuple[str, ...]


def _is_timeout(error: BaseException) -> bool:
    # urllib3 2 makes NewConnectionError a ConnectTimeoutError subclass for compatibility;
    # a refused connection is not a timeout (SPEC R5.4).
    if isinstance(error, NewConnectionError):
        return False
    return isinstance(error, ConnectTimeoutError | ReadTimeoutError | socket.timeout)


def _describe(error: BaseException) -> str:
    if isinstance(error, NewConnectionError):
        cause = error.__cause__ or error.__context__
        return f"connection failed: {cause or error}"
    if _is_timeout(error):
        return f"timed out: {type(error).__name__}"
    return f"{type(error).__name__}: {error}"


def _check(response: BaseHTTPResponse, url: str, method: str, expected_size: int | None) -> None:
    status = response.status
    if not (200 <= status < 300 or status in _SUCCESS_OTHER):
        raise UpstreamError(url, f"status {status}")
    check_framing(response, url, method)
    if expected_size is None or status in NO_BODY_STATUSES or status in _NOT_THE_FILE:
        return
    if status == 206 and is_multipart_ranges(response.headers.iteritems()):
        return  # several ranges: no Content-Range of its own to hold the total (RFC 9110 §14.6)
    if is_encoded(response):
        return  # the lengths are the encoded bytes', not the file's
    length = full_length(response)
    if length is None and status == 200:
        return  # no length announced: the body stream enforces the expected size instead
    if length != expected_size:
        raise UpstreamError(
            url, f"size {length} differs from X-Reproxy-Expected-Size {expected_size}"
        )


def open_url(
    pool: urllib3.PoolManager,
    url: str,
    method: str,
    headers: Mapping[str, str],
    timeout: urllib3.Timeout,
) -> BaseHTTPResponse:
    """One request, body unread; any network or protocol error becomes UpstreamError.

    With ``retries=False`` urllib3 never repeats a request, and failover is ours. The one
    exception is a connection that the target closed before any byte of a response --
    typically a kept-alive one whose idle timeout raced our reuse of it: the request is
    sent once more, on a new connection, instead of failing a healthy URL -- what nginx
    does for its upstream keep-alive too.  (A fresh connection closed so is retried too:
    the error does not tell them apart.)  GET and HEAD are safe to repeat, and no byte of
    a response had arrived; a close after an interim response is not retried.
    """
    log.debug("reproxy attempt: %s %r", method, url)
    for attempt in (1, 2):
        try:
            return urlopen_as_written(
                pool,
                method,
                url,
                headers=headers,
                redirect=False,
                retries=NO_RETRIES,
                preload_content=False,
                decode_content=False,
                timeout=timeout,
            )
        except (HTTPError, OSError) as error:
            if attempt == 1 and _closed_under_us(error):
                log.debug("reproxy: %r closed a kept-alive connection, retrying once", url)
                continue
            raise UpstreamError(url, _describe(error), timed_out=_is_timeout(error)) from error
    raise AssertionError("unreachable")  # pragma: no cover


def _closed_under_us(error: BaseException) -> bool:
    """The peer closed the connection before sending any response: a stale keep-alive."""
    cause = error.args[1] if isinstance(error, ProtocolError) and len(error.args) > 1 else None
    return isinstance(cause, RemoteDisconnected | ConnectionResetError | BrokenPipeError)


def _first_chunk(response: BaseHTTPResponse, url: str, method: str, chunk_size: int) -> bytes:
    """Read the first piece of the body before the client's response starts.

    A target that dies before its first byte is then one more failed URL -- the next one
    serves, or the client gets a clean 502/504 -- instead of a response that starts and
    breaks at once, which servers can only answer by dropping the connection.
    """
    if method == "HEAD" or response.status in NO_BODY_STATUSES:
        return b""  # (a GET standing in for a refused HEAD: its body is never read)
    try:
        return response.read1(chunk_size, decode_content=False)
    except (HTTPError, OSError) as error:
        raise UpstreamError(
            url,
            f"body broke before its first byte: {_describe(error)}",
            timed_out=_is_timeout(error),
        ) from error


# Presigned URLs (S3, GCS) sign the method: a GET URL asked with HEAD answers 403; some
# servers answer 405 or 501.  The target's answer to GET tells the HEAD what it needs.
HEAD_REFUSED = frozenset({403, 405, 501})


def _get_for_head(
    pool: urllib3.PoolManager,
    url: str,
    headers: Mapping[str, str],
    timeout: urllib3.Timeout,
    refused: BaseHTTPResponse,
) -> BaseHTTPResponse:
    """Ask with GET when HEAD was refused; the caller sends its headers and never its body
    (the connection is closed, not drained, when the response is done)."""
    log.debug("reproxy: %r refused HEAD (%d); asking with GET", url, refused.status)
    discard(refused)
    return open_url(pool, url, "GET", headers, timeout)


def _read_seconds(timeout: urllib3.Timeout) -> float | None:
    """The longest a read may wait: the read timeout, or ``total`` if shorter (reading
    ``Timeout.read_timeout`` needs a started clock when a ``total`` is set); None when
    neither is set."""
    limits = [
        float(value)
        for value in (getattr(timeout, "_read", None), timeout.total)
        if isinstance(value, int | float)
    ]
    return min(limits) if limits else None


def _small_body_of_the_right_size(
    response: BaseHTTPResponse,
    url: str,
    first: bytes,
    expected_size: int,
    chunk_size: int,
    read_seconds: float | None,
) -> bytes:
    """Judge a body without ``Content-Length`` against the expected size while the
    response has not started, when a wrong size is still just a failed URL (a stale
    replica), not an aborted download (R4.1, R5.3): a first piece longer than expected
    fails, and a body that fits in one piece is read to its very end first -- past its
    last byte, to see that nothing follows (a chunked body's first read stops at a chunk,
    before its terminator).  That reading gets one read timeout in all: a body still
    coming in after it streams, and is judged as it goes.  Returns the body read so far."""
    if response.status != 200 or "Content-Length" in response.headers or is_encoded(response):
        return first
    ended = response.closed
    give_up = None if read_seconds is None else time.monotonic() + read_seconds
    try:
        while not ended and len(first) <= expected_size <= chunk_size:
            if give_up is not None and time.monotonic() > give_up:
                return first  # a slow small body: streamed, and held to its size as it goes
            more = response.read1(chunk_size, decode_content=False)
            ended = not more or response.closed
            first += more
    except (HTTPError, OSError) as error:
        if response.chunked or not (_is_timeout(error) and len(first) == expected_size):
            raise UpstreamError(
                url,
                f"body broke before it began: {_describe(error)}",
                timed_out=_is_timeout(error),
            ) from error
        # all of it, and then silence, with nothing but the connection's end to delimit
        # it: a storage that neither chunks nor closes (uWSGI's --http11-socket) ends such
        # a body only with its idle timeout.  Whole, but the connection's state is
        # unknown: closed, not reused.  (A chunked body ends with its last chunk.)
        discard(response)
        ended = True
    if len(first) > expected_size or (ended and len(first) != expected_size):
        size = f"{len(first)}" if ended else f"at least {len(first)}"
        raise UpstreamError(
            url, f"size {size} differs from X-Reproxy-Expected-Size {expected_size}"
        )
    return first


def _attempt(
    pool: urllib3.PoolManager,
    url: str,
    method: str,
    headers: Mapping[str, str],
    timeout: urllib3.Timeout,
    expected_size: int | None,
    chunk_size: int,
) -> tuple[BaseHTTPResponse, bytes, bool]:
    response = open_url(pool, url, method, headers, timeout)
    stands_in = method == "HEAD" and response.status in HEAD_REFUSED
    if stands_in:
        response = _get_for_head(pool, url, headers, timeout, response)
    try:
        _check(response, url, "GET" if stands_in else method, expected_size)
        first = _first_chunk(response, url, method, chunk_size)
        if method == "GET" and expected_size is not None:
            first = _small_body_of_the_right_size(
                response, url, first, expected_size, chunk_size, _read_seconds(timeout)
            )
        return response, first, stands_in
    except UpstreamError:
        discard(response)
        raise


def discard(response: BaseHTTPResponse) -> None:
    """Close a response we will not read and free its pool slot.

    ``close()`` first so the unread body is never drained or reused, then
    ``release_conn()``: a closed but unreleased connection still holds its slot, and a
    ``block=True`` pool then deadlocks (urllib3#2236).
    """
    response.close()
    response.release_conn()


def fetch_first(
    pool: urllib3.PoolManager,
    directive: Directive,
    method: str,
    headers: Mapping[str, str],
    timeout: urllib3.Timeout,
    chunk_size: int,
) -> Fetched:
    """Try each URL in order; return the first that answers with a usable status and,
    unless it has no body, a first piece of it."""
    failures: list[Attempt] = []
    for index, url in enumerate(directive.urls):
        try:
            response, first, stands_in = _attempt(
                pool, url, method, headers, timeout, directive.expected_size, chunk_size
            )
        except UpstreamError as error:
            log.warning("reproxy attempt failed: %r: %s", url, error.reason)
            failures.append(error.attempt)
            continue
        later = directive.urls[index + 1 :]
        return Fetched(url, response, first, stands_in, tuple(failures), later)
    raise AllUpstreamsFailed(failures)
