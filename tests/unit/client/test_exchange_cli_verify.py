"""`sekisho exchange` prints a token as verified only when one key of the service's JWKS checks
it: a missing kid used to end in a KeyError traceback, and of two keys with one kid PyJWT's set
took one, where the verify SDK trusts neither."""

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho.client.exchange_cli import _verified

AUDIENCE = "https://mcp.example.com"


def _minted(kid: str) -> tuple[pb.ExchangeTokenResponse, dict[str, object]]:
    key = ec.generate_private_key(ec.SECP256R1())
    claims = {"aud": AUDIENCE, "sub": "alice", "exp": int(time.time()) + 300}
    token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())) | {"kid": kid}
    response = pb.ExchangeTokenResponse(access_token=token, token_type="N_A", audience=AUDIENCE)
    return response, jwk


def test_the_key_of_its_kid_verifies_the_token() -> None:
    response, jwk = _minted("k1")
    header, claims = _verified(response, json.dumps({"keys": [jwk]}))
    assert header["kid"] == "k1" and claims["sub"] == "alice"


@pytest.mark.parametrize("copies", [0, 2])
def test_a_kid_missing_or_twice_in_the_jwks_is_refused_by_name(copies: int) -> None:
    response, jwk = _minted("k1")
    _, other = _minted("k2")
    keys = [jwk] * copies + [other]
    with pytest.raises(ValueError, match=f"has {copies} keys with kid 'k1', not one"):
        _verified(response, json.dumps({"keys": keys}))


def test_a_key_that_did_not_sign_it_is_refused() -> None:
    response, _ = _minted("k1")
    _, impostor = _minted("k1")
    with pytest.raises(jwt.InvalidSignatureError):
        _verified(response, json.dumps({"keys": [impostor]}))
