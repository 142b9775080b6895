"""The response bodies the middleware returns to the WSGI server (SPEC R6.3-R6.5).

Both are classes with ``__iter__`` and an idempotent ``close()`` (like Werkzeug's
``ClosingIterator`` or Rack's ``BodyProxy``), because PEP 3333 servers call ``close()``
once they are done, whether the client read everything or hung up halfway, and the app's
own iterable must be closed exactly once in either case.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from urllib3.exceptions import HTTPError
from urllib3.response import BaseHTTPResponse

from .errors import UpstreamBodyError
from .upstream import discard

__all__ = ["ClosingIterable", "ReproxyBody"]

log = logging.getLogger("wsgi_reproxy")


def close_iterable(iterable: object) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


class ClosingIterable:
    """Yield ``head`` then ``rest``; ``close()`` closes ``owner`` (the app's iterable) once.

    Used for the 502/504 answers and for a pass-through whose first chunks were consumed
    while waiting for a lazy ``start_response``.
    """

    __slots__ = ("_closed", "_head", "_owner", "_rest")

    def __init__(self, head: list[bytes], rest: Iterable[bytes], owner: object) -> None:
        self._head = head
        self._rest = rest
        self._owner = owner
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self._head
        yield from self._rest

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            close_iterable(self._owner)


class ReproxyBody:
    """Stream the target's bytes as sent, and make a broken body impossible to miss.

    :param expected_length: how many bytes the body must have (``Content-Length``, or the
        ``X-Reproxy-Expected-Size`` of a chunked body), or None when only EOF says.
    :param has_body: False for HEAD, 204 and 304: nothing is read.

    Fewer bytes than expected, more bytes than expected, or a read error raise
    :class:`UpstreamBodyError` out of the iterator, so the server aborts the connection
    instead of ending a short body as if it were whole (SPEC R6.4).
    """

    __slots__ = ("_app_iterable", "_chunk_size", "_closed", "_complete", "_expected",
                 "_has_body", "_response", "url")

    def __init__(
        self,
        response: BaseHTTPResponse,
        *,
        url: str,
        chunk_size: int,
        app_iterable: Iterable[bytes] | Any,
        expected_length: int | None,
        has_body: bool,
    ) -> None:
        self._response = response
        self.url = url
        self._chunk_size = chunk_size
        self._app_iterable = app_iterable
        self._expected = expected_length
        self._has_body = has_body
        self._complete = not has_body
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        if not self._has_body:
            return
        read = self._response.read
        chunk_size = self._chunk_size
        expected = self._expected
        sent = 0
        try:
            while chunk := read(chunk_size, decode_content=False):
                sent += len(chunk)
                if expected is not None and sent > expected:
                    self._abort(f"more than the {expected} bytes expected", sent - len(chunk))
                yield chunk
        except (HTTPError, OSError) as error:
            if isinstance(error, UpstreamBodyError):
                raise
            self._abort(f"{type(error).__name__}: {error}", sent)
        if expected is not None and sent != expected:
            self._abort(f"ended after {sent} of {expected} bytes", sent)
        self._complete = True

    def _abort(self, reason: str, sent: int) -> None:
        log.error("reproxied body broke, aborting the response: %r: %s", self.url, reason)
        discard(self._response)
        raise UpstreamBodyError(self.url, reason, sent=sent)

    def close(self) -> None:
        """Close the app's iterable once, then give the connection back or close it."""
        if self._closed:
            return
        self._closed = True
        try:
            close_iterable(self._app_iterable)
        finally:
            if not self._has_body:
                # HEAD, 204, 304: nothing to read, but http.client still counts the response
                # as pending until it is read; released unread, the connection would answer
                # the next request with ResponseNotReady.
                self._response.drain_conn()
            elif self._complete:
                self._response.release_conn()
            else:
                discard(self._response)
