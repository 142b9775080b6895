"""The files the replicas serve, and what clients check them against.

Deterministic and incompressible, of sizes below and well above the middleware's 64 KiB
chunk size; each with its sha256 and a strong ETag.
"""

from __future__ import annotations

import hashlib
import random

KIB = 1024
MIB = 1024 * KIB

FILE_SIZES = {
    "16k.bin": 16 * KIB,
    "200k.bin": 200 * KIB,
    "1m.bin": MIB,
    "3m.bin": 3 * MIB,
    "12m.bin": 12 * MIB,
}
FILES = {name: random.Random(name).randbytes(size) for name, size in FILE_SIZES.items()}
SHA256 = {name: hashlib.sha256(data).digest() for name, data in FILES.items()}
ETAGS = {name: '"' + digest.hex()[:16] + '"' for name, digest in SHA256.items()}
APP_CONTENT_TYPE = "application/x-load-test"  # load_app.py's, kept by preserve=["Content-Type"]

# Hang-ups fetch this one: larger than what the kernel buffers between gunicorn and a client
# (up to a 4 MiB send buffer, and the client's receive buffer, set small), so that most of
# them reach the middleware as a client gone mid-body, not after the last write.
HANGUP_FILE = "12m.bin"
SERVED_FILES = sorted(set(FILES) - {HANGUP_FILE})
