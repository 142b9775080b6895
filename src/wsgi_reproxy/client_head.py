"""The status line and headers the client gets for a target's answer (SPEC R6.1, R6.2, R6.7).

Pure functions of a :class:`~wsgi_reproxy.target.Target`, the app's headers and the
settings: the target's status and headers, less hop-by-hop, ``X-Reproxy-*`` and hidden
ones, with the app's ``preserve`` headers merged in and the length the client must be
told.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus

from .framing import header
from .headers import merge_preserved
from .target import Target
from .target_headers import HiddenHeaders, clean_target_headers

__all__ = ["client_head", "error_head", "status_line"]

Headers = list[tuple[str, str]]


def status_line(status: int, reason: str | None) -> str:
    """``206 Partial Content``: the target's reason, or the standard one when it sent none
    that can be relayed."""
    if not reason or not reason.isprintable():
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
    return f"{status} {reason}"


def client_head(
    target: Target,
    app_headers: Sequence[tuple[str, str]],
    preserved: frozenset[str],
    hidden: HiddenHeaders,
) -> tuple[str, Headers, list[str]]:
    """The status line and headers for the client, and the names of target headers
    dropped because they could not be sent safely (for the log)."""
    response = target.response
    headers, unsafe = clean_target_headers(response.headers.iteritems(), hidden)
    headers = merge_preserved(headers, app_headers, preserved, target.status)
    headers = announce_length(headers, header(response.headers, "Content-Length"), target)
    return status_line(target.status, response.reason), headers, unsafe


def announce_length(headers: Headers, announced: str | None, target: Target) -> Headers:
    """The client's ``Content-Length``: the target's as one plain value, or the length
    known without one.

    A target's ``5, 5`` (or two identical lines) is valid and accepted (RFC 9110 §8.6),
    but must reach the client as one value: gunicorn and waitress answer 500 to the list.
    And a length known but not announced (chunked, or until the connection's end) is said,
    so that a body that breaks looks short to the client under every server: without
    one, a server can only close the connection, which uWSGI, wsgiref and any HTTP/1.0
    client take for the end of a whole body.
    """
    length = target.client_length
    if length is None or announced == str(length):
        return headers  # nothing to say, or said plainly once already
    value = str(length)
    result = []
    for name, old in headers:
        if name.lower() != "content-length":
            result.append((name, old))
        elif value:
            result.append((name, value))
            value = ""
    if value:
        result.append(("Content-Length", value))
    return result


def error_head(status: int) -> tuple[str, Headers, bytes]:
    """A 502 or 504 of the middleware's own: a fixed line of text that names no URL."""
    phrase = HTTPStatus(status).phrase
    text = f"{status} {phrase}: the file could not be fetched from storage.\n".encode()
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(text))),
        ("Cache-Control", "no-store"),
    ]
    return f"{status} {phrase}", headers, text
