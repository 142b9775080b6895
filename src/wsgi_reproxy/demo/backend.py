"""The sample application behind the middleware: it decides *what*, storage sends the bytes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from wsgiref.types import StartResponse, WSGIEnvironment

from .. import can_reproxy, reproxy_headers
from .files import DemoFile

__all__ = ["BackendApp"]


def _text_response(start_response: StartResponse, status: str, text: str) -> list[bytes]:
    data = text.encode()
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))]
    )
    return [data]


class BackendApp:
    """The application being accelerated: it decides *what* a client gets, not the bytes.

    ``/download/<name>`` answers with :func:`reproxy_headers` and an empty body when
    :func:`can_reproxy` says the middleware will honour them, and serves the bytes itself
    otherwise (no middleware, or a path where reproxying is off).  ``/inline/<name>``
    always serves the bytes itself, yet carries a stray ``X-Reproxy-Url`` as an app written
    for perlbal might: reproxying is off there, so the middleware must strip it (SPEC R4.2).
    """

    def __init__(
        self, catalogue: Mapping[str, DemoFile], locate: Callable[[str], list[str]]
    ) -> None:
        self.catalogue = catalogue
        self.locate = locate  # name -> storage URLs, in the order to try them

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if path == "/":
            return _text_response(start_response, "200 OK", self._index())
        route, _, name = path.lstrip("/").partition("/")
        stored = self.catalogue.get(name)
        if stored is None or route not in ("download", "inline"):
            return _text_response(start_response, "404 Not Found", "no such file\n")
        if route == "download" and can_reproxy(environ):
            return self._reproxy(stored, start_response)
        disposition = "attachment" if route == "download" else "inline"
        head = environ.get("REQUEST_METHOD") == "HEAD"
        return self._serve(stored, disposition, start_response, head=head)

    def _index(self) -> str:
        lines = ["wsgi-reproxy demo backend", ""]
        for name, stored in self.catalogue.items():
            lines.append(f"  /download/{name}  /inline/{name}  ({len(stored.data)} bytes)")
        return "\n".join(lines) + "\n"

    def _reproxy(self, stored: DemoFile, start_response: StartResponse) -> list[bytes]:
        start_response(
            "200 OK",
            [
                ("Content-Type", stored.content_type),
                ("Content-Disposition", f'attachment; filename="{stored.name}"'),
                *reproxy_headers(*self.locate(stored.name), expected_size=len(stored.data)),
            ],
        )
        return []

    def _serve(
        self, stored: DemoFile, disposition: str, start_response: StartResponse, *, head: bool
    ) -> list[bytes]:
        start_response(
            "200 OK",
            [
                ("Content-Type", stored.content_type),
                ("Content-Length", str(len(stored.data))),
                ("Content-Disposition", f'{disposition}; filename="{stored.name}"'),
                *reproxy_headers(*self.locate(stored.name)),  # the stray one: must not leak
            ],
        )
        return [] if head else [stored.data]
