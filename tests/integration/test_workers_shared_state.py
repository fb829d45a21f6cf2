"""What several workers must share, shown with two in-process services on one keystore (as two
workers are): the token endpoint's client-assertion replay cache (token_endpoint.replay_cache_url,
a real redis-server), and GET /metrics ([metrics] enabled, or 404 when switched off)."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sekisho.config import ClientConfig
from sekisho.devidp import DevIdentityProvider
from sekisho.service import Service, start_service
from sekisho.signing.filestore import FileKeyStore

from tests.integration.conftest import stack_settings
from tests.integration.test_token_endpoint import ASSERTION_TYPE, Endpoint, _public_jwks
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration


async def _pair(
    tmp_path: Path, idp: DevIdentityProvider, **sections: dict[str, Any]
) -> tuple[list[Service], ec.EllipticCurvePrivateKey]:
    keys_dir = tmp_path / "keys"
    if not keys_dir.exists():
        FileKeyStore(keys_dir).init("ES256", 1_800_000_000)
    agent_key = ec.generate_private_key(ec.SECP256R1())
    clients = (ClientConfig(id="agent", jwks=_public_jwks(agent_key, "agent-key-1")),)
    endpoint = {"clients": clients, **sections.pop("token_endpoint", {})}
    settings = stack_settings(idp.issuer, keys_dir, token_endpoint=endpoint, **sections)
    return [await start_service(settings) for _ in range(2)], agent_key


@pytest.fixture
async def stopper() -> AsyncIterator[list[Service]]:
    services: list[Service] = []
    yield services
    for service in services:
        await service.stop(0.2)


def _endpoints(services: list[Service], idp: DevIdentityProvider, key: Any) -> list[Endpoint]:
    return [Endpoint(f"http://127.0.0.1:{s.http_port}", idp, key) for s in services]


@pytest.mark.parametrize(
    ("shared", "replay_status"),
    [pytest.param(True, 401, id="redis-refuses-replay"), pytest.param(False, 200, id="in-memory")],
)
async def test_client_assertion_replayed_to_another_worker(
    *,
    tmp_path: Path,
    dev_idp: DevIdentityProvider,
    redis_server: RedisServer,
    stopper: list[Service],
    shared: bool,
    replay_status: int,
) -> None:
    # RFC 7523 §3 item 7: a jti is accepted once. Each worker has its own memory, so only a
    # shared cache stops the same assertion from being spent once per worker.
    sections: dict[str, Any] = {"token_endpoint": {"replay_cache_url": redis_server.url}}
    services, key = await _pair(tmp_path, dev_idp, **(sections if shared else {}))
    stopper.extend(services)
    first, second = _endpoints(services, dev_idp, key)
    assertion = first.assertion()
    fields = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    status, body, _ = await first.post(first.form(**fields))
    assert status == 200, body
    status, body, _ = await second.post(second.form(**fields))
    assert status == replay_status, body
    if shared:
        assert body["error"] == "invalid_client"


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def test_metrics_route_counts_http_exchanges(
    tmp_path: Path, dev_idp: DevIdentityProvider, stopper: list[Service]
) -> None:
    services, key = await _pair(tmp_path, dev_idp)
    stopper.extend(services)
    endpoint = _endpoints(services, dev_idp, key)[0]
    fields = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": endpoint.assertion()}
    status, body, _ = await endpoint.post(endpoint.form(**fields))
    assert status == 200, body
    assert services[0].metrics_port
    status, text = await _get(f"http://127.0.0.1:{services[0].metrics_port}/metrics")
    assert status == 200
    assert 'entrypoint="http",outcome="granted"' in text
    assert 'sekisho_cache_misses{cache="subject"}' in text
    assert "sekisho_key_age_seconds{" in text
    assert 'sekisho_jwks_fetches_total{issuer="' + dev_idp.issuer + '"}' in text


async def test_metrics_switched_off_is_404(
    tmp_path: Path, dev_idp: DevIdentityProvider, stopper: list[Service]
) -> None:
    services, _ = await _pair(tmp_path, dev_idp, metrics={"enabled": False})
    stopper.extend(services)
    assert services[0].metrics_port == 0  # no admin listener at all
    status, _ = await _get(f"http://127.0.0.1:{services[0].http_port}/metrics")
    assert status == 404
