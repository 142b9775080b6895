"""PasteDeploy's ``[DEFAULT]`` trap, detected so that it is never silent (SPEC R1.4, R7.3).

PasteDeploy drops a section's own option when ``[DEFAULT]`` has one of the same name, so a
filter's ``timeout`` would silently become the built-in default.  Reading the ini file
the way PasteDeploy does, without ``[DEFAULT]``, tells which of the filter's own options
were lost.
"""

from __future__ import annotations

import configparser
import logging
from collections.abc import Mapping

__all__ = ["dropped_by_paste"]

log = logging.getLogger(__name__)


def dropped_by_paste(
    ini_file: str | None, shadowed: set[str], given: Mapping[str, str], options: set[str]
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
        if (lost := _lost_in(parser, section, shadowed, given, options)) is not None
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
    known: set[str],
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
    plain = {option for option in options if option in known}
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
