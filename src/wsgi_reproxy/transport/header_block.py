"""A response's header block, read and parsed as http.client would, without ``email``.

``http.client`` hands every header block to :mod:`email.parser`, a general MIME parser
(docs/performance.rst says what it costs).  Storage nodes answer with plain headers:
a block made only of ``token: printable-ASCII`` lines ending in CRLF (and no
``multipart/*`` or ``message/*`` content type, which ``email`` would parse further) is
turned into the same :class:`http.client.HTTPMessage` by
:meth:`~email.message.Message.set_raw` calls.  Any other block goes to the email parser
as in ``http.client.parse_headers``, so odd input gets exactly the standard library's
answer; ``tests/test_heads.py`` checks the two against each other on generated blocks.

A whole plain head usually arrives in one read: :func:`read_plain_head` then takes the
status line and every header from the read buffer at once, without a ``readline`` per
line; anything else is read line by line as before.
"""

from __future__ import annotations

import email.parser
import http.client
import re
from typing import TYPE_CHECKING, Any

from ..headers import TOKEN

__all__ = [
    "PlainHTTPMessage",
    "limit",
    "parse_any_headers",
    "parse_plain_headers",
    "read_header_lines",
    "read_plain_head",
]


# http.client's limits, read at each call so that raising them (a common workaround for
# servers with many headers) works here too; the defaults are CPython's.
def limit(name: str, default: int) -> int:
    value = getattr(http.client, name, default)
    return value if isinstance(value, int) else default


# token ":" OWS value CRLF, the value printable ASCII or tab (RFC 9110 §5.1, §5.5): for such
# a line email's header_source_parse gives (name, value with leading blanks removed).  Over
# a head decoded as ASCII: a block made only of such lines, then each line's name and value.
_PLAIN_BLOCK = re.compile(rf"(?:{TOKEN.pattern}:[\t\x20-\x7e]*\r\n)*\r\n")
_PLAIN_PAIR = re.compile(rf"({TOKEN.pattern}):[ \t]*([\t\x20-\x7e]*)\r\n")
# Content types email.feedparser parses into sub-messages (and may add defects for).
_NESTED_TYPES = ("multipart/", "message/")
# A status line as http.client reads it without trouble.
_STATUS_LINE = re.compile(r"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: ([\t\x20-\x7e]*))?\r\n")


class PlainHTTPMessage(http.client.HTTPMessage):
    """The message of a plain block: ``get()`` and ``items()`` skip the email policy.

    The policy (``compat32``, http.client's) turns a value holding surrogates into a
    ``Header``; every other value comes back as stored.  Values of a plain block are
    ASCII, so these two -- all that http.client and urllib3 read of a response's
    headers -- return them straight from the message's own list, and leave any other
    value to the policy as usual.
    """

    if TYPE_CHECKING:  # email.message.Message's own list of (name, value), as set_raw fills it
        _headers: list[tuple[str, Any]]

    def get(self, name: str, failobj: Any = None) -> Any:
        name = name.lower()
        for key, value in self._headers:
            if key.lower() == name:
                if type(value) is str and value.isascii():  # what the policy returns as is
                    return value
                return self.policy.header_fetch_parse(key, value)
        return failobj

    def items(self) -> list[tuple[str, Any]]:
        fetch = self.policy.header_fetch_parse
        return [
            (key, value if type(value) is str and value.isascii() else fetch(key, value))
            for key, value in self._headers
        ]


def read_header_lines(fp: Any, max_headers: int | None = None) -> list[bytes]:
    """The header lines up to and including the empty one, with http.client's limits."""
    max_line = limit("_MAXLINE", 65536)
    if max_headers is None:
        max_headers = limit("_MAXHEADERS", 100)
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
    try:
        block = b"".join(lines).decode("ascii")
    except UnicodeDecodeError:
        return None
    return _plain_message(block, 0)


def _plain_message(head: str, start: int) -> PlainHTTPMessage | None:
    """The message of the header block at ``start`` of ``head`` (up to its blank line),
    or None unless every line is plain and no content type nests messages."""
    if _PLAIN_BLOCK.fullmatch(head, start) is None:
        return None
    message = PlainHTTPMessage()
    for name, value in _PLAIN_PAIR.findall(head, start):
        if name.lower() == "content-type" and value.lower().startswith(_NESTED_TYPES):
            return None
        message.set_raw(name, value)
    message.set_payload("")  # what the email parser leaves after the blank line
    return message


def read_plain_head(fp: Any) -> tuple[int, int, str, http.client.HTTPMessage] | None:
    """A whole plain response head from the buffer of ``fp`` (an ``io.BufferedReader``):
    the version as http.client numbers it, the status, the reason and the message, with
    the head consumed.  None, with nothing consumed, when the buffer -- filled by one read
    if it was empty -- holds no whole head, or the head is not plain, or it exceeds
    http.client's limits: the caller then reads it line by line as http.client does."""
    data = fp.peek()
    end = data.find(b"\r\n\r\n") + 4
    if end < 4 or end > limit("_MAXLINE", 65536):
        return None
    try:
        head = data[:end].decode("ascii")
    except UnicodeDecodeError:
        return None
    status_line = _STATUS_LINE.match(head)
    # the header lines: every CRLF but the status line's and the blank line's.  http.client
    # counts the blank line too, so it takes fewer header lines than its limit.
    if status_line is None or head.count("\r\n") - 2 >= limit("_MAXHEADERS", 100):
        return None
    message = _plain_message(head, status_line.end())
    if message is None:
        return None
    fp.read(end)
    version, status, reason = status_line.groups()
    return (10 if version == "0" else 11), int(status), (reason or "").strip(), message


def parse_any_headers(lines: list[bytes]) -> http.client.HTTPMessage:
    """What ``http.client.parse_headers`` does with the lines it has read: the email
    parser, over the block decoded as ISO-8859-1 (the limits were applied while reading)."""
    text = b"".join(lines).decode("iso-8859-1")
    return email.parser.Parser(_class=http.client.HTTPMessage).parsestr(text)
