"""A response's header block, read and parsed as http.client would, without ``email``.

``http.client`` hands every header block to :mod:`email.parser`, a general MIME parser
(docs/performance.rst says what it costs).  Storage nodes answer with plain headers:
a block made only of ``token: printable-ASCII`` lines ending in CRLF (and no
``multipart/*`` or ``message/*`` content type, which ``email`` would parse further) is
turned into the same :class:`http.client.HTTPMessage` by
:meth:`~email.message.Message.set_raw` calls.  Any other block goes to the email parser
as in ``http.client.parse_headers``, so odd input gets exactly the standard library's
answer; ``tests/test_heads.py`` checks the two against each other on generated blocks.
"""

from __future__ import annotations

import email.parser
import http.client
import re
from typing import Any

__all__ = ["limit", "parse_any_headers", "parse_plain_headers", "read_header_lines"]


# http.client's limits, read at each call so that raising them (a common workaround for
# servers with many headers) works here too; the defaults are CPython's.
def limit(name: str, default: int) -> int:
    value = getattr(http.client, name, default)
    return value if isinstance(value, int) else default


# token ":" OWS value CRLF, the value printable ASCII or tab (RFC 9110 §5.1, §5.5): for such
# a line email's header_source_parse gives (name, value with leading blanks removed).
_PLAIN_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\t\x20-\x7e]*)\r\n")
# Content types email.feedparser parses into sub-messages (and may add defects for).
_NESTED_TYPES = (b"multipart/", b"message/")


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
