"""Everything the examples need, in one process on loopback: the dev IdP, Sekisho (shipped
policies plus the examples' downstreams), and MCP servers built with the official MCP SDK whose
authorization servers redeem Sekisho ID-JAGs with sekisho.verify. DEV ONLY: plaintext loopback.
"""

import asyncio
import contextlib
import json
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import uvicorn
from aiohttp import web
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from sekisho.client import ChannelOptions, SekishoAssertionProvider, TokenExchangeClient
from sekisho.config import Settings
from sekisho.devidp import DevIdentityProvider, create_app
from sekisho.service import Service, start_service
from sekisho.signing.filestore import FileKeyStore
from sekisho.verify import InMemoryReplayCache, JwksClient, SekishoTokenVerifier
from starlette.applications import Starlette

from examples.mcp_enterprise.authorization_server import IdJagAuthorizationServer, create_mcp_app

REPO = Path(__file__).resolve().parents[2]
SEKISHO_ISSUER = "https://sekisho.example"
AGENT_APP = "agent-app"  # the agent's client id at the IdP, and its client at each MCP AS
AGENT_SECRET = "agent-app-secret-for-the-examples"


@dataclass(frozen=True)
class McpServerSpec:
    """One MCP server: its name, scopes per IdP group, and its tenant ("" = multi-tenant)."""

    name: str
    group_grants: dict[str, list[str]]
    tenant: str = ""


@dataclass
class RunningMcpServer:
    spec: McpServerSpec
    issuer: str

    @property
    def url(self) -> str:
        return self.issuer + "/mcp"


@dataclass
class Stack:
    idp: DevIdentityProvider
    sekisho: Service
    servers: dict[str, RunningMcpServer] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.sekisho.grpc.port}"

    def login(self, sub: str, groups: list[str], tenant: str = "acme") -> str:
        """The dev IdP's ID token for a user: what the agent holds after the user signs in."""
        claims = {"sub": sub, "aud": AGENT_APP, "groups": groups, "tenant": tenant}
        return self.idp.token({**claims, "email": f"{sub}@{tenant}.example"}, ttl=600)

    def client(self) -> TokenExchangeClient:
        # 30 s, not the SDK's 2 s default (an agent's request budget): the whole stack runs in
        # this one process, and a machine busy with other work (the test suite runs these
        # examples) can hold a fresh connection's first call past 2 s.
        options = ChannelOptions(insecure=True)
        return TokenExchangeClient(self.target, channel_options=options, timeout_seconds=30.0)


def _bound_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def _downstream(spec: McpServerSpec, url: str) -> dict[str, Any]:
    scopes = sorted({s for granted in spec.group_grants.values() for s in granted})
    entry: dict[str, Any] = {
        "name": spec.name,
        "resources": [url],
        "scopes": {s: {"description": s} for s in scopes},
        "group_grants": spec.group_grants,
        "max_ttl_seconds": 120,
    }
    if spec.tenant:
        entry["tenant"] = spec.tenant
    return entry


def _policies(tmp: Path, servers: list[RunningMcpServer]) -> Path:
    policies = tmp / "policies"
    shutil.copytree(REPO / "policies", policies)
    path = policies / "data" / "registry.json"
    registry = json.loads(path.read_text())
    for server in servers:
        entry = _downstream(server.spec, server.url)
        registry["sekisho"]["registry"]["downstreams"][server.issuer] = entry
    path.write_text(json.dumps(registry))
    return policies


async def _serve(app: Starlette, sock: socket.socket, stack: contextlib.AsyncExitStack) -> None:
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 (uvicorn exposes a flag, not an event)
        await asyncio.sleep(0.01)

    async def stop() -> None:
        server.should_exit = True
        await task
        sock.close()

    stack.push_async_callback(stop)


@contextlib.asynccontextmanager
async def running_stack(specs: list[McpServerSpec]) -> AsyncIterator[Stack]:
    """Start the dev IdP, Sekisho and one SDK-built MCP server (with its AS) per spec."""
    async with contextlib.AsyncExitStack() as exits:
        tmp = Path(exits.enter_context(tempfile.TemporaryDirectory()))
        idp_sock = _bound_socket()
        idp = DevIdentityProvider.open(tmp / "idp", f"http://127.0.0.1:{idp_sock.getsockname()[1]}")
        idp_runner = web.AppRunner(create_app(idp), access_log=None)
        await idp_runner.setup()
        await web.SockSite(idp_runner, idp_sock).start()
        exits.push_async_callback(idp_runner.cleanup)
        sockets = [_bound_socket() for _ in specs]
        servers = [
            RunningMcpServer(spec, f"http://127.0.0.1:{sock.getsockname()[1]}")
            for spec, sock in zip(specs, sockets, strict=True)
        ]
        FileKeyStore(tmp / "keys").init("ES256", int(time.time()) - 3600)
        settings = Settings(
            server={
                "grpc_listen": "127.0.0.1:0",
                "http_listen": "127.0.0.1:0",
                "issuer": SEKISHO_ISSUER,
            },
            trust={
                "issuers": [
                    {
                        "issuer": idp.issuer,
                        "jwks_uri": idp.issuer + "/jwks.json",
                        "audiences": [AGENT_APP],
                    }
                ]
            },
            policy={"path": str(_policies(tmp, servers)), "watch": False},
            keys={"dir": str(tmp / "keys"), "watch": False},
            # Any free port, like the listeners: beside a `make run` (metrics on 9464) too.
            metrics={"listen": "127.0.0.1:0"},
        )
        sekisho = await start_service(settings)
        exits.push_async_callback(sekisho.stop, 0.5)
        jwks_url = f"http://127.0.0.1:{sekisho.http_port}/.well-known/jwks.json"
        for server, sock in zip(servers, sockets, strict=True):
            verifier = SekishoTokenVerifier(
                issuer=SEKISHO_ISSUER,
                audience=server.issuer,
                keys=JwksClient(jwks_url, clock=time.time),
                resources={server.url},
                replay_cache=InMemoryReplayCache(),
            )
            provider = IdJagAuthorizationServer(
                verifier, {AGENT_APP: AGENT_SECRET}, tenant=server.spec.tenant, resource=server.url
            )
            await _serve(
                create_mcp_app(provider, issuer=server.issuer, resource=server.url), sock, exits
            )
        yield Stack(idp, sekisho, {s.spec.name: s for s in servers})


class MemoryStorage:
    """The MCP SDK's TokenStorage, in memory (one per MCP server connection)."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return None

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        return None


async def call_tool(
    server: RunningMcpServer,
    sekisho: TokenExchangeClient,
    subject_token: Callable[[], str],
    tool: str,
    arguments: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Connect with the official MCP client (ID-JAG from Sekisho, leg 2 at the server's AS)."""
    auth = IdentityAssertionOAuthProvider(
        server_url=server.url,
        storage=MemoryStorage(),
        client_id=AGENT_APP,
        client_secret=AGENT_SECRET,
        issuer=server.issuer,
        assertion_provider=SekishoAssertionProvider(sekisho, subject_token),
    )
    async with (
        httpx2.AsyncClient(auth=auth, timeout=10) as http,
        streamable_http_client(server.url, http_client=http) as (read, write, *_),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool(tool, arguments or {})
    if result.is_error:
        raise RuntimeError(f"{tool} failed: {result.content}")
    structured = result.structured_content or {}
    return dict(structured.get("result", structured))
