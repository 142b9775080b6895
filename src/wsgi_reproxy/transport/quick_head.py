"""Response heads parsed without the ``email`` package, on two private names of
http.client (SPEC R5; what it gains: docs/performance.rst).

``http.client`` hands every header block to :mod:`email.parser`, a general MIME parser
and the largest single cost of a small file's request.  :class:`QuickHeadResponse` reads
one head the way ``HTTPResponse.begin()`` does, step by step, but turns a plain block
into the same ``HTTPMessage`` directly (:mod:`.header_block`); odd blocks go to the
email parser as before.  It needs ``HTTPResponse._read_status`` and ``_check_close``:
without them :func:`response_class` gives :class:`~.heads.HeadResponse`, which keeps
every guarantee on public names only.  Options a newer ``begin()`` may take, and debug
output, go to the stock ``begin()`` too.  ``tests/test_heads.py`` holds both against
the standard library.
"""

from __future__ import annotations

import http.client
from typing import TYPE_CHECKING, Any

from .header_block import (
    parse_any_headers,
    parse_plain_headers,
    read_header_lines,
    read_plain_head,
)
from .heads import HeadResponse

__all__ = ["QuickHeadResponse", "response_class"]

_PRIVATE_NAMES = ("_read_status", "_check_close")


class QuickHeadResponse(HeadResponse):
    """:class:`~.heads.HeadResponse` whose plain header blocks skip the email parser."""

    if TYPE_CHECKING:  # http.client's private parts that begin() uses, as CPython has them
        _method: str | None

        def _read_status(self) -> tuple[str, int, str]: ...

        def _check_close(self) -> bool: ...

    def _one_head(self, args: Any, kwargs: Any) -> None:
        if args or kwargs or self.debuglevel:
            # a newer http.client with options this copy does not know, or debug output
            super()._one_head(args, kwargs)
            return
        head = read_plain_head(self.fp)
        if head is not None:  # the usual case: a plain head, whole in the first read
            self.version, status, self.reason, self.headers = head
            self.code = self.status = status
            self.msg = self.headers
            self._set_framing(status)
            return
        # http.client.HTTPResponse.begin() (CPython 3.11-3.14) for one head, but for how
        # the header block is parsed; interim responses are the caller's loop.
        version, status, reason = self._read_status()
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        lines = read_header_lines(self.fp)
        self.headers = self.msg = parse_plain_headers(lines) or parse_any_headers(lines)
        self._set_framing(status)

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


def response_class() -> type[HeadResponse]:
    """:class:`QuickHeadResponse`, or :class:`~.heads.HeadResponse` should a future
    http.client lack the private names it relies on."""
    if all(hasattr(http.client.HTTPResponse, name) for name in _PRIVATE_NAMES):
        return QuickHeadResponse
    return HeadResponse
