"""Header rules, as pure functions over ``[(name, value), ...]`` lists (SPEC R5.2, R6.2):
nothing here sees a socket or an environ, so each rule is a table-driven test."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "FRAMING",
    "GLOB_CHARS",
    "HOP_BY_HOP",
    "NO_BODY_STATUSES",
    "REPROXY_PREFIX",
    "TARGETS_OWN_ANSWERS",
    "clean_value",
    "is_multipart_ranges",
    "merge_preserved",
    "strip_reproxy_headers",
    "upstream_request_headers",
]

Headers = list[tuple[str, str]]

# RFC 9110 §7.6.1 and RFC 2616 §13.5.1 (``Trailers`` is 2616's spelling, ``Trailer`` the
# header's real name; ``Proxy-Connection`` is the pre-standard one some clients still send).
# PEP 3333 forbids a WSGI app from sending any of these; servers raise when they see one.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te"}
    | {"proxy-connection", "trailer", "trailers", "transfer-encoding", "upgrade"}
)
# Headers that describe the bytes on the wire: they can only come from the target that sent
# those bytes (SPEC R4.4), never from the app's discarded body.
FRAMING = frozenset({"content-length", "transfer-encoding", "content-range", "content-encoding"})
# Responses that never carry a body, whatever their headers say (RFC 9110 §6.4.1).
NO_BODY_STATUSES = frozenset({204, 304})
# What a 304 must still carry that its 200 would have (RFC 9110 §15.4.5).
NOT_MODIFIED_KEEPS = frozenset({"cache-control", "content-location", "expires", "vary"})
# The target's answers to the client's own conditions, whose body is not the file: not
# held to the expected size, never given the app's preserved headers (R5.3, R6.7).
TARGETS_OWN_ANSWERS = frozenset({412, 416})
# A rule or a header pattern with one of these is a glob (fnmatch).
GLOB_CHARS = frozenset("*?[")
NEVER_FORWARDED = frozenset({"host", "cookie", "authorization"}) | HOP_BY_HOP
REPROXY_PREFIX = "x-reproxy-"

# RFC 9110 §5.6.2 token: what a header name may be made of.
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_OBS_FOLD = re.compile(r"\r?\n[ \t]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def strip_reproxy_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop every ``X-Reproxy-*`` header: internal URLs never reach a client (SPEC R4.2)."""
    return [(name, value) for name, value in headers if name[:10].lower() != REPROXY_PREFIX]


def clean_value(value: str) -> str | None:
    """Unfold obs-fold (RFC 9112 §5.2) and refuse any other control character."""
    if value.isprintable():  # the usual case, checked in C
        return value
    if "\n" in value or "\r" in value:
        value = _OBS_FOLD.sub(" ", value)
    return None if _CONTROL.search(value) else value


def merge_preserved(
    target: Headers,
    app: Sequence[tuple[str, str]],
    preserve: frozenset[str],
    status: int,
) -> Headers:
    """Replace the target's values of each preserved name with the app's (SPEC R6.2).

    Names are compared case-insensitively; every app value is kept (multi-valued headers),
    except one with control characters, which could split the response (CWE-113).
    The app's values take the place of the target's first value of that name, or are
    appended when the target had none -- except on 204 and 304, where nothing is added
    but what a 304 must still carry (``Cache-Control``, ``Expires``, ``Vary``,
    ``Content-Location``; not ``Content-Type``, RFC 9110 §15.4.5).  A 412 or 416 keeps the target's
    headers as they are: its body is the storage's own message, not the file, and the
    app's ``Content-Type`` or ``Content-Disposition: attachment`` would mislabel it.
    The ``Content-Type`` of a ``multipart/byteranges`` 206 is the target's whatever
    ``preserve`` says: its boundary is what the client splits the body's parts by
    (RFC 9110 §14.6).
    """
    if not preserve or status in TARGETS_OWN_ANSWERS:
        return target
    if "content-type" in preserve and status == 206 and is_multipart_ranges(target):
        preserve = preserve - {"content-type"}
    from_app = _preserved_values(app, preserve)
    if not from_app:
        return target
    merged: Headers = []
    for name, value in target:
        lowered = name.lower()
        if lowered not in from_app:
            merged.append((name, value))
        elif from_app[lowered]:
            merged.extend(from_app[lowered])
            from_app[lowered] = []
    for name, values in from_app.items():
        if status not in NO_BODY_STATUSES or (status == 304 and name in NOT_MODIFIED_KEEPS):
            merged.extend(values)
    return merged


def _preserved_values(
    app: Sequence[tuple[str, str]], preserve: frozenset[str]
) -> dict[str, list[tuple[str, str]]]:
    """The app's headers named in ``preserve``, by lower-case name, without any value
    holding a control character (it could split the response, CWE-113)."""
    from_app: dict[str, list[tuple[str, str]]] = {}
    for name, value in app:
        lowered = name.lower()
        if lowered in preserve:
            cleaned = clean_value(value)
            if cleaned is not None:
                from_app.setdefault(lowered, []).append((name, cleaned))
    return from_app


def is_multipart_ranges(headers: Iterable[tuple[str, str]]) -> bool:
    """Is this a ``multipart/byteranges`` answer (several ranges, RFC 9110 §14.6)?"""
    return any(
        name.lower() == "content-type" and value.strip().lower().startswith("multipart/byteranges")
        for name, value in headers
    )


def upstream_request_headers(
    environ: Mapping[str, Any], forward: Sequence[tuple[str, str]], method: str, user_agent: str
) -> dict[str, str]:
    """The headers sent to the target: the ``forward`` list, taken from the environ.

    ``forward`` holds ``(header name, environ key)`` pairs computed once in ``__init__``.
    ``Range`` and ``If-Range`` are not sent with HEAD: a HEAD answers for the whole
    representation, and some servers answer a ranged HEAD with 416.
    """
    headers = {"User-Agent": user_agent}
    for name, key in forward:
        value = environ.get(key)
        if value is not None:
            headers[name] = value
    if method == "HEAD":
        headers.pop("Range", None)
        headers.pop("If-Range", None)
    return headers


def environ_key(name: str) -> str:
    """``If-None-Match`` -> ``HTTP_IF_NONE_MATCH`` (PEP 3333 / CGI naming)."""
    return "HTTP_" + name.upper().replace("-", "_")
