"""The truncation judge: what a client got, against what it must get.

A load test whose judge cannot see a truncated body would pass for the wrong reason, so the
judge trusts nothing but the framing (``Content-Length``, chunked, or the connection's end)
and the bytes themselves.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from .files import APP_CONTENT_TYPE, FILES, SHA256
from .plan import Planned

Verdict = Literal[
    "ok",
    "hung up",
    "aborted",
    "refused",
    "wrong bytes",
    "truncated but looked complete",
    "error",
    "not sent",
]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one planned request, as the client judged it."""

    plan: Planned
    verdict: Verdict
    received: int = 0
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Response:
    """A response as read off the socket, before any judgement."""

    status: int
    headers: dict[str, str]
    raw_body: bytes  # as received, framing included (chunked)
    reset: bool  # the server reset the connection instead of closing it
    hung_up: bool  # the client stopped reading on purpose


@dataclass(frozen=True, slots=True)
class Framed:
    """A body without its framing, and what the framing says about it."""

    body: bytes
    complete: bool  # the framing says the body ended where it should
    framing: str
    excess: int = 0  # bytes after the end the framing announced


def _dechunk(raw: bytes) -> tuple[bytes, bool]:
    """The payload of a chunked body, and whether its last chunk arrived (RFC 9112 §7.1)."""
    payload, pos = bytearray(), 0
    while (end := raw.find(b"\r\n", pos)) >= 0:
        size = int(raw[pos:end].split(b";")[0], 16)
        if size == 0:
            return bytes(payload), True
        start = end + 2
        payload += raw[start : start + size]
        pos = start + size + 2
    return bytes(payload), False


def unframe(response: Response) -> Framed:
    """The client's only way to tell a whole body from a truncated one: its framing."""
    raw, headers, hung_up = response.raw_body, response.headers, response.hung_up
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body, complete = _dechunk(raw)
        return Framed(body, complete and not hung_up, "chunked")
    length = headers.get("content-length")
    if length is not None:
        announced = int(length)
        return Framed(
            raw[:announced],
            len(raw) >= announced and not hung_up,
            "Content-Length",
            max(0, len(raw) - announced),
        )
    return Framed(raw, not (response.reset or hung_up), "until close")


def judge(plan: Planned, response: Response) -> Outcome:
    """Compare what the client got with what it must get; see :data:`Verdict`."""
    data = FILES[plan.name]
    if response.status != 200:
        if response.status >= 500 and plan.kind == "dying-alone":
            return Outcome(plan, "refused", len(response.raw_body))  # failed before any byte
        return Outcome(plan, "error", len(response.raw_body), f"status {response.status}")
    if response.headers.get("content-type") != APP_CONTENT_TYPE:
        return Outcome(plan, "error", len(response.raw_body), "Content-Type not preserved")
    framed = unframe(response)
    size = len(framed.body)
    if framed.excess or framed.body != data[:size]:
        return Outcome(
            plan,
            "wrong bytes",
            size,
            f"{framed.framing}: not a prefix of the file, or {framed.excess} bytes too many",
        )
    if not framed.complete:
        return Outcome(plan, "hung up" if response.hung_up else "aborted", size, framed.framing)
    if size < len(data):
        return Outcome(plan, "truncated but looked complete", size, framed.framing)
    if hashlib.sha256(framed.body).digest() != SHA256[plan.name]:
        return Outcome(plan, "wrong bytes", size, "sha256 differs")
    return Outcome(plan, "ok", size)
