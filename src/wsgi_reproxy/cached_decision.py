"""A decision as it is kept in a cache, and the header that asks for it (SPEC R8.1-R8.5).

The app says ``X-Reproxy-Cache-For: SECONDS[; Header-Name ...]`` (perlbal's format) beside
its ``X-Reproxy-Url``.  What is kept is the app's answer in small: the URLs that were
valid, the expected size, and the app's values of the listed and the ``preserve``
headers.  A hit replays it as the app's headers, so it goes through the very checks a
fresh directive goes through (URLs, ``upstream_hosts``, ``max_urls``): a backend's bytes
are outside input, and Redis is shared with whoever else can write to it.  Pure
functions: no I/O here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .cache import MAX_ENTRY_BYTES
from .digest import DIGEST_HEADER
from .directive import FILE_HEADER, SIZE_HEADER, URL_HEADER, Directive
from .headers import REPROXY_PREFIX, TOKEN

__all__ = [
    "CACHE_FOR_HEADER",
    "CacheFor",
    "CorruptEntry",
    "decode_entry",
    "encode_entry",
    "parse_cache_for",
]

CACHE_FOR_HEADER = "x-reproxy-cache-for"
ENTRY_VERSION = 1

# SECONDS, then optionally ";" and header names separated by blanks or commas.
_CACHE_FOR = re.compile(r"[ \t]*([0-9]{1,10})[ \t]*(?:;(.*))?", re.DOTALL)
_NAME_SEPARATORS = re.compile(r"[ \t,]+")
# A value a WSGI server may send: no CR, LF, NUL or other control but tab (CWE-113).
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# A cookie is one user's: a shared decision must never hand it to another (RFC 9111 §7.3
# lets shared caches store Set-Cookie; CDNs strip it, and so do we).
NEVER_STORED = frozenset({"set-cookie", "set-cookie2"})
# The directive's own headers, the only X-Reproxy-* an entry holds.
DIRECTIVE_HEADERS = frozenset({URL_HEADER, FILE_HEADER, SIZE_HEADER, DIGEST_HEADER})


class CorruptEntry(ValueError):
    """An entry read back is not one this module wrote, or no longer valid."""


@dataclass(frozen=True, slots=True)
class CacheFor:
    """What ``X-Reproxy-Cache-For`` asked: for how long, and which app headers to keep."""

    seconds: int
    headers: frozenset[str]  # lower-case names


def parse_cache_for(value: str) -> CacheFor | str:
    """The header's meaning, or why it has none (a str, for the WARNING of R8.2)."""
    match = _CACHE_FOR.fullmatch(value)
    if match is None:
        return f"{value!r} is not SECONDS[; Header-Name ...]"
    seconds = int(match.group(1))
    if seconds < 1:
        return f"{value!r}: SECONDS must be a positive integer"
    names = [name for name in _NAME_SEPARATORS.split(match.group(2) or "") if name]
    bad = [name for name in names if TOKEN.fullmatch(name) is None]
    if bad:
        return f"{value!r}: {bad[0]!r} is not a header name"
    return CacheFor(seconds, frozenset(name.lower() for name in names))


def encode_entry(
    directive: Directive,
    app_headers: Sequence[tuple[str, str]],
    keep: frozenset[str],
) -> bytes | None:
    """The entry for ``directive`` with the app's headers named in ``keep`` (lower case);
    None when it would be over :data:`~wsgi_reproxy.cache.MAX_ENTRY_BYTES`."""
    headers = []
    if directive.file is not None:
        headers.append([FILE_HEADER, directive.file])
    if directive.urls:
        headers.append([URL_HEADER, " ".join(directive.urls)])
    if directive.expected_size is not None:
        headers.append([SIZE_HEADER, str(directive.expected_size)])
    if directive.digest is not None:
        headers.append([DIGEST_HEADER, directive.digest.field_value()])
    for name, value in app_headers:
        lowered = name.lower()
        if (
            lowered in keep
            and lowered not in NEVER_STORED
            and not lowered.startswith(REPROXY_PREFIX)  # the directive is stored above
            and _is_header(name, value)
        ):
            headers.append([name, value])
    entry = json.dumps({"v": ENTRY_VERSION, "h": headers}, separators=(",", ":")).encode()
    return entry if len(entry) <= MAX_ENTRY_BYTES else None


def decode_entry(entry: object) -> list[tuple[str, str]]:
    """The app headers an entry stands for, checked for shape, names and values; the
    directive in them is checked by the caller like any other (R8.5)."""
    if not isinstance(entry, bytes) or len(entry) > MAX_ENTRY_BYTES:
        raise CorruptEntry("not bytes of at most 16 KiB")
    try:
        decoded = json.loads(entry)
    except ValueError as error:  # JSON or UTF-8
        raise CorruptEntry(f"not JSON: {error}") from None
    if not isinstance(decoded, dict) or decoded.get("v") != ENTRY_VERSION:
        raise CorruptEntry("not an entry of this version")
    raw = decoded.get("h")
    if not isinstance(raw, list) or not raw:
        raise CorruptEntry("no headers")
    headers: list[tuple[str, str]] = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == 2 and _is_header(*item)):
            raise CorruptEntry(f"bad header {item!r:.80}")
        name, value = item
        lowered = name.lower()
        if lowered in NEVER_STORED or (
            lowered.startswith(REPROXY_PREFIX) and lowered not in DIRECTIVE_HEADERS
        ):
            raise CorruptEntry(f"header {name!r} is never stored")
        headers.append((name, value))
    if headers[0][0] not in (URL_HEADER, FILE_HEADER):
        raise CorruptEntry("no X-Reproxy-Url or X-Reproxy-File first")
    return headers


def _is_header(name: object, value: object) -> bool:
    """A name and value a WSGI app could have sent: a token, and Latin-1 text without
    control characters."""
    if not (isinstance(name, str) and isinstance(value, str)):
        return False
    if TOKEN.fullmatch(name) is None or _BAD_VALUE.search(value):
        return False
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True
