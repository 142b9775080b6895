"""Checks for constructor options: each returns the normalised value or raises with what to fix.

Bad configuration must fail at import time of the WSGI module, in ``__init__``, never at
request time (SPEC R1.1); the same checks serve the PasteDeploy factory, whose options
arrive as strings.
"""

from __future__ import annotations

import re
import threading

import urllib3

from .headers import FRAMING, HOP_BY_HOP, NEVER_FORWARDED, TOKEN, HiddenHeaders
from .rules import ensure_collection

__all__ = [
    "forward_option",
    "header_globs",
    "header_names",
    "hide_option",
    "positive_int",
    "preserve_option",
    "timeout_option",
]

# A header name, with the glob characters fnmatch knows (``X-Amz-*``, ``X-Cache-?``).
_HEADER_GLOB = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z?\[\]]+")


def _canonical(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


def header_names(
    value: object, option: str, forbidden: frozenset[str], why: str
) -> tuple[str, ...]:
    """Validate a list of header names; return them in canonical case (``if-range`` ->
    ``If-Range``) so later comparisons and environ keys need no more work."""
    names = []
    for name in ensure_collection(value, option):
        if not isinstance(name, str) or not TOKEN.fullmatch(name):
            raise ValueError(f"{option}: {name!r} is not a header name")
        if name.lower() in forbidden or name.lower().startswith("x-reproxy-"):
            raise ValueError(f"{option} may not name {name!r}: {why}")
        names.append(_canonical(name))
    return tuple(names)


def header_globs(value: object, option: str, forbidden: frozenset[str], why: str) -> HiddenHeaders:
    """Validate header names or globs (``hide``); none may cover a ``forbidden`` name
    (``Content-*`` would hide ``Content-Length``)."""
    patterns = []
    for pattern in ensure_collection(value, option):
        if not isinstance(pattern, str) or not _HEADER_GLOB.fullmatch(pattern):
            raise ValueError(f"{option}: {pattern!r} is not a header name or glob")
        patterns.append(pattern)
    hidden = HiddenHeaders(patterns)
    covered = sorted(name for name in forbidden if hidden.covers(name))
    if covered:
        raise ValueError(f"{option} may not hide {', '.join(covered)}: {why}")
    return hidden


def positive_int(value: object, option: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{option} must be an int, not {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{option} must be positive, not {value}")
    return value


def timeout_option(value: object) -> urllib3.Timeout:
    """A ``urllib3.Timeout`` whose every number is a usable wait: positive, and at most
    ``threading.TIMEOUT_MAX`` (infinity or 1e300 would be accepted here and then fail
    every request, deep in the socket layer, with ``OverflowError``)."""
    if isinstance(value, urllib3.Timeout):
        for side in ("_connect", "_read", "total"):  # None: no limit on that side
            _check_seconds(getattr(value, side, None), f"timeout's {side.lstrip('_')}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"timeout must be a number of seconds or a urllib3.Timeout, not {value!r}")
    _check_seconds(value, "timeout")
    return urllib3.Timeout(connect=float(value), read=float(value))


def _check_seconds(value: object, what: str) -> None:
    if isinstance(value, int | float) and not 0 < value <= threading.TIMEOUT_MAX:
        raise ValueError(
            f"{what} must be positive and at most {threading.TIMEOUT_MAX:.0f} seconds, not {value}"
        )


def preserve_option(value: object) -> tuple[str, ...]:
    return header_names(
        value,
        "preserve",
        FRAMING | HOP_BY_HOP,
        "framing, hop-by-hop and X-Reproxy-* headers always come from the target",
    )


def forward_option(value: object) -> tuple[str, ...]:
    return header_names(
        value,
        "forward",
        NEVER_FORWARDED,
        "Host comes from the URL; Cookie, Authorization and hop-by-hop headers never leave",
    )


def hide_option(value: object) -> HiddenHeaders:
    return header_globs(
        value, "hide", FRAMING, "the framing headers describe the bytes the client gets"
    )
