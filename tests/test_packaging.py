"""What packaging can get wrong without any other test noticing.

The version is written once, the extras the docs tell users to install exist, each module
that needs an optional dependency finds it in one extra, the classifiers are PyPI's,
CHANGES.rst keeps its Keep-a-Changelog shape, and the sdist holds what the docs and tests
need. Building and installing the wheel is left to ``.ci/run``, which runs the demo from a
fresh virtualenv; the sdist is built here (about a second, no network).
"""

from __future__ import annotations

import ast
import configparser
import functools
import importlib.metadata
import itertools
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest
import trove_classifiers
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import wsgi_reproxy

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "wsgi_reproxy"
VERSION_FILE = PACKAGE / "version.py"
# Extras for working on the project, not for running it.
DEVELOPMENT_EXTRAS = {"test", "lint", "docs", "bench", "packaging"}
# Keep a Changelog's kinds of change, in its order.
CHANGE_KINDS = ("Added", "Changed", "Deprecated", "Removed", "Fixed", "Security")


def setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    return config


def requirements(text: str) -> set[str]:
    """The canonical project names of a setup.cfg requirement list (comments skipped)."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return {canonicalize_name(Requirement(line).name) for line in lines if line}


def extras() -> dict[str, set[str]]:
    section = setup_cfg()["options.extras_require"]
    return {name: requirements(value) for name, value in section.items()}


# -- the version ---------------------------------------------------------------------------


def test_setup_cfg_reads_the_version_from_version_py() -> None:
    assert setup_cfg()["metadata"]["version"] == "attr: wsgi_reproxy.version.__version__"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "project" not in project, "pyproject.toml [project] would be a second version"


def test_version_py_assigns_one_literal() -> None:
    tree = ast.parse(VERSION_FILE.read_text(encoding="utf-8"))
    values = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(target, "id", None) for target in node.targets] == ["__version__"]
        and isinstance(node.value, ast.Constant)
    ]
    assert values == [wsgi_reproxy.__version__]
    assert str(Version(values[0])) == values[0], "not a normalized PEP 440 version"


def test_no_other_source_file_writes_the_version() -> None:
    version = wsgi_reproxy.__version__
    writers = [
        str(path.relative_to(ROOT))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != VERSION_FILE and version in path.read_text(encoding="utf-8")
    ]
    assert writers == []


def test_installed_metadata_has_the_version() -> None:
    # Differs after a version change until `pip install -e .` is run again.
    assert importlib.metadata.version("wsgi-reproxy") == wsgi_reproxy.__version__


# -- the changelog -------------------------------------------------------------------------


def changelog_sections() -> list[tuple[str, list[str]]]:
    """CHANGES.rst's version headings (``-`` underlines), each with its ``~`` headings."""
    lines = (ROOT / "CHANGES.rst").read_text(encoding="utf-8").splitlines()
    sections: list[tuple[str, list[str]]] = []
    for title, underline in itertools.pairwise(lines):
        if title and re.fullmatch(r"-{3,}", underline):
            sections.append((title, []))
        elif title and sections and re.fullmatch(r"~{3,}", underline):
            sections[-1][1].append(title)
    return sections


def test_changelog_starts_with_this_version() -> None:
    version = Version(wsgi_reproxy.__version__)
    top = changelog_sections()[0][0]
    released = not (version.is_prerelease or version.is_devrelease)
    when = r"\d{4}-\d{2}-\d{2}" if released else "Unreleased"
    assert re.fullmatch(rf"{re.escape(version.base_version)} - {when}", top), top


def test_changelog_sections_are_dated_versions_newest_first() -> None:
    sections = changelog_sections()
    versions = []
    for title, _ in sections[1:]:
        match = re.fullmatch(r"(\S+) - \d{4}-\d{2}-\d{2}", title)
        assert match, f"{title!r}: write 'X.Y.Z - YYYY-MM-DD'"
        versions.append(Version(match[1]))
    assert len(sections) >= 2
    assert versions == sorted(versions, reverse=True)
    assert Version(sections[0][0].split()[0]) > versions[0]


@pytest.mark.parametrize(
    ("title", "kinds"), changelog_sections(), ids=[title for title, _ in changelog_sections()]
)
def test_changelog_kinds_of_change(title: str, kinds: list[str]) -> None:
    assert kinds, f"{title}: no Added/Changed/... heading"
    assert set(kinds) <= set(CHANGE_KINDS), f"{title}: Keep a Changelog's kinds only"
    assert kinds == sorted(kinds, key=CHANGE_KINDS.index), "in Keep a Changelog's order"


def test_docs_include_the_changelog() -> None:
    page = (ROOT / "docs" / "changelog.rst").read_text(encoding="utf-8")
    assert ".. include:: ../CHANGES.rst" in page.splitlines()


# -- metadata and extras -------------------------------------------------------------------


def extras_named_in_docs() -> set[str]:
    named = set()
    pattern = re.compile(r"(?:wsgi-reproxy|\B\.)\[([a-z][a-z0-9,-]*)\]")
    places = [ROOT / "README.rst", ROOT / ".ci" / "run", *(ROOT / "docs").glob("*.rst")]
    places += [*(ROOT / "examples").rglob("*.py"), *PACKAGE.rglob("*.py")]
    for path in places:
        for group in pattern.findall(path.read_text(encoding="utf-8")):
            named.update(group.split(","))
    return named


def test_extras_named_in_docs_exist() -> None:
    named = extras_named_in_docs()
    assert {"redis", "prometheus", "test", "lint", "docs"} <= named, "the pattern went stale"
    assert named - extras().keys() == set()


def test_extras_for_users_are_not_in_install_requires() -> None:
    base = requirements(setup_cfg()["options"]["install_requires"])
    for name, needs in extras().items():
        if name not in DEVELOPMENT_EXTRAS:
            assert needs, f"[{name}] installs nothing"
            assert needs & base == set(), f"[{name}] repeats install_requires"


@functools.cache
def distributions() -> dict[str, list[str]]:
    """Import name -> the installed distributions providing it (a scan of site-packages)."""
    return importlib.metadata.packages_distributions()


def third_party_imports(path: Path) -> set[str]:
    """Top-level names of the modules ``path`` imports, outside the stdlib and the package."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - sys.stdlib_module_names - {"wsgi_reproxy", "__future__"}


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda path: str(path.relative_to(PACKAGE))
)
def test_each_module_needs_the_base_install_and_at_most_one_extra(path: Path) -> None:
    """So ``pip install 'wsgi-reproxy[redis]'`` alone is enough for ``RedisCache``."""
    needs = {
        canonicalize_name(dist)
        for name in third_party_imports(path)
        for dist in distributions().get(name, [name])
    }
    missing = needs - requirements(setup_cfg()["options"]["install_requires"])
    if missing:
        user_extras = {k: v for k, v in extras().items() if k not in DEVELOPMENT_EXTRAS}
        covering = [name for name, provides in user_extras.items() if missing <= provides]
        assert covering, f"{sorted(missing)} is in no extra: users cannot install it"


def test_classifiers_are_pypis() -> None:
    listed = setup_cfg()["metadata"]["classifiers"].split("\n")
    assert [c for c in listed if c and c not in trove_classifiers.classifiers] == []


def test_metadata_a_project_page_shows() -> None:
    metadata = setup_cfg()["metadata"]
    urls = dict(line.split(" = ", 1) for line in metadata["project_urls"].strip().splitlines())
    assert {key.strip() for key in urls} >= {"Source", "Documentation", "Changelog"}
    assert all(url.startswith("https://") for url in urls.values())
    assert len(metadata["keywords"].split()) >= 3
    assert metadata["license_expression"] == "MIT"


# -- the sdist -----------------------------------------------------------------------------

# The docs build and the tests run from an unpacked sdist: these must be in it.
SDIST_MUST_HOLD = {
    "LICENSE",
    "README.rst",
    "CHANGES.rst",
    "setup.cfg",
    "pyproject.toml",
    "docs/conf.py",
    "docs/changelog.rst",
    "tests/conftest.py",
    "tests/test_packaging.py",
    "examples/flask_app/app.py",
    "benchmarks/load.py",
    "src/wsgi_reproxy/__init__.py",
    "src/wsgi_reproxy/py.typed",
    "src/wsgi_reproxy/demo/__init__.py",
}
# Local caches and build outputs that must never ship.
JUNK = re.compile(r"(^|/)(__pycache__|\.pytest_cache|\.hypothesis|_build|\.coverage)(/|$)|\.pyc$")


@pytest.fixture(scope="module")
def sdist_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Build the sdist from a copy of the checkout (its egg-info left out: a stale
    SOURCES.txt would add files MANIFEST.in no longer names) with this setuptools."""
    work = tmp_path_factory.mktemp("sdist")
    source = work / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".*cache", ".hypothesis", ".benchmarks", ".coverage*", "*.egg-info",
            "build", "dist", "__pycache__", "_build", "htmlcov",
        ),
    )  # fmt: skip
    code = "import sys, setuptools.build_meta as b; print(b.build_sdist(sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-c", code, str(work)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with tarfile.open(work / done.stdout.split()[-1]) as sdist:
        names = sdist.getnames()
    top = names[0].split("/")[0]
    return {name.removeprefix(f"{top}/") for name in names}


def test_sdist_holds_what_the_docs_and_tests_need(sdist_names: set[str]) -> None:
    assert SDIST_MUST_HOLD - sdist_names == set()


def test_sdist_holds_no_cache_or_build_output(sdist_names: set[str]) -> None:
    assert sorted(name for name in sdist_names if JUNK.search(name)) == []


def test_sdist_holds_every_tracked_file(sdist_names: set[str]) -> None:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    # CI and git's own files are no use to whoever unpacks the sdist.
    wanted = {name for name in listed if not name.startswith((".ci/", ".git"))}
    assert {name for name in wanted if (ROOT / name).exists()} - sdist_names == set()
