"""Upstream sockets whose timeouts cost no system calls per request (speed, SPEC R5.4).

CPython implements a socket timeout by putting the descriptor in non-blocking mode and
calling ``poll()`` before every ``send`` and ``recv``, and ``settimeout()`` is an
``ioctl`` every time; urllib3 sets a timeout before it sends and another before it reads,
so a small file on a kept-alive connection took six system calls where two do the work.
Each releases and retakes the GIL, which in a threaded server costs a futex wake-up and a
context switch (measured under gunicorn ``gthread``: docs/performance.rst).

:class:`KernelTimeoutSocket` keeps the descriptor blocking and hands the timeout to the
kernel (``SO_RCVTIMEO`` / ``SO_SNDTIMEO``): a ``recv`` that waits longer fails with
``EAGAIN``, raised as the same :class:`TimeoutError` a standard socket raises, so urllib3
and ``http.client`` see no difference.  ``settimeout()`` only records the timeout; the
kernel option is set before the next call that waits, and only if it changed.  The
timeout then bounds each wait for progress rather than a whole ``sendall()`` -- what
urllib3 documents its read timeout to be.  A public subclass of ``socket.socket``: no
private name is used.  Only what the middleware's own pool connects is adopted, after
the connection is made (the connect timeout keeps CPython's semantics), and only where
:func:`kernel_timeouts_work` proves the platform keeps the option as set (Linux does);
TLS sockets apply the timeout the standard way.
"""

from __future__ import annotations

import functools
import math
import operator
import os
import socket
import struct
from collections.abc import Callable
from typing import Any, Self, SupportsIndex, TypeVar, cast

__all__ = ["KernelTimeoutSocket", "adopt", "kernel_timeouts_work"]

_TIMEVAL = struct.Struct("@ll")  # struct timeval: seconds, microseconds
_LONGEST_TIMEVAL = 2 ** (8 * struct.calcsize("@l") - 1) - 1  # seconds; beyond: "forever"

_NS = 1_000_000_000
_MAX_NS = 2**63 - 1  # CPython keeps socket timeouts in signed 64-bit nanoseconds


def _nanoseconds(value: object) -> int | None:
    """A timeout the kernel options express -- positive and within CPython's range -- in
    nanoseconds rounded up, as CPython rounds it; None for everything CPython must handle
    itself: 0 (non-blocking), and the negative, NaN, infinite or non-numeric values it
    refuses.  As in CPython, a float is a float and anything else counts if it is an
    integer (``__index__``: ``True``, ``numpy.int64``)."""
    try:
        if isinstance(value, float):
            return _in_range(math.ceil(value * _NS))
        return _in_range(operator.index(cast(SupportsIndex, value)) * _NS)
    except (TypeError, OverflowError, ValueError):  # not a number, inf, nan
        return None


def _in_range(ns: int) -> int | None:
    return ns if 0 < ns <= _MAX_NS else None


def _seconds(ns: int) -> float:
    """What ``gettimeout()`` answers for a timeout of ``ns`` nanoseconds, as CPython does."""
    whole, rest = divmod(ns, _NS)
    return float(whole) if rest == 0 else ns / _NS


def _timeval(ns: int) -> bytes:
    """``struct timeval`` for the kernel, rounded up to the microsecond; 0 is "wait
    forever", as the kernel reads it, so no positive timeout may round down to it."""
    seconds, microseconds = divmod(-(-ns // 1000), 1_000_000)
    if seconds > _LONGEST_TIMEVAL:  # a 32-bit long: 68 years is forever enough
        return _TIMEVAL.pack(0, 0)
    return _TIMEVAL.pack(seconds, microseconds)


@functools.cache
def kernel_timeouts_work() -> bool:
    """Whether this platform takes and keeps a ``struct timeval`` socket timeout as set."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(1_500_000_000))
            raw = probe.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _TIMEVAL.size)
    except (OSError, AttributeError, struct.error):
        return False
    return len(raw) == _TIMEVAL.size and _TIMEVAL.unpack(raw) == (1, 500_000)


T = TypeVar("T")

_FOREVER = 0  # nanoseconds, as the kernel options say "no timeout"
_UNKNOWN = -1  # a kernel option not set by this object yet
_RECEIVE, _SEND = 0, 1


class KernelTimeoutSocket(socket.socket):
    """A ``socket.socket`` whose timeouts are ``SO_RCVTIMEO`` / ``SO_SNDTIMEO`` on a
    blocking descriptor: no ``poll()`` before each call, no ``ioctl`` per ``settimeout()``.

    ``gettimeout()``, ``settimeout()``, ``setblocking()``, and the exceptions of the
    receiving and sending calls, behave as a standard socket's.  A timeout of 0
    (non-blocking) is CPython's own mode, as before.

    ``settimeout()`` only records the timeout; a receiving call sets ``SO_RCVTIMEO`` and a
    sending call ``SO_SNDTIMEO`` first if it differs from what the kernel holds.  urllib3
    alternates two timeouts (connect, then read) on every request, but always the connect
    one for sending and the read one for receiving, so a kept-alive connection makes no
    ``setsockopt`` call at all after its first request.  The options live on the open file
    description, which ``dup()`` shares, so a duplicate shares what was set with them.

    Two differences remain, neither of which urllib3 meets: the timeout bounds each wait
    for progress, not a whole ``sendall()``; and a signal interrupting a wait starts the
    kernel's clock again (CPython retries the call), where a standard socket counts down
    to its deadline, so each signal that interrupts a wait can stretch it by up to one
    timeout.  WSGI servers signal their workers to reload or to stop, not as a matter of
    course.
    """

    __slots__ = ("_ns", "_set", "_timeout")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Blocking, whatever the descriptor was (a timeout had made it non-blocking) and
        # whatever socket.setdefaulttimeout() says: once per connection.
        super().settimeout(None)
        self._timeout: float | None = None
        self._ns = _FOREVER  # the timeout the next call must wait for
        self._set = [_UNKNOWN, _UNKNOWN]  # what the kernel holds: receive, send

    def settimeout(self, value: float | None) -> None:
        ns = _nanoseconds(value)
        if ns is None and value is not None:
            super().settimeout(value)  # 0.0, or CPython's error for a bad value
            self._timeout = super().gettimeout()
            return
        if super().gettimeout() is not None:
            super().settimeout(None)  # back from non-blocking mode
        if ns is None:
            self._timeout, self._ns = None, _FOREVER
        else:
            self._timeout, self._ns = _seconds(ns), ns

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self.settimeout(None if flag else 0.0)

    def dup(self) -> Self:
        twin = super().dup()
        twin._set = self._set  # one open file description: one set of kernel options
        return twin

    def _wait_at_most(self, direction: int) -> None:
        """Give the kernel option for receiving or sending the current timeout, if it holds
        another one."""
        ns = self._ns
        if self._set[direction] != ns:
            option = socket.SO_RCVTIMEO if direction == _RECEIVE else socket.SO_SNDTIMEO
            self.setsockopt(socket.SOL_SOCKET, option, _timeval(ns))
            self._set[direction] = ns

    def _timed_out(self, error: BlockingIOError, flags: int = 0) -> OSError:
        """EAGAIN is the kernel timeout expiring only on a blocking descriptor asked to
        wait; otherwise (timeout 0, ``MSG_DONTWAIT``, a duplicate made non-blocking) it
        is what CPython raises too."""
        waited = (
            self._timeout
            and not flags & getattr(socket, "MSG_DONTWAIT", 0)
            and os.get_blocking(self.fileno())
        )
        return TimeoutError("timed out") if waited else error

    def _waiting(self, direction: int, flags: int, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` -- one of CPython's receiving or sending calls -- with the kernel
        option for ``direction`` set first and EAGAIN reported as the timeout it is."""
        self._wait_at_most(direction)
        try:
            return call(*args)
        except BlockingIOError as error:
            raise self._timed_out(error, flags) from None

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return self._waiting(_RECEIVE, flags, super().recv, bufsize, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        return self._waiting(_RECEIVE, flags, super().recv_into, buffer, nbytes, flags)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        return self._waiting(_RECEIVE, flags, super().recvfrom, bufsize, flags)

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        return self._waiting(_RECEIVE, flags, super().recvfrom_into, buffer, nbytes, flags)

    def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0) -> Any:
        return self._waiting(_RECEIVE, flags, super().recvmsg, bufsize, ancbufsize, flags)

    def recvmsg_into(self, buffers: Any, ancbufsize: int = 0, flags: int = 0) -> Any:
        return self._waiting(_RECEIVE, flags, super().recvmsg_into, buffers, ancbufsize, flags)

    def send(self, data: Any, flags: int = 0) -> int:
        return self._waiting(_SEND, flags, super().send, data, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._waiting(_SEND, flags, super().sendall, data, flags)

    def sendto(self, data: Any, *args: Any) -> int:  # (data, address) or (data, flags, address)
        flags = args[0] if len(args) == 2 else 0
        return self._waiting(_SEND, flags, super().sendto, data, *args)

    def sendmsg(self, buffers: Any, ancdata: Any = (), flags: int = 0, address: Any = None) -> int:
        extra = () if address is None else (address,)
        return self._waiting(_SEND, flags, super().sendmsg, buffers, ancdata, flags, *extra)

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        self._wait_at_most(_SEND)  # socket.sendfile waits for writability itself, then sends
        return super().sendfile(file, offset, count)


_STANDARD_SOCKET = socket.socket  # as this module found it


def _sockets_are_standard() -> bool:
    """No green-thread library has replaced ``socket.socket``, now or before this module
    was imported.  gevent and eventlet (gunicorn's ``gevent`` and ``eventlet`` workers)
    swap in sockets that wait on their event loop and keep descriptors non-blocking: a
    kernel timeout would never fire on them, and a blocking descriptor would stop every
    greenlet of the process while it waits."""
    return socket.socket is _STANDARD_SOCKET and _STANDARD_SOCKET.__module__ == "socket"


def adopt(sock: socket.socket) -> socket.socket:
    """The connected ``sock`` as a :class:`KernelTimeoutSocket` with the same timeout, or
    ``sock`` itself: under gevent or eventlet, and where the platform's kernel timeouts
    cannot be relied on."""
    if (
        type(sock) is not _STANDARD_SOCKET
        or not _sockets_are_standard()
        or not kernel_timeouts_work()
    ):
        return sock
    timeout = sock.gettimeout()
    adopted = KernelTimeoutSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    adopted.settimeout(timeout)
    return adopted
