"""HTTP GET of small JSON documents (OIDC discovery, JWKS) with a timeout and a size cap."""

import json
from typing import Any, Protocol

import aiohttp

MAX_DOCUMENT_BYTES = 512 * 1024


class FetchError(Exception):
    """The document could not be fetched or is not JSON."""


class JsonFetcher(Protocol):
    """Fetches a JSON document."""

    async def fetch_json(self, url: str) -> Any:
        """Raises: FetchError."""
        ...


class HttpJsonFetcher:
    """aiohttp-based fetcher sharing one connection pool; never follows redirects off-origin."""

    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def fetch_json(self, url: str) -> Any:
        session = self._session_or_new()
        try:
            async with session.get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise FetchError(f"GET {url} answered HTTP {response.status}")
                body = await response.content.read(MAX_DOCUMENT_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise FetchError(f"GET {url} failed: {type(exc).__name__}") from exc
        if len(body) > MAX_DOCUMENT_BYTES:
            raise FetchError(f"GET {url}: document larger than {MAX_DOCUMENT_BYTES} bytes")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise FetchError(f"GET {url}: body is not JSON") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _session_or_new(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session
