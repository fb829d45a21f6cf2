"""Issue 15 item 4: delegation must be allowed, not merely claimed (RFC 8693 §4.4).

Before: any token from a trusted IdP was accepted as `actor_token` and replaced the
authenticated caller in `act`, so any client could name anyone as its actor.
"""

import json
import shutil
from pathlib import Path

import jwt
import pytest
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN
from sekisho.errors import AccessDeniedError
from sekisho.models import Caller

from tests.harness import CRM_AUDIENCE, IDP_A, POLICIES, Harness, build_harness
from tests.security._exchange import accepted, rejected

pytestmark = pytest.mark.security

CALLER = Caller(id="agent-runtime", authenticated_by="mtls")


def _act(result: object) -> object:
    token = result.minted.token  # type: ignore[attr-defined]
    return jwt.decode(token, options={"verify_signature": False}).get("act")


def _exchange_as(actor: str) -> dict[str, object]:
    return {
        "actor_token": actor,
        "actor_token_type": TOKEN_TYPE_ACCESS_TOKEN,
        "caller": CALLER,
    }


async def test_actor_token_without_may_act_or_policy_approval_is_refused(harness: Harness) -> None:
    now = harness.clock.now()
    subject = harness.idp_a.token(now)
    actor = harness.idp_a.token(now, sub="mallory-agent")
    with pytest.raises(AccessDeniedError):
        await accepted(harness, subject, **_exchange_as(actor))


async def test_may_act_naming_another_actor_or_issuer_does_not_admit_this_one(
    harness: Harness,
) -> None:
    now = harness.clock.now()
    actor = harness.idp_a.token(now, sub="agent-7")
    for may_act in ({"sub": "agent-8"}, {"sub": "agent-7", "iss": "https://other.example.com"}):
        subject = harness.idp_a.token(now, may_act=may_act)
        with pytest.raises(AccessDeniedError):
            await accepted(harness, subject, **_exchange_as(actor))


async def test_actor_named_by_may_act_is_accepted_and_the_caller_stays_in_the_chain(
    harness: Harness,
) -> None:
    now = harness.clock.now()
    subject = harness.idp_a.token(now, may_act={"sub": "agent-7"})
    actor = harness.idp_a.token(now, sub="agent-7")
    result = await accepted(harness, subject, **_exchange_as(actor))
    assert _act(result) == {"sub": "agent-7", "iss": IDP_A, "act": {"sub": "agent-runtime"}}


@pytest.fixture
def approving_harness(tmp_path: Path) -> Harness:
    """The shipped policy with the CRM downstream listing `agent-7` as an approved actor."""
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    registry_file = policies / "data" / "registry.json"
    registry = json.loads(registry_file.read_text())
    crm = registry["sekisho"]["registry"]["downstreams"][CRM_AUDIENCE]
    crm["actors"] = {"agent-7": {"issuer": IDP_A}}
    registry_file.write_text(json.dumps(registry))
    return build_harness(tmp_path / "keys", policies=policies)


async def test_actor_approved_by_policy_is_accepted(approving_harness: Harness) -> None:
    harness = approving_harness
    now = harness.clock.now()
    subject = harness.idp_a.token(now)
    result = await accepted(
        harness, subject, **_exchange_as(harness.idp_a.token(now, sub="agent-7"))
    )
    assert _act(result) == {"sub": "agent-7", "iss": IDP_A, "act": {"sub": "agent-runtime"}}
    other = harness.idp_a.token(now, sub="agent-8")
    with pytest.raises(AccessDeniedError):
        await accepted(harness, subject, **_exchange_as(other))


async def test_nested_act_deeper_than_the_cap_makes_the_subject_token_invalid(
    harness: Harness,
) -> None:
    now = harness.clock.now()
    act: dict[str, object] = {"sub": "hop-5"}
    for hop in range(4, 0, -1):
        act = {"sub": f"hop-{hop}", "act": act}
    await rejected(harness, harness.idp_a.token(now, act=act))
    await accepted(harness, harness.idp_a.token(now, act=act["act"]))  # 4 deep: the control


# Session 12 red team: an inbound `act` level without `iss` names its `sub` in the inbound
# token's issuer's namespace (RFC 8693 §4.1: `sub` is scoped by `iss`, by default the token's).
# Copied as it was into Sekisho's token, the same level read in Sekisho's namespace: an IdP-side
# actor `payments-gateway` became indistinguishable from the Sekisho-authenticated caller level
# `{"sub": "payments-gateway"}` (for an anonymous exchange it was the whole `act`).


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        pytest.param(
            Caller(),
            {"sub": "payments-gateway", "iss": IDP_A},
            id="anonymous-caller",
        ),
        pytest.param(
            CALLER,
            {"sub": "agent-runtime", "act": {"sub": "payments-gateway", "iss": IDP_A}},
            id="authenticated-caller",
        ),
    ],
)
async def test_an_inbound_act_level_without_iss_is_named_by_its_tokens_issuer(
    harness: Harness, caller: Caller, expected: object
) -> None:
    subject = harness.idp_a.token(harness.clock.now(), act={"sub": "payments-gateway"})
    result = await accepted(harness, subject, caller=caller)
    assert _act(result) == expected


async def test_an_inbound_act_level_keeps_the_iss_it_names(harness: Harness) -> None:
    act = {"sub": "gateway", "iss": "https://other.example.com", "act": {"sub": "scheduler"}}
    subject = harness.idp_a.token(harness.clock.now(), act=act)
    result = await accepted(harness, subject, caller=CALLER)
    assert _act(result) == {
        "sub": "agent-runtime",
        "act": {
            "sub": "gateway",
            "iss": "https://other.example.com",
            "act": {"sub": "scheduler", "iss": IDP_A},
        },
    }
