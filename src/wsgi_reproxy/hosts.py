"""``upstream_hosts``: which hosts and ports targets may live on (SPEC R4.3, R7.3).

A pattern is a host glob with an optional port glob: ``"store-*.internal"``,
``"10.1.2.3:8080"``, ``"[fd00::1]:*"``.  A pattern without a port allows only the scheme's
default port (80 or 443), as in CSP host sources: ``"cache.internal"`` must not open
``http://cache.internal:6379/`` to an app that echoes user input.

Misconfiguration is never silent: a pattern written as a URL (a scheme, a path) or two
hosts run together (whitespace, a comma) would match nothing, so it is refused when the
middleware is built, with the fix; and a URL refused only for its port says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

__all__ = ["DEFAULT_PORTS", "HostPatterns", "normalise_host"]

DEFAULT_PORTS = {"http": 80, "https": 443}
_PORT_GLOB = re.compile(r"[0-9*?\[\]!-]+")
_URL_PART = re.compile(r"[/#]")  # not "?": a glob character
_SEPARATOR = re.compile(r"[\s,]+")


def normalise_host(host: str) -> str:
    """Lower case, no IPv6 brackets, no trailing dot: one spelling per host."""
    return host.strip("[]").lower().rstrip(".")


@dataclass(frozen=True, slots=True)
class _Pattern:
    text: str  # as written, for messages
    host_text: str  # the host part as written, IPv6 in brackets
    host: str  # normalised glob
    port: str | None  # glob, or None: the scheme's default port only

    @property
    def literal(self) -> bool:
        return not any(c in self.host for c in "*?[")


def _refuse_url_parts(text: str) -> None:
    """A scheme, a path or two hosts in one pattern: a mistake, refused with the fix."""
    _, sep, rest = text.partition("://")
    if sep:
        fix = _URL_PART.split(rest, maxsplit=1)[0]
        raise ValueError(
            f"upstream_hosts: {text!r} has a scheme, and a pattern is a host with an "
            f"optional port (the scheme's default port without one): write {fix!r}"
        )
    if _URL_PART.search(text):
        fix = _URL_PART.split(text, maxsplit=1)[0]
        raise ValueError(
            f"upstream_hosts: {text!r} has a path, and a pattern is a host with an "
            f"optional port (the path is the app's to choose): write {fix!r}"
        )
    if _SEPARATOR.search(text):
        hosts = [host for host in _SEPARATOR.split(text) if host]
        raise ValueError(
            f"upstream_hosts: {text!r} holds whitespace or a comma, which no host has: "
            f"give each pattern as an item of its own, {hosts!r}"
        )


def _parse(pattern: object) -> _Pattern:
    if not isinstance(pattern, str) or not pattern.strip():
        raise TypeError(f"upstream_hosts: each pattern must be a non-empty str, not {pattern!r}")
    text = pattern.strip()
    _refuse_url_parts(text)
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"upstream_hosts: bad IPv6 pattern {pattern!r}")
        host_text, port = f"[{host}]", rest[1:] or None
    elif text.count(":") == 1:
        host_text, _, port = text.partition(":")
    else:  # a host, or an IPv6 address without brackets (and then without a port)
        host_text, port = (f"[{text}]" if ":" in text else text), None
    if port is not None and not _PORT_GLOB.fullmatch(port):
        raise ValueError(f"upstream_hosts: bad port in {pattern!r}")
    return _Pattern(text, host_text, normalise_host(host_text), port)


class HostPatterns:
    """``upstream_hosts``: which hosts (and ports) targets may live on.

    >>> HostPatterns(["store-*.internal", "10.1.2.3:8080"])
    HostPatterns(['store-*.internal', '10.1.2.3:8080'])

    :raises TypeError: a pattern that is not a non-empty ``str``.
    :raises ValueError: a bad port or IPv6 pattern, a scheme (``"http://store:8080"``:
        write ``"store:8080"``), a path, or whitespace or a comma inside a pattern.
    """

    __slots__ = ("_compiled", "_literal", "patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        self._compiled = tuple(_parse(pattern) for pattern in self.patterns)
        self._literal = tuple(pattern for pattern in self._compiled if pattern.literal)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self.patterns)!r})"

    def allows(self, host: str, port: int, scheme: str = "http") -> bool:
        """Does a pattern match ``host`` and ``port``?"""
        return self._match(self._compiled, host, port, scheme)

    def names_literally(self, host: str, port: int, scheme: str = "http") -> bool:
        """Does a pattern *without wildcards in its host* match: the address named
        explicitly, as ``refuse_local`` requires (``"*:*"`` allows every host, but names
        none, so it does not let ``127.0.0.1`` or ``169.254.169.254`` through)."""
        return self._match(self._literal, host, port, scheme)

    def refusal(self, host: str, port: int, scheme: str = "http") -> str:
        """Why ``host`` and ``port`` are not allowed, naming a pattern whose host matches
        when only the port differs (the one mistake that is easy to miss)."""
        reason = "is not on a host allowed by upstream_hosts"
        host = normalise_host(host)
        for pattern in self._compiled:
            if not fnmatchcase(host, pattern.host):
                continue
            fix = f"write '{pattern.host_text}:{port}'"
            if pattern.port is None:
                default = DEFAULT_PORTS[scheme]
                fix = f"a pattern without a port allows only port {default}; {fix}"
            return f"{reason}: {pattern.text!r} matches but port {port} does not ({fix})"
        return reason

    @staticmethod
    def _match(compiled: tuple[_Pattern, ...], host: str, port: int, scheme: str) -> bool:
        host = normalise_host(host)
        port_text = str(port)
        for pattern in compiled:
            if not fnmatchcase(host, pattern.host):
                continue
            if pattern.port is None:
                if port == DEFAULT_PORTS[scheme]:
                    return True
            elif fnmatchcase(port_text, pattern.port):
                return True
        return False
