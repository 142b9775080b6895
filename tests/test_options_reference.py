"""The options reference cannot drift from the code (issue 16).

docs/configuration.rst is written by hand; these tests hold it to the code:

* the signature block at the top of the page names every option with its default;
* the *Options* list has one entry per option of :data:`wsgi_reproxy.settings.Options`
  (plus ``app``, ``allow`` and ``preserve``), none unknown, and the default each entry
  states (``default* ``()```, ``None`` *(the default)*, ``default 3600``, a named
  constant with its value in parentheses or a list after a colon) is what
  :data:`~wsgi_reproxy.settings.DEFAULTS` holds;
* the PasteDeploy table names exactly the options ``wsgi_reproxy.paste`` converts, and
  the page says which options an ini file cannot give;
* the ``ReproxyMiddleware`` docstring has one ``:param name:`` per option, none unknown.

Each check returns the list of what is wrong, so that the last test can show that every
one of them fails on a copy of the page (or docstring) with one thing changed.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import urllib3

import wsgi_reproxy
from wsgi_reproxy import ReproxyMiddleware, settings
from wsgi_reproxy.paste import _CONVERTERS

CONFIGURATION = Path(__file__).resolve().parent.parent / "docs" / "configuration.rst"
TEXT = CONFIGURATION.read_text(encoding="utf-8")
DOCSTRING = inspect.getdoc(ReproxyMiddleware) or ""

# The positional parameters come before the keyword-only options of Options.
_SIGNATURE = inspect.signature(ReproxyMiddleware.__init__).parameters
POSITIONAL = {
    name: p.default
    for name, p in _SIGNATURE.items()
    if name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
}
OPTIONS = set(settings.Options.__annotations__)
EXPECTED: dict[str, Any] = {**POSITIONAL, **settings.DEFAULTS}
ALL_NAMES = set(EXPECTED)

_TERM = re.compile(r"^``(?P<name>\w+)``[ \t]*$")
_LITERAL = r"``(?P<expr>[^`]+)``"
# How the page states a default, in the entry's first paragraph: the earliest match wins.
_DEFAULT_FORMS = (
    re.compile(r"default\*?[ \t]+" + _LITERAL),  # *bool, default* ``False``
    re.compile(_LITERAL + r",?[ \t]+\*\(the default\)"),  # ``None`` *(the default).*
    re.compile(
        r"default[ \t]+(?P<expr>-?\d[\d_]*(?:\.\d+)?)\.?\*"
    ),  # *Positive int, default 3600.*
)


# --------------------------------------------------------------------------------------------
# Reading the page
# --------------------------------------------------------------------------------------------


def section(text: str, title: str) -> str:
    """The body of the ``title`` section: up to the next heading of any level."""
    lines = text.splitlines()
    for i in range(len(lines) - 1):
        if lines[i] == title and re.fullmatch(r"([-=~^])\1+", lines[i + 1]):
            body = []
            for line, after in zip(lines[i + 2 :], [*lines[i + 3 :], ""], strict=True):
                if line and re.fullmatch(r"([-=~^])\1+", after) and len(after) >= len(line):
                    break
                body.append(line)
            return "\n".join(body)
    raise AssertionError(f"docs/configuration.rst has no section {title!r}")


def option_entries(text: str) -> dict[str, list[str]]:
    """The definition list of the *Options* section: name -> the entry's indented lines."""
    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in section(text, "Options").splitlines():
        term = _TERM.match(line)
        if term:
            current = entries.setdefault(term["name"], [])
        elif line.strip() and not line[0].isspace():
            current = None
        elif current is not None:
            current.append(line.strip())
    return entries


def first_paragraph(lines: list[str]) -> str:
    paragraph: list[str] = []
    for line in lines:
        if not line and paragraph:
            break
        if line:
            paragraph.append(line)
    return " ".join(paragraph)


def stated_default(paragraph: str) -> re.Match[str] | None:
    found = [m for form in _DEFAULT_FORMS if (m := form.search(paragraph))]
    return min(found, key=lambda m: m.start(), default=None)


def evaluate(expr: str) -> Any:
    """A Python literal, or a public name of the package (``DEFAULT_FORWARD``)."""
    try:
        return ast.literal_eval(expr)
    except (ValueError, SyntaxError):
        pass
    if expr.isidentifier() and expr in wsgi_reproxy.__all__ + settings.__all__:
        return getattr(wsgi_reproxy, expr, None) or getattr(settings, expr)
    raise LookupError(expr)


def same(stated: Any, actual: Any) -> bool:
    if isinstance(actual, urllib3.Timeout):  # no __eq__: the very object, by its name
        return stated is actual
    return type(stated) is type(actual) and stated == actual


# --------------------------------------------------------------------------------------------
# The checks: each returns what is wrong
# --------------------------------------------------------------------------------------------


def detail_problems(name: str, expected: Any, after: str) -> list[str]:
    """What a named default says of its value: ``(1048576, 1 MiB)``, ``(connect 5 s, read
    30 s)`` or ``: ``Range``, ``If-Range`` ...`` must be that value."""
    if isinstance(expected, bool) or expected is None:
        return []
    if isinstance(expected, int):
        number = re.match(r"\s*\((\d+)", after)
        if number and int(number[1]) != expected:
            return [f"{name}: the page says ({number[1]}), the default is {expected}"]
        return [] if number else [f"{name}: say the default's value, ``...`` ({expected})"]
    if isinstance(expected, urllib3.Timeout):
        sides = re.match(r"\s*\(connect ([\d.]+) s, read ([\d.]+) s\)", after)
        actual = (expected.connect_timeout, expected.read_timeout)
        if not sides or (float(sides[1]), float(sides[2])) != actual:
            return [f"{name}: the page should say (connect {actual[0]:g} s, read {actual[1]:g} s)"]
        return []
    if isinstance(expected, tuple) and expected and all(isinstance(v, str) for v in expected):
        listed = re.match(r":\s*((?:``[^`]+``,?\s*)+)", after)
        names = tuple(re.findall(r"``([^`]+)``", listed[1])) if listed else ()
        if names != expected:
            return [f"{name}: the page lists {names}, the default is {expected}"]
    return []


def default_problems(name: str, lines: list[str]) -> list[str]:
    paragraph = first_paragraph(lines)
    if name == "app":
        return [] if "required" in paragraph else ["app: say that it is required"]
    match = stated_default(paragraph)
    if match is None:
        return [f"{name}: no default stated in {paragraph[:70]!r}..."]
    expected = EXPECTED[name]
    try:
        stated = evaluate(match["expr"])
    except LookupError:
        return [f"{name}: the default {match['expr']!r} is neither a literal nor a public name"]
    if not same(stated, expected):
        return [f"{name}: the page says {match['expr']}, DEFAULTS has {expected!r}"]
    if match["expr"].isidentifier() and match["expr"] not in {"None", "True", "False"}:
        return detail_problems(name, expected, paragraph[match.end() :])
    return []


def option_list_problems(text: str) -> list[str]:
    entries = option_entries(text)
    problems = [f"{name}: not in the Options list" for name in sorted(ALL_NAMES - {*entries})]
    problems += [
        f"{name}: documented, but no such option" for name in sorted({*entries} - ALL_NAMES)
    ]
    for name in sorted(ALL_NAMES & {*entries}):
        problems += default_problems(name, entries[name])
    return problems


def signature_problems(text: str) -> list[str]:
    """The ``ReproxyMiddleware(app, allow=(), ...)`` block that opens the page."""
    block = re.search(r"ReproxyMiddleware\((.*?)\)\n\n", text, re.DOTALL)
    if block is None:
        return ["the page does not open with the ReproxyMiddleware(...) signature"]
    pairs = dict(re.findall(r"(\w+)=([^,\s]+)", block[1]))
    names = {*pairs} | ({"app"} if re.match(r"\s*app\b", block[1]) else set())
    problems = [f"{name}: not in the signature" for name in sorted(ALL_NAMES - names)]
    problems += [f"{name}: in the signature, no such option" for name in sorted(names - ALL_NAMES)]
    for name in sorted({*pairs} & ALL_NAMES):
        try:
            stated = evaluate(pairs[name])
        except LookupError:
            problems.append(f"{name}={pairs[name]}: neither a literal nor a public name")
            continue
        if not same(stated, EXPECTED[name]):
            problems.append(
                f"{name}={pairs[name]} in the signature, the default is {EXPECTED[name]!r}"
            )
    return problems


def paste_problems(text: str) -> list[str]:
    """The PasteDeploy table's first column against ``wsgi_reproxy.paste._CONVERTERS``."""
    body = section(text, "PasteDeploy")
    first_cells = re.findall(r"^\s*\* - (.*)$", body, re.MULTILINE)
    listed = {name for cell in first_cells for name in re.findall(r"``(\w+)``", cell)}
    problems = [f"{name}: not in the PasteDeploy table" for name in sorted({*_CONVERTERS} - listed)]
    problems += [
        f"{name}: in the PasteDeploy table, not an ini option"
        for name in sorted(listed - {*_CONVERTERS})
    ]
    for name in sorted(OPTIONS - {*_CONVERTERS}):
        said = re.search(rf"``{name}``[^.]*cannot be given in an ini file", body)
        if said is None:
            problems.append(f"{name}: say that it cannot be given in an ini file")
    return problems


def docstring_problems(doc: str) -> list[str]:
    params = re.findall(r"^:param (\w+):", doc, re.MULTILINE)
    problems = [f"{name}: no :param in the docstring" for name in sorted(ALL_NAMES - {*params})]
    problems += [f"{name}: :param of no such option" for name in sorted({*params} - ALL_NAMES)]
    problems += [
        f"{name}: two :param" for name in sorted({n for n in params if params.count(n) > 1})
    ]
    return problems


# --------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------


def test_the_code_declares_each_option_once() -> None:
    assert set(settings.DEFAULTS) == OPTIONS
    assert set(POSITIONAL) == {"app", "allow", "preserve"}
    assert {*_CONVERTERS} <= ALL_NAMES


def test_option_list_matches_the_code() -> None:
    assert option_list_problems(TEXT) == []


def test_signature_block_matches_the_code() -> None:
    assert signature_problems(TEXT) == []


def test_pastedeploy_table_matches_the_converters() -> None:
    assert paste_problems(TEXT) == []


def test_docstring_documents_every_option() -> None:
    assert docstring_problems(DOCSTRING) == []


def test_chunk_size_entry_says_where_pieces_start() -> None:
    entry = " ".join(option_entries(TEXT)["chunk_size"])
    assert f"{settings.FIRST_PIECE_SIZE // 1024} KiB (``FIRST_PIECE_SIZE``" in entry


MUTATIONS: list[tuple[str, Callable[[str], list[str]], str, str, str]] = [
    (
        "option renamed",
        option_list_problems,
        "\n``file_roots``\n",
        "\n``file_root``\n",
        "file_root",
    ),
    ("option dropped", option_list_problems, "\n``max_urls``\n", "\n", "max_urls"),
    (
        "old chunk_size value",
        option_list_problems,
        "``DEFAULT_CHUNK_SIZE`` (1048576, 1 MiB)",
        "``DEFAULT_CHUNK_SIZE`` (65536, 64 KiB)",
        "chunk_size",
    ),
    (
        "literal default",
        option_list_problems,
        "*bool, default* ``True``",
        "*bool, default* ``False``",
        "resume",
    ),
    (
        "number default",
        option_list_problems,
        "*Positive int, default 3600.*",
        "*Positive int, default 600.*",
        "cache_max_age",
    ),
    (
        "None default",
        option_list_problems,
        "*Callable or* ``None`` *(the default).* Called",
        "*Callable, default* ``print``. Called",
        "observer",
    ),
    (
        "timeout sides",
        option_list_problems,
        "(connect 5 s,\n    read 30 s)",
        "(connect 5 s,\n    read 60 s)",
        "timeout",
    ),
    (
        "forward list",
        option_list_problems,
        "``If-Match``,\n    ``Accept-Encoding``. The",
        "``If-Match``. The",
        "forward",
    ),
    (
        "signature default",
        signature_problems,
        "max_urls=DEFAULT_MAX_URLS",
        "max_urls=4",
        "max_urls",
    ),
    ("signature option", signature_problems, "file_roots=None)", "file_root=None)", "file_root"),
    (
        "ini row renamed",
        paste_problems,
        "   * - ``file_roots``\n",
        "   * - ``file_root``\n",
        "file_root",
    ),
    (
        "ini pool",
        paste_problems,
        "A ``pool`` object cannot be given",
        "A ``pool`` object can be given",
        "pool",
    ),
]


@pytest.mark.parametrize(
    ("check", "old", "new", "named"),
    [pytest.param(*m[1:], id=m[0]) for m in MUTATIONS],
)
def test_each_check_fails_on_a_drifted_copy(
    check: Callable[[str], list[str]], old: str, new: str, named: str
) -> None:
    assert TEXT.count(old) == 1, f"the mutation's text is gone from the page: {old!r}"
    problems = check(TEXT.replace(old, new))
    assert problems
    assert any(p.startswith((f"{named}:", f"{named}=")) for p in problems), problems


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        pytest.param(":param file_roots:", ":param file_root:", "file_root", id="param renamed"),
        pytest.param(":param max_urls:", ":raw max_urls:", "max_urls", id="param dropped"),
    ],
)
def test_docstring_check_fails_on_a_drifted_copy(old: str, new: str, named: str) -> None:
    assert DOCSTRING.count(old) == 1
    problems = docstring_problems(DOCSTRING.replace(old, new))
    assert any(p.startswith(f"{named}:") for p in problems), problems
