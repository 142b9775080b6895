"""wsgi-reproxy: the ``X-Reproxy-Url`` protocol (perlbal, mod_reproxy) for any WSGI app.

A backend answers ``X-Reproxy-Url: URL1 URL2 ...``; :class:`ReproxyMiddleware` throws the
app's body away and streams, within the same client request, the response of the first URL
that works.
"""

from .cache import CacheBackend, MemoryCache
from .decision_cache import default_cache_key
from .digest import format_digest
from .errors import (
    AllUpstreamsFailed,
    ReproxyError,
    UpstreamBodyError,
    UpstreamError,
)
from .exchange import CAPABILITY
from .middleware import ReproxyMiddleware, can_reproxy
from .redis_cache import RedisCache
from .reply import reproxy_headers
from .report import AttemptReport, ReproxyReport
from .settings import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_FORWARD,
    DEFAULT_HIDE,
    DEFAULT_MAX_URLS,
    DEFAULT_TIMEOUT,
)
from .transport.pools import ReproxyPoolManager
from .version import __version__

__all__ = [
    "CAPABILITY",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_FORWARD",
    "DEFAULT_HIDE",
    "DEFAULT_MAX_URLS",
    "DEFAULT_TIMEOUT",
    "AllUpstreamsFailed",
    "AttemptReport",
    "CacheBackend",
    "MemoryCache",
    "RedisCache",
    "ReproxyError",
    "ReproxyMiddleware",
    "ReproxyPoolManager",
    "ReproxyReport",
    "UpstreamBodyError",
    "UpstreamError",
    "__version__",
    "can_reproxy",
    "default_cache_key",
    "format_digest",
    "reproxy_headers",
]
