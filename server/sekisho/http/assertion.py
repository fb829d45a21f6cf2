"""private_key_jwt client assertions (RFC 7523 §2.2 and §3), parsed as strictly as subject tokens.

The same strict JOSE layer as inbound IdP tokens (jose.py): three-part compact JWS, canonical
base64url, no duplicate JSON members, no NaN/Infinity, no `crit`/`b64`/`zip`/`enc`; `alg` from the
asymmetric allow-list and matching the registered key's type; then one rule per claim, each
ill-typed value (an `exp` that is a string, NaN or a list) an `invalid_client`, never a crash.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import get_default_algorithms

from sekisho.codepoints import free_text
from sekisho.constants import ASYMMETRIC_ALGORITHMS
from sekisho.errors import InvalidClientError, InvalidTokenError
from sekisho.identity.claims import audiences_of, validate_times
from sekisho.jose import FORBIDDEN_HEADERS, KTY_FOR_ALG, CompactJws, parse_compact

MAX_ASSERTION_LIFETIME_SECONDS = 300
INVALID = "client authentication failed"
_ALGORITHMS = get_default_algorithms()


def _reject(detail: str) -> InvalidClientError:
    return InvalidClientError(INVALID, log_detail=f"client assertion: {detail}")


@dataclass(frozen=True, slots=True)
class AssertionClaims:
    """The checked claims of a client assertion."""

    client_id: str
    jti: str
    expires_at: int


def parse_assertion(assertion: str) -> tuple[CompactJws, str]:
    """The decoded assertion and the client it names (`sub`). Raises: InvalidClientError."""
    try:
        jws = parse_compact(assertion)
    except InvalidTokenError as exc:
        raise _reject(exc.log_detail) from exc
    sub = jws.claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise _reject("sub is missing or not a string")
    return jws, sub


def verify_signature(jws: CompactJws, keys: Mapping[str, jwt.PyJWK]) -> None:
    """Header rules, key by kid, alg ↔ key type, signature. Raises: InvalidClientError."""
    header = jws.header
    if any(name in header for name in FORBIDDEN_HEADERS):
        raise _reject("a header parameter that changes processing is present")
    kid, alg = header.get("kid", ""), header.get("alg")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise _reject("unknown kid")
    if not isinstance(alg, str) or alg not in ASYMMETRIC_ALGORITHMS:
        raise _reject("alg is not allowed")
    declared = getattr(key, "_jwk_data", {}).get("alg")  # PyJWK infers one when absent
    if KTY_FOR_ALG.get(alg) != key.key_type or declared not in (None, alg):
        raise _reject("alg does not match the key type")
    try:
        valid = _ALGORITHMS[alg].verify(jws.signing_input, key.key, jws.signature)
    except (ValueError, TypeError) as exc:
        raise _reject("signature verification error") from exc
    if not valid:
        raise _reject("bad signature")


def check_claims(
    claims: Mapping[str, Any],
    client_id: str,
    audiences: frozenset[str],
    now: float,
    leeway: int,
) -> AssertionClaims:
    """RFC 7523 §3: iss = sub = client, aud names us, exp bounded, jti present.

    Raises: InvalidClientError.
    """
    if claims.get("iss") != client_id:
        raise _reject("iss is not the client")
    try:
        if not set(audiences_of(claims)) & audiences:
            raise _reject("aud does not name this token endpoint")
        # The inbound tokens' rule (exp, nbf, iat with the leeway), not a second one.
        exp = validate_times(claims, now, leeway)
    except InvalidTokenError as exc:
        raise _reject(exc.log_detail) from exc
    # RFC 7523 §3 lets us bound how far ahead exp is: a long-lived assertion is a bearer password.
    if exp - now > MAX_ASSERTION_LIFETIME_SECONDS + leeway:
        raise _reject("lives too long")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise _reject("jti is missing or not a string")
    # One meaning per string (codepoints.py): a lone surrogate cannot be encoded for the replay
    # cache's key (an untyped UnicodeEncodeError, a 500), and controls have no place in an id.
    if not free_text(jti):
        raise _reject("jti holds control or surrogate code points")
    return AssertionClaims(client_id=client_id, jti=jti, expires_at=exp)
