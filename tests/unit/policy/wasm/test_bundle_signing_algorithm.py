"""Which algorithm a policy bundle is signed and verified with when none is named: the one the
key's type implies, on both sides (`sekisho policy build --signing-key` and a replica's
`[policy] bundle_verification_key`), so the CI example's EC P-256 key works with no
`--signing-alg` and no `bundle_verification_alg`. A named algorithm the key cannot use is
refused naming the one that fits; a key whose type implies none (an HMAC secret) needs one."""

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from sekisho.errors import PolicyLoadError
from sekisho.policy.wasm.signing import BundleVerifier, signing_algorithm

KEYS = {
    "ec-p256": (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
    "ec-p384": (lambda: ec.generate_private_key(ec.SECP384R1()), "ES384"),
    "ec-p521": (lambda: ec.generate_private_key(ec.SECP521R1()), "ES512"),
    "rsa": (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
    "ed25519": (ed25519.Ed25519PrivateKey.generate, "EdDSA"),
}


def write_pair(folder: Path, kind: str) -> tuple[Path, Path]:
    key = KEYS[kind][0]()
    private, public = folder / "signing.pem", folder / "signing.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_build_and_replica_both_take_the_algorithm_from_the_key(kind: str, tmp_path: Path) -> None:
    private, public = write_pair(tmp_path, kind)
    expected = KEYS[kind][1]
    assert signing_algorithm(private, None) == expected
    assert BundleVerifier.from_file(public, None).algorithm == expected


def test_a_named_algorithm_is_kept_when_the_key_can_sign_it(tmp_path: Path) -> None:
    private, _ = write_pair(tmp_path, "rsa")
    assert signing_algorithm(private, "PS256") == "PS256"


def test_a_named_algorithm_the_key_cannot_sign_is_refused_naming_the_one_that_fits(
    tmp_path: Path,
) -> None:
    private, _ = write_pair(tmp_path, "ec-p256")
    with pytest.raises(PolicyLoadError, match="cannot sign RS256: pass --signing-alg ES256"):
        signing_algorithm(private, "RS256")


def test_an_hmac_secret_needs_a_named_algorithm(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("a-long-shared-secret-for-hs256-signatures")
    with pytest.raises(PolicyLoadError, match="pass --signing-alg"):
        signing_algorithm(secret, None)
    assert signing_algorithm(secret, "HS256") == "HS256"
    with pytest.raises(PolicyLoadError, match="set \\[policy\\] bundle_verification_alg"):
        BundleVerifier.from_file(secret, None)
    assert BundleVerifier.from_file(secret, "HS256").algorithm == "HS256"


def test_a_named_verification_algorithm_the_key_does_not_fit_still_stops_the_start(
    tmp_path: Path,
) -> None:
    _, public = write_pair(tmp_path, "ec-p256")
    with pytest.raises(PolicyLoadError, match="is not a RS256 key"):
        BundleVerifier.from_file(public, "RS256")


def test_the_public_key_given_to_the_build_is_refused_as_the_wrong_half_of_the_pair(
    tmp_path: Path,
) -> None:
    # Walkthrough: the public key given as --signing-key was answered "an HMAC secret?: pass
    # --signing-alg (HS256 …)", and with HS256 the build signed with the PEM text as the secret
    # and said ok; no replica can load such a bundle (PyJWT refuses a PEM HMAC secret).
    _, public = write_pair(tmp_path, "ec-p256")
    for algorithm in (None, "HS256", "ES256"):
        with pytest.raises(PolicyLoadError, match="is a public key: sign with the private key"):
            signing_algorithm(public, algorithm)


def test_a_private_key_cannot_sign_an_hmac_bundle(tmp_path: Path) -> None:
    private, _ = write_pair(tmp_path, "ec-p256")
    with pytest.raises(PolicyLoadError, match="cannot sign HS256: pass --signing-alg ES256"):
        signing_algorithm(private, "HS256")


@pytest.mark.parametrize("algorithm", [None, "ES256", "HS256"])
def test_a_replica_given_the_private_key_refuses_to_start(
    tmp_path: Path, algorithm: str | None
) -> None:
    private, _ = write_pair(tmp_path, "ec-p256")
    with pytest.raises(PolicyLoadError, match="is a private key: give replicas its public key"):
        BundleVerifier.from_file(private, algorithm)


# `head -c 32 /dev/urandom`, fixed: starts with bytes that are never UTF-8.
BINARY_SECRET = b"\xff\xfe\x80" + bytes(range(29))


def test_a_binary_hmac_secret_is_refused_naming_the_option_it_was_given_as(
    tmp_path: Path,
) -> None:
    # It was refused as "bundle verification key …: 'utf-8' codec can't decode …" even when
    # given to `policy build --signing-key`, and only after opa had signed with it.
    secret = tmp_path / "secret"
    secret.write_bytes(BINARY_SECRET)
    with pytest.raises(PolicyLoadError) as refused:
        signing_algorithm(secret, "HS256")
    said = str(refused.value)
    assert said.startswith(f"signing key {secret} is not text: an HMAC secret must be UTF-8")
    assert "openssl rand -base64 32" in said


@pytest.mark.parametrize(
    ("given_as", "expected"),
    [
        pytest.param({}, "[policy] bundle_verification_key", id="replica"),
        pytest.param({"given_as": "signing key"}, "signing key", id="build"),
    ],
)
def test_a_binary_hmac_secret_stops_the_start_naming_the_setting(
    tmp_path: Path, given_as: dict[str, str], expected: str
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(BINARY_SECRET)
    with pytest.raises(PolicyLoadError) as refused:
        BundleVerifier.from_file(secret, "HS256", **given_as)
    said = str(refused.value)
    assert said.startswith(f"{expected} {secret} is not text: an HMAC secret must be UTF-8")
    assert "openssl rand -base64 32" in said
