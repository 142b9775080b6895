"""What went wrong with one URL, said in one place (SPEC R5.3, R5.4).

urllib3, http.client and the socket layer raise a dozen exception classes for what is,
to the middleware, one event: this URL did not serve.  :func:`upstream_errors` turns
each into an :class:`~wsgi_reproxy.errors.UpstreamError` with a short reason and a
``timed_out`` flag (504 when every attempt timed out), like urllib3's own
``_error_catcher``; everything else in the package catches ``UpstreamError`` only.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from http.client import RemoteDisconnected

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


@contextmanager
def upstream_errors(url: str, stage: str = "") -> Iterator[None]:
    """Turn any network or protocol error inside the block into ``UpstreamError``
    (``stage``: ``"body broke before its first byte: "``)."""
    try:
        yield
    except (HTTPError, OSError) as error:
        raise as_upstream_error(url, error, stage) from error


def answered(error: UpstreamError, status: int, head_seconds: float) -> None:
    """``error`` is that of a URL whose response head came: its status and time go in the
    report even when the body broke before it began (R7.4)."""
    if error.status is None:
        error.status = status
    error.seconds = head_seconds
