"""Where reproxying is enabled: ``allow`` / ``deny`` rules (SPEC R2).

These mirror mod_reproxy's ``AllowReproxy`` inside ``<Location>``, ``<Files>`` and
``<LocationMatch>`` sections, plus a callable escape hatch for anything else::

    "/downloads"       path prefix on segment boundaries (never matches "/downloadsX")
    "*.iso"            glob on the last path segment (no "/" in the pattern)
    "/media/*.iso"     glob on the whole path ("*" crosses "/", like fnmatchcase)
    re.compile(...)    pattern.search(path)
    callable           rule(environ) -> bool

Every rule is compiled once, in ``__init__``, into a predicate ``(environ, path) -> bool``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any, TypeAlias

from .config import ensure_collection, one_argument_callable
from .headers import GLOB_CHARS

__all__ = ["Rule", "RuleSet", "compile_rules", "ensure_collection", "request_path"]

Environ: TypeAlias = Mapping[str, Any]
Rule: TypeAlias = "str | re.Pattern[str] | Callable[[dict[str, Any]], bool]"
Predicate: TypeAlias = Callable[[Environ, str], bool]

# What a regular expression written as a plain string gives itself away by: such a rule
# would be a prefix or glob that never matches (R7.3).
_REGEX_SIGNS = re.compile(r"^\^|\$$|\.[*+]|\\")


def request_path(environ: Environ) -> str:
    """The full path the client asked for: ``SCRIPT_NAME + PATH_INFO`` (SPEC R2.2)."""
    return str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))


def _prefix(rule: str) -> Predicate:
    if not rule.startswith("/"):
        raise ValueError(f"path prefix rule {rule!r} must start with '/'")
    base = rule.rstrip("/")
    if not base:
        return lambda environ, path: True
    with_slash = base + "/"
    return lambda environ, path: path == base or path.startswith(with_slash)


def _glob(rule: str) -> Predicate:
    if "/" in rule:
        return lambda environ, path: fnmatchcase(path, rule)
    return lambda environ, path: fnmatchcase(path.rpartition("/")[2], rule)


def _check_string(rule: str, option: str) -> None:
    """Refuse the strings that are a mistake for sure, with the fix (SPEC R7.3)."""
    if _REGEX_SIGNS.search(rule):
        raise ValueError(
            f"{option}: {rule!r} looks like a regular expression, but a string rule is a "
            f"path prefix or a glob: pass re.compile({rule!r}) (in an ini file: re:{rule}); "
            f"a glob of names that start with a dot is written '[.]*'"
        )
    if rule.endswith(","):
        raise ValueError(
            f"{option}: {rule!r} ends with a comma: rules are separate list items "
            f"(in an ini file, separated by whitespace only: '/files/ /media/')"
        )


def _compile_one(rule: object, option: str) -> Predicate:
    if isinstance(rule, str):
        _check_string(rule, option)
        return _glob(rule) if GLOB_CHARS.intersection(rule) else _prefix(rule)
    if isinstance(rule, re.Pattern):
        if not isinstance(rule.pattern, str):
            raise TypeError(f"{option}: regex rules must be str patterns, not {rule!r}")
        search = rule.search
        return lambda environ, path: search(path) is not None
    if callable(rule):
        one_argument_callable(rule, option, "rule(environ) -> bool")
        func = rule
        return lambda environ, path: bool(func(environ))
    raise TypeError(
        f"{option}: a rule must be a str (prefix or glob), a compiled re.Pattern or a "
        f"callable(environ) -> bool, not {type(rule).__name__}: {rule!r}"
    )


class RuleSet:
    """An immutable list of compiled rules; ``matches`` is true when any rule matches."""

    __slots__ = ("_predicates", "rules")

    def __init__(self, rules: Iterable[object], option: str) -> None:
        self.rules = tuple(ensure_collection(rules, option))
        self._predicates = tuple(_compile_one(rule, option) for rule in self.rules)

    def __bool__(self) -> bool:
        return bool(self._predicates)

    def __repr__(self) -> str:
        return repr(list(self.rules))

    def matches(self, environ: Environ, path: str) -> bool:
        for predicate in self._predicates:  # noqa: SIM110 - no generator per request
            if predicate(environ, path):
                return True
        return False


def compile_rules(rules: Iterable[object], option: str) -> RuleSet:
    """Compile ``allow`` or ``deny``; raises TypeError/ValueError naming ``option``."""
    return RuleSet(rules, option)
