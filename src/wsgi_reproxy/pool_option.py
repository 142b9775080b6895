"""The ``pool``, ``pool_maxsize`` and ``pool_block`` options, which are checked together:
the middleware's own pool is sized by the last two, a pool passed in is the caller's to
size, and ``refuse_local`` needs a pool that checks the addresses it connects to.
"""

from __future__ import annotations

import urllib3

from .config import positive_int
from .hosts import HostPatterns
from .transport.guard import is_guarded
from .transport.pools import DEFAULT_POOL_MAXSIZE, make_pool

__all__ = ["pool_maxsize", "pool_option"]


def pool_maxsize(pool_maxsize: int | None) -> int:
    if pool_maxsize is None:
        return DEFAULT_POOL_MAXSIZE
    return positive_int(pool_maxsize, "pool_maxsize")


def pool_option(
    pool: urllib3.PoolManager | None,
    maxsize: int | None,
    block: bool,
    timeout: urllib3.Timeout,
    refuse_local: bool,
    hosts: HostPatterns | None,
) -> urllib3.PoolManager:
    """The pool given, checked against the other options; else one of our own."""
    if pool is None:
        return make_pool(
            timeout,
            refuse_local=refuse_local,
            allowed=hosts,
            maxsize=pool_maxsize(maxsize),
            block=block,
        )
    if not isinstance(pool, urllib3.PoolManager):
        raise TypeError(f"pool must be a urllib3.PoolManager, not {type(pool).__name__}")
    if maxsize is not None or block:
        raise ValueError(
            "pool_maxsize and pool_block size the middleware's own pool: "
            "with pool=..., size the pool you pass instead"
        )
    if refuse_local and not is_guarded(pool):
        raise ValueError(
            "refuse_local=True needs a pool that checks the addresses it connects to: "
            "pass pool=None, or build yours as ReproxyPoolManager(refuse_local=True, "
            "upstream_hosts=<the middleware's upstream_hosts>, ...)"
        )
    return pool
