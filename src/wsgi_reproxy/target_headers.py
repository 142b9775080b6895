"""The target's response headers the client may see (SPEC R6.2, R6.7): hop-by-hop ones,
those ``Connection`` names, ``X-Reproxy-*`` and ``hide=`` ones dropped, unsafe ones refused.

Every reproxied response runs :func:`clean_target_headers` over the headers of the
storage's answer, so the same few names are judged again and again: each name's verdict
is kept on the :class:`HiddenHeaders` that judged it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from fnmatch import fnmatchcase, translate

from .headers import (
    GLOB_CHARS,
    HOP_BY_HOP,
    REPROXY_PREFIX,
    TOKEN,
    Headers,
    clean_value,
)

__all__ = ["NOTHING_HIDDEN", "REMEMBERED_NAMES", "HiddenHeaders", "clean_target_headers"]

# What a kept-alive target says in Connection: it names no header beyond itself.
_USUAL_CONNECTION = frozenset({"keep-alive", ""})
# What becomes of a header called so (HiddenHeaders.verdict).
KEEP, DROP, CONNECTION, BAD_NAME = "keep", "drop", "connection", "bad name"
# Names whose verdicts are remembered, per HiddenHeaders: bounded against a target that
# sends a new name with every response.
REMEMBERED_NAMES = 512


def connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    """Header names listed in ``Connection`` are hop-by-hop too (RFC 9110 §7.6.1)."""
    tokens: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            tokens.update(token.strip().lower() for token in value.split(","))
    tokens.discard("")
    return tokens


def is_token(name: str) -> bool:
    """Header names repeat from response to response: each short spelling is checked
    once (a target's 60 KB names must not stay pinned in a process-wide cache)."""
    if len(name) > 64:
        return TOKEN.fullmatch(name) is not None
    return _is_short_token(name)


@functools.lru_cache(maxsize=1024)
def _is_short_token(name: str) -> bool:
    return TOKEN.fullmatch(name) is not None


class HiddenHeaders:
    """``hide=``: target headers never relayed, by name or glob, case-insensitive (R6.7).

    Names join the hop-by-hop ones in one set (``drop``), so the usual case costs one
    lookup per header; globs (``X-Amz-*``) are one compiled regex for all of them.
    """

    __slots__ = ("drop", "glob", "names", "patterns", "prefixes")

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns = tuple(patterns)
        lowered = [pattern.lower() for pattern in self.patterns]
        globs = [pattern for pattern in lowered if GLOB_CHARS.intersection(pattern)]
        self.drop = HOP_BY_HOP | frozenset(lowered).difference(globs)
        # "X-Accel-*", the usual glob, is a prefix: str.startswith, cheaper than a regex.
        self.prefixes = tuple(
            g[:-1] for g in globs if g.endswith("*") and not GLOB_CHARS.intersection(g[:-1])
        )
        others = [g for g in globs if not (g.endswith("*") and g[:-1] in self.prefixes)]
        self.glob = re.compile("|".join(translate(g) for g in others)).match if others else None
        # What clean_target_headers decided for each name seen: the same few names come
        # with every response, and one lookup replaces five tests.
        self.names: dict[str, str] = {}

    def verdict(self, name: str) -> str:
        """What becomes of a target header called ``name``, whatever its value: ``KEEP``,
        ``DROP`` (hop-by-hop, ``X-Reproxy-*``, hidden), ``CONNECTION`` (dropped, but
        it may name more headers to drop) or ``BAD_NAME`` (not a token)."""
        lowered = name.lower()
        if lowered == "connection":
            return CONNECTION
        glob = self.glob
        if (
            lowered in self.drop
            or lowered[:10] == REPROXY_PREFIX
            or lowered.startswith(self.prefixes)
            or (glob is not None and glob(lowered) is not None)
        ):
            return DROP
        return KEEP if is_token(name) else BAD_NAME

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self.patterns)!r})"

    def covers(self, name: str) -> bool:
        """Does a pattern hide the header ``name`` (any case)?"""
        lowered = name.lower()
        return any(fnmatchcase(lowered, pattern.lower()) for pattern in self.patterns)


NOTHING_HIDDEN = HiddenHeaders()


def clean_target_headers(
    headers: Iterable[tuple[str, str]], hidden: HiddenHeaders = NOTHING_HIDDEN
) -> tuple[Headers, list[str]]:
    """The target's headers minus hop-by-hop, ``Connection``-listed, ``X-Reproxy-*`` and
    ``hidden`` ones.

    Returns the kept headers, in order with duplicates, and the names of headers dropped
    because they could not be sent safely (bad name or control characters in the value).
    Each name is judged once per ``hidden`` (:meth:`HiddenHeaders.verdict`); only a
    ``Connection`` header naming more than ``keep-alive`` costs a second pass, which
    drops the headers it names.
    """
    headers = list(headers)
    cleaned = _cleaned(headers, hidden, None)
    if cleaned is not None:
        return cleaned
    again = _cleaned(headers, hidden, connection_tokens(headers))
    assert again is not None  # (given the names, a pass always ends)
    return again


def _cleaned(
    headers: list[tuple[str, str]], hidden: HiddenHeaders, named: set[str] | None
) -> tuple[Headers, list[str]] | None:
    """One pass of :func:`clean_target_headers`, dropping the names in ``named`` too;
    with ``named=None``, None as soon as a ``Connection`` header names headers."""
    remembered = hidden.names
    kept: Headers = []
    unsafe: list[str] = []
    for name, value in headers:
        verdict = remembered.get(name) or _judged(hidden, name)
        if verdict == CONNECTION:
            if named is None and value.lower() not in _USUAL_CONNECTION:
                return None
        elif verdict != DROP and not (named and name.lower() in named):
            cleaned = clean_value(value) if verdict == KEEP else None
            if cleaned is None:
                unsafe.append(name)
            else:
                kept.append((name, cleaned))
    return kept, unsafe


def _judged(hidden: HiddenHeaders, name: str) -> str:
    """``hidden.verdict(name)``, remembered on ``hidden`` for names of up to 64 characters
    (at most :data:`REMEMBERED_NAMES` of them)."""
    verdict = hidden.verdict(name)
    if len(name) <= 64:
        names = hidden.names
        if len(names) >= REMEMBERED_NAMES:
            names.clear()  # a target inventing names: start over, keep the hot ones
        names[name] = verdict
    return verdict
