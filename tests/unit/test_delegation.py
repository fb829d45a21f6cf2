"""Delegation rules (RFC 8693 §4.1, §4.4): may_act, policy approval, the act chain and its depth."""

from dataclasses import replace
from typing import Any

import pytest
from sekisho.delegation import actor_chain, check_actor, inbound_act, may_act_names
from sekisho.errors import AccessDeniedError, InvalidTokenError
from sekisho.models import Caller, Decision, VerifiedToken

IDP = "https://idp.example.com"
SUBJECT = VerifiedToken(issuer=IDP, subject="alice", token_type="id_token", expires_at=2**31)
ACTOR = VerifiedToken(issuer=IDP, subject="agent-7", token_type="access_token", expires_at=2**31)
ALLOW = Decision(allow=True, scopes=("crm.read",))


def _subject_with(may_act: object) -> VerifiedToken:
    return replace(SUBJECT, claims={"sub": "alice", "may_act": may_act})


@pytest.mark.parametrize(
    ("may_act", "named"),
    [
        pytest.param({"sub": "agent-7"}, True, id="sub"),
        pytest.param({"sub": "agent-7", "iss": IDP}, True, id="sub-and-iss"),
        pytest.param({"sub": "agent-7", "iss": "https://other.example.com"}, False, id="other-iss"),
        pytest.param({"sub": "agent-8"}, False, id="other-sub"),
        pytest.param({"sub": "agent-7\u0000x"}, False, id="nul-suffix"),
        pytest.param("agent-7", False, id="string-not-object"),
        pytest.param([{"sub": "agent-7"}], False, id="list"),
        pytest.param(None, False, id="absent"),
    ],
)
def test_may_act_names_only_the_exact_actor(may_act: object, named: bool) -> None:
    assert may_act_names(_subject_with(may_act), ACTOR) is named


def test_actor_not_named_by_may_act_nor_approved_by_policy_is_refused() -> None:
    with pytest.raises(AccessDeniedError):
        check_actor(SUBJECT, ACTOR, ALLOW)


def test_actor_named_by_may_act_or_approved_by_policy_is_accepted() -> None:
    check_actor(_subject_with({"sub": "agent-7"}), ACTOR, ALLOW)
    check_actor(SUBJECT, ACTOR, replace(ALLOW, actor_approved=True))
    check_actor(SUBJECT, None, ALLOW)  # no actor token: nothing to approve


@pytest.mark.parametrize(
    ("caller", "actor", "inbound", "expected"),
    [
        pytest.param("", None, None, None, id="nobody"),
        pytest.param("runtime", None, None, {"sub": "runtime"}, id="caller"),
        pytest.param(
            "runtime",
            ACTOR,
            None,
            {"sub": "agent-7", "iss": IDP, "act": {"sub": "runtime"}},
            id="actor-keeps-the-caller",
        ),
        pytest.param("agent-7", ACTOR, None, {"sub": "agent-7", "iss": IDP}, id="caller-is-actor"),
        pytest.param(
            "runtime",
            ACTOR,
            {"sub": "gateway"},
            {"sub": "agent-7", "iss": IDP, "act": {"sub": "runtime", "act": {"sub": "gateway"}}},
            id="actor-caller-inbound",
        ),
        pytest.param("", None, {"sub": "gateway"}, {"sub": "gateway"}, id="inbound-only"),
    ],
)
def test_act_chain_keeps_the_authenticated_caller(
    caller: str, actor: VerifiedToken | None, inbound: dict[str, Any] | None, expected: object
) -> None:
    assert actor_chain(Caller(id=caller), actor, inbound) == expected


def test_act_chain_copies_the_inbound_act() -> None:
    inbound = {"sub": "gateway", "act": {"sub": "scheduler"}}
    chain = actor_chain(Caller(id="runtime"), None, inbound)
    assert chain is not None
    chain["act"]["act"]["sub"] = "changed"
    assert inbound == {"sub": "gateway", "act": {"sub": "scheduler"}}


def _nested(depth: int) -> dict[str, Any]:
    act: dict[str, Any] = {"sub": f"a{depth}"}
    for level in range(depth - 1, 0, -1):
        act = {"sub": f"a{level}", "act": act}
    return act


def test_inbound_act_up_to_the_depth_cap_is_kept_reduced_to_identity_members() -> None:
    act = _nested(4)
    act["exp"] = 1  # not an identity member: dropped (RFC 8693 §4.1)
    kept = inbound_act({"act": act}, 4, IDP, {})
    assert kept is not None and "exp" not in kept
    assert kept["act"]["act"]["act"] == {"sub": "a4", "iss": IDP}


def test_an_inbound_act_level_names_its_issuer_or_the_tokens() -> None:
    other = "https://other.example.com"
    act = {"sub": "gateway", "act": {"sub": "scheduler", "iss": other, "client_id": "c"}}
    assert inbound_act({"act": act}, 4, IDP, {}) == {
        "sub": "gateway",
        "iss": IDP,
        "act": {"sub": "scheduler", "iss": other, "client_id": "c"},
    }


def test_an_inbound_act_level_names_a_trusted_issuer_as_configured() -> None:
    configured = {IDP: IDP, f"{IDP}/": IDP}
    act = {"sub": "agent-7", "iss": f"{IDP}/", "act": {"sub": "gw"}}
    assert inbound_act({"act": act}, 4, f"{IDP}/", configured) == {
        "sub": "agent-7",
        "iss": IDP,
        "act": {"sub": "gw", "iss": IDP},
    }


@pytest.mark.parametrize(
    "act",
    [
        pytest.param(_nested(5), id="deeper-than-the-cap"),
        pytest.param(_nested(10_000), id="very-deep"),
        pytest.param("agent-7", id="string"),
        pytest.param(["agent-7"], id="list"),
        pytest.param({"iss": IDP}, id="no-sub"),
        pytest.param({"sub": 7}, id="sub-not-a-string"),
        pytest.param({"sub": "a", "act": "b"}, id="nested-not-an-object"),
    ],
)
def test_malformed_or_too_deep_inbound_act_makes_the_token_invalid(act: object) -> None:
    with pytest.raises(InvalidTokenError):
        inbound_act({"act": act}, 4, IDP, {})
