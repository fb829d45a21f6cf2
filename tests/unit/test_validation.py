"""build_request: defaults (docs/architecture.md §3) and every rule, each naming the bad
parameter."""

import dataclasses
from typing import Any

import pytest
from sekisho.codepoints import is_scope_token
from sekisho.constants import (
    TOKEN_TYPE_ACCESS_TOKEN,
    TOKEN_TYPE_ID_JAG,
    TOKEN_TYPE_ID_TOKEN,
    TOKEN_TYPE_JWT,
)
from sekisho.errors import InvalidRequestError
from sekisho.models import Caller, ExchangeRequest
from sekisho.validation import ExchangeParams, RequestLimits, build_request

CALLER = Caller(id="agent-runtime", authenticated_by="mtls")
LIMITS = RequestLimits(
    max_scopes=4,
    max_resources=3,
    max_value_length=40,
    max_lifetime_seconds=3600,
    max_scope_length=40,
    max_token_bytes=64,
    max_context_depth=3,
    max_context_keys=5,
    max_context_bytes=100,
)
CRM = "https://crm.example.com/mcp"
SAML2 = "urn:ietf:params:oauth:token-type:saml2"
REFRESH = "urn:ietf:params:oauth:token-type:refresh_token"


def _build(**overrides: Any) -> ExchangeRequest:
    fields: dict[str, Any] = {
        "subject_token": "eyJ.subject.token",
        "subject_token_type": TOKEN_TYPE_ID_TOKEN,
        "requested_token_type": TOKEN_TYPE_ID_JAG,
        "audience": "https://crm-as.example.com",
        "resources": [CRM],
        "scopes": ["crm.read"],
        "actor_token": "",
        "actor_token_type": "",
        "context": {"tool": "search"},
        "requested_lifetime_seconds": 0,
    }
    caller = overrides.pop("caller", CALLER)
    limits = overrides.pop("limits", LIMITS)
    fields.update(overrides)
    return build_request(ExchangeParams(**fields), caller, limits)


def test_baseline_request_is_valid() -> None:
    # Every rejection case below changes one field of this request.
    request = _build()
    assert request == ExchangeRequest(
        subject_token="eyJ.subject.token",
        subject_token_type=TOKEN_TYPE_ID_TOKEN,
        requested_token_type=TOKEN_TYPE_ID_JAG,
        audience="https://crm-as.example.com",
        resources=(CRM,),
        scopes=("crm.read",),
        context={"tool": "search"},
        caller=CALLER,
    )


# --- defaults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "given", "expected"),
    [
        pytest.param("subject_token_type", "", TOKEN_TYPE_ID_TOKEN, id="subject-type-id-token"),
        pytest.param("requested_token_type", "", TOKEN_TYPE_ID_JAG, id="requested-type-id-jag"),
    ],
)
def test_empty_token_types_take_their_default(field: str, given: str, expected: str) -> None:
    assert getattr(_build(**{field: given}), field) == expected


def test_sequences_become_tuples_and_context_is_copied() -> None:
    context = {"tool": "search"}
    request = _build(resources=[CRM], scopes=["crm.read", "crm.write"], context=context)
    assert (request.resources, request.scopes) == ((CRM,), ("crm.read", "crm.write"))
    context["tool"] = "delete"
    assert request.context == {"tool": "search"}


# --- accepted values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"subject_token_type": TOKEN_TYPE_ACCESS_TOKEN}, id="subject-access-token"),
        pytest.param(
            {"requested_token_type": TOKEN_TYPE_ACCESS_TOKEN}, id="requested-access-token"
        ),
        pytest.param(
            {"actor_token": "eyJ.actor", "actor_token_type": TOKEN_TYPE_ID_TOKEN},
            id="actor-id-token",
        ),
        pytest.param(
            {"actor_token": "eyJ.actor", "actor_token_type": TOKEN_TYPE_ACCESS_TOKEN},
            id="actor-access-token",
        ),
        pytest.param(
            {"actor_token": "eyJ.actor", "actor_token_type": TOKEN_TYPE_JWT}, id="actor-jwt"
        ),
        pytest.param({"scopes": []}, id="no-scopes"),
        pytest.param({"scopes": ["a", "b", "c", "d"]}, id="scopes-at-limit"),
        pytest.param({"scopes": ["x" * 40]}, id="scope-at-length-limit"),
        pytest.param(
            {"scopes": ["!#[]~", "urn:crm:read", "crm/read"]}, id="scope-token-edge-chars"
        ),
        pytest.param({"resources": []}, id="no-resources"),
        pytest.param(
            {"resources": [CRM, "https://a.example", "urn:example:crm"]}, id="resources-at-limit"
        ),
        pytest.param({"audience": "a" * 40}, id="audience-at-length-limit"),
        pytest.param({"audience": "crm-as"}, id="audience-not-a-uri"),
        pytest.param({"requested_lifetime_seconds": 3600}, id="lifetime-at-limit"),
        pytest.param({"requested_lifetime_seconds": 1}, id="lifetime-one-second"),
        pytest.param({"subject_token": "eyJ." + "s" * 60}, id="subject-token-at-size-limit"),
        pytest.param({"context": {"a": {"b": {"c": 1}}}}, id="context-at-depth-limit"),
        pytest.param(
            {"context": {"a": {"b": 1, "c": 2}, "d": 1, "e": 1}}, id="context-at-key-limit"
        ),
        pytest.param({"context": {"t": "x" * 92}}, id="context-at-byte-limit"),
    ],
)
def test_accepted(overrides: dict[str, Any]) -> None:
    request = _build(**overrides)
    for field, value in overrides.items():
        expected = tuple(value) if isinstance(value, list) else value
        assert getattr(request, field) == expected


# --- rejections: each names the parameter ------------------------------------------------------

REJECTIONS = [
    pytest.param({"subject_token": ""}, "subject_token is required", id="missing-subject-token"),
    pytest.param({"subject_token_type": TOKEN_TYPE_JWT}, "unsupported subject_token_type", id="subject-type-jwt"),
    pytest.param({"subject_token_type": TOKEN_TYPE_ID_JAG}, "unsupported subject_token_type", id="subject-type-id-jag"),
    pytest.param({"subject_token_type": SAML2}, "unsupported subject_token_type", id="subject-type-saml2"),
    pytest.param({"requested_token_type": TOKEN_TYPE_ID_TOKEN}, "unsupported requested_token_type", id="requested-id-token"),
    pytest.param({"requested_token_type": REFRESH}, "unsupported requested_token_type", id="requested-refresh-token"),
    pytest.param({"requested_token_type": "id-jag"}, "unsupported requested_token_type", id="requested-not-a-urn"),
    pytest.param({"audience": ""}, "audience is required", id="missing-audience"),
    pytest.param({"audience": "a" * 41}, "audience exceeds limits.max_value_length (40 characters)", id="audience-too-long"),
    pytest.param({"actor_token": "eyJ.actor"}, "actor_token and actor_token_type", id="actor-token-without-type"),
    pytest.param({"actor_token_type": TOKEN_TYPE_JWT}, "actor_token and actor_token_type", id="actor-type-without-token"),
    pytest.param({"actor_token": "eyJ.actor", "actor_token_type": SAML2}, "unsupported actor_token_type", id="actor-type-saml2"),
    pytest.param({"actor_token": "eyJ.actor", "actor_token_type": TOKEN_TYPE_ID_JAG}, "unsupported actor_token_type", id="actor-type-id-jag"),
    pytest.param({"scopes": ["a", "b", "c", "d", "e"]}, "too many scope values (limits.max_scopes = 4)", id="too-many-scopes"),
    pytest.param({"scopes": ["x" * 41]}, "a scope value exceeds limits.max_scope_length (40 characters)", id="scope-too-long"),
    pytest.param({"scopes": ["crm.read", "crm.read"]}, "duplicate scope values", id="duplicate-scopes"),
    pytest.param({"scopes": ["crm.read crm.write"]}, "scope values must be RFC 6749", id="scope-with-space"),
    pytest.param({"scopes": [""]}, "scope values must be RFC 6749", id="empty-scope"),
    pytest.param({"scopes": ['crm"read']}, "scope values must be RFC 6749", id="scope-with-quote"),
    pytest.param({"scopes": ["crm\\read"]}, "scope values must be RFC 6749", id="scope-with-backslash"),
    pytest.param({"scopes": ["crm\x7fread"]}, "scope values must be RFC 6749", id="scope-with-DEL"),
    pytest.param({"scopes": ["crm\nread"]}, "scope values must be RFC 6749", id="scope-with-newline"),
    pytest.param({"scopes": ["crm.réad"]}, "scope values must be RFC 6749", id="scope-non-ascii"),
    pytest.param({"resources": [CRM, "https://a.example", "https://b.example", "https://c.example"]}, "too many resource values (limits.max_resources = 3)", id="too-many-resources"),
    pytest.param({"resources": ["https://crm.example.com/" + "x" * 20]}, "a resource value exceeds limits.max_value_length (40 characters)", id="resource-too-long"),
    pytest.param({"resources": [CRM, CRM]}, "duplicate resource values", id="duplicate-resources"),
    pytest.param({"resources": ["/mcp"]}, "absolute URIs", id="resource-relative"),
    pytest.param({"resources": ["crm.example.com/mcp"]}, "absolute URIs", id="resource-without-scheme"),
    pytest.param({"resources": [CRM + "#tools"]}, "without a fragment", id="resource-with-fragment"),
    pytest.param({"resources": [CRM + "#"]}, "without a fragment", id="resource-with-empty-fragment"),
    pytest.param({"resources": [""]}, "absolute URIs", id="empty-resource"),
    pytest.param({"requested_lifetime_seconds": -1}, "requested_lifetime_seconds is out of range", id="negative-lifetime"),
    pytest.param({"requested_lifetime_seconds": 3601}, "requested_lifetime_seconds is out of range", id="lifetime-above-limit"),
    pytest.param({"subject_token": "eyJ." + "s" * 61}, "subject_token exceeds trust.max_token_bytes (64 bytes)", id="subject-token-too-big"),
    pytest.param({"actor_token": "eyJ." + "a" * 61, "actor_token_type": TOKEN_TYPE_JWT}, "actor_token exceeds trust.max_token_bytes (64 bytes)", id="actor-token-too-big"),
    pytest.param({"context": {"a": {"b": {"c": {"d": 1}}}}}, "context is nested deeper than limits.max_context_depth (3)", id="context-too-deep"),
    pytest.param({"context": {"a": [[["x"]]]}}, "context is nested deeper than limits.max_context_depth (3)", id="context-too-deep-in-lists"),
    pytest.param({"context": {"a": {"b": 1, "c": 2}, "d": 1, "e": 1, "f": 1}}, "context has more keys than limits.max_context_keys (5)", id="context-too-many-keys"),
    pytest.param({"context": {"tool": "x" * 100}}, "context exceeds limits.max_context_bytes (100 bytes as JSON)", id="context-too-big"),
    pytest.param({"context": {"gateway": "ext_authz", "path": "/mcp", "tool": "search"}}, "context member 'gateway' is reserved for the ext_authz gateway", id="context-claims-the-gateway"),
    pytest.param({"context": {"gateway": ""}}, "context member 'gateway' is reserved for the ext_authz gateway", id="context-with-empty-gateway"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "message"), REJECTIONS)
def test_rejected_naming_the_parameter(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        _build(**overrides)
    assert message in raised.value.public_message
    assert raised.value.reason == "invalid_request"
    assert raised.value.grpc_code == "INVALID_ARGUMENT"


def test_rejections_do_not_echo_the_subject_token() -> None:
    # docs/architecture.md §3: public messages never carry token contents.
    for case in REJECTIONS:
        overrides, _ = case.values
        assert isinstance(overrides, dict)
        with pytest.raises(InvalidRequestError) as raised:
            _build(**{"subject_token": "eyJ.secret.token", **overrides})
        assert "eyJ.secret" not in str(raised.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("crm.read", True, id="plain"),
        pytest.param("!", True, id="lowest-allowed"),
        pytest.param("~", True, id="highest-allowed"),
        pytest.param("[]", True, id="brackets"),
        pytest.param("", False, id="empty"),
        pytest.param(" ", False, id="space"),
        pytest.param('"', False, id="double-quote"),
        pytest.param("\\", False, id="backslash"),
        pytest.param("\x00", False, id="nul"),
        pytest.param("crm.read\n", False, id="trailing-newline"),
    ],
)
def test_is_scope_token(value: str, expected: bool) -> None:
    assert is_scope_token(value) is expected


def test_resource_with_an_unbalanced_ipv6_literal_is_invalid_request() -> None:
    """Found by tests/fuzz: urlsplit("http://[") raises ValueError, which escaped as INTERNAL."""
    with pytest.raises(InvalidRequestError, match="resource values must be absolute URIs"):
        _build(resources=["http://["])


def test_an_empty_context_passes_on_the_fast_path_only_when_the_limits_allow_it() -> None:
    # `{}` skips the walk (most requests carry none), but not the limits themselves: a limit
    # that refuses any object (RequestLimits built directly) still refuses it.
    assert _build(context={}).context == {}
    for tight in ({"max_context_depth": 0}, {"max_context_bytes": 1}):
        limits = dataclasses.replace(LIMITS, **tight)
        with pytest.raises(InvalidRequestError, match="context"):
            _build(context={}, limits=limits)


def test_only_the_gateway_adapter_may_set_the_gateway_context_member() -> None:
    """Red team session 20, finding 4: policy reads `request.context.gateway` as the entry point,
    so a direct caller's context may not hold it (REJECTIONS), while the ext_authz adapter's
    parameters (from_gateway) pass with it; a nested `gateway` member is the caller's own."""
    context = {"gateway": "ext_authz", "path": "/mcp", "tool": "search"}
    assert _build(context=context, from_gateway=True).context == context
    assert _build(context={"tool": {"gateway": "x"}}).context == {"tool": {"gateway": "x"}}
