"""Key material: generation per algorithm, PEM round trip, public JWK, RFC 7638 thumbprint."""

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from joserfc.jwk import ECKey, OKPKey, RSAKey
from sekisho.constants import SIGNING_ALGORITHMS
from sekisho.errors import KeyStoreError
from sekisho.signing.material import (
    PrivateKey,
    generate_private_key,
    private_key_from_pem,
    private_key_to_pem,
    public_jwk,
    thumbprint,
)

# RFC 7638 §3.1: the example RSA key (with the non-required members the example carries) and
# its SHA-256 thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPeb"
    "WKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQ"
    "MicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2N"
    "cRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
RFC7638_JWK = {"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

ALGORITHMS = sorted(SIGNING_ALGORITHMS)

# The members a public JWK of each key type carries (RFC 7518 §6.2.1, §6.3.1; RFC 8037 §2).
PUBLIC_MEMBERS = {
    "EC": {"kty", "crv", "x", "y"},
    "RSA": {"kty", "n", "e"},
    "OKP": {"kty", "crv", "x"},
}
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def _uint(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def test_thumbprint_matches_rfc7638_example() -> None:
    assert thumbprint(RFC7638_JWK) == RFC7638_THUMBPRINT


def test_thumbprint_of_rfc7638_key_built_from_its_numbers() -> None:
    # The same key as a cryptography object: public_jwk must encode n and e exactly as the RFC.
    numbers = rsa.RSAPublicNumbers(e=_uint("AQAB"), n=_uint(RFC7638_N))
    assert thumbprint(public_jwk(numbers.public_key())) == RFC7638_THUMBPRINT


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"kid": "other"}, id="kid"),
        pytest.param({"alg": "ES256", "use": "sig"}, id="alg-and-use"),
        pytest.param({"key_ops": ["verify"], "x5c": ["MIIB"]}, id="key_ops-and-x5c"),
    ],
)
def test_thumbprint_ignores_non_required_members(
    keys_by_alg: dict[str, PrivateKey], extra: dict[str, Any]
) -> None:
    for key in keys_by_alg.values():
        jwk = public_jwk(key.public_key())
        assert thumbprint({**jwk, **extra}) == thumbprint(jwk)


def _joserfc_thumbprint(key: PrivateKey) -> str:
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return ECKey.import_key(pem).thumbprint()
    if isinstance(key, rsa.RSAPrivateKey):
        return RSAKey.import_key(pem).thumbprint()
    return OKPKey.import_key(pem).thumbprint()


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_thumbprint_agrees_with_an_independent_implementation(
    keys_by_alg: dict[str, PrivateKey], alg: str
) -> None:
    key = keys_by_alg[alg]
    assert thumbprint(public_jwk(key.public_key())) == _joserfc_thumbprint(key)


@pytest.mark.parametrize(
    ("alg", "key_type", "detail"),
    [
        pytest.param("ES256", ec.EllipticCurvePrivateKey, "secp256r1", id="ES256-P-256"),
        pytest.param("PS256", rsa.RSAPrivateKey, 3072, id="PS256-RSA-3072"),
        pytest.param("RS256", rsa.RSAPrivateKey, 3072, id="RS256-RSA-3072"),
        pytest.param("EdDSA", ed25519.Ed25519PrivateKey, None, id="EdDSA-Ed25519"),
    ],
)
def test_generated_key_has_the_type_of_its_algorithm(
    keys_by_alg: dict[str, PrivateKey], alg: str, key_type: type, detail: object
) -> None:
    key = keys_by_alg[alg]
    assert isinstance(key, key_type)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        assert key.curve.name == detail
    if isinstance(key, rsa.RSAPrivateKey):
        assert key.key_size == detail


def test_every_signing_algorithm_has_a_key_type_case() -> None:
    # Keeps the table above honest when an algorithm is added to SIGNING_ALGORITHMS.
    assert set(ALGORITHMS) == {"ES256", "PS256", "RS256", "EdDSA"}


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_generated_key_fits_its_algorithm_after_a_pem_round_trip(
    keys_by_alg: dict[str, PrivateKey], alg: str
) -> None:
    key = keys_by_alg[alg]
    pem = private_key_to_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    loaded = private_key_from_pem(pem, alg)
    assert public_jwk(loaded.public_key()) == public_jwk(key.public_key())


@pytest.mark.parametrize("alg", ["HS256", "none", "ES384", "RS512", "", "es256"])
def test_generate_refuses_unsupported_algorithms(alg: str) -> None:
    with pytest.raises(KeyStoreError, match="unsupported signing algorithm"):
        generate_private_key(alg)


def _pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize(
    ("make_key", "alg"),
    [
        pytest.param(lambda: ec.generate_private_key(ec.SECP256R1()), "RS256", id="P-256-as-RS256"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP256R1()), "EdDSA", id="P-256-as-EdDSA"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), "ES256", id="P-384-as-ES256"),
        pytest.param(ed25519.Ed25519PrivateKey.generate, "ES256", id="Ed25519-as-ES256"),
        pytest.param(ed25519.Ed25519PrivateKey.generate, "PS256", id="Ed25519-as-PS256"),
        pytest.param(ed448.Ed448PrivateKey.generate, "EdDSA", id="Ed448-as-EdDSA"),
        pytest.param(
            lambda: rsa.generate_private_key(65537, 2048), "ES256", id="RSA-2048-as-ES256"
        ),
        pytest.param(
            lambda: rsa.generate_private_key(65537, 2048), "EdDSA", id="RSA-2048-as-EdDSA"
        ),
        pytest.param(
            lambda: rsa.generate_private_key(65537, 1024),  # noqa: S505 - the weak key is the case
            "RS256",
            id="RSA-1024-too-short",
        ),
        pytest.param(lambda: rsa.generate_private_key(65537, 2048), "HS256", id="unknown-alg"),
    ],
)
def test_pem_that_does_not_fit_the_algorithm_is_rejected(make_key: Any, alg: str) -> None:
    with pytest.raises(KeyStoreError, match="does not match algorithm"):
        private_key_from_pem(_pem(make_key()), alg)


def test_rsa_2048_is_the_smallest_accepted_rsa_key() -> None:
    key = rsa.generate_private_key(65537, 2048)
    assert isinstance(private_key_from_pem(_pem(key), "PS256"), rsa.RSAPrivateKey)


@pytest.mark.parametrize(
    "pem",
    [
        pytest.param(b"", id="empty"),
        pytest.param(
            b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n", id="garbage"
        ),
        pytest.param(
            ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            ),
            id="encrypted",
        ),
        pytest.param(
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            id="public-key-only",
        ),
    ],
)
def test_unreadable_pem_is_rejected(pem: bytes) -> None:
    with pytest.raises(KeyStoreError, match="not a readable unencrypted PKCS#8 PEM"):
        private_key_from_pem(pem, "ES256")


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_public_jwk_has_exactly_the_public_members(
    keys_by_alg: dict[str, PrivateKey], alg: str
) -> None:
    jwk = public_jwk(keys_by_alg[alg].public_key())
    assert set(jwk) == PUBLIC_MEMBERS[jwk["kty"]]
    assert not PRIVATE_MEMBERS & set(jwk)


@pytest.mark.parametrize(
    ("alg", "crv", "coordinate_bytes"),
    [
        pytest.param("ES256", "P-256", 32, id="ES256"),
        pytest.param("EdDSA", "Ed25519", 32, id="EdDSA"),
    ],
)
def test_curve_coordinates_are_full_length(
    keys_by_alg: dict[str, PrivateKey], alg: str, crv: str, coordinate_bytes: int
) -> None:
    # RFC 7518 §6.2.1.2: x and y are the full coordinate length, even with leading zero bytes.
    jwk = public_jwk(keys_by_alg[alg].public_key())
    assert jwk["crv"] == crv
    for member in ("x", "y"):
        if member in jwk:
            assert len(base64.urlsafe_b64decode(jwk[member] + "=")) == coordinate_bytes
