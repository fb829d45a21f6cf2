"""Operational behaviour of a live server: HTTP endpoints, health, reflection, hot reload,
and failing closed when the IdP cannot be reached."""

import asyncio
import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.devidp import DevIdentityProvider
from sekisho.service import start_service
from sekisho.signing.filestore import FileKeyStore

from tests.harness import POLICIES
from tests.integration.conftest import SEKISHO_ISSUER, LiveStack, stack_settings

pytestmark = pytest.mark.integration

CRM_AS = "https://crm-as.example.com"


async def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, dict(response.headers), await response.read()


async def test_rfc8414_metadata_names_issuer_jwks_and_token_types(live: LiveStack) -> None:
    status, _, body = await _get(f"{live.http_base}/.well-known/oauth-authorization-server")
    metadata = json.loads(body)
    assert status == 200
    assert metadata["issuer"] == SEKISHO_ISSUER
    assert metadata["jwks_uri"] == f"{SEKISHO_ISSUER}/.well-known/jwks.json"
    assert (
        "urn:ietf:params:oauth:token-type:id-jag"
        in (metadata["identity_chaining_requested_token_types_supported"])
    )
    assert metadata["id_jag_signing_alg_values_supported"] == ["ES256"]
    assert "token_endpoint" not in metadata  # no HTTP token endpoint in this version


async def test_healthz_and_readyz(live: LiveStack) -> None:
    assert (await _get(f"{live.http_base}/healthz"))[0] == 200
    status, _, body = await _get(f"{live.http_base}/readyz")
    assert status == 200
    assert json.loads(body)["status"] == "ready"


async def test_grpc_health_reports_serving(live: LiveStack) -> None:
    stub = health_pb2_grpc.HealthStub(live.channel)
    for service in ("", "sekisho.v1.TokenExchangeService"):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_exchange_service(live: LiveStack) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(live.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for reply in stub.ServerReflectionInfo(iter([request])):
        names = {s.name for s in reply.list_services_response.service}
        assert "sekisho.v1.TokenExchangeService" in names
        break


async def test_unreachable_idp_fails_closed_with_unavailable(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    FileKeyStore(keys).init("ES256", 1_800_000_000)
    idp = DevIdentityProvider.open(
        tmp_path / "idp", "http://127.0.0.1:9"
    )  # discard port: nothing there
    service = await start_service(stack_settings(idp.issuer, keys))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc.port}") as channel:
            client = pb_grpc.TokenExchangeServiceStub(channel)
            token = idp.token({"sub": "alice", "aud": "agent-app", "groups": ["sales"]})
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await client.ExchangeToken(
                    pb.ExchangeTokenRequest(subject_token=token, audience=CRM_AS)
                )
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await service.stop(0.5)


async def _exchange_scopes(live: LiveStack, token: str) -> list[str] | str:
    try:
        response = await live.stub.ExchangeToken(
            pb.ExchangeTokenRequest(subject_token=token, audience=CRM_AS)
        )
    except grpc.aio.AioRpcError as error:
        return error.code().name
    return list(response.scope)


async def _eventually(
    probe: Callable[[], Awaitable[object]], expected: object, seconds: float = 30.0
) -> object:
    """`probe()`'s value once it is `expected`, or its last after `seconds` (a hang guard: a
    policy reload runs `opa build`, seconds on a loaded host)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        value = await probe()
        if value == expected or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.1)


def _logged(caplog: pytest.LogCaptureFixture, event: str) -> int:
    return sum(r.getMessage() == event for r in caplog.records)


async def _until_logged(caplog: pytest.LogCaptureFixture, event: str) -> None:
    """Wait until `event` has been logged (30 s give-up)."""

    async def logged() -> bool:
        await asyncio.sleep(0.1)
        return _logged(caplog, event) > 0

    assert await _eventually(logged, True) is True, f"no {event} line"


async def test_policy_data_edit_is_picked_up_and_a_broken_edit_keeps_last_good(
    tmp_path: Path, dev_idp: DevIdentityProvider, caplog: pytest.LogCaptureFixture
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    keys = tmp_path / "keys"
    FileKeyStore(keys).init("ES256", 1_800_000_000)
    settings = stack_settings(dev_idp.issuer, keys, policies)
    service = await start_service(settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc.port}")
    stub = pb_grpc.TokenExchangeServiceStub(channel)
    live = LiveStack(service, dev_idp, stub, channel, settings)
    token = dev_idp.token({"sub": "bob", "aud": "agent-app", "groups": ["marketing"]})
    try:
        assert await _exchange_scopes(live, token) == "PERMISSION_DENIED"
        registry_path = policies / "data" / "registry.json"
        registry = json.loads(registry_path.read_text())
        grants = registry["sekisho"]["registry"]["downstreams"][CRM_AS]["group_grants"]
        grants["marketing"] = ["crm.read"]
        registry_path.write_text(json.dumps(registry))
        assert await _eventually(lambda: _exchange_scopes(live, token), ["crm.read"]) == [
            "crm.read"
        ]
        (policies / "sekisho" / "exchange" / "decision.rego").write_text(
            "package sekisho.exchange\nbroken {"
        )
        await _until_logged(caplog, "policy_reload_failed")  # not a fixed 1 s: it may be later
        assert await _exchange_scopes(live, token) == ["crm.read"]  # last good policy still serving
    finally:
        await channel.close()
        await service.stop(0.5)
