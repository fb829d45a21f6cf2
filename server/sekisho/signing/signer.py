"""The Signer role: produce a JWS signature for a signing input with one key.

Backends differ only here (a local key object, or a KMS call); claim building and JWS encoding
stay the same for all of them. `sign` is awaitable so a backend that makes a network call (KMS)
never blocks the event loop; a local signer computes in place, which costs microseconds.
"""

from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import Algorithm, get_default_algorithms

from sekisho.signing.der import ECDSA_SIZES, der_to_jose
from sekisho.signing.material import PrivateKey, PublicKey, public_jwk


class Signer(Protocol):
    """One signing key: its kid, JWS alg, public key and a sign operation."""

    @property
    def kid(self) -> str: ...

    @property
    def alg(self) -> str: ...

    @property
    def public_key(self) -> PublicKey: ...

    async def sign(self, signing_input: bytes) -> bytes:
        """Return the JWS signature (for ECDSA the R||S form of RFC 7518 §3.4).

        Raises: TemporarilyUnavailableError when the key backend cannot be reached in time,
        ServerError when it refuses for a reason retrying cannot fix.
        """
        ...


class LocalSigner:
    """Signs in-process with a private key object loaded once (never re-parsed per token)."""

    def __init__(self, kid: str, alg: str, private_key: PrivateKey) -> None:
        self._kid = kid
        self._alg = alg
        self._private_key = private_key
        self._public_key: PublicKey = private_key.public_key()
        self._algorithm: Algorithm = get_default_algorithms()[alg]
        # ES256 (the default) signs on every exchange: straight through cryptography with the
        # ECDSA parameters built once, where PyJWT's ECAlgorithm.sign builds them per call.
        self._ec_key = private_key if isinstance(private_key, ec.EllipticCurvePrivateKey) else None
        self._ecdsa = ec.ECDSA(hashes.SHA256())

    @property
    def kid(self) -> str:
        return self._kid

    @property
    def alg(self) -> str:
        return self._alg

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    async def sign(self, signing_input: bytes) -> bytes:
        return self.sign_now(signing_input)

    def sign_now(self, signing_input: bytes) -> bytes:
        """The same signature, synchronously (local keys need no I/O)."""
        if self._ec_key is not None and self._alg in ECDSA_SIZES:
            der = self._ec_key.sign(signing_input, self._ecdsa)
            return der_to_jose(der, ECDSA_SIZES[self._alg])
        return self._algorithm.sign(signing_input, self._private_key)


def published_jwk(signer: Signer) -> dict[str, Any]:
    """The JWK a downstream uses to verify tokens from `signer`."""
    jwk = public_jwk(signer.public_key)
    jwk.update({"kid": signer.kid, "alg": signer.alg, "use": "sig"})
    return jwk
