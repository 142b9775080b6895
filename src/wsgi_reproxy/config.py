"""Checks for constructor options: each returns the normalised value or raises with what to fix.

Bad configuration must fail at import time of the WSGI module, in ``__init__``, never at
request time (SPEC R1.1); the same checks serve the PasteDeploy factory, whose options
arrive as strings.
"""

from __future__ import annotations

import urllib3

from .headers import TOKEN
from .rules import ensure_collection

__all__ = ["header_names", "positive_int", "timeout_option"]


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


def positive_int(value: object, option: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{option} must be an int, not {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{option} must be positive, not {value}")
    return value


def timeout_option(value: object) -> urllib3.Timeout:
    if isinstance(value, urllib3.Timeout):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"timeout must be a number of seconds or a urllib3.Timeout, not {value!r}")
    if not value > 0:
        raise ValueError(f"timeout must be positive, not {value}")
    return urllib3.Timeout(connect=float(value), read=float(value))
