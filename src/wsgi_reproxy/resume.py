"""Mid-stream resume: continue a broken body from the next replica, byte-exact.

perlbal, mod_reproxy and nginx all end a client's download short when a storage node dies
in the middle of a body.  With more than one replica in the directive we can do better: ask
the next URL for the rest, starting at the exact byte where the first stopped, and accept
its answer only when it *proves* to be the rest of the same representation:

* the request carries ``Range: bytes=N-LAST`` and ``If-Range: <validator>``, where the
  validator is the first target's strong ``ETag`` (else its ``Last-Modified``), so a
  replica holding other bytes answers 200 instead of 206 (RFC 9110 §13.1.5);
* the answer must be a ``206`` whose ``Content-Range`` is exactly ``bytes N-LAST/TOTAL``
  with the first target's total, whose ``Content-Encoding`` is the first target's, and
  which carries the same validator itself (a replica that ignores ``If-Range`` answers
  206 whatever it holds).

Anything else -- no validator, a weak ETag, a 200, another total, no URL left -- cannot be
proven to be the same bytes, and the response is aborted as SPEC R6.4 says.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

import urllib3
from urllib3.response import BaseHTTPResponse

from .errors import UpstreamError
from .framing import check_framing, is_encoded, parse_content_length, parse_content_range
from .upstream import discard, open_url

__all__ = ["NoResume", "Resumer", "plan_resume"]

log = logging.getLogger("wsgi_reproxy")


@dataclass(frozen=True, slots=True)
class NoResume:
    """Why a body that breaks cannot be continued elsewhere (said in the abort log)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Resumer:
    """Everything needed to fetch the rest of a body from the URLs left in the directive.

    ``first`` and ``last`` are the offsets, in the whole representation, of the first and
    last byte the client is being sent (a client's own Range shifts them).
    """

    pool: urllib3.PoolManager
    timeout: urllib3.Timeout
    urls: tuple[str, ...]
    headers: Mapping[str, str]
    validator: str
    first: int
    last: int
    total: int
    encoding: str | None

    @property
    def validator_field(self) -> str:
        """The header the validator came from: a strong ETag is quoted, an HTTP date is not."""
        return "ETag" if self.validator.startswith('"') else "Last-Modified"

    def resume(self, sent: int) -> tuple[str, BaseHTTPResponse, Resumer | NoResume] | None:
        """Fetch bytes ``first + sent ..  last`` from the next URL that proves them.

        Returns the URL, its unread 206 response, and how to resume again should that one
        break too; None when no URL left could prove the continuation.
        """
        start = self.first + sent
        headers = {
            **self.headers,
            "Range": f"bytes={start}-{self.last}",
            "If-Range": self.validator,
        }
        for index, url in enumerate(self.urls):
            try:
                response = open_url(self.pool, url, "GET", headers, self.timeout)
            except UpstreamError as error:
                log.warning("reproxy resume attempt failed: %r: %s", url, error.reason)
                continue
            reason = self._disproves(response, url, start)
            if reason is None:
                rest = self.urls[index + 1 :]
                following = replace(self, urls=rest) if rest else NoResume("no URL left")
                return url, response, following
            log.warning("reproxy resume refused: %r: %s", url, reason)
            discard(response)
        return None

    def _disproves(self, response: BaseHTTPResponse, url: str, start: int) -> str | None:
        """Why ``response`` is not provably bytes ``start..last`` of the same file."""
        if response.status != 206:
            return f"status {response.status}, not 206"
        try:
            check_framing(response, url)  # its Content-Length, if any, is then its range's
        except UpstreamError as error:
            return error.reason
        content_range = parse_content_range(response.headers.get("Content-Range"))
        if content_range != (start, self.last, self.total):
            return (
                f"Content-Range {response.headers.get('Content-Range')!r} is not "
                f"bytes {start}-{self.last}/{self.total}"
            )
        if response.headers.get("Content-Encoding") != self.encoding:
            return "a different Content-Encoding"
        # A replica that ignores If-Range answers 206 whatever it holds: its own validator
        # must be the one asked for (a 206 carries the ETag and Last-Modified a 200 would,
        # RFC 9110 §15.3.7).
        field = self.validator_field
        theirs = response.headers.get(field)
        if theirs is None or theirs.strip() != self.validator:
            return f"its {field} {theirs!r} is not {self.validator!r}"
        return None


def _validator(response: BaseHTTPResponse) -> str | NoResume:
    etag = response.headers.get("ETag")
    if etag is not None:
        etag = etag.strip()
        if etag.startswith(("W/", "w/")):
            return NoResume("the ETag is weak")
        if etag.startswith('"') and etag.endswith('"') and len(etag) >= 2:
            return etag
        return NoResume("the ETag is malformed")
    last_modified = response.headers.get("Last-Modified")
    if last_modified:
        return last_modified.strip()
    return NoResume("the target sent no ETag or Last-Modified")


def plan_resume(
    response: BaseHTTPResponse,
    *,
    later_urls: tuple[str, ...],
    headers: Mapping[str, str],
    pool: urllib3.PoolManager,
    timeout: urllib3.Timeout,
    expected_size: int | None,
) -> Resumer | NoResume:
    """How to continue ``response``'s body elsewhere should it break, or why we cannot."""
    if not later_urls:
        return NoResume("no URL left")
    if response.status not in (200, 206):  # a 412's or 416's body is not the file's bytes
        return NoResume(f"a {response.status} body is no part of the file")
    validator = _validator(response)
    if isinstance(validator, NoResume):
        return validator
    if response.status == 206:
        content_range = parse_content_range(response.headers.get("Content-Range"))
        if content_range is None:
            return NoResume("the 206 has no single Content-Range with a known total")
        first, last, total = content_range
    else:
        length = parse_content_length(response.headers.get("Content-Length"))
        if length is None and is_encoded(response):
            return NoResume("the length of the encoded body is unknown")
        known = length if length is not None else expected_size
        if known is None:
            return NoResume("the full length is unknown")
        first, last, total = 0, known - 1, known
    base = {k: v for k, v in headers.items() if k.lower() not in _RANGE_HEADERS}
    return Resumer(
        pool,
        timeout,
        later_urls,
        base,
        validator,
        first,
        last,
        total,
        response.headers.get("Content-Encoding"),
    )


# Conditional headers are dropped from a resume request: the continuation is judged by
# If-Range against the first target's validator, not by the client's own conditions.
_RANGE_HEADERS = frozenset(
    {"range", "if-range", "if-none-match", "if-modified-since", "if-match", "if-unmodified-since"}
)
