"""What a decision means for the request: narrowed grants and typed, metadata-bearing denials."""

from collections.abc import Sequence

import pytest
from sekisho.constants import TOKEN_TYPE_ID_JAG, TOKEN_TYPE_ID_TOKEN
from sekisho.errors import (
    AccessDeniedError,
    ConsentRequiredError,
    InsufficientUserAuthenticationError,
    InvalidScopeError,
    InvalidTargetError,
    ServiceError,
)
from sekisho.models import Decision, ExchangeRequest
from sekisho.policy.outcome import denial, granted

MCP = "https://crm.example.com/mcp"
API = "https://crm.example.com/api"
AUTHORIZE = "https://crm-as.example.com/authorize?request_uri=urn:x"


def request(scopes: Sequence[str] = (), resources: Sequence[str] = ()) -> ExchangeRequest:
    return ExchangeRequest(
        subject_token="t",
        subject_token_type=TOKEN_TYPE_ID_TOKEN,
        requested_token_type=TOKEN_TYPE_ID_JAG,
        audience="https://crm-as.example.com",
        scopes=tuple(scopes),
        resources=tuple(resources),
    )


def case(
    grant: tuple[tuple[str, ...], tuple[str, ...]],
    asked: tuple[tuple[str, ...], tuple[str, ...]],
    want: tuple[tuple[str, ...], tuple[str, ...]],
    name: str,
) -> object:
    """One narrowing case: (scopes, resources) granted by policy, requested, and expected."""
    decision = Decision(allow=True, scopes=grant[0], resources=grant[1])
    return pytest.param(decision, request(*asked), want, id=name)


NARROWING = [
    case((("a", "b"), (MCP,)), (("a", "b"), (MCP,)), (("a", "b"), (MCP,)), "exact"),
    case((("a", "b", "c"), ()), (("a",), ()), (("a",), ()), "more-scopes-than-requested"),
    case((("b", "a"), ()), (("a", "b"), ()), (("b", "a"), ()), "policy-order-kept"),
    case((("a", "b"), ()), (("a", "z"), ()), (("a",), ()), "partial"),
    case((("a", "b"), ()), ((), ()), (("a", "b"), ()), "nothing-requested-keeps-grant"),
    case((("a", "a", "b"), ()), ((), ()), (("a", "b"), ()), "duplicate-scopes"),
    case(((), ()), ((), ()), ((), ()), "empty-grant-nothing-requested"),
    case((("a",), (MCP, API)), ((), (MCP,)), (("a",), (MCP,)), "more-resources"),
    case((("a",), (MCP, API)), ((), ()), (("a",), (MCP, API)), "no-resources-requested"),
    case((("a",), ()), ((), (MCP,)), (("a",), (MCP,)), "policy-silent-on-resources"),
    case((("a",), (MCP, MCP)), ((), ()), (("a",), (MCP,)), "duplicate-resources"),
]


@pytest.mark.parametrize(("decision", "req", "want"), NARROWING)
def test_grant_is_narrowed_to_the_request(
    decision: Decision, req: ExchangeRequest, want: tuple[tuple[str, ...], tuple[str, ...]]
) -> None:
    result = granted(decision, req)
    assert (result.scopes, result.resources) == want


@pytest.mark.parametrize(
    ("policy_resources", "requested"),
    [
        pytest.param((MCP,), (API,), id="disjoint"),
        pytest.param((MCP,), (MCP, API), id="one-of-two-dropped"),
        pytest.param((MCP,), (MCP + "\u0000x",), id="nul-suffixed-request"),
    ],
)
def test_grant_that_drops_a_requested_resource_is_invalid_target(
    policy_resources: tuple[str, ...], requested: tuple[str, ...]
) -> None:
    # Never a token silently missing what was asked for (issue 15 item 1): without this check a
    # resource-bound grant was minted without its `resource` claim.
    decision = Decision(allow=True, scopes=("a",), resources=policy_resources)
    with pytest.raises(InvalidTargetError):
        granted(decision, request(["a"], list(requested)))


def test_grant_keeps_every_other_field() -> None:
    decision = Decision(
        allow=True,
        scopes=("a", "b"),
        ttl_seconds=60,
        client_id="crm-client",
        claims={"email": "alice@example.com"},
        reason="r",
        cache_ttl_seconds=5,
        decision_id="d-1",
    )
    result = granted(decision, request(["a"]))
    assert result.scopes == ("a",)
    assert (result.ttl_seconds, result.client_id, result.claims) == (
        60,
        "crm-client",
        {"email": "alice@example.com"},
    )
    assert (result.reason, result.cache_ttl_seconds, result.decision_id) == ("r", 5, "d-1")


@pytest.mark.parametrize(
    ("policy_scopes", "requested"),
    [
        pytest.param(("b",), ("a",), id="disjoint"),
        pytest.param((), ("a",), id="empty-grant"),
        pytest.param(("A",), ("a",), id="case-differs"),
    ],
)
def test_requested_scopes_none_granted_is_invalid_scope(
    policy_scopes: tuple[str, ...], requested: tuple[str, ...]
) -> None:
    with pytest.raises(InvalidScopeError):
        granted(Decision(allow=True, scopes=policy_scopes), request(requested))


@pytest.mark.parametrize(
    "bad", ["two words", "", 'quo"te', "back\\slash", "tab\tbed", "naïve", "line\n"]
)
def test_ill_formed_scope_from_policy_is_access_denied(bad: str) -> None:
    with pytest.raises(AccessDeniedError) as caught:
        granted(Decision(allow=True, scopes=("a", bad)), request())
    assert caught.value.log_detail == "ill-formed scope"


def test_ill_formed_scope_outside_the_request_is_narrowed_away() -> None:
    result = granted(Decision(allow=True, scopes=("a", "two words")), request(["a"]))
    assert result.scopes == ("a",)


def test_deny_raises_its_denial() -> None:
    decision = Decision(allow=False, error="invalid_target", reason="resource not registered")
    with pytest.raises(InvalidTargetError) as caught:
        granted(decision, request(["a"]))
    assert caught.value.log_detail == "resource not registered"


DENIALS = [
    pytest.param(Decision(allow=False), AccessDeniedError, {}, id="no-error"),
    pytest.param(
        Decision(allow=False, error="access_denied"), AccessDeniedError, {}, id="access-denied"
    ),
    pytest.param(
        Decision(allow=False, error="invalid_target"), InvalidTargetError, {}, id="invalid-target"
    ),
    pytest.param(
        Decision(allow=False, error="invalid_scope"), InvalidScopeError, {}, id="invalid-scope"
    ),
    pytest.param(
        Decision(
            allow=False, error="insufficient_user_authentication", acr_values="phr", max_age=300
        ),
        InsufficientUserAuthenticationError,
        {"acr_values": "phr", "max_age": "300"},
        id="step-up-acr-and-max-age",
    ),
    pytest.param(
        Decision(allow=False, error="insufficient_user_authentication", acr_values="phr phrh"),
        InsufficientUserAuthenticationError,
        {"acr_values": "phr phrh"},
        id="step-up-acr-only",
    ),
    pytest.param(
        Decision(allow=False, error="insufficient_user_authentication", max_age=60),
        InsufficientUserAuthenticationError,
        {"max_age": "60"},
        id="step-up-max-age-only",
    ),
    pytest.param(
        Decision(allow=False, error="insufficient_user_authentication"),
        InsufficientUserAuthenticationError,
        {},
        id="step-up-bare",
    ),
    pytest.param(
        Decision(allow=False, error="consent_required", authorization_url=AUTHORIZE),
        ConsentRequiredError,
        {"authorization_url": AUTHORIZE},
        id="consent-with-url",
    ),
    pytest.param(
        Decision(allow=False, error="consent_required"),
        ConsentRequiredError,
        {},
        id="consent-bare",
    ),
    pytest.param(
        Decision(
            allow=False,
            error="access_denied",
            acr_values="phr",
            max_age=60,
            authorization_url=AUTHORIZE,
        ),
        AccessDeniedError,
        {},
        id="metadata-only-for-its-own-error",
    ),
    pytest.param(
        Decision(allow=False, error="consent_required", acr_values="phr", max_age=60),
        ConsentRequiredError,
        {},
        id="consent-ignores-step-up-fields",
    ),
    pytest.param(
        Decision(allow=False, error="server_error"), AccessDeniedError, {}, id="unknown-error"
    ),
    pytest.param(Decision(allow=False, error="bogus"), AccessDeniedError, {}, id="bogus-error"),
]


@pytest.mark.parametrize(("decision", "cls", "metadata"), DENIALS)
def test_denial_maps_error_and_metadata(
    decision: Decision, cls: type[ServiceError], metadata: dict[str, str]
) -> None:
    error = denial(decision)
    assert type(error) is cls
    assert error.metadata == metadata


@pytest.mark.parametrize(
    "code",
    [
        "access_denied",
        "invalid_target",
        "invalid_scope",
        "insufficient_user_authentication",
        "consent_required",
    ],
)
def test_denial_never_shows_the_policy_reason(code: str) -> None:
    error = denial(Decision(allow=False, error=code, reason="user is on the watch list"))
    assert error.reason == code
    assert "watch list" not in error.public_message
    assert error.log_detail == "user is on the watch list"


def test_denial_without_reason_logs_the_code() -> None:
    assert denial(Decision(allow=False, error="invalid_scope")).log_detail == "invalid_scope"
