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

import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .errors import AllUpstreamsFailed, UpstreamError
from .failures import answered
from .report import ReproxyReport
from .target import Target

if TYPE_CHECKING:
    from .directive import Directive
    from .upstream import Upstream

__all__ = ["NoResume", "Resumer", "plan_resume", "resume_plan"]

log = logging.getLogger(__name__)


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

    upstream: Upstream
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

    def resume(self, sent: int, report: ReproxyReport) -> tuple[Target, Resumer | NoResume] | None:
        """Fetch bytes ``first + sent ..  last`` from the next URL that proves them.

        Returns that URL's unread 206 and how to resume again should it break too; None
        when no URL left could prove the continuation.
        """
        start = self.first + sent
        headers = {
            **self.headers,
            "Range": f"bytes={start}-{self.last}",
            "If-Range": self.validator,
        }
        try:
            index, target = self.upstream.try_each(
                self.urls,
                lambda url: self._proven(url, headers, start),
                report,
                served="resumed",
                failed_log="reproxy resume refused: %r: %s",
            )
        except AllUpstreamsFailed:
            return None
        rest = self.urls[index + 1 :]
        return target, replace(self, urls=rest) if rest else NoResume("no URL left")

    def _proven(self, url: str, headers: Mapping[str, str], start: int) -> Target:
        """The URL's answer, if it provably holds bytes ``start..last`` of the same file."""
        started = time.monotonic()
        response = self.upstream.open(url, "GET", headers)
        head_seconds = time.monotonic() - started
        try:
            if response.status != 206:
                raise UpstreamError(
                    url, f"status {response.status}, not 206", status=response.status
                )
            target = Target.answer(url, response, "GET", None)
            target.head_seconds = head_seconds
            self._check(target, start)
            return target
        except UpstreamError as error:
            response.close()
            response.release_conn()
            answered(error, response.status, head_seconds)
            raise

    def _check(self, target: Target, start: int) -> None:
        """Refuse what is not provably bytes ``start..last`` of the same representation."""
        headers = target.response.headers
        if target.content_range != (start, self.last, self.total):
            raise UpstreamError(
                target.url,
                f"Content-Range {headers.get('Content-Range')!r} is not "
                f"bytes {start}-{self.last}/{self.total}",
                status=206,
            )
        if target.encoding != self.encoding:
            raise UpstreamError(target.url, "a different Content-Encoding", status=206)
        # A replica that ignores If-Range answers 206 whatever it holds: its own validator
        # must be the one asked for (a 206 carries the ETag and Last-Modified a 200 would,
        # RFC 9110 §15.3.7).
        field = self.validator_field
        theirs = headers.get(field)
        if theirs is None or theirs.strip() != self.validator:
            raise UpstreamError(
                target.url, f"its {field} {theirs!r} is not {self.validator!r}", status=206
            )


def _validator(target: Target) -> str | NoResume:
    """What proves another replica holds the same bytes: a strong ``ETag``, else
    ``Last-Modified`` (which only proves as much as the storage's clock and copies do:
    docs/security.rst)."""
    headers = target.response.headers
    etag = headers.get("ETag")
    if etag is not None:
        etag = etag.strip()
        if etag.startswith(("W/", "w/")):
            return NoResume("the ETag is weak")
        if etag.startswith('"') and etag.endswith('"') and len(etag) >= 2:
            return etag
        return NoResume("the ETag is malformed")
    last_modified = headers.get("Last-Modified")
    if last_modified:
        return last_modified.strip()
    return NoResume("the target sent no ETag or Last-Modified")


def plan_resume(
    target: Target,
    *,
    upstream: Upstream,
    later_urls: tuple[str, ...],
    headers: Mapping[str, str],
    expected_size: int | None,
) -> Resumer | NoResume:
    """How to continue ``target``'s body elsewhere should it break, or why we cannot."""
    if not later_urls:
        return NoResume("no URL left")
    if target.status not in (200, 206):  # a 412's or 416's body is not the file's bytes
        return NoResume(f"a {target.status} body is no part of the file")
    validator = _validator(target)
    if isinstance(validator, NoResume):
        return validator
    if target.status == 206:
        if target.content_range is None:
            return NoResume("the 206 has no single Content-Range with a known total")
        first, last, total = target.content_range
    else:
        if target.length is None and target.encoded:
            return NoResume("the length of the encoded body is unknown")
        known = target.length if target.length is not None else expected_size
        if known is None:
            return NoResume("the full length is unknown")
        first, last, total = 0, known - 1, known
    base = {k: v for k, v in headers.items() if k.lower() not in _RANGE_HEADERS}
    return Resumer(upstream, later_urls, base, validator, first, last, total, target.encoding)


def resume_plan(
    enabled: bool,
    target: Target,
    upstream: Upstream,
    later_urls: tuple[str, ...],
    headers: Mapping[str, str],
    directive: Directive,
) -> NoResume | Callable[[], Resumer | NoResume]:
    """What the body is given: a plan worked out only if it breaks, or why there is none."""
    if not enabled:
        return NoResume("resume=False")
    return functools.partial(
        plan_resume,
        target,
        upstream=upstream,
        later_urls=later_urls,
        headers=headers,
        expected_size=directive.expected_size,
    )


# Conditional headers are dropped from a resume request: the continuation is judged by
# If-Range against the first target's validator, not by the client's own conditions.
_RANGE_HEADERS = frozenset(
    {"range", "if-range", "if-none-match", "if-modified-since", "if-match", "if-unmodified-since"}
)
