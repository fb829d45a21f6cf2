"""JWS compact encoding through a Signer, and the self-check every minted token passes.

The compact serialisation (RFC 7515 §7.1) is assembled here so the signature can be awaited:
a KMS-backed Signer makes a network call, a local one returns at once. Header members are
sorted and JSON is compact, byte for byte what PyJWT produced before signing became async.
"""

import binascii
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwt.algorithms import get_default_algorithms

from sekisho.jsontext import json_encoder
from sekisho.lru import LruMap
from sekisho.signing.der import ECDSA_SIZES
from sekisho.signing.signer import Signer


class SelfVerificationError(Exception):
    """A token just minted did not verify against the published public key."""


_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64url(data: bytes) -> bytes:
    # base64.urlsafe_b64encode(data).rstrip(b"="), without its two Python-level calls.
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=")


# Same output as json.dumps(value, separators=(",", ":")), built once (jsontext.py). Claims are
# built per token from parsed JSON (policy/decision.py, the verified subject).
_COMPACT = json_encoder()


def _json(value: dict[str, Any]) -> bytes:
    return _COMPACT(value).encode()


# Encoded headers kept per (alg, kid, typ): a handful of keys and two profiles at a time.
_MAX_HEADERS = 32


class JwsEncoder:
    """Encodes claims as a compact JWS and checks the result before it leaves."""

    def __init__(self) -> None:
        self._verifiers = get_default_algorithms()
        self._ecdsa = ec.ECDSA(hashes.SHA256())
        # The header segment depends only on the signer's alg and kid and the profile's typ:
        # encoded once per combination, not per token.
        self._headers: LruMap[tuple[str, str, str], bytes] = LruMap(_MAX_HEADERS)

    async def encode(self, claims: dict[str, Any], signer: Signer, typ: str) -> str:
        """Sign `claims` with `signer`, header `{alg, kid, typ}`.

        Raises:
            SelfVerificationError: the result does not verify (never returned to callers).
            TemporarilyUnavailableError, ServerError: the Signer's backend failed.
        """
        signing_input = self._header(signer.alg, signer.kid, typ) + b"." + _b64url(_json(claims))
        signature = await signer.sign(signing_input)
        self._self_verify(signing_input, signature, signer)
        return (signing_input + b"." + _b64url(signature)).decode("ascii")

    def _header(self, alg: str, kid: str, typ: str) -> bytes:
        """The base64url header segment `{alg, kid, typ}` (members sorted, compact JSON)."""
        key = (alg, kid, typ)
        segment = self._headers.get(key)
        if segment is None:
            segment = _b64url(_json({"alg": alg, "kid": kid, "typ": typ}))
            self._headers.put(key, segment)
        return segment

    def _self_verify(self, signing_input: bytes, signature: bytes, signer: Signer) -> None:
        # SPIRE's habit: every credential is checked against the public key that verifiers use.
        # This catches a backend returning a wrong, truncated or faulty signature (a fault
        # during RSA-CRT signing leaks the key if the signature is released: Boneh-DeMillo-
        # Lipton). The header and payload were just assembled here from the signer's own alg/kid,
        # so re-parsing them would check nothing the encoder's tests do not (~25 µs saved).
        # ES256 (the default) is checked through cryptography directly: the same ECDSA
        # verification PyJWT's ECAlgorithm.verify makes, without rebuilding its parameters.
        key = signer.public_key
        try:
            if isinstance(key, ec.EllipticCurvePublicKey) and signer.alg in ECDSA_SIZES:
                valid = self._verify_ecdsa(signing_input, key, signature, ECDSA_SIZES[signer.alg])
            else:
                valid = self._verifiers[signer.alg].verify(signing_input, key, signature)
        except (ValueError, TypeError) as exc:
            raise SelfVerificationError(f"kid {signer.kid} produced an unusable signature") from exc
        if not valid:
            raise SelfVerificationError(f"signature by kid {signer.kid} does not verify")

    def _verify_ecdsa(
        self, signing_input: bytes, key: ec.EllipticCurvePublicKey, signature: bytes, size: int
    ) -> bool:
        """R||S (RFC 7518 §3.4) checked against `key`; False for any other length."""
        if len(signature) != 2 * size:
            return False
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        try:
            key.verify(encode_dss_signature(r, s), signing_input, self._ecdsa)
        except InvalidSignature:
            return False
        return True
