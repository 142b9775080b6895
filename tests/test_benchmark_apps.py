"""``benchmarks/ceiling_app.py``: every way it serves a file gives the storage's bytes.

``benchmarks/ceiling.py`` checks each body before it measures; this holds the apps to it
in the suite, in-process, against a real file server, so that a table of the ceiling is
never a table of wrong answers.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from harness import call
from upstreams import FILES, FileServer

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def ceiling_app(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    with FileServer() as files:
        monkeypatch_module.setenv("BENCH_STORAGE", files.url("/files/"))
        spec = importlib.util.spec_from_file_location("ceiling_app", BENCHMARKS / "ceiling_app.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
        module.close()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.parametrize("name", ["small.txt", "1m.bin"])
def test_every_kind_serves_the_storages_bytes(ceiling_app: ModuleType, name: str) -> None:
    for kind in ceiling_app.KINDS:
        for _ in range(2):  # the second hit comes from the kept decision
            result = call(ceiling_app.application, f"/{kind}/{name}")
            assert result.status == "200 OK", kind
            assert result.body == FILES[name], kind


def test_the_hit_kind_is_a_hit(ceiling_app: ModuleType) -> None:
    call(ceiling_app.application, "/hit/small.txt")
    result = call(ceiling_app.application, "/hit/small.txt")
    assert result.body == FILES["small.txt"]
    assert result.environ["wsgi_reproxy.cache"] == "hit"
    assert call(ceiling_app.application, "/r/small.txt").environ.get("wsgi_reproxy.cache") is None


def test_it_names_the_tree_it_imported(ceiling_app: ModuleType) -> None:
    """``/n/version`` says which wsgi_reproxy answered: the one the tests import."""
    import wsgi_reproxy

    body = call(ceiling_app.application, "/n/version").body
    assert body == f"{wsgi_reproxy.__file__}\n".encode()
