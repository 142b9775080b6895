"""What went wrong with one URL, said in one place (SPEC R5.3, R5.4).

urllib3, http.client and the socket layer raise a dozen exception classes for what is,
to the middleware, one event: this URL did not serve.  :func:`upstream_errors` turns
each into an :class:`~wsgi_reproxy.errors.UpstreamError` with a short reason and a
``timed_out`` flag (504 when every attempt timed out), like urllib3's own
``_error_catcher``; everything else in the package catches ``UpstreamError`` only.
"""

from __future__ import annotations

import socket
from http.client import RemoteDisconnected
from types import TracebackType

from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from .errors import UpstreamError

__all__ = ["answered", "as_upstream_error", "closed_under_us", "is_timeout", "upstream_errors"]


def is_timeout(error: BaseException) -> bool:
    """A timeout, and not a refused connection: urllib3 2 makes ``NewConnectionError`` a
    ``ConnectTimeoutError`` subclass for compatibility (SPEC R5.4)."""
    if isinstance(error, NewConnectionError):
        return False
    return isinstance(error, ConnectTimeoutError | ReadTimeoutError | socket.timeout)


def describe(error: BaseException) -> str:
    """A short reason for the log and the report; never the whole traceback."""
    if isinstance(error, NewConnectionError):
        cause = error.__cause__ or error.__context__
        return f"connection failed: {cause or error}"
    if is_timeout(error):
        return f"timed out: {type(error).__name__}"
    return f"{type(error).__name__}: {error}"


def closed_under_us(error: BaseException) -> bool:
    """The peer closed the connection before any byte of a response: a kept-alive
    connection whose idle timeout raced our reuse of it."""
    cause = error.args[1] if isinstance(error, ProtocolError) and len(error.args) > 1 else None
    return isinstance(cause, RemoteDisconnected | ConnectionResetError | BrokenPipeError)


def as_upstream_error(url: str, error: BaseException, stage: str = "") -> UpstreamError:
    """``error`` as the failure of ``url``; ``stage`` says where it happened."""
    return UpstreamError(url, stage + describe(error), timed_out=is_timeout(error))


class upstream_errors:  # named as the function it replaced: ``with upstream_errors(url):``
    """Turn any network or protocol error inside the block into ``UpstreamError``
    (``stage``: ``"body broke before its first byte: "``).

    A class, not a ``@contextmanager`` generator: every body is read inside one, and a
    generator costs several times more to enter and leave.
    """

    __slots__ = ("stage", "url")

    def __init__(self, url: str, stage: str = "") -> None:
        self.url = url
        self.stage = stage

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(error, HTTPError | OSError):
            raise as_upstream_error(self.url, error, self.stage) from error


def answered(error: UpstreamError, status: int, head_seconds: float) -> None:
    """``error`` is that of a URL whose response head came: its status and time go in the
    report even when the body broke before it began (R7.4)."""
    if error.status is None:
        error.status = status
    error.seconds = head_seconds
