"""Kernel-kept socket timeouts against the standard socket they stand in for.

:class:`wsgi_reproxy.transport.sockets.KernelTimeoutSocket` must be a ``socket.socket`` in every way
urllib3 and ``http.client`` can see -- ``gettimeout()``, ``getblocking()``, which
exception a wait that is too long raises, and after how long -- while its descriptor stays
blocking (no ``poll()`` before each call).  These tests hold it to that on real socket
pairs and on the middleware's own connections.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import urllib3
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import call, own_pool_middleware, reproxy_app
from upstreams import FILES, FileServer, Handler, ScriptedServer, stall_mid_body
from wsgi_reproxy import ReproxyMiddleware, UpstreamBodyError
from wsgi_reproxy.transport import sockets
from wsgi_reproxy.transport.sockets import KernelTimeoutSocket, adopt, kernel_timeouts_work

pytestmark = pytest.mark.skipif(not kernel_timeouts_work(), reason="no kernel timeouts here")

SHORT = 0.3
Scripted = Callable[[Handler], ScriptedServer]


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(peer, ours): ``ours`` adopted after a timeout was set, as urllib3 leaves it."""
    peer, plain = socket.socketpair()
    plain.settimeout(5.0)
    ours = adopt(plain)
    with peer, ours:
        yield peer, ours


def test_adopt_keeps_the_timeout_on_a_blocking_descriptor(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    _, ours = pair
    assert isinstance(ours, KernelTimeoutSocket)
    assert ours.gettimeout() == 5.0
    assert ours.getblocking() is True
    assert os.get_blocking(ours.fileno()) is True  # no poll() before each call


def test_data_is_read_and_written_as_usual(pair: tuple[socket.socket, socket.socket]) -> None:
    peer, ours = pair
    ours.sendall(b"ping")
    assert peer.recv(10) == b"ping"
    peer.sendall(b"pong")
    buffer = bytearray(10)
    assert ours.recv_into(buffer) == 4
    assert bytes(buffer[:4]) == b"pong"
    peer.sendall(b"again")
    assert ours.recv(10) == b"again"
    assert ours.send(b"x") == 1


@pytest.mark.parametrize("method", ["recv", "recv_into"])
def test_a_read_that_waits_too_long_times_out_like_a_standard_socket(
    pair: tuple[socket.socket, socket.socket], method: str
) -> None:
    _, ours = pair
    ours.settimeout(SHORT)
    started = time.monotonic()
    read = {"recv": lambda: ours.recv(10), "recv_into": lambda: ours.recv_into(bytearray(10))}
    with pytest.raises(TimeoutError, match="timed out"):
        read[method]()
    waited = time.monotonic() - started
    assert SHORT * 0.8 <= waited < SHORT + 1.0


@pytest.mark.parametrize("method", ["recvfrom", "recvfrom_into", "recvmsg", "recvmsg_into"])
def test_every_receiving_call_honours_the_timeout(
    pair: tuple[socket.socket, socket.socket], method: str
) -> None:
    peer, ours = pair
    ours.settimeout(SHORT)  # a fresh socket: the kernel option is set by the call itself
    calls = {
        "recvfrom": lambda: ours.recvfrom(10),
        "recvfrom_into": lambda: ours.recvfrom_into(bytearray(10)),
        "recvmsg": lambda: ours.recvmsg(10),
        "recvmsg_into": lambda: ours.recvmsg_into([bytearray(10)]),
    }
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        calls[method]()
    assert time.monotonic() - started < SHORT + 1.0
    peer.sendall(b"data")
    received = calls[method]()
    assert received[0] in (b"data", 4)


def test_every_sending_call_honours_the_timeout(
    pair: tuple[socket.socket, socket.socket], tmp_path: Any
) -> None:
    _, ours = pair
    ours.settimeout(SHORT)
    with pytest.raises(TimeoutError):
        _write_until_full(lambda chunk: ours.sendmsg([chunk]))
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (8 * 1024 * 1024))
    started = time.monotonic()
    with big.open("rb") as file, pytest.raises(TimeoutError):
        ours.sendfile(file)
    assert time.monotonic() - started < 10


def test_eagain_that_is_not_a_timeout_stays_a_blocking_io_error(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """MSG_DONTWAIT, or a duplicate that made the shared descriptor non-blocking: EAGAIN
    then means "nothing yet", as CPython says, not "waited too long"."""
    _, ours = pair
    ours.settimeout(5.0)
    with pytest.raises(BlockingIOError):
        ours.recv(1, socket.MSG_DONTWAIT)
    with ours.dup() as twin:
        twin.settimeout(0.0)
        started = time.monotonic()
        with pytest.raises(BlockingIOError):
            ours.recv(1)
        assert time.monotonic() - started < 1.0


def _write_until_full(write: Callable[[bytes], object]) -> None:
    chunk = b"x" * 65536
    for _ in range(10_000):  # far more than any socket buffer
        write(chunk)


@pytest.mark.parametrize("method", ["send", "sendall"])
def test_a_write_that_waits_too_long_times_out_like_a_standard_socket(
    pair: tuple[socket.socket, socket.socket], method: str
) -> None:
    """The peer never reads: once the buffers are full, the write waits and times out."""
    _, ours = pair
    ours.settimeout(SHORT)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="timed out"):
        _write_until_full(getattr(ours, method))
    assert time.monotonic() - started < 10


def test_none_waits_and_zero_is_non_blocking_as_in_cpython(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    peer, ours = pair
    ours.settimeout(0.0)
    assert (ours.gettimeout(), ours.getblocking()) == (0.0, False)
    with pytest.raises(BlockingIOError):  # not a timeout: nothing was waited for
        ours.recv(10)
    with pytest.raises(BlockingIOError):
        ours.recv_into(bytearray(10))
    ours.setblocking(True)
    assert (ours.gettimeout(), ours.getblocking()) == (None, True)
    assert os.get_blocking(ours.fileno()) is True
    peer.sendall(b"late")
    assert ours.recv(10) == b"late"
    ours.setblocking(False)
    assert ours.gettimeout() == 0.0
    ours.settimeout(SHORT)  # back from non-blocking mode to a kernel timeout
    assert os.get_blocking(ours.fileno()) is True
    with pytest.raises(TimeoutError):
        ours.recv(10)


def test_non_blocking_writes_raise_blocking_io_error(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    _, ours = pair
    ours.settimeout(0.0)
    with pytest.raises(BlockingIOError):
        _write_until_full(ours.send)
    with pytest.raises(BlockingIOError):
        ours.sendall(b"x" * 65536)


class Indexed:
    """An integer that is not an int (as ``numpy.int64`` is): CPython takes it as one."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return f"Indexed({self.value})"


timeouts = st.one_of(
    st.builds(Indexed, st.integers(min_value=-2, max_value=10**12)),
    st.none(),
    st.just(0),
    st.just(0.0),
    st.floats(min_value=1e-9, max_value=1e6),
    st.integers(min_value=-3, max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), -0.5, 1e-7, 1e10, 9.3e9, 2**70, True, "1", b"1", [1]]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(timeouts, min_size=1, max_size=6))
def test_timeouts_are_taken_and_refused_as_a_standard_socket_takes_them(
    values: list[object],
) -> None:
    """Differential: after each settimeout(), the same gettimeout()/getblocking() or the
    same exception type as a plain socket."""
    plain_a, plain_b = socket.socketpair()
    ours_plain, spare = socket.socketpair()
    ours = adopt(ours_plain)
    with plain_a, plain_b, ours, spare:
        assert isinstance(ours, KernelTimeoutSocket)
        for value in values:
            values_seen = repr(values)
            try:
                plain_a.settimeout(value)  # type: ignore[arg-type]
                expected: object = (plain_a.gettimeout(), plain_a.getblocking())
            except Exception as error:
                expected = type(error)
            try:
                ours.settimeout(value)  # type: ignore[arg-type]
                got: object = (ours.gettimeout(), ours.getblocking())
            except Exception as error:
                got = type(error)
            assert got == expected, values_seen
            assert os.get_blocking(ours.fileno()) is (ours.gettimeout() != 0.0), values_seen


@pytest.mark.parametrize("first", [Indexed(5), 5, 5.0, 0.0, None])
def test_the_timeout_waited_for_is_the_last_one_set(
    pair: tuple[socket.socket, socket.socket], first: object
) -> None:
    """Whatever came before (an integer that is not an int, as numpy's, used to leave the
    descriptor non-blocking with CPython's old timeout), a read waits the last timeout."""
    _, ours = pair
    ours.settimeout(first)  # type: ignore[arg-type]
    ours.settimeout(SHORT)
    assert os.get_blocking(ours.fileno()) is True
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        ours.recv(1)
    assert SHORT * 0.8 <= time.monotonic() - started < SHORT + 1.0


@pytest.mark.parametrize(
    ("timeout", "timeval"),
    [(None, (0, 0)), (5, (5, 0)), (0.25, (0, 250_000)), (1e-9, (0, 1)), (1.0000001, (1, 1))],
)
def test_timevals_never_turn_a_short_timeout_into_forever(
    timeout: float | None, timeval: tuple[int, int]
) -> None:
    ns = 0 if timeout is None else sockets._nanoseconds(timeout)
    assert ns is not None
    assert sockets._TIMEVAL.unpack(sockets._timeval(ns)) == timeval


def _kernel_timeout(sock: socket.socket, option: int) -> tuple[int, int]:
    raw = sock.getsockopt(socket.SOL_SOCKET, option, sockets._TIMEVAL.size)
    seconds, microseconds = sockets._TIMEVAL.unpack(raw)
    return seconds, microseconds


class CountingSocket(KernelTimeoutSocket):
    """Counts the kernel options it sets."""

    calls: list[int]

    def setsockopt(self, *args: Any) -> None:
        self.calls.append(args[1])
        super().setsockopt(*args)


def test_timeouts_reach_the_kernel_once_and_only_for_the_calls_that_wait() -> None:
    """urllib3's pattern on a kept-alive connection -- connect timeout, send, read timeout,
    receive -- sets each kernel option once, on the first request, then never again."""
    peer, plain = socket.socketpair()
    ours = CountingSocket(plain.family, plain.type, plain.proto, fileno=plain.detach())
    ours.calls = []
    with peer, ours:
        for _ in range(5):
            ours.settimeout(5.0)
            ours.sendall(b"GET / HTTP/1.1\r\n\r\n")
            ours.settimeout(30.0)
            peer.sendall(peer.recv(100))
            assert ours.recv(100) == b"GET / HTTP/1.1\r\n\r\n"
        assert ours.calls == [socket.SO_SNDTIMEO, socket.SO_RCVTIMEO]
        assert _kernel_timeout(ours, socket.SO_SNDTIMEO) == (5, 0)
        assert _kernel_timeout(ours, socket.SO_RCVTIMEO) == (30, 0)
        ours.settimeout(SHORT)  # recorded, not yet applied
        assert _kernel_timeout(ours, socket.SO_RCVTIMEO) == (30, 0)
        with pytest.raises(TimeoutError):
            ours.recv(1)
        assert _kernel_timeout(ours, socket.SO_RCVTIMEO) == (0, 300_000)


def test_a_duplicate_shares_the_kernel_options_it_shares_with_the_original(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    peer, ours = pair
    ours.settimeout(SHORT)
    with ours.dup() as twin:
        twin.settimeout(30.0)
        peer.sendall(b"a")
        assert twin.recv(1) == b"a"  # the shared description now waits 30 s
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            ours.recv(1)  # ... so the original sets its own 0.3 s again first
        assert time.monotonic() - started < SHORT + 1.0


def test_dup_keeps_the_timeout(pair: tuple[socket.socket, socket.socket]) -> None:
    _, ours = pair
    ours.settimeout(SHORT)
    with ours.dup() as twin:
        assert isinstance(twin, KernelTimeoutSocket)
        assert twin.gettimeout() == SHORT
        with pytest.raises(TimeoutError):
            twin.recv(1)


def test_adopt_leaves_other_sockets_and_platforms_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    class Special(socket.socket):
        pass

    with Special(socket.AF_INET, socket.SOCK_STREAM) as special:
        assert adopt(special) is special
    monkeypatch.setattr(sockets, "kernel_timeouts_work", lambda: False)
    plain = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with plain:
        assert adopt(plain) is plain


def test_tls_connections_keep_standard_sockets() -> None:
    """ssl.SSLSocket applies timeouts its own way: HTTPS connections are never adopted,
    in the plain pool or the guarded one."""
    from wsgi_reproxy.directive import HostPatterns
    from wsgi_reproxy.transport.connections import pool_classes
    from wsgi_reproxy.transport.guard import guarded_pool_classes

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        allowed = HostPatterns([f"127.0.0.1:{port}"])
        guarded = guarded_pool_classes(allowed)["https"]
        for pool_class in (pool_classes()["https"], guarded):
            connection = pool_class.ConnectionCls("127.0.0.1", port, timeout=5.0)
            sock = connection._new_conn()
            with sock:
                assert type(sock) is socket.socket
        plain = pool_classes()["http"].ConnectionCls("127.0.0.1", port, timeout=5.0)
        with plain._new_conn() as sock:
            assert type(sock) is KernelTimeoutSocket


# -- the middleware's own connections ---------------------------------------------------


def _pooled_sockets(mw: ReproxyMiddleware) -> list[socket.socket]:
    found = []
    for key in mw.pool.pools.keys():  # noqa: SIM118 (the container refuses iteration)
        queue = mw.pool.pools[key].pool
        assert queue is not None
        found += [conn.sock for conn in list(queue.queue) if conn is not None and conn.sock]
    return found


@pytest.mark.parametrize("refuse_local", [False, True])
def test_the_middlewares_connections_keep_a_blocking_descriptor(refuse_local: bool) -> None:
    """R5: after reproxied requests, the kept-alive upstream sockets are kernel-timeout
    sockets with the read timeout, and never went non-blocking (no poll per call)."""
    with FileServer() as files:
        mw = own_pool_middleware(
            files.url("/files/small.txt"),
            files.port,
            refuse_local=refuse_local,
            timeout=urllib3.Timeout(connect=3.0, read=7.0),
        )
        for _ in range(3):
            assert call(mw, "/r/small.txt").body == FILES["small.txt"]
        (sock,) = _pooled_sockets(mw)
        assert isinstance(sock, KernelTimeoutSocket)
        assert sock.gettimeout() == 7.0
        assert os.get_blocking(sock.fileno()) is True
        assert files.connections == 1
        mw.pool.clear()


def test_a_stalled_body_is_aborted_after_the_read_timeout(scripted: Scripted) -> None:
    """R6.4 through the kernel timeout: 10 of 100 bytes, then silence, then an error out of
    the body (never an end that looks complete), after about the read timeout."""
    server = scripted(stall_mid_body(100, b"0123456789"))
    mw = ReproxyMiddleware(reproxy_app(server.url("/x")), allow=["/r/"], timeout=SHORT)
    started = time.monotonic()
    with pytest.raises(UpstreamBodyError, match="ReadTimeoutError") as raised:
        call(mw, "/r/x")
    assert raised.value.sent == 10
    assert SHORT * 0.8 <= time.monotonic() - started < SHORT + 5
    mw.pool.clear()


def test_platforms_without_the_options_keep_standard_sockets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    probe = sockets.kernel_timeouts_work.__wrapped__
    assert probe() is True
    monkeypatch.delattr(socket, "SO_RCVTIMEO")  # as on a platform without it
    assert probe() is False


def test_datagram_calls_with_addresses_work_and_time_out() -> None:
    """The calls that take an address (unused by HTTP) pass it on unchanged, and wait no
    longer than the timeout: a Unix datagram socket blocks its sender when the receiver's
    queue is full."""
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        path = os.path.join(folder, "peer")
        with (
            KernelTimeoutSocket(socket.AF_UNIX, socket.SOCK_DGRAM) as ours,
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as peer,
        ):
            peer.bind(path)
            ours.bind(os.path.join(folder, "ours"))
            ours.settimeout(SHORT)
            assert ours.sendto(b"one", path) == 3
            assert ours.sendto(b"two", 0, path) == 3
            assert ours.sendmsg([b"three"], (), 0, path) == 5
            assert [peer.recv(10) for _ in range(3)] == [b"one", b"two", b"three"]
            with pytest.raises(TimeoutError):
                ours.recvfrom(10)
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                _write_until_full(lambda chunk: ours.sendto(chunk[:1024], path))
            assert time.monotonic() - started < 10


def test_timeouts_beyond_a_32_bit_timeval_mean_forever(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sockets, "_LONGEST_TIMEVAL", 2**31 - 1)
    assert sockets._TIMEVAL.unpack(sockets._timeval(2**31 * 1_000_000_000)) == (0, 0)
    assert sockets._TIMEVAL.unpack(sockets._timeval((2**31 - 1) * 1_000_000_000)) == (
        2**31 - 1,
        0,
    )


GREEN_SCRIPT = """
import sys
if sys.argv[1] == "patch first":
    from gevent import monkey; monkey.patch_all()
    from wsgi_reproxy.transport import sockets
else:
    from wsgi_reproxy.transport import sockets
    from gevent import monkey; monkey.patch_all()
import socket, time, gevent
ours, peer = socket.socketpair()
ours.settimeout(0.3)
adopted = sockets.adopt(ours)
ticks = []
def tick():
    for n in range(5):
        ticks.append(n)
        gevent.sleep(0.02)
gevent.spawn(tick)
started = time.monotonic()
try:
    adopted.recv(1)
except TimeoutError:
    print(type(adopted).__module__, len(ticks), time.monotonic() - started)
"""


@pytest.mark.parametrize("order", ["patch first", "import first"])
def test_gevent_sockets_are_never_adopted(order: str) -> None:
    """Under gevent (gunicorn's gevent worker) a kernel timeout would never fire on its
    non-blocking descriptors, and a blocking one would stop every greenlet: sockets stay
    gevent's, time out on gevent's clock, and other greenlets run meanwhile."""
    pytest.importorskip("gevent")
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", GREEN_SCRIPT, order],
        capture_output=True,
        text=True,
        timeout=10,
    )
    module, ticks, waited = done.stdout.split() or ["", "", "nan"]
    assert module.startswith("gevent"), done.stderr
    assert ticks == "5"  # the other greenlet ran while this one waited
    assert 0.25 <= float(waited) < 5.0
