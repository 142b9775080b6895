"""An enabled request when the middleware has ``cache=``: the app's decision kept and
served again without the app (SPEC R8, perlbal's ``X-Reproxy-Cache-For``).

Before the app is called, the request's key is looked up.  A hit is fetched as the app's
answer would have been, and the app is never called (R8.4); a refused entry (R8.5) or
one whose every URL failed (R8.6) is deleted and the request goes on as a miss, in the
same request.  On a miss the app answers as usual, and a directive with
``X-Reproxy-Cache-For`` is stored once one of its URLs has answered: a decision that
fails is never kept.  Without ``cache=`` the middleware uses the plain
:class:`~wsgi_reproxy.exchange.Exchange`, so the header costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .decision_cache import CACHE_ENVIRON_KEY, DecisionCache
from .directive import Directive
from .errors import AllUpstreamsFailed
from .exchange import Exchange

__all__ = ["CachingExchange"]


@dataclass(slots=True, eq=False)
class CachingExchange(Exchange):
    """:class:`~wsgi_reproxy.exchange.Exchange`, with the decision cache around the app."""

    cache_key: str | None = None  # None: this request is not cached

    @property
    def cache(self) -> DecisionCache:
        cache = self.settings.cache
        assert cache is not None  # the middleware uses this class only with cache=
        return cache

    def run(self) -> Iterable[bytes]:
        self.cache_key = self.cache.key_of(self.environ)
        self._set_result("miss")
        if self.cache_key is not None:
            served = self._from_cache(self.cache, self.cache_key)
            if served is not None:
                return served
        return Exchange.run(self)

    def _from_cache(self, cache: DecisionCache, key: str) -> Iterable[bytes] | None:
        """Serve the decision kept under ``key``, or None: a miss, an entry refused, or
        one whose every URL failed."""
        kept = cache.decision(key)
        if kept is None:
            return None
        directive, app_headers = kept
        self._take(directive, app_headers)
        self._set_result("hit")  # (and _found keeps the entry as it is)
        try:
            served = self._serve(directive, ())
        except AllUpstreamsFailed:
            self._set_result("miss")
            sources = "URL" if directive.file is None else "source"
            cache.refuse(key, f"every {sources} failed; asking the app again")
            return None
        self.started = True
        return served

    def _found(self, directive: Directive) -> None:
        if self.cache_key is None or self.report.cache == "hit":
            return
        if self.cache.store(self.cache_key, directive, self.app_headers, self.settings.preserved):
            self._set_result("stored")

    def _set_result(self, result: str) -> None:
        self.environ[CACHE_ENVIRON_KEY] = self.report.cache = result
