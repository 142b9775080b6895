"""Decisions shared by every worker and host through Redis (SPEC R8.1; extra ``[redis]``).

perlbal keeps its decisions per process; here one Redis serves every worker of every
host, so a decision made once is a hit everywhere.  Redis expires entries itself
(``SET ... EX``).  Give the client short timeouts: a Redis that is down or slow costs
each request at most one timeout, then the middleware stops asking it for a moment
(:mod:`wsgi_reproxy.decision_cache`) and serves misses.  Each process also keeps what it
read for a second (``local_seconds``): a round trip through redis-py costs about as much
CPU as the fetch it saves a view for, and a hot decision need not pay it every time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .cache import MAX_ENTRY_BYTES, MemoryCache, check_entry_size

if TYPE_CHECKING:
    import redis

__all__ = ["DEFAULT_LOCAL_SECONDS", "DEFAULT_PREFIX", "RedisCache"]

DEFAULT_PREFIX = "wsgi-reproxy:"
# A request waits at most this long for Redis before going on as a miss (from_url).
DEFAULT_SOCKET_TIMEOUT = 0.25
# What each process keeps of what it read from Redis: a hot decision is asked of Redis
# once a second at most, and a process holds at most this many of them.
DEFAULT_LOCAL_SECONDS = 1.0
LOCAL_MAXSIZE = 1000


class RedisCache:
    """Decisions kept in Redis under ``prefix + key``.

    :param client: a ``redis.Redis`` (or anything with its ``get``, ``set(name, value,
        ex=)`` and ``delete``); build it with ``socket_timeout`` and
        ``socket_connect_timeout`` of a fraction of a second, or use :meth:`from_url`.
    :param prefix: put before every key, so that several applications (or versions of
        one) can share a Redis without reading each other's decisions.
    :param local_seconds: how long this process keeps what it read from or wrote to Redis
        (a near cache of :data:`LOCAL_MAXSIZE` entries), so that a hot decision costs no
        round trip to Redis on every request.  The price: a decision deleted or changed
        in Redis may still be served by another process for that long (each process
        that finds its URLs failing deletes it and asks the app, SPEC R8.6).  ``0``
        turns it off.
    :param clock: seconds, monotonic, for the near cache (tests pass their own).
    """

    __slots__ = ("_local", "client", "local_seconds", "prefix")

    def __init__(
        self,
        client: redis.Redis | Any,
        prefix: str = DEFAULT_PREFIX,
        *,
        local_seconds: float = DEFAULT_LOCAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for method in ("get", "set", "delete"):
            if not callable(getattr(client, method, None)):
                raise TypeError(f"client must be a redis.Redis, not {type(client).__name__}")
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        if isinstance(local_seconds, bool) or not isinstance(local_seconds, (int, float)):
            raise TypeError(f"local_seconds must be a number, not {local_seconds!r}")
        if local_seconds < 0:
            raise ValueError(f"local_seconds must be 0 or more, not {local_seconds!r}")
        self.client = client
        self.prefix = prefix
        self.local_seconds = local_seconds
        self._local = MemoryCache(LOCAL_MAXSIZE, clock=clock) if local_seconds else None

    @classmethod
    def from_url(
        cls, url: str, prefix: str = DEFAULT_PREFIX, *, local_seconds: float = DEFAULT_LOCAL_SECONDS
    ) -> RedisCache:
        """A cache on the Redis at ``url`` (``redis://host:6379/0``, ``unix:///path``), with
        timeouts of :data:`DEFAULT_SOCKET_TIMEOUT` seconds."""
        import redis  # the [redis] extra: imported only when asked for

        client = redis.Redis.from_url(
            url,
            socket_timeout=DEFAULT_SOCKET_TIMEOUT,
            socket_connect_timeout=DEFAULT_SOCKET_TIMEOUT,
        )
        return cls(client, prefix, local_seconds=local_seconds)

    def __repr__(self) -> str:
        return (
            f"RedisCache({self.client!r}, prefix={self.prefix!r}, "
            f"local_seconds={self.local_seconds!r})"
        )

    def get(self, key: str) -> bytes | None:
        local = self._local
        if local is not None:
            kept = local.get(key)
            if kept is not None:
                return kept
        value = self._remote_get(key)
        if local is not None and value is not None and len(value) <= MAX_ENTRY_BYTES:
            local.set(key, value, self.local_seconds)
        return value

    def _remote_get(self, key: str) -> bytes | None:
        value = self.client.get(self.prefix + key)
        if value is None or isinstance(value, bytes):
            return value
        if isinstance(value, str):  # a client built with decode_responses=True
            return value.encode("utf-8", "surrogateescape")
        raise TypeError(f"Redis returned a {type(value).__name__}, not bytes")

    def set(self, key: str, value: bytes, ttl: int) -> None:
        check_entry_size(value)
        self.client.set(self.prefix + key, value, ex=ttl)
        if self._local is not None:
            self._local.set(key, value, min(ttl, self.local_seconds))

    def delete(self, key: str) -> None:
        if self._local is not None:
            self._local.delete(key)
        self.client.delete(self.prefix + key)
