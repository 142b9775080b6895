"""Decisions shared by every worker and host through Redis (SPEC R8.1; extra ``[redis]``).

perlbal keeps its decisions per process; here one Redis serves every worker of every
host, so a decision made once is a hit everywhere.  Redis expires entries itself
(``SET ... EX``).  Give the client short timeouts: a Redis that is down or slow costs
each request at most one timeout, then the middleware stops asking it for a moment
(:mod:`wsgi_reproxy.decision_cache`) and serves misses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .cache import check_entry_size

if TYPE_CHECKING:
    import redis

__all__ = ["DEFAULT_PREFIX", "RedisCache"]

DEFAULT_PREFIX = "wsgi-reproxy:"
# A request waits at most this long for Redis before going on as a miss (from_url).
DEFAULT_SOCKET_TIMEOUT = 0.25


class RedisCache:
    """Decisions kept in Redis under ``prefix + key``.

    :param client: a ``redis.Redis`` (or anything with its ``get``, ``set(name, value,
        ex=)`` and ``delete``); build it with ``socket_timeout`` and
        ``socket_connect_timeout`` of a fraction of a second, or use :meth:`from_url`.
    :param prefix: put before every key, so that several applications (or versions of
        one) can share a Redis without reading each other's decisions.
    """

    __slots__ = ("client", "prefix")

    def __init__(self, client: redis.Redis | Any, prefix: str = DEFAULT_PREFIX) -> None:
        for method in ("get", "set", "delete"):
            if not callable(getattr(client, method, None)):
                raise TypeError(f"client must be a redis.Redis, not {type(client).__name__}")
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_PREFIX) -> RedisCache:
        """A cache on the Redis at ``url`` (``redis://host:6379/0``, ``unix:///path``), with
        timeouts of :data:`DEFAULT_SOCKET_TIMEOUT` seconds."""
        import redis  # the [redis] extra: imported only when asked for

        client = redis.Redis.from_url(
            url,
            socket_timeout=DEFAULT_SOCKET_TIMEOUT,
            socket_connect_timeout=DEFAULT_SOCKET_TIMEOUT,
        )
        return cls(client, prefix)

    def __repr__(self) -> str:
        return f"RedisCache({self.client!r}, prefix={self.prefix!r})"

    def get(self, key: str) -> bytes | None:
        value = self.client.get(self.prefix + key)
        if value is None or isinstance(value, bytes):
            return value
        if isinstance(value, str):  # a client built with decode_responses=True
            return value.encode("utf-8", "surrogateescape")
        raise TypeError(f"Redis returned a {type(value).__name__}, not bytes")

    def set(self, key: str, value: bytes, ttl: int) -> None:
        check_entry_size(value)
        self.client.set(self.prefix + key, value, ex=ttl)

    def delete(self, key: str) -> None:
        self.client.delete(self.prefix + key)
