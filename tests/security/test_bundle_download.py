"""Red team, session 13: the bundle downloader goes only where `bundle_url` could point, and
never inflates a body on the event loop.

`[policy] bundle_url` must be https (plain http only on loopback): the policy travels over it.
aiohttp followed any redirect, so an https bundle server's `302 http://…` (a misconfigured
proxy or bucket rule, or whoever can answer for the server) had the policy fetched in plaintext,
where a network attacker serves whatever signed bundle it kept (or any bundle without a key).
A redirect is now followed only as `urls.may_follow` allows (https; plain http on loopback from
a plain-http loopback URL), at most MAX_REDIRECTS times. And aiohttp undid a `Content-Encoding`
on the event loop: 70 KB of gzip inflated to 64 MiB (76-79 ms of the loop) before the size
refusal; the bundle is a .tar.gz already, inflated under read_bundle's bounds off the loop.
"""

import gzip
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from sekisho.policy.wasm.download import (
    MAX_REDIRECTS,
    BundleDownloader,
    BundleFetchError,
    Fetched,
)

from tests.pki import build_pki

pytestmark = pytest.mark.security

BUNDLE = b"\x1f\x8b bundle bytes"


@dataclass
class Servers:
    """An https server (certificate for 127.0.0.1 from `ca_file`) and a plain-http one, both on
    loopback; `plain_hits` counts what the plain one answered."""

    https: str
    http: str
    ca_file: Path
    plain_hits: list[str] = field(default_factory=list)

    def downloader(self, path: str) -> BundleDownloader:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        return BundleDownloader(self.https + path, 5.0, ssl_context=context)


async def _site(app: web.Application, context: ssl.SSLContext | None) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    return runner, runner.addresses[0][1]


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Servers]:
    pki = build_pki(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server.cert_file, pki.server.key_file)
    plain, secure = web.Application(), web.Application()
    state = Servers("", "", pki.ca.pem.cert_file)

    async def plain_bundle(request: web.Request) -> web.Response:
        state.plain_hits.append(request.path)
        return web.Response(body=BUNDLE, headers={"ETag": '"plain"'})

    async def bundle(_: web.Request) -> web.Response:
        return web.Response(body=BUNDLE, headers={"ETag": '"1"'})

    async def to(request: web.Request) -> web.Response:
        where = request.query["where"]
        target = {"plain": state.http + "/b", "https": state.https + "/b", "self": "/to?where=self"}
        raise web.HTTPFound(target.get(where, where))

    async def coded(_: web.Request) -> web.Response:
        bomb = gzip.compress(b"\0" * (70 * 1024 * 1024), 9)  # ~70 KB: 70 MiB inflated
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    plain.router.add_get("/b", plain_bundle)
    plain.router.add_get("/coded", coded)
    secure.router.add_get("/b", bundle)
    secure.router.add_get("/to", to)
    plain_runner, plain_port = await _site(plain, None)
    secure_runner, secure_port = await _site(secure, context)
    state.http, state.https = f"http://127.0.0.1:{plain_port}", f"https://127.0.0.1:{secure_port}"
    yield state
    await secure_runner.cleanup()
    await plain_runner.cleanup()


@pytest.mark.parametrize(
    "where",
    [
        pytest.param("plain", id="https-to-plain-http-on-loopback"),
        pytest.param("http://bundles.example.com/b", id="https-to-plain-http-elsewhere"),
    ],
)
async def test_an_https_bundle_url_never_follows_a_redirect_to_plain_http(
    servers: Servers, where: str
) -> None:
    downloader = servers.downloader(f"/to?where={where}")
    try:
        with pytest.raises(BundleFetchError, match=r"redirected to http://"):
            await downloader.fetch("")
    finally:
        await downloader.close()
    assert servers.plain_hits == []  # before: the plain server answered, and the bundle loaded


async def test_a_redirect_to_https_is_followed_a_bounded_number_of_times(
    servers: Servers,
) -> None:
    downloader = servers.downloader("/to?where=https")
    looping = servers.downloader("/to?where=self")
    try:
        assert await downloader.fetch("") == Fetched(BUNDLE, '"1"')
        with pytest.raises(BundleFetchError, match=f"more than {MAX_REDIRECTS}"):
            await looping.fetch("")
    finally:
        await downloader.close()
        await looping.close()


async def test_a_content_coded_bundle_is_never_inflated(servers: Servers) -> None:
    downloader = BundleDownloader(servers.http + "/coded", 5.0)
    try:
        fetched = await downloader.fetch("")
    finally:
        await downloader.close()
    # The bytes as sent (read_bundle refuses them under its own bounds, off the event loop).
    # Before: inflated on the event loop to 64 MiB, then refused as too large.
    assert fetched.body is not None and len(fetched.body) < 128 * 1024
