"""The running hash of a body checked against ``X-Reproxy-Expected-Digest`` (SPEC R10.1).

:class:`DigestCheck` hashes the bytes as they are sent, across resumes; the body holds its
last piece back until :func:`verdict` has passed it (:func:`held_back` does that for a
body whose end only the storage knows).  Hashing costs one pass of a core over the bytes,
so large batches go to a helper thread and overlap the I/O (docs/performance.rst).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .digest import ALGORITHMS, ExpectedDigest

if TYPE_CHECKING:
    from .report import ReproxyReport
    from .target import Target

__all__ = ["DigestCheck", "digest_check", "held_back", "verdict", "whole_body_mismatch"]

log = logging.getLogger(__name__)


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
            try:
                self._pending = _hashing_pool().submit(_update_all, self._hash, batch)
                return
            except RuntimeError:  # the interpreter is shutting down: no new threads
                pass
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


def _cores() -> int:
    """The cores this process may run on (a container's, not the host's)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 2


def _hashing_pool() -> ThreadPoolExecutor:
    """Threads shared by every body being checked, made on the first large piece of each
    process (a pool inherited through fork has no threads behind it)."""
    pid = os.getpid()
    pool = _pools.get(pid)
    if pool is None:
        pool = _pools.setdefault(
            pid, ThreadPoolExecutor(max_workers=_cores(), thread_name_prefix="digest")
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
