"""Sphinx configuration for wsgi-reproxy.

Build, with warnings as errors::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Requires Sphinx and the furo theme (the ``docs`` extra; ``test`` has them too). Every code example in
these pages is run by ``tests/test_docs.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# autodoc imports the package from the source tree, installed or not.
_SRC = str(Path(__file__).resolve().parent.parent / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)

import wsgi_reproxy  # noqa: E402

project = "wsgi-reproxy"
author = "wsgi-reproxy developers"
copyright = "wsgi-reproxy developers, MIT License"  # noqa: A001
release = wsgi_reproxy.__version__
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc"]

root_doc = "index"
exclude_patterns = ["_build"]
default_role = "code"
nitpicky = False

autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the docstrings say what each parameter takes
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "furo"
html_title = f"wsgi-reproxy {release}"
html_static_path: list[str] = []
