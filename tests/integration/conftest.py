"""Real servers on loopback: the dev IdP over HTTP and Sekisho's gRPC + HTTP listeners."""

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from aiohttp import web
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.config import Settings
from sekisho.devidp import DevIdentityProvider, create_app
from sekisho.service import Service, start_service
from sekisho.signing.filestore import FileKeyStore

from tests.harness import POLICIES

SEKISHO_ISSUER = "https://sekisho.test"
AGENT_AUDIENCE = "agent-app"


@dataclass
class LiveStack:
    """A running Sekisho, its dev IdP, and a connected stub."""

    service: Service
    idp: DevIdentityProvider
    stub: pb_grpc.TokenExchangeServiceStub
    channel: grpc.aio.Channel
    settings: Settings

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.service.http_port}"

    def user_token(self, **claims: object) -> str:
        body: dict[str, object] = {
            "sub": "alice",
            "aud": AGENT_AUDIENCE,
            "email": "alice@example.com",
            "groups": ["sales"],
            "tenant": "acme",
        }
        body.update(claims)
        return self.idp.token({k: v for k, v in body.items() if v is not None}, ttl=600)


def stack_settings(idp_issuer: str, keys_dir: Path, policies: Path = POLICIES) -> Settings:
    return Settings(
        server={
            "grpc_listen": "127.0.0.1:0",
            "http_listen": "127.0.0.1:0",
            "issuer": SEKISHO_ISSUER,
            "shutdown_grace_seconds": 1.0,
        },
        trust={
            "issuers": [
                {
                    "issuer": idp_issuer,
                    "discovery_url": f"{idp_issuer}/.well-known/openid-configuration",
                    "audiences": [AGENT_AUDIENCE],
                }
            ],
            "jwks_refetch_min_interval_seconds": 1.0,
        },
        policy={"path": str(policies)},
        keys={"dir": str(keys_dir)},
    )


@pytest.fixture
async def dev_idp(tmp_path: Path) -> AsyncIterator[DevIdentityProvider]:
    """The dev IdP on a socket bound before the app exists, so the issuer URL names its port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    idp = DevIdentityProvider.open(tmp_path / "idp", f"http://127.0.0.1:{sock.getsockname()[1]}")
    runner = web.AppRunner(create_app(idp), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    yield idp
    await runner.cleanup()


@pytest.fixture
async def live(tmp_path: Path, dev_idp: DevIdentityProvider) -> AsyncIterator[LiveStack]:
    idp = dev_idp
    keys_dir = tmp_path / "keys"
    FileKeyStore(keys_dir).init("ES256", 1_800_000_000)
    settings = stack_settings(idp.issuer, keys_dir)
    service = await start_service(settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc.port}")
    stub = pb_grpc.TokenExchangeServiceStub(channel)
    yield LiveStack(service=service, idp=idp, stub=stub, channel=channel, settings=settings)
    await channel.close()
    await service.stop(0.5)
