"""``file_roots``: which local files ``X-Reproxy-File`` may serve (SPEC R9.1, R9.2).

The path comes from the app, and part of it often from the user (a file name in the URL),
so it is treated like a URL from the app: checked against what the deployment allows.  A
path is served only when the file *opened* lies inside a root once every symlink is
resolved.  The order matters: the file is opened first and the opened file checked
(its device and inode against those of the resolved path), so a symlink swapped between
the check and the open cannot slip another file through (CWE-367).  Nothing but a
regular file is opened at all: a FIFO would block the worker, a device could do anything.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["FileRefused", "FileRoots", "OpenedFile"]

log = logging.getLogger(__name__)

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)


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
            # Refuse a FIFO or a device before opening it: opening has effects there.
            if not stat.S_ISREG(os.stat(path).st_mode):
                return FileRefused("it is not a regular file")
            fd = os.open(path, _OPEN_FLAGS | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return FileRefused("no such file", missing=True)
        except OSError as error:
            return FileRefused(f"it cannot be opened: {error.strerror or error}")
        try:
            refused = self._confirm(fd, path)
        except BaseException:
            os.close(fd)
            raise
        if isinstance(refused, FileRefused):
            os.close(fd)
            return refused
        os.set_blocking(fd, True)
        return OpenedFile(path, os.fdopen(fd, "rb"), refused)

    def _confirm(self, fd: int, path: str) -> os.stat_result | FileRefused:
        """The opened file's stat, once it proves to be a regular file inside a root."""
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            return FileRefused("it is not a regular file")
        real = os.path.realpath(path)
        try:
            resolved = os.stat(real)
        except OSError:
            resolved = None
        if resolved is None or (resolved.st_dev, resolved.st_ino) != (
            opened.st_dev,
            opened.st_ino,
        ):
            return FileRefused("it changed while it was opened (a symlink swapped?)")
        if not any(_inside(real, root) for root in self.roots):
            return FileRefused("it is outside file_roots once its symlinks are resolved")
        return opened


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")
