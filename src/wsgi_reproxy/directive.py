"""The app's directive: parse and validate ``X-Reproxy-*`` response headers (SPEC R4).

An app asks for reproxying with ``X-Reproxy-Url: URL [URL ...]`` and, optionally,
``X-Reproxy-Expected-Size: N`` (perlbal).  This module turns those headers into a frozen
:class:`Directive`, or says why it cannot.  Nothing here does I/O, so every rule is tested
as a plain table.

URLs are validated with urllib3's own parser, so the host checked is the host urllib3
connects to; their request target is taken as written, and must be sendable as written
(:mod:`wsgi_reproxy.request_target`); ``upstream_hosts`` is :mod:`wsgi_reproxy.hosts`.  Rejected
tokens are reported with ``repr()``: a URL that came from user input may carry control
characters meant for log injection (Rack CVE-2025-27111).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from .digest import DIGEST_HEADER, ExpectedDigest, parse_expected_digest
from .file_roots import FileRoots
from .hosts import DEFAULT_PORTS, HostPatterns
from .request_target import CACHED_URL_MAX, request_target, target_problem

__all__ = [
    "Directive",
    "HostPatterns",
    "InvalidDirective",
    "check_url",
    "parse_directive",
    "parse_expected_size",
]

URL_HEADER = "x-reproxy-url"
SIZE_HEADER = "x-reproxy-expected-size"
FILE_HEADER = "x-reproxy-file"

# Split on SP, HT, CR, LF and FF only: str.split() would also split on U+0085, U+00A0 ...
# which are not separators in an HTTP header (SPEC R4.1).
_SEPARATORS = re.compile(r"[ \t\r\n\f]+")
# C0 controls and DEL: header/log injection (SPEC R4.3).  Non-ASCII is refused too: a URL in
# a header must already be percent-encoded, and decoding it twice is a classic bug.
_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f-\U0010ffff]")


@dataclass(frozen=True, slots=True)
class Directive:
    """What the app asked for: a local file to try first (perlbal's ``X-Reproxy-File``),
    the URLs to try, in order, the expected full size and the expected digest."""

    urls: tuple[str, ...]
    expected_size: int | None = None
    file: str | None = None
    digest: ExpectedDigest | None = None


@dataclass(frozen=True, slots=True)
class InvalidDirective:
    """The app asked for reproxying but nothing usable came of it (answered with 502)."""

    reason: str


def _authority(url: str) -> str:
    return re.split(r"[/?#]", url.partition("://")[2], maxsplit=1)[0]


def _has_dot_segment(url: str) -> bool:
    """A ``.`` or ``..`` path segment, also once percent-decoded (``%2e%2e``, ``..%2f``).

    urllib3 removes dot segments before sending, and storage servers (nginx) decode and
    resolve them: either way ``/bucket/../secret`` is fetched as ``/secret``, outside the
    prefix the app built the URL under -- a traversal when part of the path comes from a
    user.  No storage URL needs one.
    """
    # the path starts where urllib3 ends the authority: at "/", or at a backslash
    after_scheme = re.split(r"[?#]", url.partition("://")[2], maxsplit=1)[0]
    authority_and_path = re.split(r"[/\\]", after_scheme, maxsplit=1)
    path = authority_and_path[1] if len(authority_and_path) == 2 else ""
    if "." not in path and "%" not in path:
        return False
    segments = re.split(r"[/\\]", unquote(path))
    return any(segment in (".", "..") for segment in segments)


def check_url(url: str, hosts: HostPatterns | None = None) -> str | None:
    """Return why ``url`` may not be reproxied, or ``None`` when it may (SPEC R4.3).

    Cached for URLs of up to :data:`CACHED_URL_MAX` characters: the same file URLs come
    back request after request, and urllib3's parser was the largest cost of reading a
    directive.  ``hosts`` is compared by identity.
    """
    if len(url) > CACHED_URL_MAX:
        return _check_url(url, hosts)
    return _check_url_cached(url, hosts)


def _check_url(url: str, hosts: HostPatterns | None = None) -> str | None:
    if _BAD_URL_CHARS.search(url):
        return "contains whitespace, a control character or non-ASCII"
    try:
        parsed = parse_url(url)
    except LocationParseError:
        return "is not a valid URL"
    if parsed.scheme not in DEFAULT_PORTS or not url.lower().startswith(parsed.scheme + "://"):
        return "is not an absolute http or https URL"
    if not parsed.host:
        return "has no host"
    if parsed.auth is not None or "@" in _authority(url):
        return "carries userinfo (user:password@)"
    if "%" in _authority(url):
        # urllib3 >= 2.8 decodes %-escapes in the host before connecting: refuse them, or
        # "http://%6c%6fcalhost/" would reach a host that upstream_hosts never saw.
        return "has a percent-encoded host"
    if _has_dot_segment(url):
        return "has a . or .. segment in its path (also when percent-encoded)"
    problem = target_problem(request_target(url))
    if problem is not None:
        return problem
    port = DEFAULT_PORTS[parsed.scheme] if parsed.port is None else parsed.port
    if port == 0:
        return "has port 0"
    if hosts is not None and not hosts.allows(parsed.host, port, parsed.scheme):
        return hosts.refusal(parsed.host, port, parsed.scheme)
    return None


_check_url_cached = functools.lru_cache(maxsize=4096)(_check_url)


def parse_expected_size(value: str) -> int | None:
    """A non-negative ASCII decimal integer, or None (not ``+1``, ``1_000``, ``0x10``)."""
    value = value.strip(" \t")
    if value.isascii() and value.isdigit():
        return int(value)
    return None


def _one_size(values: list[str]) -> int | InvalidDirective | None:
    """The ``X-Reproxy-Expected-Size``: absent, or one non-negative integer however many
    times it is sent."""
    if not values:
        return None
    sizes = {parse_expected_size(value) for value in values}
    if None in sizes or len(sizes) != 1:
        return InvalidDirective(
            f"X-Reproxy-Expected-Size {values!r} is not one non-negative integer"
        )
    return sizes.pop()


@dataclass(frozen=True, slots=True)
class Rejected:
    """A URL token that was skipped, and why (for the log)."""

    url: str
    reason: str


def parse_directive(
    headers: Sequence[tuple[str, str]],
    *,
    max_urls: int,
    hosts: HostPatterns | None = None,
    file_roots: FileRoots | None = None,
    rejected: list[Rejected] | None = None,
) -> Directive | InvalidDirective | None:
    """Read the directive from the app's response headers.

    Returns ``None`` when there is no directive (no ``X-Reproxy-Url`` or ``X-Reproxy-File``,
    or only empty ones, SPEC R4.2), an :class:`InvalidDirective` when there is one but
    nothing usable (502), else a :class:`Directive`.  Skipped URLs, and a file refused
    because ``file_roots`` is not set or the path is no absolute path, are appended to
    ``rejected`` for the caller to log.
    """
    tokens, values = _directive_values(headers)
    paths = {path for path in (value.strip(" \t") for value in values[FILE_HEADER]) if path}
    if not tokens and not paths:
        return None
    expected_size = _one_size(values[SIZE_HEADER])
    if isinstance(expected_size, InvalidDirective):
        return expected_size
    digest = parse_expected_digest(values[DIGEST_HEADER])
    if isinstance(digest, str):
        return InvalidDirective(digest)
    urls = _usable_urls(tokens[:max_urls], hosts, rejected)
    file = _one_file(paths, file_roots, rejected)
    if not urls and file is None:
        return InvalidDirective(
            f"none of the {min(len(tokens), max_urls)} URL(s) is usable"
            if tokens
            else "the X-Reproxy-File cannot be served"
        )
    return Directive(tuple(urls), expected_size, file, digest)


def _directive_values(
    headers: Sequence[tuple[str, str]],
) -> tuple[list[str], dict[str, list[str]]]:
    """The URL tokens, and the values of the other ``X-Reproxy-*`` headers by name."""
    tokens: list[str] = []
    values: dict[str, list[str]] = {SIZE_HEADER: [], FILE_HEADER: [], DIGEST_HEADER: []}
    for name, value in headers:
        lowered = name.lower()
        if lowered == URL_HEADER:
            tokens.extend(token for token in _SEPARATORS.split(value) if token)
        elif lowered in values:
            values[lowered].append(value)
    return tokens, values


def _usable_urls(
    tokens: list[str], hosts: HostPatterns | None, rejected: list[Rejected] | None
) -> list[str]:
    urls = []
    for token in tokens:
        reason = check_url(token, hosts)
        if reason is None:
            urls.append(token)
        elif rejected is not None:
            rejected.append(Rejected(token, reason))
    return urls


def _one_file(
    paths: set[str], file_roots: FileRoots | None, rejected: list[Rejected] | None
) -> str | None:
    """The one path of ``X-Reproxy-File``, when it may be tried at all (R9.1, R9.2)."""
    if not paths:
        return None
    if len(paths) > 1:
        reason = "X-Reproxy-File names more than one file"
    elif file_roots is None:
        reason = "X-Reproxy-File is refused: the middleware has no file_roots"
    else:
        path = next(iter(paths))
        problem = FileRoots.path_problem(path)
        if problem is None:
            return path
        reason = f"X-Reproxy-File {problem}"
    if rejected is not None:
        rejected.append(Rejected(", ".join(sorted(paths)), reason))
    return None
