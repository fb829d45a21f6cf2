"""TokenVerifier (sekisho.identity.verifier): happy paths, claim extraction, alg/key-type rules."""

from typing import Any

import pytest
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_TOKEN
from sekisho.errors import (
    InvalidRequestError,
    InvalidTokenError,
    ServiceError,
    TemporarilyUnavailableError,
    TokenTypeError,
)
from sekisho.identity.issuer_config import IssuerConfig
from sekisho.identity.verifier import TokenVerifier, TrustedIssuer
from sekisho.status.models import subject_key
from sekisho.status.revocations import act_keys
from sekisho.verify.jwks import JwksCache

from tests.bounds import max_act_depth
from tests.fakes.clock import FakeClock
from tests.fakes.fetcher import FakeFetcher
from tests.fakes.idp import TestIdp
from tests.harness import IDP_A, SEKISHO_ISSUER
from tests.security._tokens import sign_with_key

JWKS_URI = f"{IDP_A}/jwks"


class Setup:
    """One trusted issuer (IdP A's fixture keys) behind a real verifier, fake clock and fetcher."""

    def __init__(self, jwks: dict[str, Any] | None = None, **config: Any) -> None:
        self.idp = TestIdp(IDP_A)
        self.clock = FakeClock()
        self.fetcher = FakeFetcher({JWKS_URI: jwks if jwks is not None else self.idp.jwks()})
        fields: dict[str, Any] = {
            "issuer": IDP_A,
            "jwks_uri": JWKS_URI,
            "audiences": ("agent-app",),
        }
        self.config = IssuerConfig(**(fields | config))
        self.cache = JwksCache(IDP_A, self.fetcher, self.clock, jwks_uri=JWKS_URI)
        self.verifier = TokenVerifier(
            {IDP_A: TrustedIssuer(config=self.config, jwks=self.cache)},
            self.clock,
            own_issuer=SEKISHO_ISSUER,
            leeway_seconds=30,
            max_token_bytes=16384,
            max_act_depth=max_act_depth(),
        )

    def token(self, **kwargs: Any) -> str:
        return self.idp.token(self.clock.now(), **kwargs)


def unpinned_jwks(idp: TestIdp) -> dict[str, Any]:
    """The IdP's JWKS with `alg` removed, so only the key type constrains the algorithm."""
    return {"keys": [{k: v for k, v in key.items() if k != "alg"} for key in idp.jwks()["keys"]]}


async def rejected(
    setup: Setup, token: str, code: str, token_type: str = TOKEN_TYPE_ID_TOKEN
) -> None:
    """Refused as a bad token (UNAUTHENTICATED, one public message) with the internal `code`."""
    with pytest.raises(ServiceError) as caught:
        await setup.verifier.verify(token, token_type)
    assert isinstance(caught.value, InvalidTokenError)
    assert caught.value.public_message == "the subject or actor token is invalid"
    assert caught.value.code == code


# --- happy paths ------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_valid_token_verifies(alg: str) -> None:
    setup = Setup()
    now = int(setup.clock.now())
    verified = await setup.verifier.verify(setup.token(alg=alg), TOKEN_TYPE_ID_TOKEN)
    assert verified.issuer == IDP_A
    assert verified.subject == "alice"
    assert verified.token_type == TOKEN_TYPE_ID_TOKEN
    assert verified.expires_at == now + 600
    assert verified.client_id == "agent-app"  # OIDC: a single aud names the client
    assert verified.claims["email"] == "alice@example.com"


async def test_access_token_typed_at_jwt_verifies_as_access_token() -> None:
    setup = Setup()
    token = setup.token(headers={"typ": "at+jwt"}, client_id="agent-app")
    verified = await setup.verifier.verify(token, TOKEN_TYPE_ACCESS_TOKEN)
    assert (verified.token_type, verified.client_id) == (TOKEN_TYPE_ACCESS_TOKEN, "agent-app")


async def test_an_at_jwt_sent_as_an_id_token_is_refused_naming_the_fix() -> None:
    # The typ is the caller's own input: saying what it means costs nothing and saves a support
    # ticket (the default subject_token_type is the ID token).
    setup = Setup()
    token = setup.token(headers={"typ": "at+jwt"}, client_id="agent-app")
    with pytest.raises(TokenTypeError) as caught:
        await setup.verifier.verify(token, TOKEN_TYPE_ID_TOKEN)
    assert caught.value.public_message == (
        "the token's typ says it is an access token (at+jwt) but it was sent as an ID token: "
        f"set subject_token_type (or actor_token_type) to {TOKEN_TYPE_ACCESS_TOKEN}"
    )
    assert token not in caught.value.public_message


async def test_identity_claims_are_extracted() -> None:
    setup = Setup()
    now = int(setup.clock.now())
    token = setup.token(acr="urn:example:mfa", amr=["pwd", "otp"], auth_time=now - 5)
    verified = await setup.verifier.verify(token, TOKEN_TYPE_ID_TOKEN)
    assert verified.email == "alice@example.com"
    assert verified.groups == ("sales",)
    assert verified.tenant == "acme"
    assert verified.acr == "urn:example:mfa"
    assert verified.amr == ("pwd", "otp")
    assert verified.auth_time == now - 5


async def test_identity_claims_follow_the_configured_claim_names() -> None:
    """Cognito-style names: groups_claim and tenant_claim are per issuer."""
    setup = Setup(groups_claim="cognito:groups", tenant_claim="custom:tenant")
    token = setup.token(**{"cognito:groups": "admins", "custom:tenant": "globex"})
    verified = await setup.verifier.verify(token, TOKEN_TYPE_ID_TOKEN)
    assert (verified.groups, verified.tenant) == (("admins",), "globex")


@pytest.mark.parametrize(
    ("overrides", "field", "expected"),
    [
        ({"groups": None}, "groups", ()),
        ({"groups": {"sales": True}}, "groups", ()),
        ({"tenant": 7}, "tenant", ""),
        ({"email": ["a@example.com"]}, "email", ""),
        ({"acr": None}, "acr", ""),
        ({"amr": "pwd"}, "amr", ("pwd",)),
        ({"auth_time": None}, "auth_time", 0),
    ],
    ids=["no-groups", "groups-object", "tenant-int", "email-list", "no-acr", "amr-string",
         "no-auth-time"],
)  # fmt: skip
async def test_absent_or_ill_typed_identity_claims_default_empty(
    overrides: dict[str, Any], field: str, expected: object
) -> None:
    setup = Setup()
    verified = await setup.verifier.verify(setup.token(**overrides), TOKEN_TYPE_ID_TOKEN)
    assert getattr(verified, field) == expected


async def test_ill_typed_auth_time_is_rejected() -> None:
    setup = Setup()
    await rejected(setup, setup.token(auth_time="yesterday"), "token_malformed")


async def test_an_act_level_naming_a_trusted_issuer_by_another_spelling_names_it_as_configured() -> (
    None
):
    # Session 12: users are keyed by the issuer as trust.issuers names it (the gate, the status
    # store, `sekisho revoke subject --issuer <any accepted spelling>`), but an act level's `iss`
    # was kept as the token spelled it: a level naming IdP A by an alias was recorded and gated
    # as (alias, sub), which no revocation could name.
    alias = f"{IDP_A}/"
    setup = Setup(issuer_aliases=(alias,))
    act = {"sub": "agent-7", "iss": alias, "act": {"sub": "gw", "iss": "https://other.example"}}
    verified = await setup.verifier.verify(setup.token(act=act), TOKEN_TYPE_ID_TOKEN)
    assert verified.act == {
        "sub": "agent-7",
        "iss": IDP_A,
        "act": {"sub": "gw", "iss": "https://other.example"},
    }
    keys = act_keys(verified)
    assert ("subject", subject_key(IDP_A, "agent-7")) in keys
    assert ("subject", subject_key(alias, "agent-7")) not in keys


async def test_act_claim_is_passed_through_each_level_naming_its_issuer() -> None:
    setup = Setup()
    act = {"sub": "agent-7", "act": {"sub": "gateway"}}
    verified = await setup.verifier.verify(setup.token(act=act), TOKEN_TYPE_ID_TOKEN)
    issuer = verified.issuer
    assert verified.act == {
        "sub": "agent-7",
        "iss": issuer,
        "act": {"sub": "gateway", "iss": issuer},
    }


async def test_absent_act_claim_is_none() -> None:
    setup = Setup()
    verified = await setup.verifier.verify(setup.token(act=None), TOKEN_TYPE_ID_TOKEN)
    assert verified.act is None


@pytest.mark.parametrize(
    "act",
    ["agent-7", ["agent-7"], {"sub": "agent\u0000x"}, {"sub": "a", "act": {"sub": "b\u202e"}}],
    ids=["string", "list", "nul-in-sub", "bidi-in-nested-sub"],
)
async def test_act_claim_that_is_not_a_clean_chain_makes_the_token_invalid(act: object) -> None:
    # A delegation the minted token cannot repeat with one meaning is refused, not dropped:
    # dropping it would turn a delegated token into a direct one (issue 15 item 4).
    setup = Setup()
    await rejected(setup, setup.token(act=act), "token_malformed")


# --- algorithm and key-type rules -------------------------------------------------------------


async def test_alg_not_in_the_issuer_allow_list_is_rejected() -> None:
    setup = Setup(algorithms=("ES256",))
    await rejected(setup, setup.token(alg="RS256"), "algorithm_not_allowed")
    await setup.verifier.verify(setup.token(alg="ES256"), TOKEN_TYPE_ID_TOKEN)


async def test_ps256_is_rejected_unless_allowed_and_not_pinned_otherwise() -> None:
    """The allow-list and the JWK's own `alg` pin both apply (RFC 8725 §3.1)."""
    default = Setup()
    await rejected(default, default.token(alg="PS256"), "algorithm_not_allowed")
    pinned = Setup(algorithms=("PS256",))  # the fixture JWK pins RS256
    await rejected(pinned, pinned.token(alg="PS256"), "algorithm_not_allowed")
    unpinned = Setup(jwks=unpinned_jwks(TestIdp(IDP_A)), algorithms=("PS256",))
    await unpinned.verifier.verify(unpinned.token(alg="PS256"), TOKEN_TYPE_ID_TOKEN)


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512"])
async def test_each_pkcs1_alg_checks_its_own_hash(alg: str) -> None:
    """RS384/RS512 verify, and a signature made with another RS* hash under that header fails
    (the prebuilt parameters are picked by the header's alg, never shared between them)."""
    setup = Setup(jwks=unpinned_jwks(TestIdp(IDP_A)), algorithms=("RS256", "RS384", "RS512"))
    await setup.verifier.verify(setup.token(alg=alg), TOKEN_TYPE_ID_TOKEN)
    claims = setup.idp.claims(setup.clock.now())
    for other in {"RS256", "RS384", "RS512"} - {alg}:
        header = {"alg": alg, "typ": "JWT", "kid": setup.idp.rsa_kid}
        signed = sign_with_key(header, claims, setup.idp.rsa_key, other)
        await rejected(setup, signed, "signature_invalid")


@pytest.mark.parametrize("pinned", [True, False], ids=["jwk-pins-alg", "jwk-without-alg"])
async def test_rs256_header_on_an_ec_key_is_rejected(pinned: bool) -> None:
    idp = TestIdp(IDP_A)
    setup = Setup(jwks=idp.jwks() if pinned else unpinned_jwks(idp))
    await rejected(
        setup, setup.token(alg="RS256", headers={"kid": idp.ec_kid}), "algorithm_not_allowed"
    )
    await rejected(
        setup, setup.token(alg="ES256", headers={"kid": idp.rsa_kid}), "algorithm_not_allowed"
    )


@pytest.mark.parametrize(
    "alg", [None, 256, "", ["RS256"]], ids=["missing", "number", "empty", "list"]
)
async def test_missing_or_non_string_alg_is_rejected(alg: object) -> None:
    setup = Setup()
    header: dict[str, Any] = {"kid": setup.idp.rsa_kid} | ({} if alg is None else {"alg": alg})
    claims = setup.idp.claims(setup.clock.now())
    await rejected(
        setup, sign_with_key(header, claims, setup.idp.rsa_key, "RS256"), "algorithm_not_allowed"
    )


# --- kid-less tokens, availability, size ------------------------------------------------------


def kidless_es256(setup: Setup) -> str:
    claims = setup.idp.claims(setup.clock.now())
    return sign_with_key({"alg": "ES256"}, claims, setup.idp.ec_key, "ES256")


async def test_token_without_kid_uses_the_issuers_only_key() -> None:
    """Even when that key has no kid itself (regression: such a key used to be dropped)."""
    only = next(k for k in TestIdp(IDP_A).jwks()["keys"] if k["kty"] == "EC")
    setup = Setup(jwks={"keys": [{k: v for k, v in only.items() if k != "kid"}]})
    await setup.cache.refresh()  # the service's background loop does this at start
    verified = await setup.verifier.verify(kidless_es256(setup), TOKEN_TYPE_ID_TOKEN)
    assert verified.subject == "alice"


async def test_token_without_kid_is_rejected_when_the_issuer_has_several_keys() -> None:
    setup = Setup()
    await setup.cache.refresh()
    await rejected(setup, kidless_es256(setup), "key_unknown")


async def test_unreachable_jwks_is_temporarily_unavailable() -> None:
    setup = Setup()
    setup.fetcher.failing = True
    with pytest.raises(ServiceError) as caught:
        await setup.verifier.verify(setup.token(), TOKEN_TYPE_ID_TOKEN)
    error = caught.value
    assert type(error) is TemporarilyUnavailableError
    assert (error.reason, error.grpc_code) == ("temporarily_unavailable", "UNAVAILABLE")


@pytest.mark.parametrize(
    "token",
    ["a" * 16385, "\u00e9" * 8193],  # the second: 8,193 characters, 16,386 UTF-8 bytes
    ids=["ascii", "multibyte-counted-in-bytes"],
)
async def test_token_over_the_size_limit_is_an_invalid_request(token: str) -> None:
    setup = Setup()
    with pytest.raises(ServiceError) as caught:
        await setup.verifier.verify(token, TOKEN_TYPE_ID_TOKEN)
    assert type(caught.value) is InvalidRequestError
    assert caught.value.grpc_code == "INVALID_ARGUMENT"
    assert setup.fetcher.calls == []
