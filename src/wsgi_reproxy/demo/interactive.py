"""The interactive mode: print the addresses and curl commands, serve until Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TextIO

from .stack import Demo, banner, running_demo

__all__ = ["serve"]


def instructions(demo: Demo) -> str:
    """What to print in interactive mode: the addresses, and curl commands to try."""
    url, big, hello = demo.url, demo.files["big.bin"], demo.files["hello.txt"]
    return "\n".join(
        [
            banner(demo),
            "",
            "Try (and watch the failover warnings below):",
            f"  curl -s {url}/download/big.bin | sha256sum    # expect {big.sha256}",
            f"  curl -s -r 0-99 -D - {url}/download/hello.txt    # 206, the first 100 bytes",
            f"  curl -I {url}/download/big.bin    # HEAD: Content-Length {len(big.data)}, no body",
            f"  curl -s -o /dev/null -w '%{{http_code}}\\n' -H 'If-None-Match: {hello.etag}' "
            f"{url}/download/hello.txt    # 304",
            f"  curl -s -D - {url}/inline/hello.txt    # pass-through: the app's own bytes",
            f"  curl -s -D - {url}/download/lost.txt    # on no replica: 502",
            "",
            "Press Ctrl-C to stop.",
        ]
    )


@contextlib.contextmanager
def interrupted_by_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into KeyboardInterrupt while serving, then restore them.

    SIGINT is set explicitly because a shell starts background jobs with it ignored, and
    ``kill -INT`` should still stop the demo cleanly; SIGTERM so that ``kill`` does too.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def serve(port: int = 0, out: TextIO | None = None) -> int:
    """Run the demo until Ctrl-C (or SIGTERM), then stop everything cleanly and return 0."""
    out = out or sys.stdout
    with interrupted_by_signals(), running_demo(port) as demo:
        print(instructions(demo), file=out, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", file=out, flush=True)
    print("stopped", file=out, flush=True)
    return 0
