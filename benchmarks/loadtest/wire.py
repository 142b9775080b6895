"""Raw-socket HTTP/1.1: the few pieces both ends share.

The replicas read request heads with them and the clients response heads; either side
hangs up abruptly (RST) with :func:`reset_on_close`.  Raw sockets, not ``http.client``, so
that a body can be cut, or abandoned, exactly where the plan says.
"""

from __future__ import annotations

import socket
import struct

from .files import KIB

HEAD_READ = 64 * KIB  # heads are read with recv() of this size: body bytes may come along
_TCP_ESTABLISHED = 1  # tcp_info.tcpi_state (linux/tcp_states.h)


def read_head(sock: socket.socket, pending: bytes) -> tuple[bytes | None, bytes]:
    """One message head and the bytes after it; at EOF, None and the bytes that came."""
    while b"\r\n\r\n" not in pending:
        data = sock.recv(HEAD_READ)
        if not data:
            return None, pending
        pending += data
    head, _, rest = pending.partition(b"\r\n\r\n")
    return head, rest


def parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    """The start line, and the header fields by lower-cased name."""
    start_line, *lines = head.decode("latin-1").split("\r\n")
    fields = (line.partition(":") for line in lines)
    return start_line, {name.strip().lower(): value.strip() for name, _, value in fields}


def reset_on_close(sock: socket.socket) -> None:
    """SO_LINGER on, zero timeout: close() sends RST, not FIN, and discards unread data."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def established(sock: socket.socket) -> bool:
    """Is ``sock`` still ESTABLISHED?  A peer's FIN or RST ends it in the kernel at once,
    whereas the thread owning the socket may only notice later."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0] == _TCP_ESTABLISHED
    except OSError:
        return False
