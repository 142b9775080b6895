"""Iterables that close what they were given exactly once (PEP 3333).

Servers call ``close()`` once they are done with a response, whether the client read it
all or hung up halfway, and the app's own iterable must then be closed exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

__all__ = ["ClosingIterable", "close_iterable"]


def close_iterable(iterable: object) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


class ClosingIterable:
    """Yield ``head`` then ``rest``; ``close()`` closes ``owner`` (the app's iterable) once.

    Used for the 502/504 answers and for a pass-through whose first chunks were consumed
    while waiting for a lazy ``start_response``.
    """

    __slots__ = ("_closed", "_head", "_on_close", "_owner", "_rest")

    def __init__(
        self,
        head: list[bytes],
        rest: Iterable[bytes],
        owner: object,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._head = head
        self._rest = rest
        self._owner = owner
        self._on_close = on_close
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self._head
        yield from self._rest

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                close_iterable(self._owner)
            finally:
                if self._on_close is not None:
                    self._on_close()
