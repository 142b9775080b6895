"""Checks for constructor options: each returns the normalised value or raises with what to fix.

Bad configuration must fail at import time of the WSGI module, in ``__init__``, never at
request time (SPEC R1.1); the same checks serve the PasteDeploy factory, whose options
arrive as strings.
"""

from __future__ import annotations

import threading

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
