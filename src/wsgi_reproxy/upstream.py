"""Fetching the target: one request per URL through a shared urllib3 pool (SPEC R5).

This is the one module that knows urllib3's exception classes: everything that can go
wrong with one URL becomes an :class:`~wsgi_reproxy.errors.UpstreamError` with a short
reason and a ``timed_out`` flag, and :func:`fetch_first` turns a list of those into
:class:`~wsgi_reproxy.errors.AllUpstreamsFailed`.
"""

from __future__ import annotations

import functools
import logging
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from http.client import RemoteDisconnected
from typing import Any

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.response import BaseHTTPResponse
from urllib3.util import Retry, parse_url

from .directive import CACHED_URL_MAX, Directive, HostPatterns
from .errors import AllUpstreamsFailed, Attempt, UpstreamError
from .headers import FRAMING, is_multipart_ranges
from .pools import DEFAULT_POOL_MAXSIZE, ReproxyPoolManager

__all__ = [
    "Fetched",
    "check_framing",
    "discard",
    "fetch_first",
    "is_encoded",
    "make_pool",
    "open_url",
    "parse_content_length",
    "parse_content_range",
]

log = logging.getLogger("wsgi_reproxy")

# The client's own conditional or range answers are successes: relay them (SPEC R5.3).
_SUCCESS_OTHER = frozenset({304, 416})
# Responses that never carry a body, whatever their headers say (RFC 9110 §6.4.1).
NO_BODY_STATUSES = frozenset({204, 304})
# What urllib3 builds from ``retries=False, redirect=False`` on every request, built once.
NO_RETRIES = Retry(False, redirect=False)


def make_pool(
    timeout: urllib3.Timeout,
    *,
    refuse_local: bool = False,
    allowed: HostPatterns | None = None,
    maxsize: int = DEFAULT_POOL_MAXSIZE,
    block: bool = False,
) -> urllib3.PoolManager:
    """The pool a middleware owns when none is given: keep-alive, no retries (failover is
    ours, per URL), no redirects, room for a gthread worker's threads, origins remembered
    and response heads read without the email parser (:mod:`wsgi_reproxy.pools`)."""
    options: dict[str, Any] = {
        "num_pools": 64,
        "maxsize": maxsize,
        "block": block,
        "retries": False,
        "timeout": timeout,
    }
    if refuse_local:
        return ReproxyPoolManager(refuse_local=True, upstream_hosts=allowed, **options)
    return ReproxyPoolManager(**options)


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


_CONTENT_RANGE = re.compile(r"bytes[ \t]+([0-9]+)-([0-9]+)/([0-9]+)", re.ASCII | re.IGNORECASE)


def parse_content_range(value: str | None) -> tuple[int, int, int] | None:
    """``Content-Range: bytes FIRST-LAST/TOTAL`` (RFC 9110 §14.4) as three ints, or None
    when absent, malformed, of unknown total (``/*``) or inconsistent."""
    match = _CONTENT_RANGE.fullmatch(value.strip()) if value else None
    if match is None:
        return None
    first, last, total = (int(group) for group in match.groups())
    return (first, last, total) if first <= last < total else None


def parse_content_length(value: str | None) -> int | None:
    """``Content-Length`` as an int, None when absent (urllib3 joins repeated fields with
    ", ").  Raises ValueError unless every value is the same run of ASCII digits (RFC 9110
    §8.6): ``"²"`` passes ``str.isdigit`` and ``"+1"`` or ``"1_0"`` pass ``int``, and a
    client told such a length could read the wrong number of bytes."""
    if value is None:
        return None
    values = {part.strip(" \t") for part in value.split(",")}
    only = values.pop()
    if values or not (only.isascii() and only.isdigit()):
        raise ValueError(f"malformed Content-Length {value!r}")
    return int(only)


def parse_content_range_total(value: str | None) -> int | None:
    """The complete length named by a ``Content-Range`` (of a 206), or None."""
    parsed = parse_content_range(value)
    return None if parsed is None else parsed[2]


def _full_length(response: BaseHTTPResponse) -> int | None:
    if response.status == 206:
        return parse_content_range_total(response.headers.get("Content-Range"))
    return parse_content_length(response.headers.get("Content-Length"))


def is_encoded(response: BaseHTTPResponse) -> bool:
    """Does the body carry a content coding (gzip, br ...)?  Its length is then that of
    the encoded bytes, which ``X-Reproxy-Expected-Size`` -- the file's -- cannot describe."""
    encoding = response.headers.get("Content-Encoding")
    return encoding is not None and encoding.strip().lower() not in ("", "identity")


def check_framing(response: BaseHTTPResponse, url: str) -> None:
    """Refuse a body whose length the client could be told wrong (SPEC R6.3, R6.4).

    http.client decodes ``Transfer-Encoding: chunked`` spelled exactly so and nothing else:
    with ``gzip, chunked`` or ``chunked `` it would hand over the chunk framing as the
    file's bytes, in a response that ends cleanly.  A malformed ``Content-Length`` would be
    relayed as the client's own framing, and a 206 whose ``Content-Length`` is not the
    length of its ``Content-Range`` would put bytes at the wrong offsets.  Applied to the
    first target's answer and to every resume replica's.
    """
    connection = response.headers.get("Connection")
    if connection is not None:
        # a framing header named in Connection would be dropped as hop-by-hop while the
        # bytes are still framed by it (gzip bytes without their Content-Encoding)
        named = {token.strip().lower() for token in connection.split(",")} & FRAMING
        if named:
            raise UpstreamError(url, f"Connection names framing headers {sorted(named)!r}")
    transfer_encoding = response.headers.get("Transfer-Encoding")
    if transfer_encoding is not None and transfer_encoding.lower() != "chunked":
        raise UpstreamError(url, f"unsupported Transfer-Encoding {transfer_encoding!r}")
    try:
        length = parse_content_length(response.headers.get("Content-Length"))
    except ValueError as error:
        raise UpstreamError(url, str(error)) from None
    if response.status == 206 and length is not None:
        content_range = parse_content_range(response.headers.get("Content-Range"))
        if content_range is not None and length != content_range[1] - content_range[0] + 1:
            raise UpstreamError(
                url,
                f"Content-Length {length} is not the length of Content-Range "
                f"{response.headers.get('Content-Range')!r}",
            )


def _check(response: BaseHTTPResponse, url: str, expected_size: int | None) -> None:
    status = response.status
    if not (200 <= status < 300 or status in _SUCCESS_OTHER):
        raise UpstreamError(url, f"status {status}")
    check_framing(response, url)
    if expected_size is None or status in NO_BODY_STATUSES or status == 416:
        return
    if status == 206 and is_multipart_ranges(response.headers.iteritems()):
        return  # several ranges: no Content-Range of its own to hold the total (RFC 9110 §14.6)
    if is_encoded(response):
        return  # the lengths are the encoded bytes', not the file's
    length = _full_length(response)
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
    exception is a kept-alive connection that the target closed just as we reused it (its
    idle timeout raced our request): the request is sent once more, on a new connection,
    instead of failing a healthy URL -- what nginx does for its upstream keep-alive too.
    GET and HEAD are safe to repeat, and no byte of a response had arrived.
    """
    log.debug("reproxy attempt: %s %r", method, url)
    for attempt in (1, 2):
        try:
            return _urlopen(
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


def _origin_and_path(url: str) -> tuple[str, str, int | None, str]:
    parsed = parse_url(url)
    return parsed.scheme or "http", parsed.host or "", parsed.port, parsed.request_uri


_origin_and_path_cached = functools.lru_cache(maxsize=4096)(_origin_and_path)


def _urlopen(pool: urllib3.PoolManager, method: str, url: str, **kw: Any) -> BaseHTTPResponse:
    """``pool.urlopen`` without re-parsing a URL already seen.

    URLs repeat (the same files are asked for again and again), and parsing was a tenth of
    the time urllib3 spent per request; the middleware's own pool also remembers the
    connection pool of each origin.  A subclass with its own ``urlopen``
    (``ProxyManager``) is always called as is.
    """
    if type(pool).urlopen is not urllib3.PoolManager.urlopen:
        return pool.urlopen(method, url, **kw)
    split = _origin_and_path_cached if len(url) <= CACHED_URL_MAX else _origin_and_path
    scheme, host, port, request_uri = split(url)
    if isinstance(pool, ReproxyPoolManager):
        connection_pool = pool.connection_from_origin(scheme, host, port)
    else:
        connection_pool = pool.connection_from_host(host, port=port, scheme=scheme)
    return connection_pool.urlopen(method, request_uri, assert_same_host=False, **kw)


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


def _first_piece_within_size(
    response: BaseHTTPResponse, url: str, first: bytes, expected_size: int, chunk_size: int
) -> bytes:
    """A body without ``Content-Length`` is held to the expected size as it streams; but
    while the response has not started, a wrong size is still just a failed URL (a stale
    replica), not an aborted download (R4.1, R5.3).  So a first piece already longer than
    expected fails the URL, and a small body -- one that fits in a piece -- is read to its
    end first, which a chunked body's first read does not reach (its last chunk follows)."""
    if response.status != 200 or "Content-Length" in response.headers or is_encoded(response):
        return first
    try:
        while len(first) < expected_size <= chunk_size:
            more = response.read1(chunk_size, decode_content=False)
            if not more:
                break
            first += more
    except (HTTPError, OSError) as error:
        raise UpstreamError(
            url, f"body broke before it began: {_describe(error)}", timed_out=_is_timeout(error)
        ) from error
    ended = response.closed or len(first) < expected_size <= chunk_size
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
        _check(response, url, expected_size)
        first = _first_chunk(response, url, method, chunk_size)
        if method == "GET" and expected_size is not None:
            first = _first_piece_within_size(response, url, first, expected_size, chunk_size)
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
