"""A JWK Set document (RFC 7517 §5) read into verification keys: size-capped, asymmetric public
signing keys only, a duplicated kid dropped as ambiguous. jwks.py fetches and caches the sets;
this module only reads them.
"""

from collections import Counter
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from sekisho.verify.fetcher import FetchError

MAX_KEYS = 64
_ASYMMETRIC_KTYS = frozenset({"RSA", "EC", "OKP"})


@dataclass(frozen=True, slots=True)
class PublicJwk:
    """A verification key from an IdP's JWKS."""

    kid: str
    kty: str
    alg: str  # "" when the JWK does not pin one
    key: Any
    jwk: Any = None  # the PyJWK it was parsed from (what sekisho.verify's KeySource answers)


def parse_jwks(document: Any) -> dict[str, PublicJwk]:
    """Usable signing keys by kid; keys with a duplicated kid are dropped as ambiguous.

    Raises: FetchError when the document is not a JWK Set.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise FetchError("JWKS document has no 'keys' list")
    raw_keys = [k for k in document["keys"][: MAX_KEYS + 1] if isinstance(k, dict)]
    if len(raw_keys) > MAX_KEYS:
        raise FetchError(f"JWKS document holds more than {MAX_KEYS} keys")
    # A JWK without "kid" is keyed as "" (see _parse_key), so count it the same way. Non-string
    # kids (found by tests/fuzz: a list kid is unhashable) are dropped by _parse_key anyway.
    kids = (k.get("kid", "") for k in raw_keys)
    counts = Counter(kid for kid in kids if isinstance(kid, str))
    keys: dict[str, PublicJwk] = {}
    for raw in raw_keys:
        parsed = _parse_key(raw)
        if parsed is not None and counts[parsed.kid] == 1:
            keys[parsed.kid] = parsed
    return keys


def _parse_key(raw: dict[str, Any]) -> PublicJwk | None:
    kid = raw.get("kid", "")
    if not isinstance(kid, str) or raw.get("use", "sig") != "sig" or "d" in raw:
        return None
    # Only asymmetric keys verify IdP tokens; an `oct` key in a public JWKS is a published secret
    # (HMAC key confusion bait), dropped here as well as refused by the alg allow-list.
    if not isinstance(raw.get("kty"), str) or raw["kty"] not in _ASYMMETRIC_KTYS:
        return None
    try:
        jwk = PyJWK(raw)
    # One bad key must not sink the whole set: PyJWTError covers PyJWKError and InvalidKeyError
    # (malformed or unsupported key), NotImplementedError comes from a JWK with alg "none".
    except (PyJWTError, ValueError, TypeError, KeyError, NotImplementedError):
        return None
    alg = raw.get("alg", "")
    return PublicJwk(
        kid=kid,
        kty=str(raw.get("kty")),
        alg=alg if isinstance(alg, str) else "",
        key=jwk.key,
        jwk=jwk,
    )


def jwks_from_json(document: str | dict[str, Any]) -> dict[str, jwt.PyJWK]:
    """Keys of an inline JWK Set, by kid (for keys configured rather than fetched)."""
    key_set = (
        jwt.PyJWKSet.from_json(document)
        if isinstance(document, str)
        else jwt.PyJWKSet.from_dict(document)
    )
    return {key.key_id: key for key in key_set.keys if key.key_id}
