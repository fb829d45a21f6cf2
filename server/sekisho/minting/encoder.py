"""JWS compact encoding through a Signer, and the self-check every minted token passes.

PyJWT does the JOSE encoding; a delegating Algorithm hands the signing input to whichever Signer
backs the key (a local key object now, a KMS key later).
"""

import json
from typing import Any, cast

from jwt.algorithms import Algorithm, get_default_algorithms
from jwt.api_jws import PyJWS

from sekisho.constants import SIGNING_ALGORITHMS
from sekisho.errors import InvalidTokenError
from sekisho.jose import parse_compact
from sekisho.signing.signer import Signer


class _SignerAlgorithm(Algorithm):
    """Lets PyJWS sign with a Signer object instead of raw key material."""

    def prepare_key(self, key: Any) -> Any:
        return key

    def sign(self, msg: bytes, key: Any) -> bytes:
        signer: Signer = key
        return signer.sign(msg)

    def verify(self, msg: bytes, key: Any, sig: bytes) -> bool:
        raise NotImplementedError("verification uses the public key, see SelfVerificationError")

    @staticmethod
    def to_jwk(key_obj: Any, as_dict: bool = False) -> Any:
        raise NotImplementedError

    @staticmethod
    def from_jwk(jwk: Any) -> Any:
        raise NotImplementedError


class SelfVerificationError(Exception):
    """A token just minted did not verify against the published public key."""


class JwsEncoder:
    """Encodes claims as a compact JWS and checks the result before it leaves."""

    def __init__(self) -> None:
        self._jws = PyJWS(algorithms=[])
        for alg in SIGNING_ALGORITHMS:
            self._jws.register_algorithm(alg, _SignerAlgorithm())
        self._verifiers = get_default_algorithms()

    def encode(self, claims: dict[str, Any], signer: Signer, typ: str) -> str:
        """Sign `claims` with `signer`, header `{alg, kid, typ}`.

        Raises: SelfVerificationError when the result does not verify (never returned to callers).
        """
        payload = json.dumps(claims, separators=(",", ":")).encode()
        headers = {"kid": signer.kid, "typ": typ}
        token = self._jws.encode(payload, cast(Any, signer), algorithm=signer.alg, headers=headers)
        self._self_verify(token, signer, typ)
        return token

    def _self_verify(self, token: str, signer: Signer, typ: str) -> None:
        # SPIRE's habit: every credential is checked against the public key that verifiers use.
        try:
            parsed = parse_compact(token)
        except InvalidTokenError as exc:
            # e.g. a backend returning an empty signature: our fault, not the caller's token.
            raise SelfVerificationError(f"kid {signer.kid} produced an unparsable JWS") from exc
        header = parsed.header
        if (
            header.get("alg") != signer.alg
            or header.get("kid") != signer.kid
            or header.get("typ") != typ
        ):
            raise SelfVerificationError(f"header mismatch for kid {signer.kid}")
        algorithm = self._verifiers[signer.alg]
        if not algorithm.verify(parsed.signing_input, signer.public_key, parsed.signature):
            raise SelfVerificationError(f"signature by kid {signer.kid} does not verify")
