"""Claim-level attacks through the whole exchange pipeline: times, issuer, audience, client, sub.

Every hostile token is signed by the trusted IdP's real key, so a rejection can only come from the
claim rule under test; each rule has a positive control next to it.
"""

from typing import Any

import pytest
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_TOKEN
from sekisho.errors import AccessDeniedError

from tests.harness import CRM_AUDIENCE, IDP_A, Harness
from tests.security._exchange import accepted, idp_a_signed, rejected

pytestmark = pytest.mark.security


# --- time claims ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claim", "offset"),
    [("exp", -31), ("exp", -30), ("nbf", 31), ("iat", 31)],
    ids=["expired-31s", "expired-exactly-at-leeway", "nbf-31s-ahead", "iat-31s-ahead"],
)
async def test_token_outside_the_30s_leeway_is_rejected(
    harness: Harness, claim: str, offset: int
) -> None:
    now = harness.clock.now()
    await rejected(harness, harness.idp_a.token(now, **{claim: int(now) + offset}))


@pytest.mark.parametrize(
    ("claim", "offset"),
    [("exp", -29), ("nbf", 30), ("iat", 30)],
    ids=["expired-29s", "nbf-30s-ahead", "iat-30s-ahead"],
)
async def test_token_inside_the_30s_leeway_passes_verification(
    harness: Harness, claim: str, offset: int
) -> None:
    now = harness.clock.now()
    token = harness.idp_a.token(now, **{claim: int(now) + offset})
    verified = await harness.verifier.verify(token, TOKEN_TYPE_ID_TOKEN)
    assert verified.subject == "alice"


@pytest.mark.parametrize(("claim", "offset"), [("nbf", 30), ("iat", 30)])
async def test_clock_skew_on_nbf_and_iat_within_leeway_still_exchanges(
    harness: Harness, claim: str, offset: int
) -> None:
    now = harness.clock.now()
    await accepted(harness, harness.idp_a.token(now, **{claim: int(now) + offset}))


async def test_expired_token_within_leeway_verifies_but_mints_nothing(harness: Harness) -> None:
    """Leeway only forgives skew in verification: no minted token outlives its subject token."""
    now = harness.clock.now()
    error = await rejected(harness, harness.idp_a.token(now, exp=int(now) - 29))
    assert error.public_message == "the subject token is expired"


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize(
    "value",
    ["1800000600", True, False, 10**20, 10**400, -1, float("inf"), float("nan"), [1], {}],
    ids=[
        "string",
        "true",
        "false",
        "after-9999",
        "huge-int",
        "negative",
        "inf",
        "nan",
        "list",
        "obj",
    ],
)
async def test_exp_iat_nbf_as_strings_floats_huge_or_negative(
    harness: Harness, claim: str, value: object
) -> None:
    """NumericDate is a JSON number in [0, year 9999]; `10**400` once escaped as a server error."""
    claims = harness.idp_a.claims(harness.clock.now()) | {claim: value}
    await rejected(harness, idp_a_signed(harness, payload=claims))


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
async def test_fractional_numeric_date_is_accepted(harness: Harness, claim: str) -> None:
    """Control for the ill-typed cases: RFC 7519 §2 NumericDate may be non-integer."""
    now = harness.clock.now()
    value = now + 600.5 if claim == "exp" else now - 0.5
    claims = harness.idp_a.claims(now) | {claim: value}
    await accepted(harness, idp_a_signed(harness, payload=claims))


async def test_missing_exp_is_rejected(harness: Harness) -> None:
    """exp is required: a token without one would be valid forever."""
    await rejected(harness, harness.idp_a.token(harness.clock.now(), exp=None))


# --- issuer, audience, client, subject --------------------------------------------------------


@pytest.mark.parametrize(
    "iss",
    [
        IDP_A + "/",
        "https://IDP-A.example.com",
        "HTTPS://idp-a.example.com",
        "https://idp-a.example.com:443",
        " https://idp-a.example.com",
        "https://idp-a.example.com.evil.com",
        "",
        None,
        ["https://idp-a.example.com"],
    ],
    ids=["trailing-slash", "host-case", "scheme-case", "explicit-port", "leading-space",
         "suffix-domain", "empty", "missing", "array"],
)  # fmt: skip
async def test_issuer_with_trailing_slash_or_different_case(harness: Harness, iss: object) -> None:
    """Issuers match byte for byte (OIDC Core §3.1.3.7 step 2): no folding, trimming or prefix."""
    claims = harness.idp_a.claims(harness.clock.now(), iss=iss)
    await rejected(harness, idp_a_signed(harness, payload=claims))
    assert harness.fetcher.calls == []  # untrusted issuers never cause a fetch


@pytest.mark.parametrize(
    "aud",
    ["other-app", ["other-app", "another-app"], [], None, "AGENT-APP", 42, ["agent-app", 42]],
    ids=["other", "array-without-us", "empty-array", "missing", "case", "number", "mixed-types"],
)
async def test_audience_not_ours_is_rejected(harness: Harness, aud: object) -> None:
    claims = harness.idp_a.claims(harness.clock.now(), aud=aud)  # None removes the claim
    await rejected(harness, idp_a_signed(harness, payload=claims))


@pytest.mark.parametrize(
    ("idp", "azp", "outcome"),
    [
        ("a", "agent-app", "accepted"),
        ("a", None, "no-client"),
        ("b", "agent-client", "accepted"),
        ("b", None, "rejected"),
        ("b", "other-app", "rejected"),
    ],
    ids=["a-azp", "a-no-azp", "b-configured-azp", "b-no-azp", "b-foreign-azp"],
)
async def test_aud_array_mixing_ours_with_others(
    harness: Harness, idp: str, azp: str | None, outcome: str
) -> None:
    """Contract (docs/architecture.md §6): `audiences` are accepted aud values, any match suffices.
    The defence is elsewhere: with `client_ids` configured (IdP B) a multi-audience token must
    name a configured client in `azp` (OIDC Core §2), since no single `aud` identifies one; and
    no inbound `aud` ever reaches the minted token, whose `aud` is the requested downstream."""
    source = harness.idp_a if idp == "a" else harness.idp_b
    token = source.token(harness.clock.now(), aud=["other-app", "agent-app"], azp=azp)
    if outcome == "rejected":
        await rejected(harness, token)
        return
    if outcome == "no-client":  # verified, but no client to name in the minted token: deny
        with pytest.raises(AccessDeniedError):
            await accepted(harness, token)
        return
    result = await accepted(harness, token)
    assert result.minted.audience == CRM_AUDIENCE
    assert "other-app" not in result.minted.token


@pytest.mark.parametrize(
    ("token_type", "claims"),
    [
        (TOKEN_TYPE_ID_TOKEN, {}),
        (TOKEN_TYPE_ID_TOKEN, {"azp": ""}),
        (TOKEN_TYPE_ID_TOKEN, {"azp": "evil-client"}),
        (TOKEN_TYPE_ID_TOKEN, {"azp": ["agent-client"]}),
        (TOKEN_TYPE_ID_TOKEN, {"client_id": "agent-client"}),
        (TOKEN_TYPE_ACCESS_TOKEN, {"aud": None}),
        (TOKEN_TYPE_ACCESS_TOKEN, {"aud": None, "azp": "evil-client"}),
        (TOKEN_TYPE_ACCESS_TOKEN, {"aud": None, "client_id": "agent-client"}),
    ],
    ids=["id-missing-azp", "id-empty-azp", "id-wrong-azp", "id-azp-array",
         "id-client-in-wrong-claim", "at-missing-azp", "at-wrong-azp", "at-client-in-wrong-claim"],
)  # fmt: skip
async def test_client_check_is_never_skipped_when_client_ids_are_configured(
    harness: Harness, token_type: str, claims: dict[str, Any]
) -> None:
    """IdP B requires azp ∈ ["agent-client"]; an absent claim must fail, not skip, the check."""
    token = harness.idp_b.token(harness.clock.now(), **claims)
    await rejected(harness, token, subject_token_type=token_type)


@pytest.mark.parametrize(
    ("token_type", "claims"),
    [(TOKEN_TYPE_ID_TOKEN, {}), (TOKEN_TYPE_ACCESS_TOKEN, {"aud": None})],
    ids=["id-token", "access-token-without-aud"],
)
async def test_configured_client_in_azp_is_accepted(
    harness: Harness, token_type: str, claims: dict[str, Any]
) -> None:
    token = harness.idp_b.token(harness.clock.now(), azp="agent-client", **claims)
    await accepted(harness, token, subject_token_type=token_type)


@pytest.mark.parametrize("sub", [None, "", 42, ["alice"], {"id": "alice"}])
async def test_missing_or_non_string_sub_is_rejected(harness: Harness, sub: object) -> None:
    claims = harness.idp_a.claims(harness.clock.now())
    claims.pop("sub")
    if sub is not None:
        claims["sub"] = sub
    await rejected(harness, idp_a_signed(harness, payload=claims))
