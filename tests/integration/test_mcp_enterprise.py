"""MCP Enterprise-Managed Authorization end to end with the official MCP Python SDK on both legs:

MCP client (IdentityAssertionOAuthProvider + SekishoAssertionProvider)
  → Sekisho ExchangeToken: the user's ID token for an ID-JAG (leg 1)
  → MCP authorization server (SDK token endpoint, jwt-bearer grant) validating with sekisho.verify
  → MCP server tool sees the user, the tenant and the granted scopes.
"""

import asyncio
import json
import shutil
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from sekisho.client import (
    ChannelOptions,
    ExchangeDeniedError,
    SekishoAssertionProvider,
    TokenExchangeClient,
)
from sekisho.devidp import DevIdentityProvider
from sekisho.service import Service, start_service
from sekisho.signing.filestore import FileKeyStore
from sekisho.verify import InMemoryReplayCache, JwksClient, SekishoTokenVerifier

from examples.mcp_enterprise.authorization_server import IdJagAuthorizationServer, create_mcp_app
from examples.mcp_enterprise.stack import MemoryStorage
from tests.harness import POLICIES
from tests.integration.conftest import SEKISHO_ISSUER, stack_settings

pytestmark = pytest.mark.integration

MCP_CLIENT_ID = "agent-app"  # the ID-JAG's client_id: the agent app the user signed in to
MCP_CLIENT_SECRET = "notes-client-secret-0123456789"


@dataclass
class McpStack:
    sekisho: Service
    idp: DevIdentityProvider
    as_issuer: str
    mcp_url: str

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.sekisho.grpc.port}"


def _policies_with(tmp: Path, as_issuer: str, mcp_url: str) -> Path:
    """The shipped policies plus one downstream: this test's notes MCP server (tenant acme)."""
    policies = tmp / "policies"
    shutil.copytree(POLICIES, policies)
    registry_path = policies / "data" / "registry.json"
    registry = json.loads(registry_path.read_text())
    registry["sekisho"]["registry"]["downstreams"][as_issuer] = {
        "name": "Notes MCP server (tenant acme)",
        "tenant": "acme",
        "resources": [mcp_url],
        "scopes": {"notes.read": {"description": "Read"}, "notes.write": {"description": "Edit"}},
        "group_grants": {"sales": ["notes.read"], "engineering": ["notes.read", "notes.write"]},
        "max_ttl_seconds": 120,
    }
    registry_path.write_text(json.dumps(registry))
    return policies


@pytest.fixture
async def mcp_stack(tmp_path: Path, dev_idp: DevIdentityProvider) -> AsyncIterator[McpStack]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    as_issuer = f"http://127.0.0.1:{sock.getsockname()[1]}"
    mcp_url = as_issuer + "/mcp"
    keys_dir = tmp_path / "keys"
    FileKeyStore(keys_dir).init("ES256", 1_800_000_000)
    settings = stack_settings(
        dev_idp.issuer, keys_dir, _policies_with(tmp_path, as_issuer, mcp_url)
    )
    sekisho = await start_service(settings)
    verifier = SekishoTokenVerifier(
        issuer=SEKISHO_ISSUER,
        audience=as_issuer,
        keys=JwksClient(f"http://127.0.0.1:{sekisho.http_port}/.well-known/jwks.json", clock=_now),
        resources={mcp_url},
        replay_cache=InMemoryReplayCache(),
    )
    provider = IdJagAuthorizationServer(
        verifier, {MCP_CLIENT_ID: MCP_CLIENT_SECRET}, tenant="acme", resource=mcp_url
    )
    app = create_mcp_app(provider, issuer=as_issuer, resource=mcp_url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 (uvicorn exposes a flag, not an event)
        await asyncio.sleep(0.01)
    yield McpStack(sekisho, dev_idp, as_issuer, mcp_url)
    server.should_exit = True
    await task
    sock.close()
    await sekisho.stop(0.5)


def _now() -> float:
    return time.time()


def _user_token(stack: McpStack, **claims: Any) -> str:
    body: dict[str, Any] = {
        "sub": "alice",
        "aud": "agent-app",
        "groups": ["sales"],
        "tenant": "acme",
        "email": "alice@example.com",
    }
    body.update(claims)
    return stack.idp.token(body, ttl=600)


def _denials(error: BaseException) -> list[str]:
    """Reasons of the ExchangeDeniedErrors inside (the SDK's task groups wrap them in groups)."""
    if isinstance(error, BaseExceptionGroup):
        return [r for inner in error.exceptions for r in _denials(inner)]
    return [error.reason] if isinstance(error, ExchangeDeniedError) else []


class RecordingProvider(SekishoAssertionProvider):
    """Keeps the ID-JAGs it handed out, so the test can try to replay one."""

    issued: list[str]

    async def __call__(self, audience: str, resource: str) -> str:
        assertion = await super().__call__(audience, resource)
        self.issued.append(assertion)
        return assertion


async def _call_whoami(
    stack: McpStack, sekisho: TokenExchangeClient, subject: str, issued: list[str] | None = None
) -> dict[str, Any]:
    assertions = RecordingProvider(sekisho, lambda: subject)
    assertions.issued = issued if issued is not None else []
    auth = IdentityAssertionOAuthProvider(
        server_url=stack.mcp_url,
        storage=MemoryStorage(),
        client_id=MCP_CLIENT_ID,
        client_secret=MCP_CLIENT_SECRET,
        issuer=stack.as_issuer,
        assertion_provider=assertions,
    )
    async with (
        httpx2.AsyncClient(auth=auth, timeout=10) as http,
        streamable_http_client(stack.mcp_url, http_client=http) as (read, write, *_),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool("whoami", {})
    assert not result.is_error, result
    structured = result.structured_content or json.loads(result.content[0].text)  # type: ignore[union-attr]
    return dict(structured.get("result", structured))


@pytest.fixture
async def sekisho_client(mcp_stack: McpStack) -> AsyncIterator[TokenExchangeClient]:
    async with TokenExchangeClient(  # 30 s: a hang guard, not the SDK's 2 s default
        mcp_stack.target, channel_options=ChannelOptions(insecure=True), timeout_seconds=30
    ) as client:
        yield client


async def test_tool_sees_the_user_tenant_and_granted_scopes(
    mcp_stack: McpStack, sekisho_client: TokenExchangeClient
) -> None:
    who = await _call_whoami(mcp_stack, sekisho_client, _user_token(mcp_stack))
    assert who == {
        "sub": "alice",
        "scopes": ["notes.read"],
        "tenant": "acme",
        "client_id": MCP_CLIENT_ID,
    }


async def test_engineers_get_write_scope(
    mcp_stack: McpStack, sekisho_client: TokenExchangeClient
) -> None:
    who = await _call_whoami(
        mcp_stack, sekisho_client, _user_token(mcp_stack, sub="bob", groups=["engineering"])
    )
    assert who["scopes"] == ["notes.read", "notes.write"]


async def test_user_without_a_grant_is_refused(
    mcp_stack: McpStack, sekisho_client: TokenExchangeClient
) -> None:
    with pytest.raises((ExchangeDeniedError, BaseExceptionGroup)) as caught:
        await _call_whoami(mcp_stack, sekisho_client, _user_token(mcp_stack, groups=["marketing"]))
    assert _denials(caught.value) == ["access_denied"]


async def test_user_of_another_tenant_is_refused(
    mcp_stack: McpStack, sekisho_client: TokenExchangeClient
) -> None:
    with pytest.raises((ExchangeDeniedError, BaseExceptionGroup)) as caught:
        await _call_whoami(mcp_stack, sekisho_client, _user_token(mcp_stack, tenant="globex"))
    assert _denials(caught.value) == ["access_denied"]


async def _redeem(stack: McpStack, assertion: str) -> httpx2.Response:
    async with httpx2.AsyncClient() as http:
        return await http.post(
            stack.as_issuer + "/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion,
                "client_id": MCP_CLIENT_ID,
                "client_secret": MCP_CLIENT_SECRET,
                "resource": stack.mcp_url,
            },
        )


async def test_replayed_id_jag_is_refused(
    mcp_stack: McpStack, sekisho_client: TokenExchangeClient
) -> None:
    issued: list[str] = []
    await _call_whoami(mcp_stack, sekisho_client, _user_token(mcp_stack), issued)
    assert len(issued) == 1
    response = await _redeem(mcp_stack, issued[0])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert "already used" in response.json()["error_description"]


async def test_fresh_id_jag_redeems_directly(
    mcp_stack: McpStack, sekisho_client: TokenExchangeClient
) -> None:
    # The control for the replay test: the same request with an unused ID-JAG succeeds.
    token = await sekisho_client.exchange(
        _user_token(mcp_stack), mcp_stack.as_issuer, resources=[mcp_stack.mcp_url]
    )
    response = await _redeem(mcp_stack, token.access_token)
    assert response.status_code == 200, response.text
