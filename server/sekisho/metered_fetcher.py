"""A JsonFetcher that counts one issuer's JWKS and discovery fetches into the metrics
(sekisho_jwks_fetches, sekisho_jwks_fetch_failures)."""

from typing import Any, Protocol

from sekisho.verify.fetcher import FetchError, JsonFetcher


class FetchCounter(Protocol):
    """What counts the fetches (metrics.Metrics)."""

    def jwks_fetched(self, issuer: str, *, ok: bool) -> None: ...


class MeteredFetcher:
    """A JsonFetcher that counts one issuer's JWKS and discovery fetches and their failures."""

    def __init__(self, fetcher: JsonFetcher, metrics: FetchCounter, issuer: str) -> None:
        self._fetcher = fetcher
        self._metrics = metrics
        self._issuer = issuer

    async def fetch_json(self, url: str) -> Any:
        """Raises: FetchError, as the wrapped fetcher does."""
        try:
            document = await self._fetcher.fetch_json(url)
        except FetchError:
            self._metrics.jwks_fetched(self._issuer, ok=False)
            raise
        self._metrics.jwks_fetched(self._issuer, ok=True)
        return document
