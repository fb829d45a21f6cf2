"""The pipeline end to end with fakes: the shape every other test builds on."""

import jwt

from tests.harness import CRM_AUDIENCE, SEKISHO_ISSUER, Harness


async def test_valid_id_token_yields_verifiable_id_jag(harness: Harness) -> None:
    token = harness.idp_a.token(harness.clock.now())
    result = await harness.exchanger.exchange(harness.request(token))
    _, signer = harness.keyring.signing_key()
    claims = jwt.decode(
        result.minted.token,
        signer.public_key,
        algorithms=["ES256"],
        audience=CRM_AUDIENCE,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == SEKISHO_ISSUER
    assert claims["scope"] == "crm.read"
    assert jwt.get_unverified_header(result.minted.token)["typ"] == "oauth-id-jag+jwt"
