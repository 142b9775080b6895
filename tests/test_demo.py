"""The demo (``python -m wsgi_reproxy demo``) is the project's main job: it must work as shipped.

Three ways in: ``main()`` in-process (fast, and leaks show up as ResourceWarning or threads
left behind), the real command in a subprocess (what a fresh machine runs), and the
interactive mode driven like a user would: read the address, make a request, press Ctrl-C.
"""

from __future__ import annotations

import gc
import hashlib
import re
import signal
import socket
import subprocess
import sys
import threading

import pytest
import urllib3

from wsgi_reproxy import __version__
from wsgi_reproxy.__main__ import main
from wsgi_reproxy.demo import demo_files
from wsgi_reproxy.demo.replicas import byte_range

COMMAND = [sys.executable, "-X", "dev", "-W", "error", "-m", "wsgi_reproxy"]
CHECK_NAMES = [  # in the order they run: the 304 right before "app headers preserved"
    "GET big.bin",
    "GET hello.txt",
    "Range big.bin",
    "HEAD big.bin",
    "If-None-Match",
    "app headers preserved",
    "pass-through /inline/",
    "every URL fails",
    "no X-Reproxy-* header",
]


def test_check_in_process_passes_and_leaves_nothing_running(
    capsys: pytest.CaptureFixture[str],
) -> None:
    threads_before = set(threading.enumerate())

    assert main(["demo", "--check"]) == 0

    gc.collect()  # an unclosed socket would now raise ResourceWarning inside this test
    assert set(threading.enumerate()) == threads_before
    lines = capsys.readouterr().out.splitlines()
    results = [line for line in lines if line.startswith(("PASS", "FAIL"))]
    # Check.__str__: "PASS  " then the name padded to 22 columns
    assert [line[6:28].rstrip() for line in results] == CHECK_NAMES, lines
    assert all(line.startswith("PASS  ") for line in results), results
    assert lines[-1] == f"{len(CHECK_NAMES)}/{len(CHECK_NAMES)} checks passed"


def test_check_reports_what_happened(capsys: pytest.CaptureFixture[str]) -> None:
    main(["demo", "--check"])
    out = capsys.readouterr().out
    big = demo_files()["big.bin"]

    assert re.search(
        r"PASS  GET big\.bin +200 from replica B after dead \+ A \[404\]; "
        rf"2 failed attempts logged; 8388608 bytes, sha256 {big.sha256[:16]} ",
        out,
    )
    assert re.search(r"PASS  GET hello\.txt +200 from replica A, 288 bytes", out)
    assert "Content-Range bytes 100-199/8388608, 100 bytes == expected" in out
    assert re.search(
        r"PASS  app headers preserved +200 from replica A \(which says "
        r"application/octet-stream\): Content-Type application/pdf, "
        r"Content-Disposition attachment; filename=\"report\.pdf\"",
        out,
    )
    assert re.search(r"PASS  every URL fails +502, ", out)


def test_check_as_a_real_command() -> None:
    """What a fresh machine runs; ``-X dev -W error`` turns any leak into noise on stderr."""
    done = subprocess.run(
        [*COMMAND, "demo", "--check"], capture_output=True, text=True, timeout=30, check=False
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    assert done.stdout.count("\nPASS  ") == len(CHECK_NAMES)


def test_interactive_serves_until_ctrl_c() -> None:
    with subprocess.Popen(
        [*COMMAND, "demo", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            shown = [process.stdout.readline()]
            while shown[-1] not in ("Press Ctrl-C to stop.\n", ""):
                shown.append(process.stdout.readline())
            match = re.fullmatch(
                r"wsgi-reproxy \S+ demo: front (http://127\.0\.0\.1:\d+)/\n", shown[0]
            )
            assert match, shown
            with urllib3.PoolManager(retries=False, timeout=10.0) as http:
                response = http.request("GET", match[1] + "/download/hello.txt")
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()

    assert response.status == 200
    assert response.headers["X-Replica"] == "A"
    assert response.data == demo_files()["hello.txt"].data
    assert process.returncode == 0, err
    assert sum(line.startswith("  curl ") for line in shown) == 6
    assert out == "stopping\nstopped\n"
    assert "WARNING wsgi_reproxy.upstream: " in err  # the dead replica's failover is on the console
    assert "Traceback" not in err


def test_a_taken_port_is_reported_and_everything_started_is_stopped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    threads_before = set(threading.enumerate())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()

        code = main(["demo", "--check", "--port", str(taken.getsockname()[1])])

    gc.collect()
    assert code == 1
    assert set(threading.enumerate()) == threads_before
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("python -m wsgi_reproxy: cannot run the demo: ")


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["demo", "--help"]])
def test_version_and_help_exit_zero(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)

    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert (f"wsgi-reproxy {__version__}" in out) if argv == ["--version"] else "usage:" in out


@pytest.mark.parametrize("argv", [[], ["demo", "--port", "65536"], ["demo", "--port", "x"]])
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)

    assert exit_info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_demo_files_are_deterministic() -> None:
    files = demo_files()

    assert len(files["big.bin"].data) == 8 * 1024 * 1024
    assert files["big.bin"].sha256 == hashlib.sha256(files["big.bin"].data).hexdigest()
    assert files["big.bin"].etag == f'"{files["big.bin"].sha256[:16]}"'
    assert demo_files()["report.pdf"].data == files["report.pdf"].data


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=100-199", (100, 200)),
        ("bytes=0-0", (0, 1)),
        ("bytes=990-", (990, 1000)),
        ("bytes=990-5000", (990, 1000)),
        ("bytes=-10", (990, 1000)),
        ("bytes=-5000", (0, 1000)),
        ("bytes=5-1", None),  # invalid: ignored, the whole file is sent
        ("bytes=0-1,5-6", None),  # several ranges: ignored
        ("items=0-1", None),
        ("bytes=-", None),
    ],
    ids=lambda value: repr(value),
)
def test_replica_byte_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_replica_byte_range_unsatisfiable(header: str) -> None:
    with pytest.raises(ValueError):
        byte_range(header, 1000)
