"""Token confusion: Sekisho's own tokens, and tokens explicitly typed for another purpose
(RFC 8725 §2.8 cross-JWT confusion, §3.11 explicit typing), presented as subject tokens.
"""

import json

import pytest
from sekisho.audit import AuditLog
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_TOKEN
from sekisho.exchange import TokenExchanger
from sekisho.identity.issuer_config import IssuerConfig
from sekisho.identity.verifier import TokenVerifier, TrustedIssuer
from sekisho.minting.minter import TokenMinter
from sekisho.signing.signer import LocalSigner
from sekisho.verify.jwks import JwksCache

from tests.bounds import max_act_depth, request_limits
from tests.fakes.fetcher import FakeFetcher
from tests.harness import SEKISHO_ISSUER, Harness
from tests.security._exchange import accepted, rejected
from tests.security._tokens import sign_with

pytestmark = pytest.mark.security


@pytest.mark.parametrize("profile", ["id-jag", "access_token"])
async def test_sekisho_minted_token_presented_as_subject_is_rejected(
    harness: Harness, profile: str
) -> None:
    """A token we minted must never be exchanged again (loop, scope laundering, replay)."""
    requested = f"urn:ietf:params:oauth:token-type:{profile}"
    minted = await accepted(
        harness, harness.idp_a.token(harness.clock.now()), requested_token_type=requested
    )
    for subject_type in (TOKEN_TYPE_ID_TOKEN, TOKEN_TYPE_ACCESS_TOKEN):
        await rejected(harness, minted.minted.token, subject_token_type=subject_type)


def _self_trusting_harness(harness: Harness, iss: str, own_issuer: str) -> Harness:
    """A misconfiguration: Sekisho's own issuer listed as a trusted IdP, JWKS and all."""
    jwks_uri = f"{SEKISHO_ISSUER}/.well-known/jwks.json"
    fetcher = FakeFetcher({jwks_uri: json.loads(harness.keyring.jwks_bytes)})
    config = IssuerConfig(issuer=iss, jwks_uri=jwks_uri, audiences=("agent-app",))
    cache = JwksCache(iss, fetcher, harness.clock, jwks_uri=jwks_uri)
    verifier = TokenVerifier(
        {iss: TrustedIssuer(config=config, jwks=cache)},
        harness.clock,
        own_issuer=own_issuer,
        leeway_seconds=30,
        max_token_bytes=16384,
        max_act_depth=max_act_depth(),
    )
    minter = TokenMinter(
        harness.keyring, harness.clock, issuer=SEKISHO_ISSUER, max_lifetime_seconds=300
    )
    exchanger = TokenExchanger(
        verifier, harness.policy, minter, harness.clock, AuditLog(), limits=request_limits()
    )
    return Harness(
        exchanger=exchanger,
        verifier=verifier,
        keyring=harness.keyring,
        keystore=harness.keystore,
        policy=harness.policy,
        fetcher=fetcher,
        clock=harness.clock,
        idp_a=harness.idp_a,
        idp_b=harness.idp_b,
    )


def _sekisho_signed(harness: Harness, iss: str) -> str:
    _, signer = harness.keyring.signing_key()
    assert isinstance(signer, LocalSigner)  # the harness keystore is a file keystore
    claims = harness.idp_a.claims(harness.clock.now(), iss=iss)
    return sign_with({"alg": signer.alg, "kid": signer.kid}, claims, signer.sign_now)


@pytest.mark.parametrize("iss", [SEKISHO_ISSUER, SEKISHO_ISSUER + "/"], ids=["exact", "slash"])
async def test_self_issued_token_is_rejected_even_if_own_issuer_is_trusted(
    harness: Harness, iss: str
) -> None:
    token = _sekisho_signed(harness, iss)
    await rejected(_self_trusting_harness(harness, iss, own_issuer=SEKISHO_ISSUER), token)
    # Control: the same token and trust passes when the issuer is not Sekisho's own.
    await accepted(_self_trusting_harness(harness, iss, own_issuer="https://other.example"), token)


@pytest.mark.parametrize(
    ("typ", "token_type"),
    [
        ("at+jwt", TOKEN_TYPE_ID_TOKEN),
        ("application/at+jwt", TOKEN_TYPE_ID_TOKEN),
        ("AT+JWT", TOKEN_TYPE_ID_TOKEN),
        ("oauth-id-jag+jwt", TOKEN_TYPE_ID_TOKEN),
        ("application/oauth-id-jag+jwt", TOKEN_TYPE_ID_TOKEN),
        ("oauth-id-jag+jwt", TOKEN_TYPE_ACCESS_TOKEN),
        ("Application/OAuth-ID-JAG+JWT", TOKEN_TYPE_ACCESS_TOKEN),
        (["JWT"], TOKEN_TYPE_ID_TOKEN),
    ],
    ids=["at-as-id", "app-at-as-id", "upper-at-as-id", "id-jag-as-id", "app-id-jag-as-id",
         "id-jag-as-at", "app-id-jag-as-at", "non-string"],
)  # fmt: skip
async def test_id_token_as_access_token_and_vice_versa(
    harness: Harness, typ: object, token_type: str
) -> None:
    """RFC 8725 §3.11: explicit typing keeps access tokens and ID-JAGs out of the id_token path."""
    token = harness.idp_a.token(harness.clock.now(), headers={"typ": typ}, client_id="agent-app")
    await rejected(harness, token, subject_token_type=token_type)


@pytest.mark.parametrize(
    ("typ", "token_type"),
    [("JWT", TOKEN_TYPE_ID_TOKEN), ("at+jwt", TOKEN_TYPE_ACCESS_TOKEN)],
    ids=["jwt-as-id", "at-as-at"],
)
async def test_correctly_typed_token_is_accepted(
    harness: Harness, typ: str, token_type: str
) -> None:
    token = harness.idp_a.token(harness.clock.now(), headers={"typ": typ}, client_id="agent-app")
    await accepted(harness, token, subject_token_type=token_type)
