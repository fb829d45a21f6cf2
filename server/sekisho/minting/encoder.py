"""JWS compact encoding through a Signer, and the self-check every minted token passes.

The compact serialisation (RFC 7515 §7.1) is assembled here so the signature can be awaited:
a KMS-backed Signer makes a network call, a local one returns at once. Header members are
sorted and JSON is compact, byte for byte what PyJWT produced before signing became async.
"""

import base64
import json
from typing import Any

from jwt.algorithms import get_default_algorithms

from sekisho.errors import InvalidTokenError
from sekisho.jose import parse_compact
from sekisho.signing.signer import Signer


class SelfVerificationError(Exception):
    """A token just minted did not verify against the published public key."""


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class JwsEncoder:
    """Encodes claims as a compact JWS and checks the result before it leaves."""

    def __init__(self) -> None:
        self._verifiers = get_default_algorithms()

    async def encode(self, claims: dict[str, Any], signer: Signer, typ: str) -> str:
        """Sign `claims` with `signer`, header `{alg, kid, typ}`.

        Raises:
            SelfVerificationError: the result does not verify (never returned to callers).
            TemporarilyUnavailableError, ServerError: the Signer's backend failed.
        """
        header = {"alg": signer.alg, "kid": signer.kid, "typ": typ}
        signing_input = _b64url(_json(header)) + b"." + _b64url(_json(claims))
        signature = await signer.sign(signing_input)
        token = (signing_input + b"." + _b64url(signature)).decode("ascii")
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
