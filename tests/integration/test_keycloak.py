"""A real Keycloak (tests/keycloak.py) with the `keycloak` preset: its own access and ID tokens,
obtained over its token endpoint, exchanged end to end over gRPC.

One Keycloak per test session (startup dominates: tens of seconds); realms, client, groups and
users are provisioned through its admin REST API. Group grants come from policies/data (the CRM
downstream grants `sales` crm.read), so Keycloak's full group path "/sales" must be read as
"sales" for Alice to be allowed.
"""

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_TOKEN
from sekisho.service import Service, start_service
from sekisho.signing.filestore import FileKeyStore

from tests import keycloak
from tests.integration.conftest import stack_settings

# The first test waits for Keycloak to start (bounded by keycloak.STARTUP_SECONDS).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(keycloak.STARTUP_SECONDS + 60)]

REALM, OTHER_REALM = "agents", "elsewhere"
CLIENT, SECRET = "agent-app", "agent-app-secret"
SHORT_CLIENT = "short-lived-app"  # access and ID tokens live 1 s (for the expired-token case)
CRM_AS = "https://crm-as.example.com"
USERS = {"alice": ["/sales"], "bob": []}


def _client(client_id: str, **attributes: str) -> dict[str, Any]:
    groups_mapper = {
        "name": "groups",
        "protocol": "openid-connect",
        "protocolMapper": "oidc-group-membership-mapper",
        # Keycloak's default: full paths ("/sales"); the preset makes them relative.
        "config": {
            "claim.name": "groups",
            "full.path": "true",
            "id.token.claim": "true",
            "access.token.claim": "true",
        },
    }
    return {
        "clientId": client_id,
        "secret": SECRET,
        "publicClient": False,
        "standardFlowEnabled": False,
        "directAccessGrantsEnabled": True,  # password grant: tokens without a browser
        "attributes": attributes,
        "protocolMappers": [groups_mapper],
    }


def provision(server: keycloak.Keycloak, realm: str) -> None:
    """A realm with the agent app, a short-lived app, the `sales` group, Alice and Bob."""
    server.request("POST", "/admin/realms", {"realm": realm, "enabled": True})
    server.request("POST", f"/admin/realms/{realm}/groups", {"name": "sales"})
    server.request("POST", f"/admin/realms/{realm}/clients", _client(CLIENT))
    server.request(
        "POST",
        f"/admin/realms/{realm}/clients",
        _client(SHORT_CLIENT, **{"access.token.lifespan": "1"}),
    )
    for name, groups in USERS.items():
        user = {
            "username": name,
            "enabled": True,
            "email": f"{name}@example.com",
            "emailVerified": True,
            "firstName": name.title(),
            "lastName": "Example",
            "groups": groups,
            "credentials": [{"type": "password", "value": f"{name}-pw", "temporary": False}],
        }
        server.request("POST", f"/admin/realms/{realm}/users", user)


@pytest.fixture(scope="session")
def keycloak_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[keycloak.Keycloak]:
    server = keycloak.start(tmp_path_factory.mktemp("keycloak"))
    try:
        for realm in (REALM, OTHER_REALM):
            provision(server, realm)
        yield server
    finally:
        server.stop()


@dataclass
class Stack:
    keycloak: keycloak.Keycloak
    service: Service
    stub: pb_grpc.TokenExchangeServiceStub

    def tokens(self, user: str, realm: str = REALM, client: str = CLIENT) -> dict[str, Any]:
        return self.keycloak.password_grant(realm, client, SECRET, user, f"{user}-pw")

    async def exchange(
        self, token: str, token_type: str, scope: str = "crm.read"
    ) -> pb.ExchangeTokenResponse:
        request = pb.ExchangeTokenRequest(
            subject_token=token, subject_token_type=token_type, audience=CRM_AS, scope=[scope]
        )
        return await self.stub.ExchangeToken(request)

    async def refused(self, token: str, token_type: str) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await self.exchange(token, token_type)
        return caught.value


@pytest.fixture(scope="module")
async def stack(
    keycloak_server: keycloak.Keycloak, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    keys = tmp_path_factory.mktemp("keys")
    FileKeyStore(keys).init("ES256", 1_800_000_000)
    issuer = keycloak_server.issuer(REALM)
    trusted = {
        "preset": "keycloak",
        "issuer": issuer,
        "discovery_url": f"{issuer}/.well-known/openid-configuration",
        "audiences": [CLIENT],
        "client_ids": [CLIENT, SHORT_CLIENT],
    }
    settings = stack_settings(issuer, keys, trust={"issuers": [trusted], "leeway_seconds": 0})
    service = await start_service(settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc.port}")
    yield Stack(keycloak_server, service, pb_grpc.TokenExchangeServiceStub(channel))
    await channel.close()
    await service.stop(0.5)


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def test_access_token_with_group_grant(stack: Stack) -> None:
    access = stack.tokens("alice")["access_token"]
    assert _claims(access)["groups"] == ["/sales"]  # Keycloak's default full path
    response = await stack.exchange(access, TOKEN_TYPE_ACCESS_TOKEN)
    assert list(response.scope) == ["crm.read"]
    minted = _claims(response.access_token)
    assert minted["sub"] == _claims(access)["sub"]
    assert minted["aud"] == CRM_AS


async def test_id_token_with_group_grant(stack: Stack) -> None:
    response = await stack.exchange(stack.tokens("alice")["id_token"], TOKEN_TYPE_ID_TOKEN)
    assert list(response.scope) == ["crm.read"]


async def test_user_without_the_group_is_denied(stack: Stack) -> None:
    error = await stack.refused(stack.tokens("bob")["access_token"], TOKEN_TYPE_ACCESS_TOKEN)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_access_token_sent_as_id_token_names_the_fix(stack: Stack) -> None:
    error = await stack.refused(stack.tokens("alice")["access_token"], TOKEN_TYPE_ID_TOKEN)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert f"set subject_token_type (or actor_token_type) to {TOKEN_TYPE_ACCESS_TOKEN}" in (
        error.details() or ""
    )


async def test_id_token_never_passes_as_access_token(stack: Stack) -> None:
    error = await stack.refused(stack.tokens("alice")["id_token"], TOKEN_TYPE_ACCESS_TOKEN)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "is an ID token but was sent as an access token" in (error.details() or "")


async def test_expired_token_is_refused(stack: Stack) -> None:
    tokens = stack.tokens("alice", client=SHORT_CLIENT)
    access = tokens["access_token"]
    assert _claims(access)["exp"] - _claims(access)["iat"] <= 1
    await asyncio.sleep(2.1)  # past exp, with leeway_seconds = 0
    error = await stack.refused(access, TOKEN_TYPE_ACCESS_TOKEN)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_token_from_another_realm_is_refused(stack: Stack) -> None:
    other = stack.tokens("alice", realm=OTHER_REALM)
    assert _claims(other["access_token"])["iss"] == stack.keycloak.issuer(OTHER_REALM)
    for token, token_type in (
        (other["access_token"], TOKEN_TYPE_ACCESS_TOKEN),
        (other["id_token"], TOKEN_TYPE_ID_TOKEN),
    ):
        error = await stack.refused(token, token_type)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_installed_from_maven_central_and_cached() -> None:
    # `make keycloak` (part of `make test`) and the fixture share one cached, checked install.
    assert keycloak.install() == keycloak.home()
    assert (keycloak.home() / "version.txt").read_text().strip().endswith(keycloak.VERSION)
    assert Path(keycloak.cache_dir(), f"keycloak-quarkus-dist-{keycloak.VERSION}.zip").exists()
