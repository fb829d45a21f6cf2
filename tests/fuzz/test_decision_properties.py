"""Property tests of the policy decision contract (docs/architecture.md §5): random JSON never
yields `allow` unless the whole decision is well-formed, and the grant that reaches the minter is always
a subset of what was requested, whatever the policy returned."""

from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st
from sekisho.codepoints import is_scope_token
from sekisho.errors import DECISION_ERRORS, ServiceError
from sekisho.models import Caller, Decision
from sekisho.policy.decision import InvalidDecisionError, parse_decision
from sekisho.policy.outcome import granted
from sekisho.validation import ExchangeParams, build_request

from tests.bounds import request_limits

SCOPES = ["crm.read", "crm.write", "docs.read", "crm read", "", "admin"]
RESOURCES = ["https://crm.example.com/mcp", "https://docs.example.com/mcp", "urn:x"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)
field_values = {
    "allow": st.booleans() | json_values,
    "scopes": st.lists(st.sampled_from(SCOPES)) | json_values,
    "resources": st.lists(st.sampled_from(RESOURCES)) | json_values,
    "ttl_seconds": st.integers(min_value=-5, max_value=600) | json_values,
    "client_id": st.text(max_size=8) | json_values,
    "claims": st.dictionaries(st.text(max_size=5), json_values, max_size=3) | json_values,
    "reason": st.text(max_size=8) | json_values,
    "cache_ttl_seconds": st.integers(min_value=-5, max_value=60) | json_values,
    "error": st.sampled_from([*sorted(DECISION_ERRORS), "server_error"]) | json_values,
    "acr_values": st.text(max_size=8) | json_values,
    "max_age": st.integers(min_value=-5, max_value=60) | json_values,
    "authorization_url": st.text(max_size=8) | json_values,
}
valid_values = {
    "resources": st.lists(st.sampled_from(RESOURCES)),
    "ttl_seconds": st.integers(min_value=0, max_value=600),
    "client_id": st.text(max_size=8),
    "error": st.sampled_from(sorted(DECISION_ERRORS)),
    "cache_ttl_seconds": st.integers(min_value=0, max_value=60),
}
well_formed = st.fixed_dictionaries(
    {"allow": st.booleans(), "scopes": st.lists(st.sampled_from(SCOPES))}, optional=valid_values
)
one_hostile_field = st.sampled_from(sorted(field_values)).flatmap(
    lambda name: json_values.map(lambda value: {name: value})
)
raw_decisions = st.one_of(
    well_formed,
    st.builds(lambda base, bad: base | bad, well_formed, one_hostile_field),
    st.fixed_dictionaries({}, optional=field_values),
    json_values,
)


def _non_negative_int(value: Any) -> bool:
    """JSON's integers: `60` or `60.0` (a number without a fraction; da73a71), never a bool."""
    if isinstance(value, float):
        return value.is_integer() and value >= 0
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _well_formed_allow(raw: Any) -> bool:
    """The contract, restated independently of decision.py."""
    if not isinstance(raw, dict) or raw.get("allow") is not True or not _strings(raw.get("scopes")):
        return False
    checks = {
        "resources": _strings,
        "ttl_seconds": _non_negative_int,
        "cache_ttl_seconds": _non_negative_int,
        "max_age": _non_negative_int,
        "claims": lambda v: isinstance(v, dict),
        "error": lambda v: isinstance(v, str) and v in DECISION_ERRORS,
        **{
            k: (lambda v: isinstance(v, str))
            for k in ("client_id", "reason", "acr_values", "authorization_url")
        },
    }
    return all(check(raw[name]) for name, check in checks.items() if name in raw)


@given(raw=raw_decisions)
def test_random_json_never_allows_unless_well_formed(raw: Any) -> None:
    try:
        decision = parse_decision(raw, "d-1")
    except InvalidDecisionError:
        event("invalid")
        assert not _well_formed_allow(raw)
        return
    event("allow" if decision.allow else "deny")
    assert decision.allow is (raw["allow"] is True)
    if decision.allow:
        assert _well_formed_allow(raw)
        assert decision.scopes == tuple(raw["scopes"])


@given(
    raw=raw_decisions,
    requested_scopes=st.lists(st.sampled_from([*SCOPES[:3], "admin"]), unique=True, max_size=3),
    requested_resources=st.lists(st.sampled_from(RESOURCES), unique=True, max_size=2),
)
def test_granted_scopes_and_resources_are_a_subset_of_the_request(
    raw: Any, requested_scopes: list[str], requested_resources: list[str]
) -> None:
    try:
        decision: Decision = parse_decision(raw, "d-1")
    except InvalidDecisionError:
        return
    params = ExchangeParams(
        subject_token="a.b.c",
        audience="https://crm-as.example.com",
        resources=requested_resources,
        scopes=requested_scopes,
    )
    request = build_request(params, Caller(), request_limits())
    try:
        grant = granted(decision, request)
    except ServiceError as exc:
        event(f"refused: {exc.reason}")
        assert exc.reason != "server_error"  # noqa: PT017 (hypothesis: no pytest.raises)
        return
    event("granted")
    assert decision.allow
    assert all(is_scope_token(s) for s in grant.scopes)
    assert len(set(grant.scopes)) == len(grant.scopes)
    if requested_scopes:
        assert grant.scopes and set(grant.scopes) <= set(requested_scopes)
    if requested_resources:
        assert set(grant.resources) <= set(requested_resources)
