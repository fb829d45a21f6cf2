"""Issue 15 item 2: every cache obeys every revocation. An emergency deny-list entry dropped into
the policy folder is in force, once the policy reload has run, for an exchange the gateway's
minted-token cache, the decision cache and the verified-subject cache had all answered before —
with both engines (OPA in manage mode activates a policy from its supervisor, after
`folder_changed` returned).

How soon (about a second on a quiet host: the folder watch, a recompile) is not asserted: a
stopwatch bound flakes on a loaded 2-core host (bench/hot_reload.py measures it). Each wait polls
up to GIVE_UP_SECONDS, a hang guard below the 60 s the shipped registry lets a grant be reused
(decision_cache_seconds) and far below the cached token's life, so without the flush on reload
both waits still fail. With OPA, the flush that matters is the one when the supervisor's publish
lands (on_policy_activated): `folder_changed` only wakes the supervisor, and this test passes
without that flush unless a request falls between the folder change and the publish;
tests/integration/test_opa_engine.py::test_a_policy_the_supervisor_publishes_flushes_the_decision_cache
always takes a decision there.
"""

import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.auth.v3 import attribute_context_pb2 as attrs
from envoy.service.auth.v3 import external_auth_pb2 as ext_authz_pb
from envoy.service.auth.v3 import external_auth_pb2_grpc as ext_authz_grpc
from google.rpc import code_pb2
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho.config import Settings
from sekisho.devidp import DevIdentityProvider
from sekisho.policy.cache import CachingPolicyEngine

from tests.integration.test_opa_service import (  # noqa: F401 (fixtures: engine_settings …)
    engine_settings,
    keys,
    opa,
    policies,
    running,
    until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

GIVE_UP_SECONDS = 40.0

CRM_AS = "https://crm-as.example.com"
CRM_MCP = "https://crm.example.com/mcp"
GATEWAY = {
    "routes": [
        {"path_prefix": "/crm", "audience": CRM_AS, "resources": [CRM_MCP], "scopes": ["crm.read"]}
    ]
}


def _check(token: str) -> Any:
    http = attrs.AttributeContext.HttpRequest(
        host="gateway.test", path="/crm/mcp", method="POST",
        headers={"authorization": f"Bearer {token}"},
    )  # fmt: skip
    return ext_authz_pb.CheckRequest(
        attributes=attrs.AttributeContext(request=attrs.AttributeContext.Request(http=http))
    )


def _deny_alice(folder: Path) -> None:
    path = folder / "data" / "denylist.json"
    document = json.loads(path.read_text())
    document["sekisho"]["denylist"]["users"]["alice"] = {"reason": "laptop stolen"}
    path.write_text(json.dumps(document))


async def test_deny_list_reload_reaches_the_gateway_subject_and_decision_caches(
    engine_settings: tuple[str, Settings],  # noqa: F811 (the imported fixture)
    policies: Path,  # noqa: F811 (the imported fixture)
    dev_idp: DevIdentityProvider,
) -> None:
    _, settings = engine_settings
    gateway = settings.gateway.model_validate(GATEWAY)
    settings = settings.model_copy(update={"gateway": gateway})
    async with running(settings, dev_idp) as stack:
        token = stack.idp.token(
            {"sub": "alice", "aud": "agent-app", "groups": ["sales"], "tenant": "acme",
             "client_id": "agent-app"},
            ttl=600, typ="at+jwt",
        )  # fmt: skip
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{stack.service.grpc.port}")
        authz = ext_authz_grpc.AuthorizationStub(channel)

        id_token = stack.token(["sales"])  # one token: the same policy input every time

        async def outcome() -> str:
            request = pb.ExchangeTokenRequest(subject_token=id_token, audience=CRM_AS)
            try:
                return " ".join((await stack.stub.ExchangeToken(request)).scope)
            except grpc.aio.AioRpcError as error:
                return str(error.code().name)

        async def gateway_status() -> int:
            reply = await authz.Check(_check(token))
            return int(reply.status.code)

        try:
            assert await gateway_status() == code_pb2.OK
            assert await gateway_status() == code_pb2.OK  # served from the gateway cache
            assert await outcome() == "crm.read"
            assert await outcome() == "crm.read"  # decision cached for 60 s
            policy, subjects = stack.service.policy, stack.service.subject_cache
            assert isinstance(policy, CachingPolicyEngine) and subjects is not None
            assert policy.hits >= 1 and len(subjects) >= 1
            _deny_alice(policies)
            # Without the flush the cached token (≤ 300 s) and grant (60 s) would keep answering.
            took = await until(gateway_status, code_pb2.PERMISSION_DENIED, GIVE_UP_SECONDS)
            await until(outcome, "PERMISSION_DENIED", GIVE_UP_SECONDS)
            print(f"the gateway refused {took:.2f} s after the deny-list edit")
        finally:
            await channel.close()
