"""Command line: ``python -m wsgi_reproxy demo [--check] [--port N] [--verbose]``.

The demo itself lives in :mod:`wsgi_reproxy.demo`; this module only parses arguments and
sets up console logging, so that :func:`main` can also be called in-process (tests).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator

from . import __version__, demo

__all__ = ["build_parser", "main"]


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (0 = any free port)")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wsgi_reproxy",
        description="wsgi-reproxy: the X-Reproxy-Url protocol (perlbal, mod_reproxy) for WSGI.",
    )
    parser.add_argument("--version", action="version", version=f"wsgi-reproxy {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "demo",
        help="run a self-contained demo on 127.0.0.1",
        description="Start two storage replicas, a dead one, a backend app and the middleware "
        "in front of it, all on 127.0.0.1; print curl commands and serve until "
        "Ctrl-C, or with --check test it all and exit.",
    )
    run.add_argument("--port", type=_port, default=0, help="front port (default: 0, any free port)")
    run.add_argument(
        "--check",
        action="store_true",
        help="make the requests itself, print PASS/FAIL lines, exit 0 if all pass",
    )
    run.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log every upstream attempt (and, with --check, the middleware's log)",
    )
    return parser


@contextlib.contextmanager
def console_logging(level: int | None) -> Iterator[None]:
    """Show the package's log on stderr for the duration, then undo it (in-process callers).

    ``None`` shows nothing; the records still propagate to whatever the caller set up.
    """
    if level is None:
        yield
        return
    logger = logging.getLogger("wsgi_reproxy")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    saved_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved_level)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (argparse exits itself on bad usage)."""
    args = build_parser().parse_args(argv)
    try:
        if args.check:
            # The checks print what happened; failover warnings would only be noise here.
            with console_logging(logging.DEBUG if args.verbose else None):
                return demo.check(args.port)
        # Interactive: failover warnings and one access line per request are the show.
        with console_logging(logging.DEBUG if args.verbose else logging.INFO):
            return demo.serve(args.port)
    except OSError as error:  # a server could not start: most likely --port is taken
        print(f"python -m wsgi_reproxy: cannot run the demo: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
