"""Fetching a bundle from an OPA bundle service (OPA docs, "Bundles": HTTP GET, ETag /
If-None-Match, 304 when unchanged). The body is bounded while it is read."""

import ssl
from dataclasses import dataclass

import aiohttp

from sekisho.policy.wasm.bundle import MAX_BUNDLE_BYTES


class BundleFetchError(Exception):
    """The bundle server could not be reached or did not answer with a bundle."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """A new bundle (`body`), or None when the server answered 304 Not Modified."""

    body: bytes | None
    etag: str


class BundleDownloader:
    """GETs one bundle URL with the last ETag; https verified against `ssl_context` when given
    ([policy] bundle_ca_file), else the system trust store."""

    def __init__(
        self,
        url: str,
        timeout_seconds: float,
        headers: dict[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ):
        self._url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._headers = headers or {}
        self._ssl: ssl.SSLContext | bool = ssl_context or True
        self._session: aiohttp.ClientSession | None = None

    async def fetch(self, etag: str) -> Fetched:
        """Raises: BundleFetchError."""
        headers = {**self._headers, "Accept": "application/gzip"}
        if etag:
            headers["If-None-Match"] = etag
        try:
            async with self._client().get(self._url, headers=headers, ssl=self._ssl) as response:
                if response.status == 304:
                    return Fetched(None, etag)
                if response.status != 200:
                    raise BundleFetchError(f"bundle server answered HTTP {response.status}")
                body = await _bounded(response)
                return Fetched(body, response.headers.get("ETag", ""))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BundleFetchError(f"bundle download failed: {exc!r}") from exc

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _bounded(response: aiohttp.ClientResponse) -> bytes:
    declared = response.content_length
    if declared is not None and declared > MAX_BUNDLE_BYTES:
        raise BundleFetchError(f"bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_BUNDLE_BYTES:
            raise BundleFetchError(f"bundle is larger than {MAX_BUNDLE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
