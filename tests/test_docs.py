"""The documentation cannot rot: every example in README.rst and docs/*.rst runs here.

* Every ``.. code-block:: python`` block is executed as a module of its own, line numbers
  matching the ``.rst`` file, so a traceback points at the page. Blocks that import Django
  run in a subprocess: Django's settings can be configured once per process, and other
  tests (tests/test_examples.py) configure them their own way.
* A block may be followed by hidden checks, RST comments such as::

      .. check: GET /downloads/small.txt -> 200 small.txt

  which call the block's WSGI application (``application``, else ``app``) through
  ``wsgiref.validate`` and compare the status and, when a file name is given, the body with
  ``upstreams.FILES[name]``. Examples read their storage replicas from the
  ``STORAGE_REPLICAS`` environment variable, as a deployment would; here it names a port
  that refuses connections, then a real file server, so the check also proves failover.
* Every ``.. code-block:: ini`` block is loaded with ``paste.deploy.loadapp`` from a
  temporary directory, its ``[app:...]`` sections replaced by a trivial application.
* The doctests in the package's docstrings run, the server commands in ``sh`` blocks only
  use options those servers have, the API page documents every public name, and the
  Sphinx build passes with warnings as errors.
"""

from __future__ import annotations

import configparser
import contextlib
import doctest
import importlib
import io
import json
import logging
import os
import pkgutil
import re
import shlex
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
import urllib3

import wsgi_reproxy
from harness import call
from upstreams import FILES, closed_port_url
from wsgi_reproxy import ReproxyMiddleware

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.rst", *sorted(DOCS.glob("*.rst"))]

EXECUTED = {"python", "ini"}
# Shell commands, configuration of other programs, output. Any other language (``py``,
# ``pycon`` ...) fails test_examples_were_found, so no Python example is skipped unnoticed.
NOT_EXECUTED = {"sh", "bash", "console", "text", "none", "nginx", "apache", "json", "toml", "yaml"}

_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. code-block::[ \t]*(?P<language>\S+)[ \t]*$")
_CHECK = re.compile(
    r"^[ \t]*\.\. check: (?P<method>[A-Z]+) (?P<path>\S+) -> (?P<status>\d{3})"
    r"(?: (?P<file>\S+))?[ \t]*$"
)
_ANY_CHECK = re.compile(r"^[ \t]*\.\. check:")


# --------------------------------------------------------------------------------------------
# Extracting the examples
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """A hidden ``.. check:`` comment: one request and what it must answer."""

    method: str
    path: str
    status: int
    file: str | None = None


@dataclass(frozen=True)
class Block:
    """One ``code-block``: where it is, its language, its dedented source and its checks."""

    page: str  # relative to the repository root
    line: int  # 1-based line of the first source line in the page
    language: str
    source: str
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def needs_subprocess(self) -> bool:
        return re.search(r"^\s*(from|import) django\b", self.source, re.MULTILINE) is not None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _block_at(lines: list[str], start: int, indent: int) -> tuple[int, int]:
    """The (first, end) line indices of the content of the directive at ``start``."""
    index = start + 1
    while index < len(lines) and (  # blank lines and options (":caption: x") come first
        not lines[index].strip()
        or (lines[index].lstrip().startswith(":") and _indent(lines[index]) > indent)
    ):
        index += 1
    first = index
    while index < len(lines) and (not lines[index].strip() or _indent(lines[index]) > indent):
        index += 1
    end = index
    while end > first and not lines[end - 1].strip():
        end -= 1
    return first, end


def _checks_after(lines: list[str], index: int) -> tuple[tuple[Check, ...], set[int]]:
    checks: list[Check] = []
    used: set[int] = set()
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        match = _CHECK.match(lines[index])
        if match is None:
            break
        checks.append(Check(match["method"], match["path"], int(match["status"]), match["file"]))
        used.add(index)
        index += 1
    return tuple(checks), used


def parse_page(path: Path) -> list[Block]:
    """Every code block of one page, with the checks that follow it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    attached: set[int] = set()
    for number, line in enumerate(lines):
        directive = _DIRECTIVE.match(line)
        if directive is None:
            continue
        first, end = _block_at(lines, number, len(directive["indent"]))
        source = textwrap.dedent("\n".join(lines[first:end])) + "\n"
        checks, used = _checks_after(lines, end)
        attached |= used
        page = path.relative_to(ROOT).as_posix()
        blocks.append(Block(page, first + 1, directive["language"], source, checks))
    stray = [i + 1 for i, line in enumerate(lines) if _ANY_CHECK.match(line) and i not in attached]
    if stray:
        raise ValueError(f"{path}: '.. check:' lines {stray} are malformed or follow no block")
    return blocks


BLOCKS = [block for page in PAGES for block in parse_page(page)]
PYTHON = [block for block in BLOCKS if block.language == "python"]
INI = [block for block in BLOCKS if block.language == "ini"]


# --------------------------------------------------------------------------------------------
# Running a Python example (in this process or in a child)
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def recording_pools() -> Iterator[list[urllib3.PoolManager]]:
    """Record every PoolManager made meanwhile, and clear them all afterwards: examples
    build middlewares that own pools, and a socket left open fails the suite."""
    created: list[urllib3.PoolManager] = []
    original = urllib3.PoolManager.__init__

    def init(self: urllib3.PoolManager, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        created.append(self)

    urllib3.PoolManager.__init__ = init  # type: ignore[method-assign]
    try:
        yield created
    finally:
        urllib3.PoolManager.__init__ = original  # type: ignore[method-assign]
        for pool in created:
            pool.clear()


@contextlib.contextmanager
def executed(block: Block, workdir: Path) -> Iterator[dict[str, Any]]:
    """Run the block as a module named after it, importable while the context lasts (Django
    imports ``ROOT_URLCONF=__name__``); yield its namespace."""
    name = "docs_example_" + re.sub(r"\W", "_", block.id)
    module = types.ModuleType(name)
    module.__file__ = str(workdir / f"{name}.py")
    sys.modules[name] = module
    try:
        # Blank lines in front, so tracebacks give the line in the .rst page.
        code = compile("\n" * (block.line - 1) + block.source, str(ROOT / block.page), "exec")
        exec(code, module.__dict__)
        yield module.__dict__
    finally:
        del sys.modules[name]


def wsgi_app(namespace: dict[str, Any], block: Block) -> Any:
    for name in ("application", "app"):
        if callable(namespace.get(name)):
            return namespace[name]
    raise AssertionError(f"{block.id}: a checked example must define `application` or `app`")


def run_check(app: Any, check: Check, block: Block) -> None:
    result = call(app, check.path, check.method)
    where = f"{block.id}: {check.method} {check.path}"
    assert result.code == check.status, f"{where}: {result.status} {result.body[:200]!r}"
    leaked = [name for name, _ in result.headers if name.lower().startswith("x-reproxy-")]
    assert leaked == [], f"{where}: leaked {leaked}"
    if check.file is not None:
        assert result.body == FILES[check.file], f"{where}: wrong body"


def run_python(block: Block, workdir: Path) -> None:
    with recording_pools(), executed(block, workdir) as namespace:
        for check in block.checks:
            run_check(wsgi_app(namespace, block), check, block)


# What the deploy page's Django wsgi.py imports: a minimal project, written for the child.
_MYSITE = {
    "__init__.py": "",
    "settings.py": (
        'SECRET_KEY = "docs-test"\nALLOWED_HOSTS = ["*"]\nROOT_URLCONF = "mysite.urls"\n'
        "USE_TZ = True\n"
    ),
    "urls.py": "urlpatterns = []\n",
}


def child_main() -> int:
    """Entry point of the subprocess: run one block given as JSON on stdin."""
    payload = json.load(sys.stdin)
    checks = tuple(Check(**check) for check in payload.pop("checks"))
    block = Block(**payload, checks=checks)
    workdir = Path.cwd()
    if "mysite.settings" in block.source:
        package = workdir / "mysite"
        package.mkdir()
        for name, text in _MYSITE.items():
            (package / name).write_text(text)
        sys.path.insert(0, str(workdir))
    run_python(block, workdir)
    return 0


def run_in_child(block: Block, workdir: Path, replicas: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env["STORAGE_REPLICAS"] = replicas
    code = "import sys, test_docs; sys.exit(test_docs.child_main())"
    payload = {**asdict(block), "checks": [asdict(check) for check in block.checks]}
    child = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        timeout=50,
        check=False,
    )
    output = child.stdout + child.stderr
    assert child.returncode == 0, f"{block.id} failed in a subprocess:\n{output}"
    assert "ResourceWarning" not in output, f"{block.id} leaked a resource:\n{output}"


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture
def replicas(file_server, monkeypatch) -> str:
    """STORAGE_REPLICAS for the examples: a dead replica first, then a real file server."""
    value = f"{closed_port_url('')} {file_server.base}"
    monkeypatch.setenv("STORAGE_REPLICAS", value)
    return value


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """Examples may set logger levels (the README's logging example does): undo that."""
    manager = logging.Logger.manager
    loggers = [
        logging.getLogger(),
        *(item for item in manager.loggerDict.values() if isinstance(item, logging.Logger)),
    ]
    saved = {
        logger: (logger.level, list(logger.handlers), logger.propagate, logger.disabled)
        for logger in loggers
    }
    known = set(manager.loggerDict)
    yield
    for logger, (level, handlers, propagate, disabled) in saved.items():
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.propagate = propagate
        logger.disabled = disabled
    for name in set(manager.loggerDict) - known:
        item = manager.loggerDict[name]
        if isinstance(item, logging.Logger):
            item.setLevel(logging.NOTSET)
            item.handlers.clear()


# --------------------------------------------------------------------------------------------
# The examples
# --------------------------------------------------------------------------------------------


def test_examples_were_found():
    """The extraction itself: each kind of example is present, languages are all known."""
    assert len(PYTHON) >= 10
    assert len(INI) >= 2
    assert sum(len(block.checks) for block in PYTHON) >= 4
    unknown = {block.language for block in BLOCKS} - EXECUTED - NOT_EXECUTED
    assert unknown == set(), f"code-block languages with no rule here: {unknown}"


@pytest.mark.parametrize("block", PYTHON, ids=[block.id for block in PYTHON])
def test_python_example(block, replicas, tmp_path, logging_restored):
    if block.needs_subprocess:
        run_in_child(block, tmp_path, replicas)
    else:
        run_python(block, tmp_path)


def trivial_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"trivial\n"]


def trivial_app_factory(global_conf, **local_conf):
    """Stands in for ``egg:mysite`` in the ini examples."""
    return trivial_app


def _with_trivial_apps(text: str) -> str:
    parser = configparser.RawConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    apps = [section for section in parser.sections() if section.startswith("app:")]
    assert apps, "an ini example needs an [app:...] section to wrap"
    for section in apps:
        parser[section]["use"] = f"call:{__name__}:trivial_app_factory"
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


@pytest.mark.parametrize("block", INI, ids=[block.id for block in INI])
def test_pastedeploy_example(block, tmp_path):
    from paste.deploy import loadapp

    ini = tmp_path / "production.ini"
    ini.write_text(_with_trivial_apps(block.source))
    loaded = loadapp(f"config:{ini}")
    try:
        assert isinstance(loaded, ReproxyMiddleware), block.id
        assert loaded.app is trivial_app
        assert call(loaded, "/elsewhere").body == b"trivial\n"
    finally:
        loaded.pool.clear()


# --------------------------------------------------------------------------------------------
# Docstrings, server commands, API page, README markup, Sphinx
# --------------------------------------------------------------------------------------------

MODULES = [
    "wsgi_reproxy",
    *sorted(info.name for info in pkgutil.walk_packages(wsgi_reproxy.__path__, "wsgi_reproxy.")),
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    report = io.StringIO()
    for test in finder.find(module, name):
        runner.run(test, out=report.write)
    assert runner.failures == 0, report.getvalue()


def test_docstring_examples_exist():
    """So the doctest run above cannot silently find nothing."""
    finder = doctest.DocTestFinder()
    found = sum(
        len(test.examples)
        for name in MODULES
        for test in finder.find(importlib.import_module(name), name)
    )
    assert found >= 1


def _server_commands() -> list[tuple[str, list[str]]]:
    commands = []
    for block in BLOCKS:
        if block.language != "sh":
            continue
        text = re.sub(r"\\\n\s*", " ", block.source)
        for line in text.splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] in ("gunicorn", "uwsgi", "waitress-serve"):
                commands.append((block.id, words))
    return commands


def _help(program: str) -> str:
    if program == "gunicorn":
        argv = [sys.executable, "-m", "gunicorn", "--help"]
    elif program == "waitress-serve":
        argv = [sys.executable, "-m", "waitress", "--help"]
    else:
        from wsgi_servers import uwsgi_binary

        argv = [uwsgi_binary(), "--help"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    return done.stdout + done.stderr


def test_server_commands_use_real_options():
    """The gunicorn, uWSGI and waitress command lines in the docs use options that exist."""
    commands = _server_commands()
    assert {words[0] for _, words in commands} == {"gunicorn", "uwsgi", "waitress-serve"}
    helps: dict[str, str] = {}
    for where, words in commands:
        text = helps.setdefault(words[0], _help(words[0]))
        for word in words[1:]:
            if word.startswith("--"):
                option = word.partition("=")[0]
                assert re.search(rf"{re.escape(option)}\b", text), f"{where}: {option}?"


def test_api_page_documents_every_public_name():
    text = (DOCS / "api.rst").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. (?:auto)?\w+:: (\S+)", text, re.MULTILINE))
    missing = set(wsgi_reproxy.__all__) - documented
    assert missing == set()
    assert "wsgi_reproxy.paste.filter_app_factory" in documented


def test_readme_is_valid_restructuredtext():
    """PyPI renders README.rst with plain docutils: no Sphinx-only markup, no warnings."""
    from docutils.core import publish_doctree

    warnings = io.StringIO()
    publish_doctree(
        (ROOT / "README.rst").read_text(encoding="utf-8"),
        settings_overrides={"report_level": 2, "halt_level": 5, "warning_stream": warnings},
    )
    assert warnings.getvalue() == ""


@pytest.mark.slow
def test_sphinx_build_has_no_warnings(tmp_path, monkeypatch, logging_restored):
    from sphinx.cmd.build import build_main

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "path", list(sys.path))  # docs/conf.py adds src/
    assert build_main(["-W", "--keep-going", "-b", "html", "-q", "docs", str(tmp_path)]) == 0
