"""Where decisions are kept: the backend interface, and the in-process one (SPEC R8.1, R8.7).

A backend stores opaque bytes under a text key for some seconds.  It holds outside input
as far as the middleware is concerned -- an entry read back is checked again like a
fresh directive (:mod:`wsgi_reproxy.cached_decision`) -- and it may fail: whatever it
raises becomes a miss (:mod:`wsgi_reproxy.decision_cache`).  Shared backends:
:class:`wsgi_reproxy.redis_cache.RedisCache`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["MAX_ENTRY_BYTES", "CacheBackend", "MemoryCache", "check_entry_size"]

# perlbal's entries are a few header lines; 16 KiB holds max_urls long presigned URLs and
# the preserved headers, and bounds what a backend can make a worker hold (R8.7).
MAX_ENTRY_BYTES = 16 * 1024


def check_entry_size(value: bytes) -> None:
    """Refuse an entry over :data:`MAX_ENTRY_BYTES` (the backends' side of the bound)."""
    if len(value) > MAX_ENTRY_BYTES:
        raise ValueError(f"entry of {len(value)} bytes is over {MAX_ENTRY_BYTES}")


@runtime_checkable
class CacheBackend(Protocol):
    """What ``cache=`` takes: three methods, any of which may raise (a miss then)."""

    def get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or None when there is none (or it expired)."""

    def set(self, key: str, value: bytes, ttl: int) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (a positive integer)."""

    def delete(self, key: str) -> None:
        """Forget ``key``; no error when it is not there."""


class MemoryCache:
    """Decisions kept in this process: least recently used first out, each for its TTL.

    Thread-safe (one lock around a dict: a lookup is well under a microsecond of work).
    Each worker process holds its own; share decisions between workers and hosts with
    :class:`~wsgi_reproxy.redis_cache.RedisCache`.

    :param maxsize: how many entries are kept at most; memory stays under
        ``maxsize * 17 KiB`` (entries are at most 16 KiB, keys at most 1 KiB).
    :param clock: seconds, monotonic (tests pass their own).
    """

    __slots__ = ("_clock", "_entries", "_lock", "maxsize")

    def __init__(self, maxsize: int = 10_000, *, clock: Callable[[], float] = time.monotonic):
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be a positive int, not {maxsize!r}")
        self.maxsize = maxsize
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryCache(maxsize={self.maxsize})"

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, value = entry
            if expires <= self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def set(self, key: str, value: bytes, ttl: float) -> None:
        check_entry_size(value)
        expires = self._clock() + ttl
        with self._lock:
            self._entries[key] = (expires, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget every decision (after moving files, say)."""
        with self._lock:
            self._entries.clear()
