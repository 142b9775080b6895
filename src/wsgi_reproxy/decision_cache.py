"""The middleware's use of a decision cache: keys, entries, and a backend that fails
(SPEC R8.2, R8.3, R8.5, R8.7).

A cache is worth having only while it costs less than the view it skips, and it must
never cost a request: anything a backend raises is a miss, logged at WARNING at most
once a minute, and after a failure the backend is left alone for a second, so that a
Redis that is down costs no request a timeout of its own.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from .cache import MAX_ENTRY_BYTES, CacheBackend
from .cached_decision import (
    CACHE_FOR_HEADER,
    CorruptEntry,
    decode_entry,
    encode_entry,
    parse_cache_for,
)
from .directive import Directive, HostPatterns, Rejected, parse_directive
from .file_roots import FileRoots

__all__ = [
    "CACHE_ENVIRON_KEY",
    "DEFAULT_CACHE_MAX_AGE",
    "CacheKey",
    "DecisionCache",
    "default_cache_key",
]

log = logging.getLogger(__name__)

CACHE_ENVIRON_KEY = "wsgi_reproxy.cache"
DEFAULT_CACHE_MAX_AGE = 3600
CacheKey = Callable[[dict[str, Any]], "str | None"]
Kept = tuple[Directive, list[tuple[str, str]]]

# Keys longer than this are hashed: a query string can be as long as a server allows,
# and a MemoryCache must stay bounded by maxsize (R8.7).
MAX_KEY_CHARS = 1024
CHECKED_ENTRIES = 256  # entries whose check is remembered
RETRY_AFTER_FAILURE = 1.0  # seconds the backend is left alone after it failed
WARN_EVERY = 60.0  # seconds between WARNINGs about a failing backend


def default_cache_key(environ: dict[str, Any]) -> str | None:
    """Host, script name, path and query of a GET or HEAD without ``Authorization``
    (R8.3, RFC 9111 §3.5); None for anything else: not cached."""
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD") or "HTTP_AUTHORIZATION" in environ:
        return None
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
    query = environ.get("QUERY_STRING")
    # PATH_INFO is percent-decoded (``/a%3Fb`` is ``/a?b``) and a Host may hold a "/":
    # quoted again, no two requests share a key unless host, path and query are equal.
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    key = _quoted(host, ":[]") + _quoted(path, "/")
    return f"{key}?{query}" if query else key


# What ``quote`` leaves as it is, for each ``safe`` used above: most hosts and paths.
_UNQUOTED = {
    safe: re.compile(rf"[A-Za-z0-9_.\-~{re.escape(safe)}]*").fullmatch for safe in (":[]", "/")
}


def _quoted(text: str, safe: str) -> str:
    """``quote(text, safe=safe)``, without its work when nothing needs quoting."""
    return text if _UNQUOTED[safe](text) is not None else quote(text, safe=safe)


class DecisionCache:
    """``cache=``, ``cache_key=`` and ``cache_max_age=`` at work."""

    __slots__ = (
        "_checked",
        "_failures",
        "_lock",
        "_rest_until",
        "_warn_after",
        "backend",
        "file_roots",
        "hosts",
        "key",
        "max_age",
        "max_urls",
    )

    def __init__(
        self,
        backend: CacheBackend,
        key: CacheKey,
        max_age: int,
        *,
        max_urls: int,
        hosts: HostPatterns | None,
        file_roots: FileRoots | None = None,
    ) -> None:
        self.backend = backend
        self.key = key
        self.max_age = max_age
        self.max_urls = max_urls  # a kept directive is checked as the app's would be
        self.hosts = hosts
        self.file_roots = file_roots
        # Bounded by count and by entry size: at most 256 x 16 KiB held.
        self._checked = functools.lru_cache(maxsize=CHECKED_ENTRIES)(self._check)
        self._lock = threading.Lock()
        self._rest_until = 0.0  # monotonic time before which the backend is not asked
        self._warn_after = 0.0
        self._failures = 0  # since the last WARNING

    def __repr__(self) -> str:
        return repr(self.backend)

    def key_of(self, environ: dict[str, Any]) -> str | None:
        """The request's key, or None: not cached.  A ``cache_key`` that raises or
        returns something other than a str is logged, and the request is not cached."""
        try:
            key = self.key(environ)
        except Exception:
            log.exception("cache_key raised; the request is not cached")
            return None
        if key is None or type(key) is str:
            return _bounded(key)
        log.error("cache_key returned %r, not a str or None; the request is not cached", key)
        return None

    def decision(self, key: str) -> Kept | None:
        """The directive kept under ``key`` and the app headers it came with, checked like a
        fresh one (R8.5); None on a miss, or when the entry is refused and deleted."""
        if self._resting():
            return None
        try:
            entry = self.backend.get(key)
        except Exception as error:
            self._failed("get", error)
            return None
        if entry is None:
            return None
        if type(entry) is not bytes or len(entry) > MAX_ENTRY_BYTES:
            kept: Kept | str = "not bytes of at most 16 KiB"
        else:
            kept = self._checked(entry)
        if isinstance(kept, str):
            self.refuse(key, kept)
            return None
        return kept

    def _check(self, entry: bytes) -> Kept | str:
        """An entry's directive and app headers, or why they may not be used.  Memoised
        per entry (``_checked``): a hot decision comes back as the same bytes request
        after request, and checking it costs about 20 µs."""
        try:
            app_headers = decode_entry(entry)
        except CorruptEntry as error:
            return str(error)
        rejected: list[Rejected] = []
        directive = parse_directive(
            app_headers,
            max_urls=self.max_urls,
            hosts=self.hosts,
            file_roots=self.file_roots,
            rejected=rejected,
        )
        if isinstance(directive, Directive) and not rejected:
            return directive, app_headers
        return rejected[0].reason if rejected else getattr(directive, "reason", "no URL")

    def refuse(self, key: str, reason: str) -> None:
        """A cached entry that may not be used: delete it, and say so (R8.5)."""
        log.warning("cached reproxy decision for %r refused and deleted: %s", key, reason)
        self.forget(key)

    def forget(self, key: str) -> None:
        try:
            self.backend.delete(key)
        except Exception as error:
            self._failed("delete", error)

    def store(
        self,
        key: str,
        directive: Directive,
        app_headers: Sequence[tuple[str, str]],
        preserved: frozenset[str],
    ) -> bool:
        """Keep the app's answer when it asked to with ``X-Reproxy-Cache-For`` (R8.2)."""
        asked = [value for name, value in app_headers if name.lower() == CACHE_FOR_HEADER]
        if not asked:
            return False
        cache_for = parse_cache_for(asked[0])
        if isinstance(cache_for, str):
            log.warning("X-Reproxy-Cache-For ignored, nothing stored: %s", cache_for)
            return False
        entry = encode_entry(directive, app_headers, cache_for.headers | preserved)
        if entry is None:
            log.warning("reproxy decision for %r not stored: over 16 KiB", key)
            return False
        if self._resting():
            return False
        try:
            self.backend.set(key, entry, min(cache_for.seconds, self.max_age))
        except Exception as error:
            self._failed("set", error)
            return False
        return True

    def _resting(self) -> bool:
        return self._rest_until != 0.0 and time.monotonic() < self._rest_until

    def _failed(self, operation: str, error: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            self._rest_until = now + RETRY_AFTER_FAILURE
            self._failures += 1
            if now < self._warn_after:
                return
            failures, self._failures = self._failures, 0
            self._warn_after = now + WARN_EVERY
        log.warning(
            "decision cache %r failed (%s: %s: %s); requests go on as misses "
            "(%d failure(s) since the last warning; the next in %.0f s at the earliest)",
            self.backend,
            operation,
            type(error).__name__,
            error,
            failures,
            WARN_EVERY,
        )


def _bounded(key: str | None) -> str | None:
    if key is None or len(key) <= MAX_KEY_CHARS:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
