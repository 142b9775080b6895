"""The app gunicorn loads for ``benchmarks/load.py``: a tiny backend behind the middleware.

Started by ``loadtest/server.py``; it imports nothing from ``loadtest``, whose files would
weigh on the worker RSS the test measures.

It runs in gunicorn's worker process, so everything the load script needs to know from the
inside is exposed on ``GET /stats`` (a path the middleware does not enable):

* ``events``: records of the ``wsgi_reproxy`` logger, counted by kind (``resume``,
  ``abort``, ``failover`` ...) by a handler attached here.  The middleware's log is its only
  report of what it did with a broken body, so counting it is the honest measure;
* ``app``: app iterables created and closed (each must be closed exactly once, R4.4);
* ``rss_kib`` / ``hwm_kib``: the worker's ``VmRSS`` and peak ``VmHWM``; ``objects``: how
  many objects the garbage collector tracks, to tell a Python-level leak (objects grow
  with requests) from allocator fragmentation (RSS grows, objects do not);
* ``malloc_in_use_kib``: what glibc's malloc has handed out and not had back
  (``mallinfo2()``), the memory in use outside Python's own small-object arenas, which
  RSS mixes with freed memory malloc keeps for reuse (``null`` when malloc is not
  glibc's);
* with ``?trim=1`` also ``trimmed_rss_kib``: ``VmRSS`` again after ``malloc_trim(0)`` has
  given that kept memory back.  Asked for at the end only: it changes the heap, and so
  what RSS does afterwards.

Configured by the environment, because it runs in another process:

``LOAD_GOOD``           space-separated base URLs of the good replicas
``LOAD_DYING``          base URL of the dying replica
``LOAD_POOL_MAXSIZE``   ``maxsize`` of the ``block=True`` pool (default 8)

``GET /r/<name>`` answers ``X-Reproxy-Url`` with the good replicas, rotated by ``?first=N``;
with ``?dying=CUT:HOW`` the dying replica comes first (told to cut the body after ``CUT``
bytes, by FIN or RST), followed by one good replica unless ``alone=1``.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import json
import logging
import os
import platform
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

import urllib3

from wsgi_reproxy import ReproxyMiddleware, can_reproxy, reproxy_headers

StartResponse = Callable[..., Callable[[bytes], object]]

# What the middleware logs, by the start of each message template (wsgi_reproxy/*.py).
EVENT_PREFIXES = (
    ("resume", "reproxied body from"),  # a body broke and continued from the next URL
    ("abort", "reproxied body broke"),  # a body broke and could not be continued
    ("resume_failed", "reproxy resume attempt failed"),
    ("resume_refused", "reproxy resume refused"),
    ("failover", "reproxy attempt failed"),  # a URL failed before its body started
    ("all_failed", "reproxy failed"),
)

APP_CONTENT_TYPE = "application/x-load-test"  # = loadtest/files.py's, which the clients check

_lock = threading.Lock()
_events: Counter[str] = Counter()
_app_counts: Counter[str] = Counter()


class _EventCounter(logging.Handler):
    """Counts the middleware's log records by kind; the text itself is not kept."""

    def emit(self, record: logging.LogRecord) -> None:
        template = str(record.msg)
        kind = next(
            (k for k, prefix in EVENT_PREFIXES if template.startswith(prefix)),
            f"other {record.levelname}: {template[:60]}",
        )
        with _lock:
            _events[kind] += 1


class _Counted:
    """The app's (discarded) body, counting creation and close() across the process."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks
        with _lock:
            _app_counts["created"] += 1

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def close(self) -> None:
        with _lock:
            _app_counts["closed"] += 1


def _memory_kib() -> dict[str, int]:
    """VmRSS and VmHWM of this process, from /proc (Linux), in KiB."""
    fields = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])
    return {"rss_kib": fields["VmRSS"], "hwm_kib": fields["VmHWM"]}


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (glibc 2.33+), summed over all arenas by glibc."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


@functools.cache
def _glibc_malloc() -> ctypes.CDLL | None:
    """This process's C library, its ``mallinfo2`` and ``malloc_trim`` typed, when malloc
    is glibc's (2.33+) and no other allocator is preloaded; else None."""
    if platform.libc_ver()[0] != "glibc" or os.environ.get("LD_PRELOAD"):
        return None  # musl, macOS ... or jemalloc & co. preloaded
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = _MallInfo2
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    return libc


def _malloc_in_use_kib() -> int | None:
    """Bytes malloc has handed out and not had back (heap chunks and mmapped blocks), in
    KiB: read without changing the heap, unlike ``malloc_trim``."""
    libc = _glibc_malloc()
    if libc is None:
        return None
    info = libc.mallinfo2()
    return int(info.uordblks + info.hblkhd) // 1024


def _trimmed_rss_kib() -> int | None:
    """VmRSS after ``malloc_trim(0)`` has returned the freed memory malloc keeps."""
    libc = _glibc_malloc()
    if libc is None:
        return None
    libc.malloc_trim(0)
    return _memory_kib()["rss_kib"]


def _stats(start_response: StartResponse, trim: bool) -> list[bytes]:
    with _lock:
        snapshot: dict[str, Any] = {"events": dict(_events), "app": dict(_app_counts)}
    gc.collect()  # so that "objects" counts what is still referenced, not garbage
    snapshot.update(
        pid=os.getpid(),
        objects=len(gc.get_objects()),
        malloc_in_use_kib=_malloc_in_use_kib(),
        **_memory_kib(),
    )
    if trim:
        snapshot["trimmed_rss_kib"] = _trimmed_rss_kib()
    body = json.dumps(snapshot).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def _urls(name: str, query: dict[str, list[str]]) -> list[str]:
    """The directive's URLs for this request (see the module docstring)."""
    good = os.environ["LOAD_GOOD"].split()
    first = int(query.get("first", ["0"])[0]) % len(good)
    good = [f"{base}/files/{name}" for base in good[first:] + good[:first]]
    if "dying" not in query:
        return good
    cut, _, how = query["dying"][0].partition(":")
    dying = f"{os.environ['LOAD_DYING']}/files/{name}?cut={int(cut)}&how={how}"
    return [dying] if query.get("alone") == ["1"] else [dying, good[0]]


def backend(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """``/stats``, or a reproxy answer for ``/r/<name>``; the body is a placeholder."""
    path = environ.get("PATH_INFO", "")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/stats":
        return _stats(start_response, trim=query.get("trim") == ["1"])
    if not (path.startswith("/r/") and can_reproxy(environ)):
        start_response("404 Not Found", [("Content-Length", "0")])
        return _Counted([])
    headers = reproxy_headers(*_urls(path.removeprefix("/r/"), query))
    start_response("200 OK", [("Content-Type", APP_CONTENT_TYPE), *headers])
    return _Counted([b"discarded by the middleware"])


logging.getLogger("wsgi_reproxy").addHandler(_EventCounter())

application = ReproxyMiddleware(
    backend,
    allow=["/r/"],
    preserve=["Content-Type"],
    # block=True: a pool slot that is never given back stalls the next request for good,
    # and the pool can never hold more than maxsize connections per replica at once.
    pool_maxsize=int(os.environ.get("LOAD_POOL_MAXSIZE", "8")),
    pool_block=True,
    timeout=urllib3.Timeout(connect=2.0, read=10.0),
)
