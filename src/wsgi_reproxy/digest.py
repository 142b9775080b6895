"""``X-Reproxy-Expected-Digest``: the bytes proven, not only the file named (SPEC R10).

Resume proves "same file" only as well as the storage's validator, and the defaults of
Apache and nginx (mtime and size) let two different files with equal sizes and clocks pass:
a download can be spliced from two replicas and still look complete.  An app that knows
the file's digest (MogileFS, S3's ``x-amz-checksum-sha256``, a database column) sends it
in RFC 9530's field syntax, ``sha-256=:BASE64:``, and the body is hashed as it passes;
its last piece is held back until the digest matches (:mod:`wsgi_reproxy.body`).

This module only reads and writes the field; :mod:`wsgi_reproxy.body_digest` keeps the
running hash.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

__all__ = [
    "ALGORITHMS",
    "DIGEST_HEADER",
    "ExpectedDigest",
    "format_digest",
    "parse_expected_digest",
]

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
