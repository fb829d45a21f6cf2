"""LocalSigner: signatures a downstream verifies with PyJWT and nothing but the published JWK."""

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from sekisho.constants import SIGNING_ALGORITHMS
from sekisho.signing.material import PrivateKey
from sekisho.signing.signer import LocalSigner, published_jwk

from tests.fakes.idp import load_private_key
from tests.unit.signing.keystores import kid_of

ALGORITHMS = sorted(SIGNING_ALGORITHMS)
CLAIMS = {"iss": "https://sekisho.example.com", "sub": "alice", "scope": "crm.read"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(signer: LocalSigner, claims: dict[str, object]) -> str:
    """A compact JWS assembled by hand, so only LocalSigner.sign produces the signature."""
    header = {"alg": signer.alg, "kid": signer.kid, "typ": "JWT"}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = signer.sign_now(signing_input.encode())
    return f"{signing_input}.{_b64(signature)}"


def _other_key(alg: str) -> PrivateKey:
    """A second key of the same type as `alg`'s (RSA-2048 keeps the test fast)."""
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(65537, 2048)


def _signer(keys_by_alg: dict[str, PrivateKey], alg: str) -> LocalSigner:
    key = keys_by_alg[alg]
    return LocalSigner(kid_of(key), alg, key)


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_signature_verifies_with_the_published_jwk(
    keys_by_alg: dict[str, PrivateKey], alg: str
) -> None:
    signer = _signer(keys_by_alg, alg)
    verifier_key = jwt.PyJWK(published_jwk(signer))
    decoded = jwt.decode(_compact(signer, CLAIMS), verifier_key, algorithms=[alg])
    assert decoded == CLAIMS


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_tampered_payload_does_not_verify(keys_by_alg: dict[str, PrivateKey], alg: str) -> None:
    signer = _signer(keys_by_alg, alg)
    header, _, signature = _compact(signer, CLAIMS).split(".")
    forged_payload = _b64(json.dumps({**CLAIMS, "scope": "crm.admin"}).encode())
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            f"{header}.{forged_payload}.{signature}",
            jwt.PyJWK(published_jwk(signer)),
            algorithms=[alg],
        )


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_signature_does_not_verify_with_another_keys_jwk(
    keys_by_alg: dict[str, PrivateKey], alg: str
) -> None:
    signer = _signer(keys_by_alg, alg)
    other_key = _other_key(alg)
    other = LocalSigner(kid_of(other_key), alg, other_key)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(_compact(signer, CLAIMS), jwt.PyJWK(published_jwk(other)), algorithms=[alg])


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_published_jwk_names_kid_alg_and_use(keys_by_alg: dict[str, PrivateKey], alg: str) -> None:
    signer = _signer(keys_by_alg, alg)
    jwk = published_jwk(signer)
    assert (jwk["kid"], jwk["alg"], jwk["use"]) == (kid_of(keys_by_alg[alg]), alg, "sig")
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)


def test_es256_signature_is_raw_r_and_s() -> None:
    # RFC 7518 §3.4: ECDSA JWS signatures are R||S (64 bytes for P-256), not DER.
    key = load_private_key("sekisho_es256.pem")
    signer = LocalSigner(kid_of(key), "ES256", key)
    assert len(signer.sign_now(b"header.payload")) == 64
