"""The clients: raw sockets, one connection per request, every answer judged.

A hang-up client shrinks its receive window before connecting and resets the connection
after ``hang_at`` body bytes, so that the middleware meets a client gone mid-body.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from .files import KIB
from .plan import Planned
from .verdicts import Outcome, Response, judge
from .wire import parse_head, read_head, reset_on_close

_HANGUP_RCVBUF = 64 * KIB
_BODY_READ = 256 * KIB


def _read_response_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, header fields and the body bytes that came along with the head."""
    head, first = read_head(sock, b"")
    if head is None:
        raise ConnectionError(f"closed before the response head ({len(first)} bytes)")
    status_line, headers = parse_head(head)
    return int(status_line.split(" ", 2)[1]), headers, first


def _read_body(sock: socket.socket, body: bytearray, stop_at: int | None) -> bool:
    """Read until EOF (``Connection: close``) or ``stop_at`` bytes; True when reset."""
    try:
        while stop_at is None or len(body) < stop_at:
            wanted = _BODY_READ if stop_at is None else min(_BODY_READ, stop_at - len(body))
            data = sock.recv(wanted)
            if not data:
                return False
            body += data
    except ConnectionResetError:
        return True
    return False


def exchange(port: int, plan: Planned, timeout: float) -> Response:
    """Send ``plan``'s GET; read the whole answer, or hang up abruptly at ``hang_at``."""
    with socket.socket() as sock:
        if plan.kind == "hangup":  # before connect, so that the window is small from the start
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _HANGUP_RCVBUF)
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        request = f"GET {plan.path()} HTTP/1.1\r\nHost: load\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode("ascii"))
        status, headers, first = _read_response_head(sock)
        body = bytearray(first)
        hang_up = plan.kind == "hangup" and status == 200
        reset = _read_body(sock, body, plan.hang_at if hang_up else None)
        if hang_up:  # an abrupt close mid-body
            reset_on_close(sock)
        return Response(status, headers, bytes(body), reset, hang_up)


def run_one(port: int, plan: Planned, deadline: float, timeout: float) -> Outcome:
    """One request, bounded by the socket timeout and the run's deadline."""
    if time.monotonic() > deadline:
        return Outcome(plan, "not sent", detail="deadline passed")
    try:
        return judge(plan, exchange(port, plan, timeout))
    except (OSError, ValueError, IndexError) as error:
        return Outcome(plan, "error", detail=f"{type(error).__name__}: {error}")


def drive(
    port: int, plans: Sequence[Planned], clients: int, deadline: float, timeout: float
) -> list[Outcome]:
    """Run ``plans`` with ``clients`` concurrent client threads."""
    with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="client") as pool:
        return list(pool.map(lambda plan: run_one(port, plan, deadline, timeout), plans))
