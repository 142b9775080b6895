"""What a target's response head says about its body, and whether it can be relayed.

Pure functions over a urllib3 response's headers, no reading: the body's announced
length (``Content-Length``, ``Content-Range``), its content coding, and
:func:`check_framing`, which refuses a head whose framing the client could be told wrong
(SPEC R5.3, R6.3, R6.4).  :mod:`wsgi_reproxy.upstream` applies them to each target,
:mod:`wsgi_reproxy.resume` to each replica, :mod:`wsgi_reproxy.exchange` to the length it
announces to the client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from urllib3.response import BaseHTTPResponse

from .errors import UpstreamError
from .headers import FRAMING, NO_BODY_STATUSES

__all__ = [
    "check_framing",
    "full_length",
    "header",
    "is_coding",
    "parse_content_length",
    "parse_content_range",
    "parse_content_range_total",
]

# Framing headers that describe the bytes end to end: named in Connection, they would be
# dropped while still describing them.  Transfer-Encoding is hop-by-hop, and decoded.
_END_TO_END_FRAMING = FRAMING - {"transfer-encoding"}
# What nearly every target sends, told apart without splitting it into tokens.
_USUAL_CONNECTION = frozenset({"keep-alive", "close"})

_CONTENT_RANGE = re.compile(r"bytes[ \t]+([0-9]+)-([0-9]+)/([0-9]+)", re.ASCII | re.IGNORECASE)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """``headers.get(name)``, cheaper when absent: urllib3's ``HTTPHeaderDict`` inherits
    ``Mapping.get``, which raises and catches a KeyError for every header a response
    lacks -- and the framing headers checked on each response are mostly absent."""
    return headers[name] if name in headers else None  # noqa: SIM401 (the point)


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
    if value.isdigit() and value.isascii():  # the usual case: one plain value
        return int(value)
    values = {part.strip(" \t") for part in value.split(",")}
    only = values.pop()
    if values or not (only.isascii() and only.isdigit()):
        raise ValueError(f"malformed Content-Length {value!r}")
    return int(only)


def parse_content_range_total(value: str | None) -> int | None:
    """The complete length named by a ``Content-Range`` (of a 206), or None."""
    parsed = parse_content_range(value)
    return None if parsed is None else parsed[2]


def full_length(response: BaseHTTPResponse) -> int | None:
    """The whole representation's length: a 206's ``Content-Range`` total, else the
    ``Content-Length`` (None when not announced)."""
    if response.status == 206:
        return parse_content_range_total(header(response.headers, "Content-Range"))
    return parse_content_length(header(response.headers, "Content-Length"))


def is_coding(encoding: str | None) -> bool:
    """Does this ``Content-Encoding`` value name a content coding (gzip, br ...; not
    ``identity``)?  A body's length is then that of the encoded bytes, which
    ``X-Reproxy-Expected-Size`` -- the file's -- cannot describe."""
    return encoding is not None and encoding.strip().lower() not in ("", "identity")


def _has_body(response: BaseHTTPResponse, method: str) -> bool:
    # HEAD, 204 and 304 answers end at their blank line whatever their headers say
    # (RFC 9112 §6.3): nothing of theirs is framed, so nothing can be framed wrong.
    return method != "HEAD" and response.status not in NO_BODY_STATUSES


def check_framing(response: BaseHTTPResponse, url: str, method: str = "GET") -> int | None:
    """Refuse a body whose length the client could be told wrong (SPEC R6.3, R6.4), and
    return its ``Content-Length``, checked (None when absent).

    http.client decodes ``Transfer-Encoding: chunked`` spelled exactly so and nothing else:
    with ``gzip, chunked`` or ``chunked `` it would hand over the chunk framing as the
    file's bytes, in a response that ends cleanly.  A malformed ``Content-Length`` would be
    relayed as the client's own framing, and a 206 whose ``Content-Length`` is not the
    length of its ``Content-Range`` would put bytes at the wrong offsets.  A chunked body
    with a ``Content-Length`` too is one http.client reads by its chunks while the client
    would be told the other length (RFC 9112 §6.3: an error).  And a framing header named
    in ``Connection`` would be dropped as hop-by-hop while the bytes are still framed by it
    (gzip bytes without their ``Content-Encoding``); ``Transfer-Encoding`` may be named,
    being hop-by-hop anyway (Pushpin and PHP's server send ``Connection:
    Transfer-Encoding``).  Applied to the first target's answer and to every resume
    replica's.  ``method`` is the request's: a HEAD answer has no body to frame.
    """
    headers = response.headers
    connection = header(headers, "Connection")
    if connection is not None and connection.lower() not in _USUAL_CONNECTION:
        named = {token.strip().lower() for token in connection.split(",")} & _END_TO_END_FRAMING
        if named:
            raise UpstreamError(url, f"Connection names framing headers {sorted(named)!r}")
    transfer_encoding = header(headers, "Transfer-Encoding")
    if transfer_encoding is not None and transfer_encoding.lower() != "chunked":
        raise UpstreamError(url, f"unsupported Transfer-Encoding {transfer_encoding!r}")
    try:
        length = parse_content_length(header(headers, "Content-Length"))
    except ValueError as error:
        raise UpstreamError(url, str(error)) from None
    if transfer_encoding is not None and length is not None and _has_body(response, method):
        raise UpstreamError(url, "both Transfer-Encoding and Content-Length")
    if response.status == 206 and length is not None:
        value = header(headers, "Content-Range")
        content_range = parse_content_range(value)
        if content_range is not None and length != content_range[1] - content_range[0] + 1:
            message = f"Content-Length {length} is not the length of Content-Range {value!r}"
            raise UpstreamError(url, message)
    return length
