"""Private key material: generation, PEM (de)serialisation, public JWK and RFC 7638 thumbprint."""

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from sekisho.errors import KeyStoreError

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

# RFC 7638 §3.2: the required members of each key type, in lexicographic order.
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}


def generate_private_key(alg: str) -> PrivateKey:
    """A fresh key for `alg` (ES256 → P-256, PS256/RS256 → RSA-3072, EdDSA → Ed25519)."""
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg in {"PS256", "RS256"}:
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise KeyStoreError(f"unsupported signing algorithm {alg!r}")


def private_key_to_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def private_key_from_pem(pem: bytes, alg: str, password: bytes | None = None) -> PrivateKey:
    """Raises: KeyStoreError when the PEM is unreadable or does not fit `alg`."""
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except (ValueError, TypeError) as exc:
        kind = "encrypted" if password else "unencrypted"
        raise KeyStoreError(f"private key file is not a readable {kind} PKCS#8 PEM") from exc
    return _checked(key, alg)


def private_key_to_der(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def private_key_from_der(der: bytes, alg: str) -> PrivateKey:
    """Raises: KeyStoreError when the DER is unreadable or does not fit `alg`."""
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyStoreError("private key is not a readable PKCS#8 DER structure") from exc
    return _checked(key, alg)


def public_key_from_der(der: bytes, alg: str) -> PublicKey:
    """A SubjectPublicKeyInfo (what KMS GetPublicKey returns). Raises: KeyStoreError."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError) as exc:
        raise KeyStoreError("public key is not a readable SubjectPublicKeyInfo") from exc
    if not _fits_public(key, alg):
        raise KeyStoreError(f"public key type does not match algorithm {alg}")
    return key  # type: ignore[return-value]


def _checked(key: object, alg: str) -> PrivateKey:
    if not _fits(key, alg):
        raise KeyStoreError(f"private key type does not match algorithm {alg}")
    return key  # type: ignore[return-value]


def _fits(key: object, alg: str) -> bool:
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        return _fits_public(key.public_key(), alg)
    return False


def _fits_public(key: object, alg: str) -> bool:
    if alg == "ES256":
        return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    if alg in {"PS256", "RS256"}:
        return isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048
    return alg == "EdDSA" and isinstance(key, ed25519.Ed25519PublicKey)


def public_jwk(public_key: PublicKey) -> dict[str, Any]:
    """The public JWK members (kty, crv/x/y or n/e) of `public_key`."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return ECAlgorithm.to_jwk(public_key, as_dict=True)
    if isinstance(public_key, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
        # PyJWT adds key_ops; published JWKs carry `use: sig`, and RFC 7517 §4.3 says the two
        # SHOULD NOT appear together. Keep only the key's own members, as for EC and OKP.
        jwk.pop("key_ops", None)
        return jwk
    return OKPAlgorithm.to_jwk(public_key, as_dict=True)


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): a stable kid derived from the key itself."""
    members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    digest = hashlib.sha256(canonical).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
