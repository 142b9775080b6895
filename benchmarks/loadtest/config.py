"""One run's parameters (:class:`LoadConfig`), and the command line that sets them."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """One run's parameters; the defaults are the command line's."""

    requests: int = 2000
    clients: int = 32
    hangup_share: float = 0.1
    dying_share: float = 0.2
    alone_share: float = 0.25
    threads: int = 8
    pool_maxsize: int = 8
    warmup: int = 200
    rss_limit_mib: float = 20.0
    in_use_limit_mib: float = 5.0
    timeout: float = 30.0  # per client socket operation
    deadline: float = 240.0  # no request is sent after this many seconds of load
    seed: int = 1


def _number(
    name: str, convert: Callable[[str], Any], accept: Callable[[Any], bool], wanted: str
) -> Callable[[str], Any]:
    """An argparse ``type``: ``convert``, then refuse what ``accept`` does not."""

    def parse(text: str) -> Any:
        value = convert(text)
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, not {value}")
        return value

    parse.__name__ = name  # argparse names it in "invalid <name> value"
    return parse


_positive_int = _number("_positive_int", int, lambda value: value > 0, "positive")
_positive_float = _number("_positive_float", float, lambda value: value > 0, "positive")
_share = _number("_share", float, lambda value: 0 <= value <= 1, "between 0 and 1")

# Each option sets the LoadConfig field of its name; all but --pool-maxsize (which follows
# --threads) default to that field's default.
_OPTIONS: tuple[tuple[str, Callable[[str], Any], str], ...] = (
    ("--requests", _positive_int, "requests in all, warm-up included"),
    ("--clients", _positive_int, "concurrent client threads"),
    ("--hangup-share", _share, "share of requests that hang up abruptly mid-body"),
    ("--dying-share", _share, "share of requests sent to the dying replica first"),
    (
        "--alone-share",
        _share,
        "share of those with no replica to resume from: they must be aborted",
    ),
    ("--threads", _positive_int, "gunicorn gthread threads"),
    ("--pool-maxsize", _positive_int, "maxsize of the block=True upstream pool"),
    ("--warmup", int, "requests before the warm-up RSS sample"),
    ("--rss-limit-mib", float, "allowed worker RSS growth after warm-up"),
    (
        "--in-use-limit-mib",
        float,
        "allowed growth of malloc's memory in use (glibc mallinfo2) after warm-up",
    ),
    ("--timeout", _positive_float, "client socket timeout, seconds"),
    ("--deadline", _positive_float, "seconds of load after which no request is sent"),
    ("--seed", int, "seed of the request plan"),
)


def _parser() -> argparse.ArgumentParser:
    defaults = LoadConfig()
    parser = argparse.ArgumentParser(
        description="Bounded load test of wsgi_reproxy under gunicorn gthread, with local "
        "replicas, clients that hang up mid-body and a dying replica. Prints a "
        "report; the exit status is 1 when an expectation fails."
    )
    for flag, parse, text in _OPTIONS:
        if flag == "--pool-maxsize":
            default, said = None, "default: --threads"
        else:
            field = flag.removeprefix("--").replace("-", "_")
            default, said = getattr(defaults, field), "default %(default)s"
        parser.add_argument(flag, type=parse, default=default, help=f"{text} ({said})")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> LoadConfig:
    """The :class:`LoadConfig` of a command line; exits with status 2 on a bad one."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.hangup_share + args.dying_share > 1:
        parser.error("--hangup-share and --dying-share add up to more than 1")
    args.pool_maxsize = args.pool_maxsize or args.threads
    return LoadConfig(**vars(args))
