"""Real servers on loopback: the dev IdP over HTTP, Sekisho's gRPC + HTTP listeners, and moto's
standalone KMS server."""

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.config import Settings
from sekisho.devidp import DevIdentityProvider, create_app
from sekisho.service import Service, start_service
from sekisho.signing.filestore import FileKeyStore

from tests.harness import POLICIES
from tests.loopback import free_port, http_ok, stop_process, wait_until
from tests.redis_server import redis_server  # noqa: F401 (fixture for replay-cache tests)

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


def stack_settings(
    idp_issuer: str, keys_dir: Path, policies: Path = POLICIES, **sections: dict[str, Any]
) -> Settings:
    """Settings for a loopback stack; `sections` adds to (or overrides) tables, e.g. keys={…}."""
    tables: dict[str, dict[str, Any]] = {
        "server": {
            "grpc_listen": "127.0.0.1:0",
            "http_listen": "127.0.0.1:0",
            "issuer": SEKISHO_ISSUER,
            "shutdown_grace_seconds": 1.0,
        },
        "trust": {
            "issuers": [
                {
                    "issuer": idp_issuer,
                    "discovery_url": f"{idp_issuer}/.well-known/openid-configuration",
                    "audiences": [AGENT_AUDIENCE],
                }
            ],
            "jwks_refetch_min_interval_seconds": 1.0,
        },
        "policy": {"path": str(policies)},
        "keys": {"dir": str(keys_dir)},
    }
    for name, table in sections.items():
        tables[name] = {**tables.get(name, {}), **table}
    return Settings(**tables)


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


MOTO_LAUNCHER = Path(__file__).resolve().parents[1] / "moto_kms_server.py"
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def start_moto(log: Path) -> tuple[str, "subprocess.Popen[bytes]"]:
    """moto's standalone server on 127.0.0.1:<free port>, answering; its endpoint URL and process.

    Its output goes to `log`, a file, never to a pipe: werkzeug writes a line (~62 bytes) to
    stderr for every request, and a pipe nobody reads holds 64 KiB. The session's server answered
    ~850 KMS requests in the tests that use it (52 KB; more on a slower run, the replicas poll
    KMS while they run), and once the pipe was full the server blocked on its next line and every
    later KMS call timed out (ReadTimeoutError), in whichever test came then.

    Raises: ServerStartError (a RuntimeError) with the end of its log if it exited.
    """
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, str(MOTO_LAUNCHER), "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env={**os.environ, **AWS_TEST_ENV},
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: http_ok(f"{endpoint}/moto-api/"),
            name="moto server",
            process=process,
            seconds=30,
            interval=0.1,
            detail=lambda: log.read_text(errors="replace")[-2000:],
        )
    except BaseException:
        stop_process(process, timeout=10)
        raise
    return endpoint, process


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's standalone server for the whole session; its endpoint URL.

    Started as a separate process (tests/moto_kms_server.py: moto_server with KMS DIGEST
    signing as AWS does it), so boto3 talks HTTP to it exactly as it would to KMS.
    """
    endpoint, process = start_moto(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield endpoint
    finally:
        stop_process(process, timeout=10)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, moto_server: str) -> str:
    """Dummy AWS credentials and Region in the environment (boto3's default chain); the endpoint."""
    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    return moto_server
