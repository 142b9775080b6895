"""``file_roots``: which local files ``X-Reproxy-File`` may serve (SPEC R9.1, R9.2).

The path comes from the app, and part of it often from the user (a file name in the URL),
so it is treated like a URL from the app: checked against what the deployment allows.  A
path is served only when the file *held* lies inside a root once every symlink is
resolved.  The order matters: the file is pinned first, the pinned file is checked (the
kernel's own path for it, not the name's), and the file read is the pinned one, so a
symlink swapped between the check and the read cannot slip another file through
(CWE-367).  Nothing but a regular file is read: a FIFO would block the worker, and on
Linux a device is never even opened (its driver could do anything).
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["FileRefused", "FileRoots", "OpenedFile"]

log = logging.getLogger(__name__)

# Linux pins a file with O_PATH (nothing is opened) and reads it by reopening the pin; other
# systems pin it by opening it, without blocking on a FIFO or taking a terminal.
_O_PATH = getattr(os, "O_PATH", 0) if os.path.isdir("/proc/self/fd") else 0
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
_PIN_FLAGS = (_O_PATH | os.O_CLOEXEC) if _O_PATH else (_READ_FLAGS | os.O_NONBLOCK)


@dataclass(frozen=True, slots=True)
class OpenedFile:
    """A regular file inside a root, open for reading, and what ``fstat`` said of it."""

    path: str  # as the app named it (its extension gives the type)
    file: BinaryIO
    stat: os.stat_result


@dataclass(frozen=True, slots=True)
class FileRefused:
    """Why a path is not served: ``missing`` (no such file: 404 when nothing else is
    left) or refused (outside the roots, not a regular file, unreadable: 502)."""

    reason: str
    missing: bool = False


class FileRoots:
    """The directories ``X-Reproxy-File`` may serve from, resolved once at start-up."""

    __slots__ = ("roots",)

    def __init__(self, roots: Iterable[str | os.PathLike[str]]) -> None:
        resolved = []
        for root in roots:
            if not isinstance(root, str | os.PathLike):
                raise TypeError(f"file_roots entries must be paths, not {type(root).__name__}")
            path = os.fspath(root)
            if not os.path.isabs(path):
                raise ValueError(f"file_roots entry {path!r} must be an absolute path")
            real = os.path.realpath(path)
            if not os.path.isdir(real):
                raise ValueError(f"file_roots entry {path!r} is not a directory")
            resolved.append(real)
        if not resolved:
            raise ValueError("file_roots needs at least one directory (or None: no local files)")
        self.roots = tuple(resolved)

    def __repr__(self) -> str:
        return repr(list(self.roots))

    @staticmethod
    def path_problem(path: str) -> str | None:
        """Why ``path`` cannot name a local file, before touching the disk; else None."""
        if not path.startswith("/") or not os.path.isabs(path):
            return "is not an absolute path"
        if "\x00" in path or any(ord(char) < 0x20 or char == "\x7f" for char in path):
            return "contains a control character"
        return None

    def open(self, path: str) -> OpenedFile | FileRefused:
        """Open ``path`` when it is a regular file inside a root, else say why not."""
        problem = self.path_problem(path)
        if problem is not None:
            return FileRefused(f"it {problem}")
        try:
            pinned = os.open(path, _PIN_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            return FileRefused("no such file", missing=True)
        except OSError as error:
            return FileRefused(f"it cannot be opened: {error.strerror or error}")
        try:
            return self._open_pinned(pinned, path)
        finally:
            os.close(pinned)

    def _open_pinned(self, pinned: int, path: str) -> OpenedFile | FileRefused:
        """Check the file ``pinned`` holds, and only then open that very file for reading.

        On Linux the pin is an ``O_PATH`` descriptor: it holds the file without opening it
        (a device's driver is not called), the kernel names its real path, and reopening
        it through ``/proc/self/fd`` reads that same file, whatever the path's names
        point to meanwhile.  Elsewhere the pin is the file opened for reading (with
        ``O_NONBLOCK``: a FIFO does not block it) and its path comes from ``F_GETPATH``.
        """
        info = os.fstat(pinned)
        if not stat.S_ISREG(info.st_mode):
            return FileRefused("it is not a regular file")
        real = _real_path(pinned)
        if real is None or not any(_inside(real, root) for root in self.roots):
            return FileRefused("it is outside file_roots once its symlinks are resolved")
        if _PIN_FLAGS & _O_PATH:
            try:
                fd = os.open(f"/proc/self/fd/{pinned}", _READ_FLAGS)
            except OSError as error:
                return FileRefused(f"it cannot be opened: {error.strerror or error}")
        else:
            fd = os.dup(pinned)
            os.set_blocking(fd, True)
        return OpenedFile(path, os.fdopen(fd, "rb"), info)


def _real_path(fd: int) -> str | None:
    """The path of the file ``fd`` holds, every symlink resolved, as the kernel knows it."""
    try:
        if _O_PATH:
            return os.readlink(f"/proc/self/fd/{fd}")
        return fcntl.fcntl(fd, fcntl.F_GETPATH, bytes(1024)).rstrip(b"\0").decode()  # type: ignore[attr-defined]
    except (OSError, AttributeError, UnicodeDecodeError):
        return None


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")
