"""Instructions per request, counted by valgrind: a CPU cost that does not drift.

On a shared 2-core machine, two runs of the same server differ by 10 %; an optimisation
worth 3 % cannot be seen in requests a second.  The number of instructions a request
executes can: this calls ``ceiling_app.py``'s apps in-process (no server), ``--requests``
times and a quarter of that, each under ``valgrind --tool=callgrind``, and divides the
difference -- start-up and the first requests cancel out.  The storage is real (``--storage``,
the anchors' nginx), so the count covers the whole request and response path of urllib3,
http.client and the middleware.  ``--compare`` counts another source tree the same way.

    python benchmarks/instructions.py --storage http://127.0.0.1:18081/files/
    python benchmarks/instructions.py --storage http://127.0.0.1:18081/files/ \
        --kinds hit,pool --sizes 1k,64k --compare /tmp/before/src

Instructions are not time -- a cache miss or a syscall costs far more than its count --
so confirm a gain with ``ceiling.py`` or ``servers.py --compare``.  Needs ``valgrind``
(Debian package ``valgrind``); about 40 s per cell.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from wsgiref.util import setup_testing_defaults

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def run_requests(kind: str, name: str, count: int) -> None:
    """The inner run: ``count`` requests for ``/<kind>/<name>``, after three to warm up."""
    import ceiling_app

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> None:
        if not status.startswith("200"):
            raise SystemExit(f"/{kind}/{name} answered {status}")

    for _ in range(count + 3):
        environ = {"PATH_INFO": f"/{kind}/{name}", "wsgi.input": io.BytesIO()}
        setup_testing_defaults(environ)  # the rest of a GET's environ (PEP 3333)
        body = ceiling_app.application(environ, start_response)
        for _piece in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()


def count(src: Path, storage: str, kind: str, name: str, requests: int) -> int:
    """Instructions of ``requests`` requests, as callgrind counts them."""
    env = {
        **os.environ,
        "BENCH_STORAGE": storage,
        "PYTHONPATH": os.pathsep.join([str(src), str(HERE)]),
    }
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
    argv += [__file__, "--inner", kind, name, str(requests)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or found is None:
        raise SystemExit(f"valgrind run failed: {done.stderr[-600:]}")
    return int(found[1])


def per_request(src: Path, storage: str, kind: str, name: str, requests: int) -> float:
    few = max(requests // 4, 1)
    return (count(src, storage, kind, name, requests) - count(src, storage, kind, name, few)) / (
        requests - few
    )


def main(argv: list[str] | None = None) -> int:
    if argv is None and sys.argv[1:2] == ["--inner"]:
        run_requests(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", required=True, help="directory URL holding 1k.bin ...")
    parser.add_argument("--kinds", default="hit,pool", help="of ceiling_app.py: hit,pool,r ...")
    parser.add_argument("--sizes", default="1k", help="1k,64k ...")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--compare", help="another src/ folder with wsgi_reproxy")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("instructions.py needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    trees = [SRC] + ([Path(args.compare)] if args.compare else [])
    print(f"| kind | size | {' | '.join(str(tree) for tree in trees)} |")
    print(f"|{'---|' * (len(trees) + 2)}")
    for kind in args.kinds.split(","):
        for size in args.sizes.split(","):
            counts = [
                per_request(t, args.storage, kind, f"{size}.bin", args.requests) for t in trees
            ]
            cells = [f"{counts[0]:,.0f}"] + [
                f"{other:,.0f} (this tree {counts[0] / other:.3f}x)" for other in counts[1:]
            ]
            print(f"| {kind} | {size} | {' | '.join(cells)} |", flush=True)
    print(f"\ninstructions per request (valgrind callgrind), {args.requests} requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
