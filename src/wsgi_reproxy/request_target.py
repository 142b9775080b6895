"""The request target, byte for byte (SPEC R5.5).

Storage that signs the exact path -- S3 and GCS presigned URLs, SigV4 -- answers 403 to
a request whose target differs from the signed one by a single byte, and urllib3 changes
targets on the way out: lower-case escapes become upper-case (``%c3%bc`` -> ``%C3%BC``),
characters outside RFC 3986 are percent-encoded, and one malformed escape gets every
``%`` of its part encoded again (``/b/%zz%4`` went out as ``/b/%25zz%254``).  So:

* :func:`request_target` takes the target from the URL *as text* -- what follows the
  authority, up to ``#`` -- never from a parsed and re-encoded URL;
* :func:`target_problem` says why a target cannot be sent as written: a character RFC
  3986 does not allow in a path or query, or a ``%`` that does not start an escape of two
  hex digits.  Such URLs are refused (:func:`wsgi_reproxy.directive.check_url`), never
  "fixed": a fix is a rewrite.  What is left is exactly what urllib3 sends unchanged but
  for the case of its escapes (:func:`upper_escapes`);
* the middleware's connections (:class:`wsgi_reproxy.transport.connections.ExactTargetConnection`)
  send that target, handed down under :data:`TARGET_KEY` among the request's headers.

Nothing here does I/O.
"""

from __future__ import annotations

import http.client
import re

__all__ = [
    "CACHED_URL_MAX",
    "TARGET_KEY",
    "TargetMismatch",
    "request_target",
    "target_problem",
    "upper_escapes",
]

# Caches keyed by what a target or a user can make long keep only short keys: a worker's
# memory must not be pinned by 4096 URLs of 64 KiB.  Presigned URLs, the long ones, are
# unique per request anyway.
CACHED_URL_MAX = 1024

# The exact target travels from upstream.py to the connection among the request headers
# (urllib3 passes them through untouched).  Not a legal header name (a leading ":"), so
# http.client refuses to send it should it ever reach a connection that does not know it.
TARGET_KEY = ":wsgi-reproxy-target"

# RFC 3986 section 3.3 and 3.4: pchar = unreserved / pct-encoded / sub-delims / ":" / "@";
# a path adds "/", a query "/" and "?".  Anything else, or a "%" without two hex digits.
_NOT_IN_PATH = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]|%(?![0-9A-Fa-f]{2})")
_NOT_IN_QUERY = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]|%(?![0-9A-Fa-f]{2})")
_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")
# Where urllib3's parser ends the authority (so the host checked is the host connected to).
_AUTHORITY_END = re.compile(r"[/\\?#]")


class TargetMismatch(http.client.HTTPException):
    """A connection was handed an exact target that is not the one urllib3 derived from
    the same URL (up to the case of escapes): nothing is sent rather than either."""


def request_target(url: str) -> str:
    """The request target of an absolute URL as written: what follows the authority, up
    to ``#``; ``/`` when that is empty or starts with the query (RFC 9112 section 3.2.1).

    >>> request_target("http://store:8080/b/%c3%bc.txt?X-Amz-Signature=ab#frag")
    '/b/%c3%bc.txt?X-Amz-Signature=ab'
    """
    rest = url.partition("://")[2]
    end = _AUTHORITY_END.search(rest)
    target = rest[end.start() :].partition("#")[0] if end is not None else ""
    return target if target.startswith("/") else "/" + target


def target_problem(target: str) -> str | None:
    """Why ``target`` cannot be sent as written, with the fix; None when it can."""
    path, _, query = target.partition("?")
    for part, where, forbidden in ((path, "path", _NOT_IN_PATH), (query, "query", _NOT_IN_QUERY)):
        found = forbidden.search(part)
        if found is None:
            continue
        if found.group() == "%":
            bad = part[found.start() : found.start() + 3]
            return (
                f"has {bad!r} in its {where}: a % must start an escape of two hex digits "
                "(a literal % is written %25)"
            )
        escaped = "".join(f"%{byte:02X}" for byte in found.group().encode("utf-8"))
        return (
            f"has {found.group()!r} in its {where}, which RFC 3986 does not allow there "
            f"(write it as {escaped}): it cannot be sent as written"
        )
    return None


def upper_escapes(target: str) -> str:
    """``target`` with its escapes upper-cased: what urllib3 sends for a valid target."""
    if "%" not in target:
        return target
    return _ESCAPE.sub(lambda escape: escape.group().upper(), target)
