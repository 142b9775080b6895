"""A local file's conditional and range headers, set right before webob answers them.

webob's ``conditional_response_app`` (:mod:`wsgi_reproxy.local_file`) answers ``Range``,
``If-None-Match``, ``If-Modified-Since`` and ``If-Range``; where its reading of RFC 9110
would send wrong bytes or crash, the request is first put in a form it answers right:

* ``If-Match`` and ``If-Unmodified-Since`` are not evaluated by webob at all: a failing
  one is a 412 here (§13.2.2), so a client resuming with a stale validator never gets
  another file's bytes;
* an ``If-Range`` date is compared with ``<=`` by webob; only an exact match keeps the
  range (§13.1.5: a file rolled back to an older copy must not be spliced);
* ``If-None-Match: *`` is ignored by webob: the file exists, so it is a 304;
* a ``Range`` webob misreads -- several ranges (it sends the first), a suffix longer than
  the file (416 instead of the whole), ``bytes=-0``, or one it crashes on (``bytes=-``)
  -- becomes the whole file, the whole file as a range, or an unsatisfiable one.
"""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = ["failed_precondition", "webob_ready"]

_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.IGNORECASE)
_TAGS = re.compile(r'(W/)?("[^"]*")')


def failed_precondition(environ: dict[str, Any], etag: str, mtime: int) -> bool:
    """``If-Match``, else ``If-Unmodified-Since``, fails for this file (a 412)."""
    if_match = environ.get("HTTP_IF_MATCH")
    if if_match is not None:
        if if_match.strip() == "*":
            return False
        strong = [tag for weak, tag in _TAGS.findall(if_match) if not weak]
        return f'"{etag}"' not in strong
    since = _seconds(environ.get("HTTP_IF_UNMODIFIED_SINCE"))
    return since is not None and mtime > since


def webob_ready(environ: dict[str, Any], etag: str, mtime: int, size: int) -> dict[str, Any]:
    """A copy of ``environ`` whose conditional and range headers webob answers right."""
    ready = dict(environ)
    if (ready.get("HTTP_IF_NONE_MATCH") or "").strip() == "*":
        ready["HTTP_IF_NONE_MATCH"] = f'"{etag}"'  # the file exists: webob's 304
    if_range = ready.pop("HTTP_IF_RANGE", None)
    wanted = ready.pop("HTTP_RANGE", None)
    if wanted is None or (if_range is not None and not _same(if_range, etag, mtime)):
        return ready  # no range, or the client's copy is another file: the whole file
    matched = _RANGE.fullmatch(wanted.strip())
    if matched is None:
        return ready  # several ranges, or not a range webob reads right: the whole file
    first, last = matched.groups()
    if first:
        if last and int(last) < int(first):
            return ready  # invalid: ignored (RFC 9110 §14.2)
        ready["HTTP_RANGE"] = f"bytes={first}-{last}"
    elif last and int(last) > 0:
        suffix = min(int(last), size)  # a suffix longer than the file is the whole file
        ready["HTTP_RANGE"] = f"bytes={size - suffix}-" if suffix else f"bytes={size}-"
    elif last:
        ready["HTTP_RANGE"] = f"bytes={size}-"  # bytes=-0: nothing to send, 416
    return ready


def _same(if_range: str, etag: str, mtime: int) -> bool:
    """``If-Range`` names this very file: its strong ETag, or exactly its date."""
    value = if_range.strip()
    if value.startswith(('"', "W/", "w/")):
        return value == f'"{etag}"'
    return _seconds(value) == mtime


def _seconds(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
