"""What an app sends to ask for reproxying: :func:`reproxy_headers` (SPEC R1.3).

Everything the middleware would refuse for reasons the app can know -- a URL it cannot
send, a relative file path, a malformed digest -- is refused here, with a traceback in
the app, instead of as a 502 later.
"""

from __future__ import annotations

from .digest import parse_expected_digest
from .directive import check_url
from .file_roots import FileRoots

__all__ = ["reproxy_headers"]


def reproxy_headers(
    *urls: str,
    expected_size: int | None = None,
    file: str | None = None,
    digest: str | None = None,
) -> list[tuple[str, str]]:
    """The response headers that ask the middleware to serve ``urls`` (SPEC R1.3).

    URLs are checked the same way the middleware checks them, so a mistake shows up in the
    app, with a traceback, instead of as a 502 later -- all but the middleware's own
    settings, which this function does not know: a URL outside ``upstream_hosts``, or
    beyond the first ``max_urls``, passes here and is skipped there::

        >>> reproxy_headers("http://store-1/f/42", "http://store-2/f/42", expected_size=1024)
        ... # doctest: +NORMALIZE_WHITESPACE
        [('X-Reproxy-Url', 'http://store-1/f/42 http://store-2/f/42'),
         ('X-Reproxy-Expected-Size', '1024')]

    :param urls: absolute http(s) URLs, tried in order, whose path and query are sent
        byte for byte as written: made of RFC 3986 characters and ``%XX`` escapes only (a
        space is ``%20``, a literal ``%`` is ``%25``).
    :param expected_size: the full length of the file; a target that disagrees counts as failed.
    :param file: an absolute local path, tried before the URLs (``X-Reproxy-File``, SPEC
        R9): served only when the middleware's ``file_roots`` hold it.
    :param digest: the file's digest, as :func:`~wsgi_reproxy.format_digest` writes it
        (``sha-256=:BASE64:``): a body that does not match is aborted (SPEC R10).
    :raises ValueError: no URL and no file, or an invalid URL, path, size or digest.
    """
    if not urls and file is None:
        raise ValueError("reproxy_headers() needs at least one URL or a file")
    headers = []
    if file is not None:
        headers.append(("X-Reproxy-File", _checked_file(file)))
    if urls:
        headers.append(("X-Reproxy-Url", " ".join(_checked_url(url) for url in urls)))
    if expected_size is not None:
        headers.append(("X-Reproxy-Expected-Size", _checked_size(expected_size)))
    if digest is not None:
        headers.append(("X-Reproxy-Expected-Digest", _checked_digest(digest)))
    return headers


def _checked_url(url: object) -> str:
    if not isinstance(url, str):
        raise TypeError(f"URLs must be str, not {type(url).__name__}")
    reason = check_url(url)
    if reason is not None:
        raise ValueError(f"cannot reproxy {url!r}: it {reason}")
    return url


def _checked_file(file: object) -> str:
    problem = FileRoots.path_problem(file) if isinstance(file, str) else "is not a str"
    if problem is not None:
        raise ValueError(f"cannot serve the file {file!r}: it {problem}")
    assert isinstance(file, str)
    return file


def _checked_digest(digest: object) -> str:
    parsed = parse_expected_digest([digest]) if isinstance(digest, str) else "not a str"
    if isinstance(parsed, str) or parsed is None:
        raise ValueError(f"digest {digest!r}: {parsed or 'empty'}")
    assert isinstance(digest, str)
    return digest


def _checked_size(size: object) -> str:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"expected_size must be a non-negative int, not {size!r}")
    return str(size)
