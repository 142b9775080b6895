"""Directives the middleware must ignore: said once, then counted (SPEC R7.3).

An app that answers ``X-Reproxy-Url`` on a path that ``allow`` does not enable has its
header removed (no internal URL may reach the client) and the client gets the app's own,
usually empty, body with a 200.  Nothing fails, so without a log line a forgotten or
mistyped ``allow`` goes unnoticed.  Each path prefix of two segments is reported once per
process at WARNING, then only counted; the count is logged again at each power of ten, so
a hot path cannot flood the log and its number is still known.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

__all__ = ["StrayDirectives", "carries_directive", "path_prefix"]

log = logging.getLogger(__name__)

# Prefixes remembered per process; beyond them, one shared count (memory stays bounded
# whatever paths clients ask for).
MAX_PREFIXES = 256
OTHER_PATHS = "(other paths)"
_BLANK = " \t\r\n\f"


def path_prefix(path: str) -> str:
    """The first two segments: ``/files/2026/a.bin`` -> ``/files/2026``."""
    return "/".join(path.split("/", 3)[:3])


def carries_directive(headers: Sequence[tuple[str, str]]) -> bool:
    """Is there an ``X-Reproxy-Url`` with a URL in it (a blank one counts as absent)?"""
    return any(name.lower() == "x-reproxy-url" and value.strip(_BLANK) for name, value in headers)


class StrayDirectives:
    """Per-middleware record of the directives ignored on requests it did not enable."""

    __slots__ = ("_counts", "_lock", "_rules")

    def __init__(self, rules: str) -> None:
        self._rules = rules
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def seen(self, path: str, status: str) -> None:
        """An ``X-Reproxy-Url`` on ``path`` was removed and the app's answer passed on."""
        prefix = path_prefix(path)
        with self._lock:
            if prefix not in self._counts and len(self._counts) >= MAX_PREFIXES:
                prefix = OTHER_PATHS
            count = self._counts[prefix] = self._counts.get(prefix, 0) + 1
        if count == 1:
            log.warning(
                "X-Reproxy-Url ignored and removed on %r: reproxying is not enabled there "
                "(%s), so the client gets the app's own %r answer; add the path to allow "
                "to reproxy it (logged once per prefix %r, then counted)",
                path,
                self._rules,
                status,
                prefix,
            )
        elif _is_power_of_ten(count):
            log.warning(
                "X-Reproxy-Url ignored and removed %d times under %r (not enabled: %s)",
                count,
                prefix,
                self._rules,
            )

    def counts(self) -> dict[str, int]:
        """How many directives were ignored, per path prefix."""
        with self._lock:
            return dict(self._counts)


def _is_power_of_ten(count: int) -> bool:
    text = str(count)
    return text[0] == "1" and text[1:] == "0" * (len(text) - 1)
