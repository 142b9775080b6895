"""Reading a target's response head: quicker, and bounded (SPEC R5).

:class:`HeadResponse` is ``http.client.HTTPResponse`` with ``begin()`` redone step by
step, for the connections of the middleware's own pool (:mod:`.connections`); urllib3
does everything else as usual.  What differs from the standard library, and why:

* a plain header block is parsed without the ``email`` package (:mod:`.header_block`),
  the largest single cost of a small file's request (docs/performance.rst);
* the read buffer holds a head and a 64 KiB body (:data:`READ_BUFFER_SIZE`), so that a
  small file arrives in the same system call as its head and leaves in one piece;
* the head as a whole is bounded (:class:`HeadDeadline`): after its first read, the
  rest must come within one more read timeout, or a target trickling it byte by byte
  would hold the request for as long as it liked;
* every interim (1xx) response is skipped, where http.client returns a ``103 Early
  Hints`` as the answer; and a head cut off by the connection's end raises
  :class:`HeadCutOff`, where http.client takes the lines so far for the whole head.

It relies on two private names of http.client (``_read_status``, ``_check_close``) and
on ``socket.SocketIO``'s ``_sock``: without the first two, :func:`response_class` gives
the standard class; without ``_sock``, the head is read without its deadline; should a
newer ``begin()`` take arguments this class does not know (or debug output be asked
for), it runs the standard library's own.  ``tests/test_heads.py`` holds it against the
standard library.
"""

from __future__ import annotations

import http.client
from typing import TYPE_CHECKING, Any

from .head_deadline import HeadDeadline
from .header_block import limit, parse_any_headers, parse_plain_headers, read_header_lines

__all__ = ["READ_BUFFER_SIZE", "HeadCutOff", "HeadResponse", "response_class"]


# The first read of a response fills http.client's read buffer.  With its default 8 KiB
# that read brings the head and under 8 KiB of body, so a 64 KiB file takes a second read
# and reaches the server in two pieces.  With room for a head and a default chunk (64 KiB),
# one read brings both when they arrived together -- nginx sends them so -- and the file
# goes out in one write (what it gains: docs/performance.rst).  Plain HTTP only: over
# TLS each read returns one 16 KiB record.
# A long body costs the same as before: once the buffer is empty, ``read1`` reads straight
# into the piece it returns.  The price is memory: each response holds the buffer until
# it is closed, so a download in progress holds 72 KiB besides its 64 KiB piece.
READ_BUFFER_SIZE = 72 * 1024


class _LargeReadBuffer:
    """What ``HTTPResponse.__init__`` uses of its socket, ``makefile("rb")``, with a read
    buffer of :data:`READ_BUFFER_SIZE` instead of ``io.DEFAULT_BUFFER_SIZE``."""

    __slots__ = ("_sock",)

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def makefile(self, mode: str) -> Any:
        return self._sock.makefile(mode, buffering=READ_BUFFER_SIZE)

    def __getattr__(self, name: str) -> Any:
        # anything else a future http.client might ask of the socket: the socket's own
        return getattr(self._sock, name)


class HeadCutOff(http.client.HTTPException):
    """The connection closed, or was reset, inside the response head: before the blank
    line ending it, or after an interim (1xx) response.  Not a stale keep-alive (a
    response had begun), so the request is not sent again."""


def _cut(error: ConnectionError, where: str) -> str:
    how = "closed" if isinstance(error, http.client.RemoteDisconnected) else "was reset"
    return f"the connection {how} {where}"


class HeadResponse(http.client.HTTPResponse):
    """``http.client.HTTPResponse`` whose plain header blocks skip the email parser, read
    through a buffer large enough for a head and a 64 KiB body in one system call."""

    if TYPE_CHECKING:  # http.client's private parts that begin() uses, as CPython has them
        _method: str | None

        def _read_status(self) -> tuple[str, int, str]: ...

        def _check_close(self) -> bool: ...

    def __init__(
        self, sock: Any, debuglevel: int = 0, method: str | None = None, url: str | None = None
    ) -> None:
        super().__init__(_LargeReadBuffer(sock), debuglevel, method, url)  # type: ignore[arg-type]

    def begin(self, *args: Any, _max_headers: int | None = None, **kwargs: Any) -> None:
        """http.client's ``begin()``; ``_max_headers`` is Python 3.15's per-connection
        header limit (``HTTPConnection.max_response_headers``), honoured the same way."""
        if args or kwargs or self.debuglevel:
            # a newer http.client with options this copy does not know, or debug output
            if _max_headers is not None:  # pragma: no cover - only Python 3.15+ passes it
                kwargs["_max_headers"] = _max_headers
            super().begin(*args, **kwargs)
            return
        if self.headers is not None:
            return  # already started
        raw = getattr(self.fp, "raw", None)
        sock = getattr(raw, "_sock", None)  # socket.SocketIO's: what its reads call
        if sock is None:
            self._begin(_max_headers, None)
            return
        raw._sock = deadline = HeadDeadline(sock, sock.gettimeout())
        try:
            self._begin(_max_headers, deadline)
        finally:
            raw._sock = sock

    def _begin(self, max_headers: int | None, deadline: HeadDeadline | None) -> None:
        # http.client.HTTPResponse.begin() (CPython 3.11-3.13), step by step, except for
        # how the header block is parsed, every interim response skipped, and a head cut
        # off by the connection's end refused.
        version, status, reason = self._final_status_line(max_headers, deadline)
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = self._header_block(max_headers)
        self._set_framing(status)

    def _final_status_line(
        self, max_headers: int | None, deadline: HeadDeadline | None
    ) -> tuple[str, int, str]:
        """The status line of the final response, past every interim (1xx) one.

        A "103 Early Hints" or "102 Processing" before the final answer is lawful (RFC
        9110 §15.2), and http.client would return it as the response; 101 is never asked
        for, so it is final.  Their number is bounded, as in the stdlib's fix for
        gh-150743: a server sending "100 Continue" forever must not hold the thread.
        """
        max_interim = limit("_MAXINTERIMRESPONSES", 100)
        for interim in range(max_interim + 1):
            try:
                version, status, reason = self._read_status()
            except ConnectionError as error:  # RemoteDisconnected (a close) or a reset
                if interim:
                    raise HeadCutOff(_cut(error, f"after {interim} interim response(s)")) from None
                if deadline is not None and deadline.received:
                    raise HeadCutOff(_cut(error, "inside the status line")) from None
                raise  # before any byte: maybe a stale keep-alive, which may be retried
            if not 100 <= status < 200 or status == http.client.SWITCHING_PROTOCOLS:
                return version, status, reason
            try:
                read_header_lines(self.fp, max_headers)  # the interim response's headers
            except ConnectionError as error:
                raise HeadCutOff(_cut(error, "inside an interim response")) from None
            if deadline is not None:
                deadline.restart()
        raise http.client.HTTPException(f"got more than {max_interim} interim responses")

    def _header_block(self, max_headers: int | None) -> http.client.HTTPMessage:
        try:
            lines = read_header_lines(self.fp, max_headers)
        except ConnectionError as error:
            raise HeadCutOff(_cut(error, "inside the response head")) from None
        if lines[-1] == b"":
            # The connection closed before the blank line: http.client would take the
            # lines so far as the whole head, and a target that died here as a complete,
            # empty response.  A head that never ended is a broken connection.
            raise HeadCutOff(
                f"the connection closed inside the response head "
                f"({len(lines) - 1} header lines read)"
            )
        return parse_plain_headers(lines) or parse_any_headers(lines)

    def _set_framing(self, status: int) -> None:
        """Chunked, length and keep-alive, exactly as http.client works them out."""
        message = self.headers
        transfer_encoding = message.get("transfer-encoding")
        self.chunked = transfer_encoding is not None and transfer_encoding.lower() == "chunked"
        if self.chunked:
            self.chunk_left = None
        self.will_close = self._check_close()
        self.length = None
        length = message.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                pass  # stays None, as in http.client
            else:
                if self.length < 0:
                    self.length = None
        no_body = status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED)
        if no_body or 100 <= status < 200 or self._method == "HEAD":
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


def response_class() -> type[http.client.HTTPResponse]:
    """The response class for the middleware's connections: :class:`HeadResponse`, or the
    standard one should a future http.client lack what its ``begin()`` relies on."""
    needed = ("_read_status", "_check_close")
    if all(hasattr(http.client.HTTPResponse, name) for name in needed):
        return HeadResponse
    return http.client.HTTPResponse  # pragma: no cover
