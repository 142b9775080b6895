"""A small body without ``Content-Length``, judged before the response starts (R4.1, R5.3).

While the client's response has not started, a body of the wrong size is just a failed
URL (a stale replica), not an aborted download.  So a body that fits in one piece is read
to its very end first -- past its last byte, to see that nothing follows (a chunked
body's first read stops at a chunk, before its terminator) -- and held to the expected
size.  That reading gets one read timeout in all: a body still coming in after it
streams, and is judged as it goes (:mod:`wsgi_reproxy.body`).
"""

from __future__ import annotations

import time

import urllib3
from urllib3.exceptions import HTTPError

from .errors import UpstreamError
from .failures import as_upstream_error, is_timeout
from .target import Target

__all__ = ["read_seconds", "read_small_body"]


def read_seconds(timeout: urllib3.Timeout) -> float | None:
    """The longest a read may wait: the read timeout, or ``total`` if shorter (reading
    ``Timeout.read_timeout`` needs a started clock when a ``total`` is set); None when
    neither is set."""
    limits = [
        float(value)
        for value in (getattr(timeout, "_read", None), timeout.total)
        if isinstance(value, int | float)
    ]
    return min(limits) if limits else None


def read_small_body(
    target: Target, first: bytes, expected_size: int, chunk_size: int, timeout: urllib3.Timeout
) -> bytes:
    """The body read so far, after judging it against ``expected_size`` where it can be:
    a first piece longer than expected fails, and so does a whole body of another size."""
    response = target.response
    if target.status != 200 or target.length is not None or target.encoded:
        return first
    ended = response.closed
    budget = read_seconds(timeout)
    give_up = None if budget is None else time.monotonic() + budget
    try:
        while not ended and len(first) <= expected_size <= chunk_size:
            if give_up is not None and time.monotonic() > give_up:
                return first  # a slow small body: streamed, and held to its size as it goes
            more = response.read1(chunk_size, decode_content=False)
            ended = not more or response.closed
            first += more
    except (HTTPError, OSError) as error:
        if response.chunked or not (is_timeout(error) and len(first) == expected_size):
            raise as_upstream_error(target.url, error, "body broke before it began: ") from error
        # All of it, then silence, with only the connection's end to delimit it: a storage
        # that neither chunks nor closes (uWSGI's --http11-socket) ends such a body only
        # with its idle timeout.  Whole, but the connection's state is unknown: closed,
        # not reused.  (A chunked body ends with its last chunk.)
        response.close()
        response.release_conn()
        ended = True
    if len(first) > expected_size or (ended and len(first) != expected_size):
        size = f"{len(first)}" if ended else f"at least {len(first)}"
        raise UpstreamError(
            target.url,
            f"size {size} differs from X-Reproxy-Expected-Size {expected_size}",
            status=target.status,
        )
    return first
