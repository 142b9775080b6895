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

Lists are whitespace-separated.  A rule written ``re:PATTERN`` is a regex; one written
``call:package.module:function`` is a callable rule imported by name.  ``timeout`` is a
number of seconds or ``connect=N read=N``.  ``pool_maxsize`` and ``pool_block`` build the
middleware's own pool.  A bad value raises ValueError naming the option, when the ini file
is loaded.
"""

from __future__ import annotations

import configparser
import importlib
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any
from wsgiref.types import WSGIApplication

import urllib3

from .middleware import ReproxyMiddleware

__all__ = ["filter_app_factory", "options_from_strings"]

log = logging.getLogger(__name__)

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


def _observer(value: str, option: str) -> object:
    """``observer = wsgi_reproxy.prometheus:PrometheusObserver``: the object named
    ``module:attribute`` (``call:`` in front is allowed, as for rules), or an instance of
    it when it is a class -- an observer is called with each report, a class would only
    be constructed with it.  Empty: no observer."""
    name = value.strip().removeprefix("call:")
    if not name:
        return None
    module_name, _, attribute = name.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(f"{option}: cannot import {value.strip()!r}: {error}") from None
    return found() if isinstance(found, type) else found


# Every option an ini file may set, and how its string becomes the constructor's value.
_CONVERTERS: dict[str, Callable[[str, str], Any]] = {
    "allow": _rules,
    "deny": _rules,
    "preserve": _words,
    "forward": _words,
    "upstream_hosts": _words,
    "hide": _words,
    "observer": _observer,
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
        lost = _dropped_by_paste(global_conf.get("__file__"), shadowed, local_conf)
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


def _dropped_by_paste(
    ini_file: str | None, shadowed: set[str], given: Mapping[str, str]
) -> set[str]:
    """Which ``shadowed`` options the wsgi-reproxy section being loaded sets itself (or
    with ``set``), read from ``ini_file`` without ``[DEFAULT]`` (what PasteDeploy's own
    reading mixes in).

    The section being loaded is the one whose own options, less the shadowed ones, are
    the ``given`` ones, with the same values (where PasteDeploy would not have expanded a
    ``%(name)s`` in them): another filter section of the same file, for another pipeline,
    says nothing about this one.  Where several sections could be it, only what they all
    set counts.
    """
    parser = _read_without_defaults(ini_file)
    if parser is None:
        return set()
    candidates = [
        lost
        for section in parser.sections()
        if (lost := _lost_in(parser, section, shadowed, given)) is not None
    ]
    if not candidates:
        return set()
    surely, maybe = set.intersection(*candidates), set.union(*candidates)
    if maybe - surely:
        log.warning(
            "wsgi-reproxy filter in %s: PasteDeploy may have dropped its own %s, also set in "
            "[DEFAULT] (several filter sections look alike; write 'get NAME = NAME' or "
            "rename the [DEFAULT] key)",
            ini_file,
            ", ".join(sorted(maybe - surely)),
        )
    return surely


def _read_without_defaults(ini_file: str | None) -> configparser.RawConfigParser | None:
    """The ini file as PasteDeploy reads it, less the ``[DEFAULT]`` mixed into sections."""
    if ini_file is None:
        return None
    parser = configparser.RawConfigParser(default_section="\0", strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # as PasteDeploy
    try:
        parser.read(ini_file, encoding="utf-8")
    except (OSError, configparser.Error, UnicodeDecodeError):
        return None
    return parser


def _lost_in(
    parser: configparser.RawConfigParser,
    section: str,
    shadowed: set[str],
    given: Mapping[str, str],
) -> set[str] | None:
    """The shadowed options ``section`` sets, if it is a wsgi-reproxy filter that could be
    the one being loaded; None when it cannot be."""
    factory = " ".join(
        parser.get(section, key, fallback="")
        for key in ("use", "paste.filter_app_factory", "paste.filter_factory")
    )
    if "wsgi-reproxy" not in factory and "wsgi_reproxy" not in factory:
        return None
    options = parser.options(section)
    plain = {option for option in options if option in _CONVERTERS}
    fetched = {option[4:].strip() for option in options if option.startswith("get ")}
    # "set NAME = ..." only changes PasteDeploy's global_conf, which options never come
    # from: for this filter, a value given and lost like a shadowed one.
    globally = {option[4:].strip() for option in options if option.startswith("set ")}
    same_values = all(
        "%(" in (raw := parser.get(section, name)) or raw == given[name]
        for name in plain - shadowed
        if name in given
    )
    if (plain | fetched) - shadowed != given.keys() or not same_values:
        return None
    return (plain | globally) & shadowed
