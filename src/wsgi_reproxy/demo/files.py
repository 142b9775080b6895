"""The demo's files: a small deterministic catalogue, so checksums are the same everywhere."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

__all__ = ["BIG_SIZE", "DemoFile", "demo_files"]

BIG_SIZE = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class DemoFile:
    """One file of the backend's catalogue, with the digest used for ETag and checks."""

    name: str
    data: bytes
    content_type: str
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.data).hexdigest())

    @property
    def etag(self) -> str:
        return f'"{self.sha256[:16]}"'


def demo_files() -> dict[str, DemoFile]:
    """The catalogue, generated deterministically so that checksums are the same everywhere."""
    hello = b"".join(f"Hello from the storage tier! line {n}\n".encode() for n in range(1, 9))
    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + random.Random(1).randbytes(2048) + b"\n%%EOF\n"
    files = [
        DemoFile("hello.txt", hello, "text/plain; charset=utf-8"),
        DemoFile("report.pdf", pdf, "application/pdf"),
        DemoFile("big.bin", random.Random(0).randbytes(BIG_SIZE), "application/octet-stream"),
        DemoFile("lost.txt", b"every replica lost this file\n", "text/plain; charset=utf-8"),
    ]
    return {file.name: file for file in files}
