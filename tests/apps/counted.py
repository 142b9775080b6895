"""What the apps that real servers load in the tests count, across the process boundary:
app iterables made and closed (``/stats`` reports them, so a test can assert "closed
exactly once" of a server running in another process), and whatever else an app adds."""

from __future__ import annotations

import threading

lock = threading.Lock()
stats = {"calls": 0, "closed": 0}


def count(name: str) -> None:
    with lock:
        stats[name] = stats.get(name, 0) + 1


class Counted:
    """An app iterable that counts itself made and closed."""

    def __init__(self, chunks):
        self._chunks = chunks
        count("calls")

    def __iter__(self):
        return iter(self._chunks)

    def close(self):
        count("closed")
