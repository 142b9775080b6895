"""The running stack: the middleware as deployed, wired to replicas, backend and front."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import quote
from wsgiref.types import WSGIApplication

from .. import ReproxyMiddleware, __version__
from .backend import BackendApp
from .files import DemoFile, demo_files
from .front import AccessLog, FrontServer
from .replicas import FILES_PATH, ReplicaServer
from .servers import HOST, refusing_port, serving

__all__ = ["STORED_ON", "Demo", "Storage", "banner", "configured_middleware", "running_demo"]

STORED_ON = {"A": ("hello.txt", "report.pdf"), "B": ("hello.txt", "report.pdf", "big.bin")}


@dataclass(frozen=True, slots=True)
class Storage:
    """The storage tier: a dead node and the replicas, in the order the backend lists them."""

    dead_url: str
    replicas: Mapping[str, ReplicaServer]

    def urls(self, name: str) -> list[str]:
        """Where the backend says a file lives: the dead node first, then A, then B."""
        return [
            f"{self.dead_url}{FILES_PATH}{quote(name)}",
            *(replica.file_url(name) for replica in self.replicas.values()),
        ]


@dataclass(frozen=True, slots=True)
class Demo:
    """Everything :func:`running_demo` started, with the addresses a client needs."""

    files: Mapping[str, DemoFile]
    storage: Storage
    front: FrontServer
    middleware: ReproxyMiddleware

    @property
    def url(self) -> str:
        return self.front.url

    @property
    def replicas(self) -> Mapping[str, ReplicaServer]:
        return self.storage.replicas


def configured_middleware(backend: WSGIApplication) -> ReproxyMiddleware:
    """The middleware as a deployment would configure it: the point of the demo."""
    return ReproxyMiddleware(
        backend,
        allow=["/download/"],  # not /inline/: there the app's own answer passes through
        preserve=["Content-Type", "Content-Disposition"],  # the app knows; blob stores don't
        upstream_hosts=[f"{HOST}:*"],  # nothing else, whatever URL the app is tricked into
        timeout=5.0,
    )


@contextlib.contextmanager
def running_demo(port: int = 0) -> Iterator[Demo]:
    """Start replicas, backend and front; on exit stop them all, front first.

    Shutdown order matters: the front's requests end first (releasing their upstream
    connections), then the middleware's pool closes its idle keep-alive connections,
    then the replicas stop; nothing is left open, no thread left running.
    """
    files = demo_files()
    with contextlib.ExitStack() as stack:
        dead_port = stack.enter_context(refusing_port())
        replicas = {
            name: stack.enter_context(serving(ReplicaServer(name, [files[n] for n in names])))
            for name, names in STORED_ON.items()
        }
        storage = Storage(f"http://{HOST}:{dead_port}", replicas)
        middleware = configured_middleware(BackendApp(files, storage.urls))
        stack.callback(middleware.pool.clear)
        front = FrontServer(AccessLog(middleware), port)
        stack.enter_context(serving(front))
        yield Demo(files, storage, front, middleware)


def banner(demo: Demo) -> str:
    return (
        f"wsgi-reproxy {__version__} demo: front {demo.url}/\n"
        f"  replica A {demo.replicas['A'].url} (no big.bin), replica B "
        f"{demo.replicas['B'].url}, dead {demo.storage.dead_url} (refuses connections)"
    )
