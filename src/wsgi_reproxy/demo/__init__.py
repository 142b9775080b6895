"""A self-contained demo: ``python -m wsgi_reproxy demo [--check] [--port N]``.

Everything runs in one process, in threads, on 127.0.0.1 only::

    client --> front (wsgiref, threaded)
                 AccessLog --> ReproxyMiddleware --> BackendApp     "what to send"
                                   |  X-Reproxy-Url: dead, A, B
                                   v
               dead URL (refuses)   replica A (no big.bin)   replica B   "the bytes"

The backend decides *what* a client gets (permissions, file name, content type) and answers
with an empty body plus the storage URLs; the middleware streams the first replica that
works.  Replica A lacks ``big.bin`` and the first URL refuses connections, so every download
shows failover.  ``lost.txt`` is in the backend's catalogue but on no replica: 502.

One module per part, in the order they depend on each other:

- :mod:`.files`: the catalogue, generated deterministically;
- :mod:`.servers`: threaded servers that stop for real, and a port that refuses;
- :mod:`.replicas`: the storage nodes (ranges, ETags, 304);
- :mod:`.backend`: the sample app;
- :mod:`.front`: the wsgiref front server and its access log;
- :mod:`.stack`: the middleware as configured, and :func:`running_demo` wiring it all;
- :mod:`.checks` and :mod:`.interactive`: the two modes, :func:`check` and :func:`serve`.

Nothing happens at import time; ``__main__`` parses the command line.
"""

from __future__ import annotations

from .checks import Check, check
from .files import DemoFile, demo_files
from .interactive import serve
from .stack import Demo, Storage, configured_middleware, running_demo

__all__ = [
    "Check",
    "Demo",
    "DemoFile",
    "Storage",
    "check",
    "configured_middleware",
    "demo_files",
    "running_demo",
    "serve",
]
