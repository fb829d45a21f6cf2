"""Strict decision parsing (docs/architecture.md §5): anything off-contract is an error, never a
grant."""

from typing import Any

import pytest
from sekisho.models import Decision
from sekisho.policy.decision import InvalidDecisionError, parse_decision

FULL: dict[str, Any] = {
    "allow": True,
    "scopes": ["crm.read", "crm.write"],
    "resources": ["https://crm.example.com/mcp"],
    "ttl_seconds": 120,
    "client_id": "crm-client",
    "claims": {"email": "alice@example.com"},
    "reason": "granted by group membership",
    "cache_ttl_seconds": 30,
    "error": "access_denied",
    "acr_values": "phr",
    "max_age": 600,
    "authorization_url": "https://crm-as.example.com/authorize",
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param({"allow": False}, Decision(allow=False), id="minimal-deny"),
        pytest.param({"allow": True, "scopes": []}, Decision(allow=True), id="minimal-allow"),
        pytest.param(
            {"allow": True, "scopes": ["crm.read"]},
            Decision(allow=True, scopes=("crm.read",)),
            id="allow-with-scope",
        ),
        pytest.param(
            {"allow": False, "error": "consent_required", "authorization_url": "https://a/x"},
            Decision(allow=False, error="consent_required", authorization_url="https://a/x"),
            id="deny-with-error",
        ),
        pytest.param(
            {"allow": False, "ttl_seconds": 0, "max_age": 0, "cache_ttl_seconds": 0},
            Decision(allow=False, ttl_seconds=0),
            id="zero-integers",
        ),
    ],
)
def test_valid_decision_parses(raw: dict[str, Any], expected: Decision) -> None:
    assert parse_decision(raw) == expected


def test_every_field_is_carried_over() -> None:
    decision = parse_decision(FULL, "decision-1")
    assert decision == Decision(
        allow=True,
        scopes=("crm.read", "crm.write"),
        resources=("https://crm.example.com/mcp",),
        ttl_seconds=120,
        client_id="crm-client",
        claims={"email": "alice@example.com"},
        reason="granted by group membership",
        cache_ttl_seconds=30,
        error="access_denied",
        acr_values="phr",
        max_age=600,
        authorization_url="https://crm-as.example.com/authorize",
        decision_id="decision-1",
    )


def test_absent_ttl_stays_none_so_the_configured_maximum_applies() -> None:
    assert parse_decision({"allow": True, "scopes": []}).ttl_seconds is None


def test_unknown_fields_are_ignored() -> None:
    raw = {"allow": True, "scopes": ["a"], "debug": {"rule": 7}, "ttl": "ignored", "x": None}
    assert parse_decision(raw) == Decision(allow=True, scopes=("a",))


def test_parsed_claims_are_a_copy() -> None:
    raw: dict[str, Any] = {"allow": True, "scopes": [], "claims": {"email": "a@example.com"}}
    decision = parse_decision(raw)
    raw["claims"]["email"] = "mallory@example.com"
    assert decision.claims == {"email": "a@example.com"}


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(None, id="undefined"),
        pytest.param([], id="array"),
        pytest.param([{"allow": True, "scopes": []}], id="array-of-decision"),
        pytest.param("allow", id="string"),
        pytest.param(True, id="bare-true"),
        pytest.param({}, id="empty-object"),
        pytest.param({"scopes": ["a"]}, id="allow-missing"),
        pytest.param({"allow": None}, id="allow-null"),
        pytest.param({"allow": 1, "scopes": []}, id="allow-int-one"),
        pytest.param({"allow": 0}, id="allow-int-zero"),
        pytest.param({"allow": "true", "scopes": []}, id="allow-string"),
        pytest.param({"allow": True}, id="allow-without-scopes"),
        pytest.param({"allow": True, "scopes": None}, id="allow-with-null-scopes"),
    ],
)
def test_off_contract_decision_is_rejected(raw: Any) -> None:
    with pytest.raises(InvalidDecisionError):
        parse_decision(raw)


WRONG_TYPES = [
    ("scopes", "crm.read"),
    ("scopes", ["crm.read", 7]),
    ("scopes", {"crm.read": True}),
    ("scopes", None),
    ("resources", "https://crm.example.com/mcp"),
    ("resources", [None]),
    ("ttl_seconds", "300"),
    ("ttl_seconds", 1.5),
    ("ttl_seconds", -1),
    ("ttl_seconds", True),
    ("ttl_seconds", None),
    ("client_id", 42),
    ("client_id", None),
    ("claims", []),
    ("claims", "email"),
    ("claims", None),
    ("reason", ["no"]),
    ("reason", None),
    ("cache_ttl_seconds", "30"),
    ("cache_ttl_seconds", -5),
    ("cache_ttl_seconds", False),
    ("error", "forbidden"),
    ("error", "server_error"),
    ("error", "temporarily_unavailable"),
    ("error", "ACCESS_DENIED"),
    ("error", ""),
    ("error", None),
    ("error", 403),
    ("error", ["access_denied"]),
    ("error", {"code": "access_denied"}),
    ("acr_values", ["phr"]),
    ("acr_values", None),
    ("max_age", "600"),
    ("max_age", -1),
    ("max_age", True),
    ("max_age", 60.5),
    ("max_age", -60.0),
    ("ttl_seconds", float("inf")),
    ("ttl_seconds", float("nan")),
    ("cache_ttl_seconds", 0.25),
    ("authorization_url", {"href": "https://a/x"}),
    ("authorization_url", None),
]


@pytest.mark.parametrize("field", ["ttl_seconds", "cache_ttl_seconds", "max_age"])
@pytest.mark.parametrize("value", [60.0, 0.0, -0.0, 1e21])
def test_an_integral_number_spelled_as_a_float_is_that_integer(field: str, value: float) -> None:
    # JSON has one number type: OPA prints 60.0 as the policy spelled it, and the Wasm module
    # may keep 60.0 where the OPA server keeps 60 (a set holding both); both decide alike.
    decision = parse_decision({"allow": True, "scopes": [], field: value})
    got = getattr(decision, field)
    assert got == int(value)
    assert type(got) is int


@pytest.mark.parametrize("allow", [True, False], ids=["allow", "deny"])
@pytest.mark.parametrize(
    ("field", "value"), WRONG_TYPES, ids=[f"{f}={v!r}" for f, v in WRONG_TYPES]
)
def test_optional_field_of_wrong_type_is_rejected(allow: bool, field: str, value: Any) -> None:
    raw: dict[str, Any] = {"allow": allow, "scopes": ["crm.read"], field: value}
    with pytest.raises(InvalidDecisionError, match=f"'{field}'"):
        parse_decision(raw)


@pytest.mark.parametrize("field", sorted(FULL.keys() - {"allow"}))
def test_each_optional_field_is_checked_even_when_others_are_valid(field: str) -> None:
    raw = dict(FULL)
    raw[field] = object()
    with pytest.raises(InvalidDecisionError, match=f"'{field}'"):
        parse_decision(raw)
