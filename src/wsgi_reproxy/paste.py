"""PasteDeploy: ``use = egg:wsgi-reproxy`` in a ``[filter:...]`` section (SPEC R1.4).

Every constructor option can be given as a string::

    [filter:reproxy]
    use = egg:wsgi-reproxy
    allow = /downloads /media/*.iso re:^/v[0-9]+/blobs/
    deny = /downloads/private
    preserve = Content-Type Content-Disposition
    upstream_hosts = store-*.internal 10.1.2.3:8080
    timeout = connect=2 read=60
    chunk_size = 256K
    max_urls = 4
    resume = true
    refuse_local = false
    pool_maxsize = 32
    hide = Server X-Pad X-Accel-* X-Amz-*
    observer = wsgi_reproxy.prometheus:PrometheusObserver
    cache = redis://127.0.0.1:6379/0
    cache_max_age = 600
    file_roots = /srv/files /var/cache/thumbnails

Lists are whitespace-separated.  A rule written ``re:PATTERN`` is a regex; one written
``call:package.module:function`` is a callable rule imported by name.  ``timeout`` is a
number of seconds or ``connect=N read=N``.  ``pool_maxsize`` and ``pool_block`` build the
middleware's own pool.  ``cache`` is ``memory`` or ``memory:MAXSIZE`` (a
``MemoryCache``), a ``redis://``, ``rediss://`` or ``unix://`` URL (a ``RedisCache``), or
``module:attribute`` (a backend object, or a class instantiated once); ``cache_key`` is
``module:function``.  ``file_roots`` lists absolute directories (paths with a space
cannot be written here).  A bad value raises ValueError naming the option, when the ini file
is loaded.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from typing import Any
from wsgiref.types import WSGIApplication

import urllib3

from .middleware import ReproxyMiddleware
from .paste_defaults import dropped_by_paste

__all__ = ["filter_app_factory", "options_from_strings"]

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_SIZE = re.compile(r"([0-9]+)\s*([kKmM]?)(?:i?[bB])?")


def _boolean(value: str, option: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE or lowered in _FALSE:
        return lowered in _TRUE
    raise ValueError(f"{option} = {value!r}: expected true or false")


def _size(value: str, option: str) -> int:
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"{option} = {value!r}: expected a number of bytes such as 65536 or 64K")
    factor = {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2).lower()]
    return int(match.group(1)) * factor


def _integer(value: str, option: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError(f"{option} = {value!r}: expected an integer") from None


def _timeout(value: str, option: str = "timeout") -> float | urllib3.Timeout:
    parts = dict(part.partition("=")[::2] for part in value.split())
    try:
        if len(parts) == 1 and "" in parts.values() and value.strip() in parts:
            return float(value)
        unknown = set(parts) - {"connect", "read"}
        if unknown or not parts:
            raise ValueError
        # A side left out keeps its default: urllib3 would otherwise wait forever on it.
        seconds = {"connect": 5.0, "read": 30.0}
        seconds.update((name, float(value)) for name, value in parts.items())
        return urllib3.Timeout(**seconds)
    except ValueError:
        raise ValueError(
            f"{option} = {value!r}: expected seconds (30) or 'connect=5 read=30'"
        ) from None


def _rule(token: str, option: str) -> object:
    if token.startswith("re:"):
        try:
            return re.compile(token[3:])
        except re.error as error:
            raise ValueError(f"{option}: bad regex {token!r}: {error}") from None
    if token.startswith("call:"):
        module_name, _, attribute = token[5:].partition(":")
        try:
            return getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError, ValueError) as error:
            raise ValueError(f"{option}: cannot import {token!r}: {error}") from None
    return token


def _rules(value: str, option: str) -> list[object]:
    return [_rule(token, option) for token in value.split()]


def _words(value: str, option: str) -> list[str]:
    return value.split()


def _cache(value: str, option: str) -> object:
    """``cache = memory:10000``, ``cache = redis://host:6379/0`` or ``module:attribute``."""
    text = value.strip()
    kind, _, rest = text.partition(":")
    if kind == "memory":
        from .cache import MemoryCache

        return MemoryCache(_integer(rest, option)) if rest else MemoryCache()
    if kind in ("redis", "rediss", "unix"):
        from .redis_cache import RedisCache

        return RedisCache.from_url(text)
    return _named(value, option, instantiate=True)


def _named(value: str, option: str, *, instantiate: bool) -> object:
    """The object named ``module:attribute`` (``call:`` in front is allowed, as for
    rules), instantiated once when asked to and it is a class; empty: None."""
    name = value.strip().removeprefix("call:")
    if not name:
        return None
    module_name, _, attribute = name.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(f"{option}: cannot import {value.strip()!r}: {error}") from None
    return found() if instantiate and isinstance(found, type) else found


def _cache_key(value: str, option: str) -> object:
    """``cache_key = myapp.cache:key_by_user``: the function named."""
    return _named(value, option, instantiate=False)


def _observer(value: str, option: str) -> object:
    """``observer = wsgi_reproxy.prometheus:PrometheusObserver``: the object named
    ``module:attribute`` (``call:`` in front is allowed, as for rules), or an instance of
    it when it is a class -- an observer is called with each report, a class would only
    be constructed with it.  Empty: no observer."""
    return _named(value, option, instantiate=True)


# Every option an ini file may set, and how its string becomes the constructor's value.
_CONVERTERS: dict[str, Callable[[str, str], Any]] = {
    "allow": _rules,
    "deny": _rules,
    "preserve": _words,
    "forward": _words,
    "upstream_hosts": _words,
    "hide": _words,
    "observer": _observer,
    "cache": _cache,
    "cache_key": _cache_key,
    "cache_max_age": _integer,
    "file_roots": _words,
    "timeout": _timeout,
    "chunk_size": _size,
    "max_urls": _integer,
    "pool_maxsize": _integer,
    "resume": _boolean,
    "refuse_local": _boolean,
    "pool_block": _boolean,
}


def options_from_strings(conf: Mapping[str, str]) -> dict[str, Any]:
    """Turn ini-file strings into ReproxyMiddleware keyword arguments."""
    options: dict[str, Any] = {}
    for option, value in conf.items():
        convert = _CONVERTERS.get(option)
        if convert is None:
            raise ValueError(f"unknown wsgi-reproxy option {option!r}")
        options[option] = convert(value, option)
    return options


def filter_app_factory(
    app: WSGIApplication, global_conf: Mapping[str, str], **local_conf: str
) -> ReproxyMiddleware:
    """``paste.filter_app_factory`` entry point ``main``: wrap ``app`` with the options of
    the ``[filter:...]`` section (``global_conf`` is not used: options are per filter).

    PasteDeploy drops a section's own option when ``[DEFAULT]`` has one of the same name,
    so ``timeout`` in both would silently leave the filter with the built-in default.
    Such an option, set in a wsgi-reproxy section of the ini file, is refused (unless the
    section takes the ``[DEFAULT]`` value with ``get timeout = timeout``); a ``[DEFAULT]``
    value meant for the app, with no value of the filter's own, is fine.
    """
    shadowed = _CONVERTERS.keys() & set(global_conf) - set(local_conf)
    if shadowed:
        lost = dropped_by_paste(global_conf.get("__file__"), shadowed, local_conf, set(_CONVERTERS))
        if lost:
            name = sorted(lost)[0]
            raise ValueError(
                f"wsgi-reproxy option(s) {', '.join(sorted(lost))} also set in [DEFAULT] "
                f"(or given with 'set'): PasteDeploy then withholds the filter section's "
                f"own value from it; "
                f"write plain '{name} = ...' with a [DEFAULT] key of another name, or "
                f"'get {name} = {name}' to use the [DEFAULT] value"
            )
    return ReproxyMiddleware(app, **options_from_strings(local_conf))
