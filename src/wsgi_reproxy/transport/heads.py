"""Reading a target's response head without the ``email`` package (speed, SPEC R5).

``http.client`` -- under urllib3 -- hands every response's header block to
:mod:`email.parser`, a general MIME parser: for the nine headers nginx sends with a file it
cost 24 µs, an eighth of everything urllib3 spends on a request, and with what follows from
it (``get_content_type`` and friends on the parsed message) about a fifth.  Storage nodes
answer with plain headers, so this module reads them directly:

* :class:`HeadResponse` is ``http.client.HTTPResponse`` with ``begin()`` redone line for
  line, except that a header block made only of ``token: printable-ASCII`` lines ending in
  CRLF (and no ``multipart/*`` or ``message/*`` content type, which ``email`` would try to
  parse further) is turned into the same :class:`http.client.HTTPMessage` by
  :meth:`~email.message.Message.set_raw` calls.  Any other block -- folded lines, bare LF,
  obs-text, a line without a colon, a control character -- goes to the email parser as in
  ``http.client.parse_headers``, so odd input gets exactly the standard library's
  answer.  ``tests/test_heads.py`` checks the two against each other on generated
  header blocks.  Two deliberate differences: a head that the connection's end cuts off
  before its blank line raises :class:`HeadCutOff`, where http.client would take the
  lines so far for the whole head (and a target dying there for an empty response); and
  every interim (1xx) response is skipped, where http.client skips only ``100 Continue``
  and returns a ``103 Early Hints`` as the answer;
* the head as a whole is bounded: after its first read, the rest must come within one
  more read timeout (:class:`_HeadDeadline`), or a target trickling it byte by byte
  would hold the request for as long as it liked;
* its read buffer holds a head and a 64 KiB body (:data:`READ_BUFFER_SIZE`), so that a
  small file arrives over plain HTTP in the same system call as its head and leaves in
  one piece;
* the connections of the pool a middleware makes for itself
  (:mod:`wsgi_reproxy.transport.connections`) use it; urllib3 does everything else as usual:
  connections, TLS, timeouts, the pool, the body.

Should a future Python call ``begin()`` with arguments this class does not know (or debug
output be asked for), it steps aside and runs the standard library's own ``begin()``.
"""

from __future__ import annotations

import email.parser
import http.client
import re
import time
from typing import TYPE_CHECKING, Any

__all__ = [
    "READ_BUFFER_SIZE",
    "HeadCutOff",
    "HeadResponse",
    "parse_any_headers",
    "parse_plain_headers",
    "read_header_lines",
    "response_class",
]


# http.client's limits, read at each call so that raising them (a common workaround for
# servers with many headers) works here too; the defaults are CPython's.
def _limit(name: str, default: int) -> int:
    value = getattr(http.client, name, default)
    return value if isinstance(value, int) else default


# token ":" OWS value CRLF, the value printable ASCII or tab (RFC 9110 §5.1, §5.5): for such
# a line email's header_source_parse gives (name, value with leading blanks removed).
_PLAIN_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\t\x20-\x7e]*)\r\n")
# Content types email.feedparser parses into sub-messages (and may add defects for).
_NESTED_TYPES = (b"multipart/", b"message/")


def read_header_lines(fp: Any, max_headers: int | None = None) -> list[bytes]:
    """The header lines up to and including the empty one, with http.client's limits."""
    max_line = _limit("_MAXLINE", 65536)
    if max_headers is None:
        max_headers = _limit("_MAXHEADERS", 100)
    lines = []
    while True:
        line = fp.readline(max_line + 1)
        if len(line) > max_line:
            raise http.client.LineTooLong("header line")
        lines.append(line)
        if len(lines) > max_headers:
            raise http.client.HTTPException(f"got more than {max_headers} headers")
        if line in (b"\r\n", b"\n", b""):
            return lines


def parse_plain_headers(lines: list[bytes]) -> http.client.HTTPMessage | None:
    """The message ``http.client.parse_headers`` would build from ``lines``, when every line
    is a plain ``name: value`` line; None when any is not (the caller parses it the
    standard way)."""
    if not lines or lines[-1] != b"\r\n":
        return None
    message = http.client.HTTPMessage()
    for line in lines[:-1]:
        match = _PLAIN_LINE.fullmatch(line)
        if match is None:
            return None
        name, value = match.groups()
        if name.lower() == b"content-type" and value.lower().startswith(_NESTED_TYPES):
            return None
        message.set_raw(name.decode("ascii"), value.decode("ascii"))
    message.set_payload("")  # what the email parser leaves after the blank line
    return message


def parse_any_headers(lines: list[bytes]) -> http.client.HTTPMessage:
    """What ``http.client.parse_headers`` does with the lines it has read: the email
    parser, over the block decoded as ISO-8859-1 (the limits were applied while reading)."""
    text = b"".join(lines).decode("iso-8859-1")
    return email.parser.Parser(_class=http.client.HTTPMessage).parsestr(text)


# The first read of a response fills http.client's read buffer.  With its default 8 KiB
# that read brings the head and under 8 KiB of body, so a 64 KiB file takes a second read
# and reaches the server in two pieces.  With room for a head and a default chunk (64 KiB),
# one read brings both when they arrived together -- nginx sends them so -- and the file
# goes out in one write: under uWSGI 4x4, 12-15 % more 64 KiB requests per second
# (docs/performance.rst).  Plain HTTP only: over TLS each read returns one 16 KiB record.
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


class _HeadDeadline:
    """The socket under a response's reader while its head is read: it counts what
    arrives (a break after the first byte is no stale keep-alive), and the reads after the
    first must bring the rest of the head within one more read timeout, if there is one.

    A read timeout bounds each wait, so a target sending its head a byte at a time, each
    within the timeout, could hold the request -- and its failover -- for hours (nginx's
    ``proxy_read_timeout`` has the same gap).  The first read waits as before; a head
    that arrives whole with it (nearly every head) costs nothing more.  Later reads wait
    at most for what is left of the deadline, then raise the socket's ``TimeoutError``,
    which urllib3 reports as a read timeout.  Each interim (1xx) response, a sign of life,
    starts the clock again (their number is bounded).  Calls pass on exactly as made:
    gevent's TLS socket reads nothing for an explicit ``nbytes=0``.
    """

    __slots__ = ("_deadline", "_sock", "_timeout", "received")

    def __init__(self, sock: Any, timeout: float | None) -> None:
        self._sock = sock
        self._timeout = timeout
        self._deadline: float | None = None
        self.received = 0  # bytes of the response read so far

    def restart(self) -> None:
        """The next read waits a whole read timeout again, and starts a new deadline."""
        self._deadline = None

    def recv_into(self, buffer: Any, *args: Any) -> int:
        sock = self._sock
        received: int
        if self._timeout is None:  # no read timeout: no deadline, only the count
            received = sock.recv_into(buffer, *args)
        elif self._deadline is None:
            received = sock.recv_into(buffer, *args)
            self._deadline = time.monotonic() + self._timeout
        else:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the response head took longer than the read timeout")
            sock.settimeout(min(remaining, self._timeout))
            try:
                received = sock.recv_into(buffer, *args)
            finally:
                sock.settimeout(self._timeout)
        self.received += received or 0
        return received

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


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
        raw._sock = deadline = _HeadDeadline(sock, sock.gettimeout())
        try:
            self._begin(_max_headers, deadline)
        finally:
            raw._sock = sock

    def _begin(self, _max_headers: int | None, deadline: _HeadDeadline | None) -> None:
        # From here on, http.client.HTTPResponse.begin() (CPython 3.11-3.13), except for
        # how the header block is parsed -- and a bound on interim responses, as in the
        # stdlib's own fix for gh-150743: a server sending "100 Continue" forever must not
        # hold the thread (the read timeout never fires while bytes keep coming).
        # And every interim response is skipped, not only "100 Continue": a "103 Early
        # Hints" or "102 Processing" before the final answer is lawful (RFC 9110 §15.2),
        # and http.client would return it as the response.  101 is never asked for: final.
        max_interim = _limit("_MAXINTERIMRESPONSES", 100)
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
                break
            try:
                read_header_lines(self.fp, _max_headers)  # skip the interim response's headers
            except ConnectionError as error:
                raise HeadCutOff(_cut(error, "inside an interim response")) from None
            if deadline is not None:
                deadline.restart()
        else:
            raise http.client.HTTPException(f"got more than {max_interim} interim responses")
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)

        try:
            lines = read_header_lines(self.fp, _max_headers)
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
        message = parse_plain_headers(lines)
        if message is None:
            message = parse_any_headers(lines)
        self.headers = self.msg = message

        transfer_encoding = message.get("transfer-encoding")
        if transfer_encoding and transfer_encoding.lower() == "chunked":
            self.chunked = True
            self.chunk_left = None
        else:
            self.chunked = False
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
        if (
            status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED)
            or 100 <= status < 200
            or self._method == "HEAD"
        ):
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
