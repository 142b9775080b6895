"""Reading a target's response head: bounded, every interim response skipped, a head cut
off refused, and a small body in the same read (SPEC R5).

:class:`HeadResponse` is ``http.client.HTTPResponse`` with its own ``begin()`` left to
do the parsing; it only watches the reads under it (:class:`~.head_watch.HeadWatch`)
and calls it again after an interim response.  Public names only: the socket's
``makefile()`` and ``settimeout()``, ``begin()``, and the attributes ``begin()`` sets.
What differs from the standard library, and why:

* the head as a whole is bounded: after its first read, the rest must come within one
  more read timeout;
* every interim (1xx) response is skipped -- http.client skips ``100 Continue`` only and
  returns a ``103 Early Hints`` as the answer (RFC 9110 §15.2 allows any number);
* a head cut off by the connection's end raises :class:`HeadCutOff`, where http.client
  takes the lines so far for the whole head, and a target that died there for a
  complete, empty response;
* the read buffer holds a head and a 64 KiB body (:data:`READ_BUFFER_SIZE`).

``tests/test_heads.py`` holds it against the standard library.
"""

from __future__ import annotations

import http.client
import io
from typing import Any

from .head_watch import HeadWatch

__all__ = ["MAX_INTERIM_RESPONSES", "READ_BUFFER_SIZE", "HeadCutOff", "HeadResponse"]


# The first read of a response fills http.client's read buffer.  With its default 8 KiB
# that read brings the head and under 8 KiB of body, so a 64 KiB file takes a second read
# and reaches the server in two pieces.  With room for a head and a default chunk (64 KiB),
# one read brings both when they arrived together -- nginx sends them so -- and the file
# goes out in one write (docs/performance.rst).  Plain HTTP only: over TLS each read
# returns one 16 KiB record.  Once the buffer is empty, ``read1`` reads straight into the
# piece it returns; the price is 72 KiB held by each open response.
READ_BUFFER_SIZE = 72 * 1024

# A server sending "102 Processing" forever must not hold the thread (CPython gh-150743
# bounds 100 Continue the same way).
MAX_INTERIM_RESPONSES = 100


class HeadCutOff(http.client.HTTPException):
    """The connection closed, or was reset, inside the response head: before the blank
    line ending it, or after an interim (1xx) response.  Not a stale keep-alive (a
    response had begun), so the request is not sent again."""


class _Buffered:
    """What ``HTTPResponse.__init__`` uses of its socket, ``makefile("rb")``: a reader of
    :data:`READ_BUFFER_SIZE` over the :class:`HeadWatch`."""

    __slots__ = ("_watch",)

    def __init__(self, watch: HeadWatch) -> None:
        self._watch = watch

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(self._watch, READ_BUFFER_SIZE)


class HeadResponse(http.client.HTTPResponse):
    """``http.client.HTTPResponse`` that bounds its head, skips every interim response,
    refuses a head cut off, and reads through a buffer that holds a 64 KiB body."""

    def __init__(
        self, sock: Any, debuglevel: int = 0, method: str | None = None, url: str | None = None
    ) -> None:
        self._watch = HeadWatch(sock)
        super().__init__(_Buffered(self._watch), debuglevel, method, url)  # type: ignore[arg-type]
        self._unknown_status = self.status  # what __init__ leaves until a status line is read

    def begin(self, *args: Any, **kwargs: Any) -> None:
        if self.headers is not None:
            return  # already begun, as in http.client
        try:
            self._final_head(args, kwargs)
        finally:
            self._watch.watching = False

    def _final_head(self, args: Any, kwargs: Any) -> None:
        watch = self._watch
        for interim in range(MAX_INTERIM_RESPONSES + 1):
            watch.start()
            self.status = self._unknown_status
            try:
                self._one_head(args, kwargs)
            except ConnectionError as error:
                if not (interim or watch.received):
                    raise  # before any byte: maybe a stale keep-alive, which may be retried
                raise HeadCutOff(self._cut(error, interim)) from None
            if watch.ended:
                where = "an interim response" if self._is_interim() else "the response head"
                raise HeadCutOff(f"the connection closed inside {where}")
            if not self._is_interim():
                return
            self.headers = self.msg = None  # type: ignore[assignment]  # read the next head
        raise http.client.HTTPException(f"got more than {MAX_INTERIM_RESPONSES} interim responses")

    def _one_head(self, args: Any, kwargs: Any) -> None:
        """Read one response head, interim or final: http.client's own ``begin()``."""
        super().begin(*args, **kwargs)

    def _is_interim(self) -> bool:
        # 101 Switching Protocols is never asked for, so it is final
        return 100 <= self.status < 200 and self.status != http.client.SWITCHING_PROTOCOLS

    def _cut(self, error: ConnectionError, interim: int) -> str:
        how = "closed" if isinstance(error, http.client.RemoteDisconnected) else "was reset"
        if self.status == self._unknown_status:
            where = f"after {interim} interim response(s)" if interim else "inside the status line"
        else:
            where = (
                "inside an interim response" if self._is_interim() else "inside the response head"
            )
        return f"the connection {how} {where}"
