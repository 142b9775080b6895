"""A bound on a response head as a whole, kept by the socket reads under it (SPEC R5.4)."""

from __future__ import annotations

import time
from typing import Any

__all__ = ["HeadDeadline"]


class HeadDeadline:
    """The socket under a response's reader while its head is read: it counts what
    arrives (a break after the first byte is no stale keep-alive), and the reads after the
    first must bring the rest of the head within one more read timeout, if there is one.

    A read timeout bounds each wait, so a target sending its head a byte at a time, each
    within the timeout, could hold the request -- and its failover -- for hours (nginx's
    ``proxy_read_timeout`` has the same gap).  The first read waits as before; a head
    that arrives whole with it (nearly every head) costs nothing more.  Later reads wait
    at most for what is left of the deadline, then raise the socket's ``TimeoutError``,
    which urllib3 reports as a read timeout.  Each interim (1xx) response, a sign of life,
    starts the clock again (their number is bounded).  Calls pass on exactly as made:
    gevent's TLS socket reads nothing for an explicit ``nbytes=0``.
    """

    __slots__ = ("_deadline", "_sock", "_timeout", "received")

    def __init__(self, sock: Any, timeout: float | None) -> None:
        self._sock = sock
        self._timeout = timeout
        self._deadline: float | None = None
        self.received = 0  # bytes of the response read so far

    def restart(self) -> None:
        """The next read waits a whole read timeout again, and starts a new deadline."""
        self._deadline = None

    def recv_into(self, buffer: Any, *args: Any) -> int:
        sock = self._sock
        received: int
        if self._timeout is None:  # no read timeout: no deadline, only the count
            received = sock.recv_into(buffer, *args)
        elif self._deadline is None:
            received = sock.recv_into(buffer, *args)
            self._deadline = time.monotonic() + self._timeout
        else:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the response head took longer than the read timeout")
            sock.settimeout(min(remaining, self._timeout))
            try:
                received = sock.recv_into(buffer, *args)
            finally:
                sock.settimeout(self._timeout)
        self.received += received or 0
        return received

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)
