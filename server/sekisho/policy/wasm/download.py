"""Fetching a bundle from an OPA bundle service (OPA docs, "Bundles": HTTP GET, ETag /
If-None-Match, 304 when unchanged). The body is bounded while it is read.

Two things aiohttp would do by default are not done (red team session 13):

- a redirect is followed only where `bundle_url` itself could point (`urls.may_follow`: https,
  or plain http on loopback from a plain-http loopback URL), at most MAX_REDIRECTS times. aiohttp
  followed any (an https bundle server's `302 http://…` fetched the policy in plaintext, which
  the config refuses to configure: a network attacker then serves whatever signed bundle it
  kept, or any bundle without a key);
- a `Content-Encoding` is never undone: the bundle is a .tar.gz already, read_bundle inflates it
  under its own bounds off the event loop, and aiohttp inflated a coded body on the event loop
  (70 KB of gzip: 64 MiB inflated, 76-79 ms of the loop per poll, before the size refusal).
"""

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from sekisho.policy.wasm.bundle import MAX_BUNDLE_BYTES
from sekisho.urls import may_follow

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


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

    @property
    def location(self) -> str:
        """The URL as a log line may show it: without user info, query or fragment (a presigned
        object-store URL carries its credential in the query)."""
        parts = urlsplit(self._url)
        return parts._replace(
            netloc=parts.netloc.rpartition("@")[2], query="", fragment=""
        ).geturl()

    async def fetch(self, etag: str) -> Fetched:
        """Raises: BundleFetchError."""
        headers = {**self._headers, "Accept": "application/gzip", "Accept-Encoding": "identity"}
        if etag:
            headers["If-None-Match"] = etag
        url = self._url
        try:
            for _ in range(MAX_REDIRECTS + 1):
                async with self._client().get(
                    url, headers=headers, ssl=self._ssl, allow_redirects=False
                ) as response:
                    if response.status in _REDIRECTS:
                        url = _redirect_target(url, response)
                        continue
                    if response.status == 304:
                        return _not_modified(etag)
                    if response.status != 200:
                        raise BundleFetchError(f"bundle server answered HTTP {response.status}")
                    body = await _bounded(response)
                    return Fetched(body, response.headers.get("ETag", ""))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BundleFetchError(f"bundle download failed: {exc!r}") from exc
        raise BundleFetchError(f"bundle server redirected more than {MAX_REDIRECTS} times")

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _not_modified(etag: str) -> Fetched:
    """A 304 answers a conditional request only (RFC 9110 §15.4.5): to a GET without
    If-None-Match (no bundle loaded yet, or a server that sends no ETag) it says nothing about
    the bundle. OPA's downloader counts it as a good poll; here it is a failed one, so a new
    replica retries from 0.1 s instead of waiting a whole poll interval (60-120 s) not ready
    (red team session 13). Raises: BundleFetchError."""
    if not etag:
        raise BundleFetchError(
            "bundle server answered 304 Not Modified to a request without If-None-Match"
        )
    return Fetched(None, etag)


def _redirect_target(url: str, response: aiohttp.ClientResponse) -> str:
    """Where a redirect from `url` leads, if it may be followed. Raises: BundleFetchError naming
    the target's scheme and host only (a presigned URL's query is a credential)."""
    location = response.headers.get("Location", "")
    try:
        target = str(URL(url).join(URL(location))) if location else ""
    except ValueError:
        target = ""
    if not target or not may_follow(target, url):
        parts = urlsplit(target) if target else None
        shown = f"{parts.scheme}://{parts.hostname}" if parts else repr(location[:64])
        raise BundleFetchError(
            f"bundle server redirected to {shown}: only https (plain http from and to "
            "loopback) is followed"
        )
    return target


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
