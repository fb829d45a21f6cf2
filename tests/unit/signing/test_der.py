"""DER → JWS R||S for ECDSA (what KMS returns → what ES256 needs, RFC 7518 §3.4).

Fixed vectors: RFC 6979 §A.2.5 (P-256, SHA-256, "sample": both r and s have the high bit set,
so each DER INTEGER is 33 bytes with a leading 0x00), and deterministic signatures by the same
key chosen for the awkward encodings (an integer shorter than 32 bytes; a 0x00 pad in front of
a high bit on a short integer). Then a cross-check over random signatures from cryptography.
"""

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from jwt.algorithms import ECAlgorithm
from sekisho.signing.der import SignatureFormatError, der_to_jose

# RFC 6979 §A.2.5 private key; its public key is Ux, Uy of the same section.
RFC6979_KEY = ec.derive_private_key(
    int("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721", 16), ec.SECP256R1()
)

VECTORS = [
    pytest.param(
        b"sample",
        "3046022100efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716"
        "022100f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8",
        "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716"
        "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8",
        id="rfc6979-sample-both-33-byte-integers",
    ),
    pytest.param(
        b"sekisho-191",
        "3044021f00dcc98ba19197ab0c770aa12e0cac78fab80567a4275abad242e5c130c334"
        "022100b4f90d7d1e7fca0f0d562a02db5df008672919e0c36f7df006d923455e6d6430",
        "0000dcc98ba19197ab0c770aa12e0cac78fab80567a4275abad242e5c130c334"
        "b4f90d7d1e7fca0f0d562a02db5df008672919e0c36f7df006d923455e6d6430",
        id="r-is-30-bytes-31-byte-integer",
    ),
    pytest.param(
        b"sekisho-7",
        "304402206a0405710f7d28ae80beaddc083eb043b41703f24cfd326afdc8a842c338967f"
        "022000850c7c7263c29083419f092d4a74d391b9c22ba67c8d61881d8216ca02b4d7",
        "6a0405710f7d28ae80beaddc083eb043b41703f24cfd326afdc8a842c338967f"
        "00850c7c7263c29083419f092d4a74d391b9c22ba67c8d61881d8216ca02b4d7",
        id="s-is-31-bytes-with-a-sign-pad",
    ),
    pytest.param(
        b"sekisho-8",
        "304502202db599a6b5d1df4c17da3aea2657b2ac0c09753d3fa2cf9df387cabf4c4fff3d"
        "0221009e607091bcb8357190b16fa0392d091c5e6146b45a3f755b138adbced9ca0873",
        "2db599a6b5d1df4c17da3aea2657b2ac0c09753d3fa2cf9df387cabf4c4fff3d"
        "9e607091bcb8357190b16fa0392d091c5e6146b45a3f755b138adbced9ca0873",
        id="r-32-bytes-s-33-byte-integer",
    ),
]


def _verifies(message: bytes, jose: bytes) -> bool:
    return ECAlgorithm(ECAlgorithm.SHA256).verify(message, RFC6979_KEY.public_key(), jose)


@pytest.mark.parametrize(("message", "der_hex", "jose_hex"), VECTORS)
def test_fixed_vectors_convert_and_verify(message: bytes, der_hex: str, jose_hex: str) -> None:
    jose = der_to_jose(bytes.fromhex(der_hex), 32)
    assert jose.hex() == jose_hex
    assert _verifies(message, jose)


@pytest.mark.parametrize(("message", "der_hex", "jose_hex"), VECTORS)
def test_fixed_vectors_are_what_rfc6979_signing_produces(
    message: bytes, der_hex: str, jose_hex: str
) -> None:
    # Cross-check the vectors themselves: deterministic ECDSA by the RFC 6979 key gives this DER.
    der = RFC6979_KEY.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    assert der.hex() == der_hex


def test_naive_copy_of_der_integers_would_break_the_fixed_vectors() -> None:
    # The defence under test: stripping DER framing without re-padding gives 65 or 63 bytes.
    r, s = utils.decode_dss_signature(bytes.fromhex(VECTORS[0].values[1]))  # type: ignore[arg-type]
    naive = r.to_bytes(33, "big") + s.to_bytes(33, "big")
    assert not _verifies(b"sample", naive[:64])


def test_random_signatures_round_trip_through_pyjwt() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = jwt.PyJWK(ECAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"alg": "ES256"})
    lengths = set()
    for i in range(300):
        message = f"header.payload-{i}".encode()
        der = key.sign(message, ec.ECDSA(hashes.SHA256()))
        lengths.add(len(der))
        jose = der_to_jose(der, 32)
        assert len(jose) == 64
        assert jwk.Algorithm.verify(message, jwk.key, jose)
    assert {70, 71, 72} <= lengths  # 32/33-byte integer mixes all occurred


@pytest.mark.parametrize(
    "der",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x30\x00", id="empty-sequence"),
        pytest.param(bytes(64), id="raw-r-s-not-der"),
        pytest.param(bytes.fromhex(VECTORS[0].values[1]) + b"\x00", id="trailing-byte"),  # type: ignore[operator]
        pytest.param(utils.encode_dss_signature(1 << 256, 1), id="r-too-large"),
        pytest.param(utils.encode_dss_signature(1, 1 << 256), id="s-too-large"),
        pytest.param(utils.encode_dss_signature(0, 1), id="r-zero"),
    ],
)
def test_malformed_signatures_are_refused(der: bytes) -> None:
    with pytest.raises(SignatureFormatError):
        der_to_jose(der, 32)
