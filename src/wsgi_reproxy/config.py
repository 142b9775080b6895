"""Checks for constructor options: each returns the normalised value or raises with what to fix.

Bad configuration must fail at import time of the WSGI module, in ``__init__``, never at
request time (SPEC R1.1); the same checks serve the PasteDeploy factory, whose options
arrive as strings.
"""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

import urllib3

from .headers import FRAMING, HOP_BY_HOP, NEVER_FORWARDED, TOKEN
from .target_headers import HiddenHeaders

__all__ = [
    "cache_option",
    "ensure_collection",
    "flag",
    "forward_option",
    "header_globs",
    "header_names",
    "hide_option",
    "observer_option",
    "one_argument_callable",
    "positive_int",
    "preserve_option",
    "timeout_option",
]

# A header name, with the glob characters fnmatch knows (``X-Amz-*``, ``X-Cache-?``).
_HEADER_GLOB = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z?\[\]]+")


def ensure_collection(value: object, option: str) -> list[Any]:
    """Refuse a bare string where a collection is expected: ``allow="/x"`` is a bug."""
    if isinstance(value, str | bytes | bytearray):
        raise TypeError(
            f"{option} must be a list of values, not a single {type(value).__name__}"
            f" ({option}=[{value!r}] is probably what you meant)"
        )
    if not isinstance(value, Iterable):
        raise TypeError(f"{option} must be a list of values, not {type(value).__name__}")
    return list(value)


def one_argument_callable(func: Callable[..., object], what: str, form: str) -> None:
    """Refuse a callable that cannot be called with one argument: it would fail every
    request with a 500 instead of failing here (R7.3)."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return  # no signature to read (some builtins): trust it
    try:
        signature.bind(None)
    except TypeError:
        raise TypeError(
            f"{what}: {func!r} cannot be called with one argument: define it as {form}"
        ) from None


def flag(value: object, option: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{option} must be True or False, not {value!r}")
    return value


def observer_option(value: object) -> Callable[[Any], object] | None:
    """``observer``: None, or a callable taking the request's report (R7.4)."""
    if value is None:
        return None
    if not callable(value):
        raise TypeError(f"observer must be a callable(report), not {type(value).__name__}")
    one_argument_callable(value, "observer", "observer(report)")
    return value


def cache_option(backend: object, key: object) -> tuple[Any, Any]:
    """``cache`` (None, or an object with get/set/delete: SPEC R8.1) and ``cache_key``
    (None, or ``callable(environ) -> str | None``)."""
    if backend is not None:
        missing = [
            name for name in ("get", "set", "delete") if not callable(getattr(backend, name, None))
        ]
        if missing:
            raise TypeError(
                f"cache must be a MemoryCache, a RedisCache or an object with get, set and "
                f"delete methods; {type(backend).__name__} has no {', '.join(missing)}"
            )
    if key is not None:
        if not callable(key):
            raise TypeError(f"cache_key must be a callable(environ), not {type(key).__name__}")
        one_argument_callable(key, "cache_key", "cache_key(environ)")
        if backend is None:
            raise ValueError("cache_key needs cache=: pass cache=MemoryCache() or RedisCache(...)")
    return backend, key


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
