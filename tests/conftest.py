"""Shared fixtures, grouped by what they provide.

Every fixture that starts something closes it at teardown: the suite treats warnings,
``ResourceWarning`` included, as errors, so a leaked socket fails the test that leaked it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from upstreams import FileServer, Handler, ScriptedServer, closed_port_url

# --------------------------------------------------------------------------------------------
# Real upstreams (see upstreams.py)
# --------------------------------------------------------------------------------------------


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    """A fresh :class:`~upstreams.FileServer` per test, so ``requests`` and ``connections``
    only count what this test did."""
    with FileServer() as server:
        yield server


@pytest.fixture
def scripted() -> Iterator[Callable[[Handler], ScriptedServer]]:
    """Factory: ``scripted(handler)`` starts a :class:`~upstreams.ScriptedServer`; all of them
    are closed at teardown, in reverse order of creation."""
    with contextlib.ExitStack() as stack:

        def start(handler: Handler) -> ScriptedServer:
            return stack.enter_context(ScriptedServer(handler))

        yield start


@pytest.fixture
def refused_url() -> str:
    """A URL on 127.0.0.1 whose port refuses connections."""
    return closed_port_url()
