"""A real JWKS endpoint on loopback (aiohttp, port 0) that counts requests and can be switched to
misbehave: down (HTTP 503), slow (answers after `delay` seconds), garbage (any bytes), or a
document of the test's choosing (oversize, duplicate kids, too many keys).

Shared by the JWKS attack tests (tests/security) and the fault tests (tests/integration).
"""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from sekisho.clock import Clock
from sekisho.identity.issuer_config import IssuerConfig
from sekisho.identity.verifier import TokenVerifier, TrustedIssuer
from sekisho.verify.fetcher import HttpJsonFetcher
from sekisho.verify.jwks import JwksCache

from tests.bounds import max_act_depth


@dataclass
class JwksServer:
    """State of the endpoint; tests change the fields while it runs."""

    document: Any = field(default_factory=lambda: {"keys": []})
    mode: str = "ok"  # ok | down | slow | garbage
    delay: float = 0.0
    garbage: bytes = b"<html>not json</html>"
    url: str = ""
    paths: list[str] = field(default_factory=list)

    @property
    def hits(self) -> int:
        return len(self.paths)

    def url_for(self, path: str) -> str:
        return self.url.rsplit("/", 1)[0] + path

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.paths.append(request.path)
        if self.mode == "down":
            return web.Response(status=503, text="maintenance")
        if self.mode == "slow":
            await asyncio.sleep(self.delay)
        if self.mode == "garbage":
            return web.Response(body=self.garbage, content_type="application/json")
        body = self.document if isinstance(self.document, bytes) else json.dumps(self.document)
        return web.Response(body=body, content_type="application/json")


@asynccontextmanager
async def jwks_server(document: Any = None) -> AsyncIterator[JwksServer]:
    """Serve `document` at http://127.0.0.1:<port>/jwks (and any other path) until exit."""
    state = JwksServer(document=document if document is not None else {"keys": []})
    app = web.Application()
    app.router.add_get("/{tail:.*}", state._handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}/jwks"
    try:
        yield state
    finally:
        await runner.cleanup()


def live_verifier(
    server: JwksServer,
    fetcher: HttpJsonFetcher,
    clock: Clock,
    *,
    issuer: str,
    max_stale_seconds: float = float("inf"),
) -> TokenVerifier:
    """A real TokenVerifier trusting `issuer` (audience agent-app, RS256/ES256) whose JWKS is
    fetched over HTTP from `server` by `fetcher`, throttled at 30 s of `clock`."""
    config = IssuerConfig(issuer=issuer, jwks_uri=server.url, audiences=("agent-app",))
    cache = JwksCache(
        issuer,
        fetcher,
        clock,
        jwks_uri=server.url,
        min_refetch_interval=30,
        max_stale_seconds=max_stale_seconds,
    )
    return TokenVerifier(
        {issuer: TrustedIssuer(config=config, jwks=cache)},
        clock,
        own_issuer="https://sekisho.example.com",
        leeway_seconds=30,
        max_token_bytes=16384,
        max_act_depth=max_act_depth(),
    )
