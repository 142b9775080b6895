"""Sphinx configuration for wsgi-reproxy (builtin extensions only).

Build with ``python -m sphinx -W -b html docs docs/_build/html`` once Sphinx is installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

# autodoc imports the package from the source tree, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

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
pygments_style = "sphinx"
nitpicky = False

autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the docstrings say what each parameter takes
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "alabaster"
html_theme_options = {"description": "X-Reproxy-Url for any WSGI app"}
html_static_path: list[str] = []
