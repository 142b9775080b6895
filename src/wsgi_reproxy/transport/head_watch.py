"""The reader under a response while its head is read: counted, bounded (SPEC R5.4)."""

from __future__ import annotations

import io
import time
from typing import Any

__all__ = ["HeadWatch"]


class HeadWatch(io.RawIOBase):
    """A socket's raw reader (``sock.makefile("rb", buffering=0)``) that, while
    :attr:`watching`, counts what arrives, notes the connection's end, and bounds the
    head as a whole.

    The count tells a stale keep-alive (nothing arrived: the request may be sent again)
    from a response cut off (it may not).  The end tells a head cut short from a whole
    one: ``http.client`` takes the lines before the end for the whole head.  The bound:
    a read timeout limits each wait, so a target sending its head a byte at a time,
    each within the timeout, could hold the request -- and its failover -- for hours
    (nginx's ``proxy_read_timeout`` has the same gap).  The first read waits as usual;
    the reads after it must bring the rest of the head within one more read timeout,
    waiting at most what is left through the public ``settimeout()``.  A head that
    arrives in one piece (nearly every head) costs nothing more.  Once the head is read
    the watch steps aside and every read passes straight through.
    """

    def __init__(self, sock: Any) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        self._timeout: float | None = None
        self._deadline: float | None = None
        self.watching = False
        self.received = 0  # bytes read while watching
        self.ended = False  # a read while watching found the connection's end

    def start(self) -> None:
        """Watch the next reads: a new head, whose first read waits a whole timeout."""
        self._timeout = self._sock.gettimeout()
        self._deadline = None
        self.ended = False
        self.watching = True

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        if not self.watching:
            received: int | None = self._raw.readinto(buffer)
            return received
        if self._timeout is None:  # no read timeout: no deadline, only the count
            received = self._raw.readinto(buffer)
        elif self._deadline is None:
            received = self._raw.readinto(buffer)
            self._deadline = time.monotonic() + self._timeout
        else:
            received = self._bounded_read(buffer, self._deadline - time.monotonic())
        self.received += received or 0
        self.ended = self.ended or received == 0
        return received

    def _bounded_read(self, buffer: Any, remaining: float) -> int | None:
        if remaining <= 0:
            raise TimeoutError("the response head took longer than the read timeout")
        self._sock.settimeout(min(remaining, self._timeout or remaining))
        try:
            received: int | None = self._raw.readinto(buffer)
        finally:
            self._sock.settimeout(self._timeout)
        return received

    def fileno(self) -> int:
        fileno: int = self._raw.fileno()
        return fileno

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()
