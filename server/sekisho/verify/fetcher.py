"""HTTP GET of small JSON documents (OIDC discovery, JWKS) with a timeout and a size cap: the one
fetcher behind the one JWKS client (jwks.py), for the server's IdPs and for downstreams alike."""

import json
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import aiohttp

MAX_DOCUMENT_BYTES = 512 * 1024


class FetchError(Exception):
    """The document could not be fetched or is not JSON."""


class JsonFetcher(Protocol):
    """Fetches a JSON document."""

    async def fetch_json(self, url: str) -> Any:
        """Raises: FetchError."""
        ...


@dataclass(frozen=True, slots=True)
class Document:
    """A fetched JSON document and the Cache-Control and Age headers it came with."""

    body: Any
    cache_control: str = ""
    age: str = ""


@runtime_checkable
class DocumentFetcher(Protocol):
    """A JsonFetcher that also tells how long the publisher lets the document be cached."""

    async def fetch_document(self, url: str) -> Document:
        """Raises: FetchError."""
        ...


async def read_capped(
    stream: aiohttp.StreamReader, url: str, limit: int = MAX_DOCUMENT_BYTES
) -> bytes:
    """The whole body, however many reads it arrives in, refused as soon as it grows past
    `limit` bytes (never buffered past it). The one body reader of the SDK's fetches (JWKS,
    discovery, status lists): a single `read(limit)` answers with what has arrived so far.

    Raises: FetchError when the body is larger than `limit`.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise FetchError(f"GET {url}: document larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class HttpJsonFetcher:
    """aiohttp-based fetcher; never follows redirects. With `reuse_session` (the server) one
    connection pool is kept until `close`; without (the SDK's JwksClient, which has no close)
    each fetch opens and closes its own."""

    def __init__(self, timeout_seconds: float, *, reuse_session: bool = True) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._reuse = reuse_session
        self._session: aiohttp.ClientSession | None = None

    async def fetch_json(self, url: str) -> Any:
        return (await self.fetch_document(url)).body

    async def fetch_document(self, url: str) -> Document:
        if self._reuse:
            return await self._get(self._session_or_new(), url)
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            return await self._get(session, url)

    async def _get(self, session: aiohttp.ClientSession, url: str) -> Document:
        try:
            async with session.get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise FetchError(f"GET {url} answered HTTP {response.status}")
                body = await read_capped(response.content, url)
                cache_control = response.headers.get("Cache-Control", "")
                age = response.headers.get("Age", "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise FetchError(f"GET {url} failed: {type(exc).__name__}") from exc
        try:
            return Document(json.loads(body), cache_control, age)
        # RecursionError: a hostile or broken IdP can nest arrays deeper than the parser's stack.
        except (ValueError, RecursionError) as exc:
            raise FetchError(f"GET {url}: body is not JSON") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _session_or_new(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session
