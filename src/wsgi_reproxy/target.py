"""One URL that answered, and what its response head says about its body, worked out once.

Every later step reads the same :class:`Target`: the checks that decide whether it may
serve (status, framing, expected size: SPEC R5.3, R4.1), the client's headers (the
length to announce, R6.2), the body (how many bytes must come and whether their end must
be confirmed, R6.4) and resume (the range, the encoding and the validator that prove a
continuation, R6.4).  Nothing here reads the body.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from urllib3.response import BaseHTTPResponse

from .errors import UpstreamError
from .framing import (
    check_framing,
    header,
    is_coding,
    parse_content_range,
)
from .headers import NO_BODY_STATUSES, TARGETS_OWN_ANSWERS, is_multipart_ranges

__all__ = ["Target"]

# The client's own conditional or range answers are successes: relay them (SPEC R5.3).
# If-Match and If-Unmodified-Since are forwarded, so their 412 is the client's too (nginx).
_SUCCESS_OTHER = frozenset({304, 412, 416})


@dataclass(slots=True, eq=False)
class Target:
    """A target's answer: the urllib3 response (body unread) and its framing.

    Built once per answer by :meth:`answer`, which checks it; only ``first_chunk`` is
    filled in afterwards, when the body's first piece has been read.

    :ivar has_body: a body is relayed (GET, not 204/304).
    :ivar length: its own ``Content-Length`` (checked: one run of digits), or None.
    :ivar content_range: ``(first, last, total)`` of a single-range 206, else None.
    :ivar encoding: its ``Content-Encoding``, which a continuation must match;
        ``encoded`` says whether it is a content coding at all (not ``identity``).
    :ivar expected_length: how many body bytes must arrive, or None when only the
        connection's end says (chunked without any other length, or an encoded body).
    :ivar stands_in_for_head: a GET asked because the target refused a HEAD; its body is
        never read.
    :ivar first_chunk: the body's first piece, read before the response starts (the
        body takes it and empties it).
    """

    url: str
    response: BaseHTTPResponse
    status: int
    has_body: bool
    length: int | None
    content_range: tuple[int, int, int] | None
    encoding: str | None
    encoded: bool
    expected_length: int | None
    stands_in_for_head: bool = False
    first_chunk: bytes = field(default=b"", repr=False)
    head_seconds: float | None = None  # from the request to the response head

    @classmethod
    def answer(
        cls,
        url: str,
        response: BaseHTTPResponse,
        method: str,
        expected_size: int | None,
        *,
        stands_in_for_head: bool = False,
    ) -> Target:
        """Check an answer and work its framing out; ``UpstreamError`` when it may not
        serve.  ``method`` is the client's (``HEAD`` for a GET standing in for one)."""
        status = response.status
        if not (200 <= status < 300 or status in _SUCCESS_OTHER):
            raise UpstreamError(url, f"status {status}", status=status)
        try:
            length = check_framing(response, url, "GET" if stands_in_for_head else method)
        except UpstreamError as error:
            error.status = status
            raise
        headers = response.headers
        range_value = header(headers, "Content-Range") if status == 206 else None
        has_body = method != "HEAD" and status not in NO_BODY_STATUSES
        encoding = header(headers, "Content-Encoding")
        target = cls(
            url,
            response,
            status,
            has_body,
            length,
            parse_content_range(range_value),
            encoding,
            is_coding(encoding),
            None,
            stands_in_for_head,
        )
        target._check_size(expected_size)
        if has_body:
            target.expected_length = target._expected_length(expected_size)
        return target

    @property
    def confirm_end(self) -> bool:
        return self.expected_length is not None and self.length is None

    @property
    def client_length(self) -> int | None:
        """The ``Content-Length`` the client is told: the target's, or the one known
        without it (announced so that a body that breaks looks short, R6.2)."""
        return self.length if self.length is not None else self.expected_length

    @property
    def full_length(self) -> int | None:
        """The whole representation's length: a 206's total, else ``Content-Length``."""
        if self.status == 206:
            return None if self.content_range is None else self.content_range[2]
        return self.length

    def _check_size(self, expected_size: int | None) -> None:
        """``X-Reproxy-Expected-Size`` against the lengths the head announces (R4.1)."""
        status = self.status
        if expected_size is None or status in NO_BODY_STATUSES or status in TARGETS_OWN_ANSWERS:
            return
        if status == 206 and is_multipart_ranges(self.response.headers.iteritems()):
            return  # several ranges: no Content-Range of its own holds the total (§14.6)
        if self.encoded:
            return  # the lengths are the encoded bytes', not the file's
        length = self.full_length
        if length is None and status == 200:
            return  # no length announced: the body stream enforces the expected size
        if length != expected_size:
            raise UpstreamError(
                self.url,
                f"size {length} differs from X-Reproxy-Expected-Size {expected_size}",
                status=status,
            )

    def _expected_length(self, expected_size: int | None) -> int | None:
        """Content-Length; else a 206's one range; else, for a 200 without a content
        coding, the expected size; else None (only the target's end says)."""
        if self.length is not None:
            return self.length
        if self.status == 206:
            first_last = self.content_range
            return None if first_last is None else first_last[1] - first_last[0] + 1
        if self.status == 200 and not self.encoded:
            return expected_size
        return None
