"""Cutting the client off at once when a body is aborted (SPEC R6.4), server by server.

The body raises mid-stream so that the WSGI server ends the connection short of the
announced ``Content-Length``.  gunicorn, waitress and wsgiref close it there and then.
uWSGI's ``--http11-socket`` does not: it takes the request for finished and keeps the
connection for the next one (it closes only after a write error, ``uwsgi_proto_http11_close``
in its ``proto/http.c``), so the client, still waiting for the bytes it was promised, sees
the abort only when ``--socket-timeout`` (4 s by default) ends the wait.  Under uWSGI the
connection is therefore shut down first, through uWSGI's own ``connection_fd()``.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["abort_hook"]

log = logging.getLogger(__name__)


def abort_hook(environ: Mapping[str, Any]) -> Callable[[], None] | None:
    """What the body calls just before it aborts, or None where the server cuts at once."""
    if "uwsgi.version" in environ:
        return shut_uwsgi_connection
    return None


def shut_uwsgi_connection() -> None:
    """Shut the current uWSGI request's client connection down in both directions.

    The client sees its end at once; uWSGI, finding the connection shut when it waits for
    the next request on it, closes its descriptor.  ``shutdown()`` acts on the connection,
    so a duplicate descriptor serves, and uWSGI's own stays uWSGI's to close.  Any failure
    only means the client waits for the server's own close, as before: logged, never raised.
    """
    try:
        uwsgi = importlib.import_module("uwsgi")  # exists only inside uWSGI's workers
        with socket.socket(fileno=os.dup(uwsgi.connection_fd())) as connection:
            connection.shutdown(socket.SHUT_RDWR)
    except Exception as error:
        log.debug("could not shut the uWSGI client connection down: %r", error)
