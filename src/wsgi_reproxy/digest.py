"""``X-Reproxy-Expected-Digest``: the bytes proven, not only the file named (SPEC R10).

Resume proves "same file" only as well as the storage's validator, and the defaults of
Apache and nginx (mtime and size) let two different files with equal sizes and clocks pass:
a download can be spliced from two replicas and still look complete.  An app that knows
the file's digest (MogileFS, S3's ``x-amz-checksum-sha256``, a database column) sends it
in RFC 9530's field syntax, ``sha-256=:BASE64:``, and the body is hashed as it passes;
its last piece is held back until the digest matches (:mod:`wsgi_reproxy.body`).

This module only reads and writes the field and keeps the running hash: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .report import ReproxyReport
    from .target import Target

__all__ = [
    "ALGORITHMS",
    "DigestCheck",
    "ExpectedDigest",
    "digest_check",
    "format_digest",
    "held_back",
    "parse_expected_digest",
    "verdict",
    "whole_body_mismatch",
]

log = logging.getLogger(__name__)

DIGEST_HEADER = "x-reproxy-expected-digest"

# RFC 9530's names, strongest first: with several, the strongest known one is checked.
# hashlib's name and the digest's length in bytes.
ALGORITHMS: dict[str, tuple[str, int]] = {
    "sha-512": ("sha512", 64),
    "sha-256": ("sha256", 32),
    "md5": ("md5", 16),
}

# One RFC 8941 dictionary member whose value is a byte sequence, parameters allowed
# (RFC 9530 defines none; they are ignored).
_MEMBER = re.compile(r"([a-z*][a-z0-9_.*-]*)=:([A-Za-z0-9+/]*={0,2}):((?:;[^,;]+)*)")


@dataclass(frozen=True, slots=True)
class ExpectedDigest:
    """The digest a body must have: an RFC 9530 algorithm name and the raw digest."""

    algorithm: str
    value: bytes

    def field_value(self) -> str:
        """As the header writes it: ``sha-256=:BASE64:``."""
        return f"{self.algorithm}=:{base64.b64encode(self.value).decode('ascii')}:"

    def check(self) -> DigestCheck:
        """A running hash for one body."""
        return DigestCheck(self)


class DigestCheck:
    """The hash of the bytes sent so far, across resumes, and its verdict at the end.

    Pieces are gathered into batches of about 1 MiB, and a batch is hashed on a helper
    thread while the body's thread sends its pieces and reads the next: hashlib lets go of
    the GIL for large buffers, so hashing overlaps the I/O instead of adding to it
    (sha-256 runs at about the speed a body streams), and a batch costs one hand-over,
    not one per piece.  One batch at a time is in flight, in order; :meth:`mismatch`
    hashes what is left and waits.
    """

    __slots__ = ("_batch", "_batched", "_hash", "_pending", "expected", "verdict")

    def __init__(self, expected: ExpectedDigest) -> None:
        self.expected = expected
        self._hash = hashlib.new(ALGORITHMS[expected.algorithm][0])
        self._batch: list[bytes] = []
        self._batched = 0
        self._pending: Future[None] | None = None
        self.verdict: str | None = None  # "match" or "mismatch" once the body ended

    def update(self, chunk: bytes) -> None:
        self._batch.append(chunk)
        self._batched += len(chunk)
        if self._batched >= HASH_BATCH:
            self._flush()

    def _flush(self) -> None:
        self._wait()
        batch, self._batch, self._batched = self._batch, [], 0
        if sum(map(len, batch)) >= OVERLAP_FROM:
            self._pending = _hashing_pool().submit(_update_all, self._hash, batch)
        else:
            _update_all(self._hash, batch)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def mismatch(self) -> str | None:
        """Why the bytes hashed so far are not the expected file; None when they are."""
        self._flush()
        self._wait()
        found = self._hash.digest()
        if found == self.expected.value:
            self.verdict = "match"
            return None
        self.verdict = "mismatch"
        ours = base64.b64encode(found).decode("ascii")
        return (
            f"digest mismatch: {self.expected.algorithm} of the body is :{ours}:, expected "
            + (self.expected.field_value().partition("=")[2])
        )


# Batches from OVERLAP_FROM on are hashed on the helper thread, smaller ones (a small
# body's) at once: they cost less to hash than to hand over.  HASH_BATCH: a 1 GiB body
# then costs a thousand hand-overs; measured on two cores, 1 MiB batches streamed about
# 10 % faster than one hand-over per piece, and either about 20 % faster than hashing on
# the body's own thread (docs/performance.rst).
OVERLAP_FROM = 64 * 1024
HASH_BATCH = 1024 * 1024


def _update_all(hashed: Any, pieces: list[bytes]) -> None:
    for piece in pieces:
        hashed.update(piece)


_pools: dict[int, ThreadPoolExecutor] = {}  # by process: a forked child makes its own


def _hashing_pool() -> ThreadPoolExecutor:
    """Threads shared by every body being checked, made on the first large piece of each
    process (a pool inherited through fork has no threads behind it)."""
    pid = os.getpid()
    pool = _pools.get(pid)
    if pool is None:
        pool = _pools.setdefault(
            pid, ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="digest")
        )
    return pool


def verdict(check: DigestCheck, report: ReproxyReport) -> str | None:
    """Judge a whole body: the report says the verdict and, on a mismatch, every URL
    that sent part of it counts as failed (R10.1).  Returns the mismatch, or None."""
    mismatch = check.mismatch()
    report.digest = check.verdict
    if mismatch is not None:
        for attempt in report.attempts:
            if attempt.outcome in ("served", "resumed"):
                attempt.outcome, attempt.reason = "failed", "digest mismatch"
    return mismatch


def held_back(
    chunks: Iterator[bytes], check: DigestCheck, verify: Callable[[DigestCheck], None]
) -> Iterator[bytes]:
    """For a checked body whose end only the storage knows (no length): each piece goes
    out once the next has come, and the last once ``verify`` has passed the digest."""
    held = b""
    for chunk in chunks:
        if held:
            check.update(held)
            yield held
        held = chunk
    check.update(held)
    verify(check)
    if held:
        yield held


def digest_check(expected: ExpectedDigest | None, target: Target) -> DigestCheck | None:
    """A running hash for a body that can be checked against ``expected``: a whole file
    (200) as stored (no content coding).  Others pass unchecked (R10.1)."""
    if expected is None:
        return None
    if target.status != 200 or target.encoded or not target.has_body:
        log.debug(
            "X-Reproxy-Expected-Digest not checked: a %d, encoded=%s, body=%s",
            target.status,
            target.encoded,
            target.has_body,
        )
        return None
    return DigestCheck(expected)


def whole_body_mismatch(expected: ExpectedDigest | None, target: Target) -> str | None:
    """Why a body already whole in hand before the response starts is not the file
    asked for (the URL then fails, and the next one is tried); None when it is, or when
    it cannot be told yet."""
    length = target.expected_length
    if length is None or len(target.first_chunk) != length:
        return None
    check = digest_check(expected, target)
    if check is None:
        return None
    check.update(target.first_chunk)
    return check.mismatch()


def parse_expected_digest(values: list[str]) -> ExpectedDigest | str | None:
    """The digest asked for; None when no value was sent; a ``str`` saying why a value
    is malformed (the directive is then invalid: 502, SPEC R10.1).

    Several headers are one dictionary (RFC 9110 §5.3).  Unknown algorithms are ignored
    (RFC 9530 §2); with none known, or one known twice with two values, or a digest of
    the wrong length, the value is malformed.
    """
    text = ",".join(values).strip(" \t")
    if not text:
        return None if not values else "an empty X-Reproxy-Expected-Digest"
    known: dict[str, bytes] = {}
    for member in text.split(","):
        matched = _MEMBER.fullmatch(member.strip(" \t"))
        if matched is None:
            return f"X-Reproxy-Expected-Digest member {member.strip()!r} is not name=:BASE64:"
        name, encoded = matched.group(1), matched.group(2)
        if name not in ALGORITHMS:
            continue
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            return f"X-Reproxy-Expected-Digest {name} is not valid base64"
        if len(raw) != ALGORITHMS[name][1]:
            return (
                f"X-Reproxy-Expected-Digest {name} has {len(raw)} bytes, not {ALGORITHMS[name][1]}"
            )
        if known.setdefault(name, raw) != raw:
            return f"X-Reproxy-Expected-Digest gives two different {name} values"
    for name in ALGORITHMS:
        if name in known:
            return ExpectedDigest(name, known[name])
    return (
        f"X-Reproxy-Expected-Digest {text!r} names no supported algorithm ({', '.join(ALGORITHMS)})"
    )


def format_digest(algorithm: str, digest: bytes | str) -> str:
    """The ``X-Reproxy-Expected-Digest`` value for a digest the app holds.

    ``digest`` is the raw digest (``hashlib.sha256(data).digest()``), or its hex form (an
    S3 single-part ``ETag`` is the object's MD5 in hex)::

        >>> format_digest("md5", "9e107d9d372bb6826bd81d3542a419d6")
        'md5=:nhB9nTcrtoJr2B01QqQZ1g==:'

    :raises ValueError: an unknown algorithm, bad hex, or a digest of the wrong length.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}")
    raw = bytes.fromhex(digest) if isinstance(digest, str) else bytes(digest)
    if len(raw) != ALGORITHMS[algorithm][1]:
        raise ValueError(
            f"a {algorithm} digest has {ALGORITHMS[algorithm][1]} bytes, not {len(raw)}"
        )
    return ExpectedDigest(algorithm, raw).field_value()
