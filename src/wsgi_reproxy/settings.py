"""Every option of :class:`~wsgi_reproxy.ReproxyMiddleware`, checked once (SPEC R1.1).

Bad configuration must fail when the WSGI module is imported, never on a request, so
:meth:`Settings.build` runs each option through its check (:mod:`wsgi_reproxy.config`)
and returns one frozen value that the middleware, each request's exchange and the
upstream share without copying.  A new option is one field, one line in :data:`Options`
and one check in :meth:`Settings.build`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypedDict, Unpack

import urllib3

from .cache import CacheBackend
from .config import (
    cache_option,
    flag,
    forward_option,
    hide_option,
    observer_option,
    positive_int,
    preserve_option,
    timeout_option,
)
from .decision_cache import DEFAULT_CACHE_MAX_AGE, CacheKey, DecisionCache, default_cache_key
from .file_roots import FileRoots
from .headers import environ_key
from .hosts import HostPatterns
from .pool_option import pool_maxsize, pool_option
from .report import Observer
from .rules import RuleSet, compile_rules, ensure_collection
from .target_headers import HiddenHeaders

__all__ = [
    "DEFAULTS",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_FORWARD",
    "DEFAULT_HIDE",
    "DEFAULT_MAX_URLS",
    "DEFAULT_TIMEOUT",
    "FIRST_PIECE_SIZE",
    "Options",
    "Settings",
]

DEFAULT_FORWARD = (
    "Range",
    "If-Range",
    "If-Modified-Since",
    "If-Unmodified-Since",
    "If-None-Match",
    "If-Match",
    "Accept-Encoding",
)
# What nginx hides from a proxied response by default (proxy_hide_header): the storage's
# software and version, and its own X-Accel-* controls (SPEC R6.7).
DEFAULT_HIDE = ("Server", "X-Pad", "X-Accel-*")
DEFAULT_TIMEOUT = urllib3.Timeout(connect=5.0, read=30.0)
# A body's pieces start at FIRST_PIECE_SIZE (a small file costs one small read, and a body
# of unknown length up to it is read whole before the response starts) and double with
# each read that fills its piece, up to chunk_size: a 1 GiB body then makes a few thousand
# server writes instead of sixteen thousand (docs/performance.rst).
FIRST_PIECE_SIZE = 64 * 1024
DEFAULT_CHUNK_SIZE = 1024 * 1024
DEFAULT_MAX_URLS = 8


class Options(TypedDict, total=False):
    """The keyword-only options, as ``ReproxyMiddleware(app, allow, preserve, **options)``
    takes them; :data:`DEFAULTS` holds what an option left out is."""

    deny: Iterable[object]
    upstream_hosts: Iterable[str] | None
    forward: Iterable[str]
    timeout: float | urllib3.Timeout
    pool: urllib3.PoolManager | None
    pool_maxsize: int | None
    pool_block: bool
    chunk_size: int
    max_urls: int
    resume: bool
    refuse_local: bool
    hide: Iterable[str]
    observer: Observer | None
    cache: CacheBackend | None
    cache_key: CacheKey | None
    cache_max_age: int
    file_roots: Iterable[str | os.PathLike[str]] | None


DEFAULTS: Options = {
    "deny": (),
    "upstream_hosts": None,
    "forward": DEFAULT_FORWARD,
    "timeout": DEFAULT_TIMEOUT,
    "pool": None,
    "pool_maxsize": None,
    "pool_block": False,
    "chunk_size": DEFAULT_CHUNK_SIZE,
    "max_urls": DEFAULT_MAX_URLS,
    "resume": True,
    "refuse_local": False,
    "hide": DEFAULT_HIDE,
    "observer": None,
    "cache": None,
    "cache_key": None,
    "cache_max_age": DEFAULT_CACHE_MAX_AGE,
    "file_roots": None,
}


@dataclass(frozen=True, slots=True)
class Settings:
    """The checked options, and what requests derive from them, computed once."""

    allow: RuleSet
    preserve: tuple[str, ...]
    deny: RuleSet
    upstream_hosts: HostPatterns | None
    forward: tuple[str, ...]
    timeout: urllib3.Timeout
    pool: urllib3.PoolManager
    pool_maxsize: int | None  # None: the pool was given, not built
    pool_block: bool
    chunk_size: int
    max_urls: int
    resume: bool
    refuse_local: bool
    hide: HiddenHeaders
    observer: Observer | None
    cache: DecisionCache | None
    file_roots: FileRoots | None
    preserved: frozenset[str]  # ``preserve`` in lower case
    forward_keys: tuple[tuple[str, str], ...]  # (header name, environ key)

    @classmethod
    def build(
        cls, allow: Iterable[object] = (), preserve: Iterable[str] = (), **given: Unpack[Options]
    ) -> Settings:
        """Check every option; raises TypeError/ValueError saying what to fix."""
        unknown = sorted(set(given) - set(DEFAULTS))
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(unknown)}")
        options: Options = {**DEFAULTS, **given}
        hosts = _hosts(options["upstream_hosts"])
        roots = _file_roots(options["file_roots"])
        max_urls = positive_int(options["max_urls"], "max_urls")
        timeout = timeout_option(options["timeout"])
        refuse = flag(options["refuse_local"], "refuse_local")
        block = flag(options["pool_block"], "pool_block")
        preserve_names = preserve_option(preserve)
        forward_names = forward_option(options["forward"])
        return cls(
            allow=compile_rules(allow, "allow"),
            preserve=preserve_names,
            deny=compile_rules(options["deny"], "deny"),
            upstream_hosts=hosts,
            forward=forward_names,
            timeout=timeout,
            pool=pool_option(
                options["pool"], options["pool_maxsize"], block, timeout, refuse, hosts
            ),
            pool_maxsize=_own_pool_size(options),
            pool_block=block,
            chunk_size=positive_int(options["chunk_size"], "chunk_size"),
            max_urls=max_urls,
            resume=flag(options["resume"], "resume"),
            refuse_local=refuse,
            hide=hide_option(options["hide"]),
            observer=observer_option(options["observer"]),
            cache=_cache(options, max_urls, hosts, roots),
            file_roots=roots,
            preserved=frozenset(name.lower() for name in preserve_names),
            forward_keys=tuple((name, environ_key(name)) for name in forward_names),
        )

    def constructor_form(self) -> str:
        """The options as keyword arguments, as they would be written (R7.3)."""
        hosts = None if self.upstream_hosts is None else list(self.upstream_hosts.patterns)
        pool = (
            f"pool={self.pool!r}"
            if self.pool_maxsize is None
            else f"pool_maxsize={self.pool_maxsize!r}, pool_block={self.pool_block!r}"
        )
        return (
            f"allow={self.allow!r}, preserve={list(self.preserve)!r}, deny={self.deny!r}, "
            f"upstream_hosts={hosts!r}, forward={list(self.forward)!r}, "
            f"timeout={self.timeout!r}, {pool}, chunk_size={self.chunk_size!r}, "
            f"max_urls={self.max_urls!r}, resume={self.resume!r}, "
            f"refuse_local={self.refuse_local!r}, hide={list(self.hide.patterns)!r}, "
            f"observer={self.observer!r}{self._cache_form()}"
            + ("" if self.file_roots is None else f", file_roots={self.file_roots!r}")
        )

    def _cache_form(self) -> str:
        if self.cache is None:
            return ""
        key = "" if self.cache.key is default_cache_key else f", cache_key={self.cache.key!r}"
        return f", cache={self.cache.backend!r}{key}, cache_max_age={self.cache.max_age!r}"


def _hosts(upstream_hosts: Iterable[str] | None) -> HostPatterns | None:
    if upstream_hosts is None:
        return None
    return HostPatterns(ensure_collection(upstream_hosts, "upstream_hosts"))


def _own_pool_size(options: Options) -> int | None:
    """The middleware's own pool's size; None when a pool was given."""
    return None if options["pool"] is not None else pool_maxsize(options["pool_maxsize"])


def _file_roots(roots: Iterable[str | os.PathLike[str]] | None) -> FileRoots | None:
    if roots is None:
        return None
    if isinstance(roots, str | bytes | os.PathLike):
        raise TypeError("file_roots must be a list of directories, not one path")
    return FileRoots(ensure_collection(roots, "file_roots"))


def _cache(
    options: Options, max_urls: int, hosts: HostPatterns | None, roots: FileRoots | None
) -> DecisionCache | None:
    backend, key = cache_option(options["cache"], options["cache_key"])
    max_age = positive_int(options["cache_max_age"], "cache_max_age")
    if backend is None:
        return None
    return DecisionCache(
        backend,
        key or default_cache_key,
        max_age,
        max_urls=max_urls,
        hosts=hosts,
        file_roots=roots,
    )
