"""Sphinx configuration for wsgi-reproxy.

Build, with warnings as errors::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Requires Sphinx and the furo theme (the ``docs`` extra; ``test`` has them too), and Graphviz's
``dot`` for the diagrams (Debian: ``apt-get install graphviz``; ``.ci/run`` installs it). Every
code example in these pages is run by ``tests/test_docs.py``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from sphinx.errors import ConfigError

_DOCS = Path(__file__).resolve().parent
# autodoc imports the package from the source tree, installed or not; _ext holds the
# bar-chart directive.
for _path in (str(_DOCS.parent / "src"), str(_DOCS / "_ext")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import wsgi_reproxy  # noqa: E402

project = "wsgi-reproxy"
author = "wsgi-reproxy developers"
copyright = "wsgi-reproxy developers, MIT License"  # noqa: A001
release = wsgi_reproxy.__version__
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc", "sphinx.ext.graphviz", "barchart"]

root_doc = "index"
exclude_patterns = ["_build"]
default_role = "code"
nitpicky = False

autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the docstrings say what each parameter takes
autodoc_default_options = {"members": True, "show-inheritance": True}

# The sequence diagrams (docs/diagrams/*.dot) are drawn when the docs build. Without dot,
# sphinx.ext.graphviz only warns and prints each diagram's source in its place: stop instead.
graphviz_dot = "dot"
graphviz_output_format = "svg"  # sharp at any width, its text searchable
if shutil.which(graphviz_dot) is None:
    raise ConfigError(
        f"Graphviz's {graphviz_dot!r} is not on PATH: the diagrams cannot be drawn. "
        "Install Graphviz (Debian: apt-get install graphviz)."
    )

html_theme = "furo"
html_title = f"wsgi-reproxy {release}"
html_static_path: list[str] = []
