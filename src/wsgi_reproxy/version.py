"""The package's version, in one place: the package metadata (setup.cfg), the
``User-Agent`` sent to storage and ``python -m wsgi_reproxy --version`` all read it."""

__version__ = "0.2.0.dev0"
