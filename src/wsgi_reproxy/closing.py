"""Iterables that close what they were given exactly once (PEP 3333).

Servers call ``close()`` once they are done with a response, whether the client read it
all or hung up halfway, and the app's own iterable must then be closed exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

__all__ = ["ClosingIterable", "close_iterable"]


def close_iterable(iterable: object) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


@dataclass(slots=True, eq=False)
class ClosingIterable:
    """Yield ``head`` then ``rest``; ``close()`` closes ``owner`` (the app's iterable) once,
    then calls ``on_close``.

    Used for the 502/504 answers and for a pass-through whose first chunks were consumed
    while waiting for a lazy ``start_response``.
    """

    head: list[bytes]
    rest: Iterable[bytes]
    owner: object
    on_close: Callable[[], None] | None = None
    closed: bool = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.head
        yield from self.rest

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                close_iterable(self.owner)
            finally:
                if self.on_close is not None:
                    self.on_close()
