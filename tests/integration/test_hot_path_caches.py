"""The hot-path caches as `start_service` wires them: a repeated exchange reuses the verified
subject and the policy decision, and still mints a fresh token."""

from pathlib import Path

import jwt
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho.config import Settings
from sekisho.devidp import DevIdentityProvider
from sekisho.policy.cache import CachingPolicyEngine

from tests.integration.conftest import LiveStack
from tests.integration.test_opa_service import (  # noqa: F401 (fixtures: engine_settings …)
    RELOAD_GIVE_UP_SECONDS,
    engine_settings,
    keys,
    opa,
    policies,
    running,
    until,
)

CRM_AS = "https://crm-as.example.com"
DOCS_AS = "https://docs-as.example.com"


async def test_a_repeated_exchange_hits_both_caches_and_mints_a_new_token(live: LiveStack) -> None:
    subject_cache, policy = live.service.subject_cache, live.service.policy
    assert subject_cache is not None
    assert isinstance(policy, CachingPolicyEngine)
    request = pb.ExchangeTokenRequest(subject_token=live.user_token(), audience=CRM_AS)
    first = await live.stub.ExchangeToken(request)
    second = await live.stub.ExchangeToken(request)
    assert (subject_cache.hits, subject_cache.misses) == (1, 1)
    assert (policy.hits, policy.misses) == (1, 1)  # the shipped registry: 60 s for grants
    assert first.jti != second.jti
    assert first.decision_id == second.decision_id  # the evaluation that made the decision
    claims = jwt.decode(second.access_token, options={"verify_signature": False})
    assert claims["aud"] == CRM_AS


async def test_another_audience_is_decided_afresh(live: LiveStack) -> None:
    policy = live.service.policy
    assert isinstance(policy, CachingPolicyEngine)
    token = live.user_token(groups=["sales", "engineering"])
    await live.stub.ExchangeToken(pb.ExchangeTokenRequest(subject_token=token, audience=CRM_AS))
    await live.stub.ExchangeToken(pb.ExchangeTokenRequest(subject_token=token, audience=DOCS_AS))
    assert (policy.hits, policy.misses) == (0, 2)


async def test_a_policy_reload_flushes_cached_decisions_with_both_engines(
    engine_settings: tuple[str, Settings],  # noqa: F811 (the imported fixture)
    policies: Path,  # noqa: F811 (the imported fixture)
    dev_idp: DevIdentityProvider,
) -> None:
    _, settings = engine_settings
    async with running(settings, dev_idp) as stack:
        token = stack.token(["sales-admin"])  # one token: the same input every time

        async def outcome() -> str:
            request = pb.ExchangeTokenRequest(subject_token=token, audience=CRM_AS)
            return " ".join((await stack.stub.ExchangeToken(request)).scope)

        assert await outcome() == "crm.read"  # the default scope, cached for 60 s
        assert await outcome() == "crm.read"
        policy = stack.service.policy
        assert isinstance(policy, CachingPolicyEngine)
        assert policy.hits == 1
        scopes_rego = policies / "sekisho" / "exchange" / "scopes.rego"
        text = scopes_rego.read_text()
        default = (
            'default_scopes := {scope | some scope in object.get(downstream, "default_scopes", [])}'
        )
        assert default in text
        scopes_rego.write_text(text.replace(default, "default_scopes := set()"))
        # Without the flush the cached grant answers for another ~60 s, past the give-up (30 s,
        # only for a loaded machine's `opa build`): no elapsed bound, the cache's TTL is the bar.
        await until(outcome, "crm.read crm.write", RELOAD_GIVE_UP_SECONDS)
