"""Issue 15 item 1: one meaning per string. The policy must decide on exactly the strings that end
up in the minted token, whatever engine evaluates it (rego-cpp truncated strings at NUL).

Request strings (audience, resource, scope, context) with control or non-URI code points are
refused on input; a signed claim the policy reads that holds them makes the token invalid. Each
refusal has a positive control, so only the code-point rule can explain it.
"""

import json
from typing import Any

import pytest
from sekisho.errors import InvalidRequestError, InvalidTargetError

from tests.harness import CRM_AUDIENCE, CRM_RESOURCE, DOCS_AUDIENCE, Harness
from tests.security._exchange import accepted, idp_a_signed, rejected

pytestmark = pytest.mark.security

# Code points that give one string two meanings: C0/C1 controls (NUL truncates in C), DEL,
# line/paragraph separators, zero-width and bidi format characters, a lone surrogate.
HOSTILE_SUFFIXES = {
    "nul": "\u0000x",
    "soh": "\u0001",
    "tab": "\t",
    "newline": "\n",
    "unit-separator": "\u001f",
    "del": "\u007f",
    "c1-nel": "\u0085",
    "zero-width-space": "\u200b",
    "bidi-override": "\u202e",
    "line-separator": "\u2028",
    "bom": "\ufeff",
    "lone-surrogate": "\ud800",
}


# --- signed claims the policy reads -------------------------------------------------------------


def _token(harness: Harness, **claims: Any) -> str:
    return idp_a_signed(harness, payload=harness.idp_a.claims(harness.clock.now(), **claims))


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        pytest.param("tenant", "acme{}", id="tenant"),
        pytest.param("groups", ["sales{}"], id="groups"),
        pytest.param("sub", "alice{}", id="sub"),
        pytest.param("email", "alice@example.com{}", id="email"),
        pytest.param("acr", "urn:example:acr:mfa{}", id="acr"),
        pytest.param("amr", ["pwd{}"], id="amr"),
        pytest.param("client_id", "agent-app{}", id="client_id"),
        pytest.param("act", {"sub": "gateway{}"}, id="act-sub"),
    ],
)
async def test_identity_claim_with_a_hostile_code_point_makes_the_token_invalid(
    harness: Harness, claim: str, value: object
) -> None:
    for name, suffix in HOSTILE_SUFFIXES.items():
        hostile = _fill(value, suffix)
        error = await rejected(harness, _token(harness, **{claim: hostile}))
        assert error.reason == "invalid_request", name
    await accepted(harness, _token(harness, **{claim: _fill(value, "")}))  # control


def _fill(value: object, suffix: str) -> object:
    if isinstance(value, str):
        return value.format(suffix)
    if isinstance(value, list):
        return [v.format(suffix) for v in value]
    assert isinstance(value, dict)
    return {k: v.format(suffix) for k, v in value.items()}


async def test_tenant_with_nul_suffix_does_not_pass_the_tenant_binding(harness: Harness) -> None:
    # The original finding: `acme\u0000x` passed the docs downstream's `tenant: acme` binding.
    token = _token(harness, tenant="acme\u0000x", groups=["sales"])
    await rejected(harness, token, audience=DOCS_AUDIENCE, scopes=["docs.read"])
    await accepted(harness, _token(harness, tenant="acme"), audience=DOCS_AUDIENCE, scopes=[])


@pytest.mark.parametrize(
    "suffix", ["\u0000", "\u001b[31m", "\ud800"], ids=["nul", "ansi", "surrogate"]
)
async def test_any_claim_policy_may_read_with_a_control_character_is_refused(
    harness: Harness, suffix: str
) -> None:
    # input.subject.claims carries every claim: a rule may compare any of them.
    await rejected(harness, _token(harness, department="sales" + suffix))
    await rejected(harness, _token(harness, profile={"roles": ["admin" + suffix]}))


# Written as they are (not as \\u escapes) in the payload's JSON text, where JSON allows every one
# of these but the C0 controls: the claims' text is checked whole when it holds no escape
# (codepoints.plain_json_text), so that check must see them. (A lone surrogate has no UTF-8.)
UNESCAPED = {
    name: suffix
    for name, suffix in HOSTILE_SUFFIXES.items()
    if suffix[0] >= "\u007f" and name != "lone-surrogate"
}


def _unescaped_payload(harness: Harness, **claims: Any) -> bytes:
    return json.dumps(
        harness.idp_a.claims(harness.clock.now(), **claims), ensure_ascii=False
    ).encode()


@pytest.mark.parametrize("suffix", list(UNESCAPED.values()), ids=list(UNESCAPED))
async def test_hostile_code_point_written_unescaped_in_the_payload_is_refused(
    harness: Harness, suffix: str
) -> None:
    payload = _unescaped_payload(harness, department="sales" + suffix)
    assert suffix.encode() in payload
    await rejected(harness, idp_a_signed(harness, payload=payload))
    clean = _unescaped_payload(harness, department="sales", name="Zoë 山田")  # control
    await accepted(harness, idp_a_signed(harness, payload=clean))


async def test_whitespace_between_json_tokens_of_the_payload_is_accepted(harness: Harness) -> None:
    # Newlines and tabs outside strings are JSON whitespace, not claim content: the text check
    # says nothing then, and each string is checked instead.
    claims = harness.idp_a.claims(harness.clock.now(), department="sales")
    payload = json.dumps(claims, indent="\t").encode()
    assert b"\n\t" in payload
    await accepted(harness, idp_a_signed(harness, payload=payload))


async def test_visible_unicode_in_claims_is_accepted(harness: Harness) -> None:
    token = _token(harness, sub="zoë", email="zoë@exämple.com", name="Zoë 山田", tenant="acme")
    result = await accepted(harness, token)
    assert result.minted.token


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
async def test_non_json_number_literal_in_the_payload_is_refused(
    harness: Harness, literal: str
) -> None:
    claims = harness.idp_a.claims(harness.clock.now())
    body = '{"score": ' + literal + ", " + json.dumps(claims)[1:]
    await rejected(harness, idp_a_signed(harness, payload=body.encode()))


@pytest.mark.parametrize(
    "member",
    [
        pytest.param('"score": 1e400', id="member"),
        pytest.param('"score": -1e400', id="negative"),
        pytest.param('"score": 1E+999', id="capital-exponent"),
        pytest.param('"levels": [1, 2.5e308]', id="in-an-array"),
        pytest.param('"profile": {"rank": 17976931348623159e292}', id="nested-just-past-max"),
    ],
)
async def test_a_number_beyond_double_range_in_the_payload_is_refused(
    harness: Harness, member: str
) -> None:
    # Valid JSON that Python reads as an infinity: the embedded engine denied it, OPA's REST API
    # refused the input (HTTP 400, so the exchange was UNAVAILABLE). Refused like NaN instead.
    claims = harness.idp_a.claims(harness.clock.now())
    body = "{" + member + ", " + json.dumps(claims)[1:]
    await rejected(harness, idp_a_signed(harness, payload=body.encode()))


@pytest.mark.parametrize(
    "member", ['"score": 1e308', '"score": -0', '"score": -0.0', '"score": 1e-400']
)
async def test_a_number_within_double_range_is_accepted(harness: Harness, member: str) -> None:
    claims = harness.idp_a.claims(harness.clock.now())
    body = "{" + member + ", " + json.dumps(claims)[1:]
    await accepted(harness, idp_a_signed(harness, payload=body.encode()))


# --- request strings --------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["audience", "resources", "scopes", "context"])
async def test_request_string_with_a_hostile_code_point_is_refused(
    harness: Harness, field: str
) -> None:
    token = harness.idp_a.token(harness.clock.now())
    for name, suffix in HOSTILE_SUFFIXES.items():
        values: dict[str, Any] = {
            "audience": CRM_AUDIENCE + suffix,
            "resources": [CRM_RESOURCE + suffix],
            "scopes": ["crm.read" + suffix],
            "context": {"tool": "search" + suffix},
        }
        with pytest.raises(InvalidRequestError) as caught:
            harness.request(token, **{field: values[field]})
        assert type(caught.value) is InvalidRequestError, name  # a request, not a token error


@pytest.mark.parametrize(
    "audience",
    ["https://crm-as.example.com/ x", "https://crm-äs.example.com", 'https://crm-as.example.com/"'],
    ids=["space", "non-ascii", "quote"],
)
async def test_audience_outside_rfc3986_characters_is_refused(
    harness: Harness, audience: str
) -> None:
    with pytest.raises(InvalidRequestError):
        harness.request(harness.idp_a.token(harness.clock.now()), audience=audience)


@pytest.mark.parametrize("key", ["t\u0000ool", "\u202etool"], ids=["nul-key", "bidi-key"])
async def test_context_keys_are_checked_like_values(harness: Harness, key: str) -> None:
    token = harness.idp_a.token(harness.clock.now())
    with pytest.raises(InvalidRequestError):
        harness.request(token, context={"nested": {key: "x"}} if "\u0000" in key else {key: 1})


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
async def test_non_finite_context_number_is_refused(harness: Harness, number: float) -> None:
    token = harness.idp_a.token(harness.clock.now())
    with pytest.raises(InvalidRequestError):
        harness.request(token, context={"score": [1, {"x": number}]})


async def test_clean_request_strings_are_accepted(harness: Harness) -> None:
    token = harness.idp_a.token(harness.clock.now())
    result = await accepted(
        harness,
        token,
        resources=[CRM_RESOURCE],
        context={"tool": "search", "note": "Zoë 山田 ✓", "n": 1.5},
    )
    assert result.minted.resources == (CRM_RESOURCE,)


async def test_resource_the_policy_does_not_grant_in_full_is_never_minted_without_it(
    harness: Harness,
) -> None:
    # A resource-bound request yields a token bound to every requested resource, or nothing.
    token = harness.idp_a.token(harness.clock.now())
    result = await accepted(harness, token, resources=[CRM_RESOURCE])
    assert result.minted.resources == (CRM_RESOURCE,)
    with pytest.raises(InvalidTargetError):
        await accepted(harness, token, resources=[CRM_RESOURCE, "https://crm.example.com/other"])
    # The same rule holds whatever the policy returns: tests/unit/policy/test_outcome.py
    # test_grant_that_drops_a_requested_resource_is_invalid_target.
