"""Strict parsing of a compact JWS (RFC 7515 §7.1), shared by inbound verification and self-checks.

Only the three-part compact form is accepted: JWE (five parts), unsecured JWTs and nested JWTs
never reach signature verification. JSON with duplicate member names is rejected (RFC 7515 §5.2
lets a parser either reject or take the last; two parsers disagreeing is an attack surface).
"""

import binascii
import json
import math
from dataclasses import dataclass
from typing import Any

from sekisho.errors import AlgorithmNotAllowedError, MalformedTokenError

# JWS alg → the JWK key type it needs (RFC 7518 §3.1, RFC 8037 §3.1).
KTY_FOR_ALG = {
    **{alg: "RSA" for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    **{alg: "EC" for alg in ("ES256", "ES384", "ES512")},
    "EdDSA": "OKP",
}
# Header parameters whose semantics would change how the token is processed: refused outright.
FORBIDDEN_HEADERS = ("crit", "b64", "zip", "enc")

_B64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
# The last character of a canonical segment, by segment length mod 4 (RFC 4648 §3.5): with 2
# or 3 characters left over it carries 4 or 2 unused bits, which must be zero (its 6-bit value
# a multiple of 16 or 4); with 0 left over every bit is data. (1 left over does not decode.)
_CANONICAL_LAST = {2: frozenset(b"AQgw"), 3: frozenset(b"AEIMQUYcgkosw048")}


@dataclass(frozen=True, slots=True)
class CompactJws:
    """The decoded parts of a compact JWS whose signature is not yet checked."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes
    # The JSON text `claims` was parsed from: a rule about every string of the claims can
    # often be settled on the text at once (identity/claims.validate_strings).
    claims_text: str = ""


def b64url_decode(segment: str) -> bytes:
    """Decode unpadded base64url. Raises: MalformedTokenError on any other alphabet."""
    raw = segment.encode("ascii", errors="replace")
    if raw.translate(None, _B64URL):  # what is left after deleting the alphabet: foreign bytes
        raise MalformedTokenError(log_detail="segment is not base64url")
    try:
        standard = raw.translate(_TO_STANDARD) + b"=" * (-len(raw) % 4)
        decoded = binascii.a2b_base64(standard, strict_mode=True)
    except binascii.Error as exc:
        raise MalformedTokenError(log_detail="segment is not base64url") from exc
    # RFC 4648 §3.5 canonical encoding only: the decoder ignores a last character's unused bits,
    # so up to 16 spellings of one token would all verify, defeating anything keyed by the
    # token string (replay and verification caches, log correlation). Every other character
    # maps to its 6 bits one to one, so the last one decides (what re-encoding would compare).
    last = _CANONICAL_LAST.get(len(raw) % 4)
    if last is not None and raw[-1] not in last:
        raise MalformedTokenError(log_detail="segment is not canonical base64url")
    return decoded


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):  # a name given twice; find it for the log
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise MalformedTokenError(log_detail=f"duplicate JSON member {key!r}")
            seen.add(key)
    return result


def _no_constants(name: str) -> Any:
    # NaN, Infinity and -Infinity are not JSON (RFC 8259 §6); Python's parser accepts them.
    raise MalformedTokenError(log_detail=f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    # A JSON number past a double's range (1e400, -1e400) is valid JSON that Python reads as
    # an infinity, the value the NaN/Infinity literals are refused for: the policy input then
    # carried `Infinity`, which OPA's REST API refuses as malformed (HTTP 400, so every such
    # exchange was UNAVAILABLE, a retry prompt) while the Wasm engine denied it. One token,
    # two answers: refused here instead (RFC 7493 §2.2 advises against such numbers).
    value = float(text)
    if not math.isfinite(value):
        raise MalformedTokenError(log_detail="a number is beyond the range of a double")
    return value


# Built once: json.loads with hooks constructs a decoder and its C scanner on every call (two
# or three per exchange). The decoder keeps no state between calls.
_DECODE = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_constant=_no_constants, parse_float=_finite_float
).decode


def json_object(segment: str) -> dict[str, Any]:
    """A base64url segment holding a UTF-8 JSON object. Raises: MalformedTokenError."""
    return _json_object_and_text(segment)[0]


def _json_object_and_text(segment: str) -> tuple[dict[str, Any], str]:
    try:
        text = b64url_decode(segment).decode("utf-8")
        value = _DECODE(text)  # refuses a leading BOM as json.loads does (a ValueError too)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedTokenError(log_detail="segment is not UTF-8 JSON") from exc
    if not isinstance(value, dict):
        raise MalformedTokenError(log_detail="segment is not a JSON object")
    return value, text


def parse_compact(token: str) -> CompactJws:
    """Split and decode a compact JWS.

    Raises: MalformedTokenError, AlgorithmNotAllowedError (unsigned).
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedTokenError(
            log_detail=f"token has {len(parts)} parts; only compact JWS (3) is accepted"
        )
    header = json_object(parts[0])
    claims, claims_text = _json_object_and_text(parts[1])
    signature = b64url_decode(parts[2])
    if not signature:
        raise AlgorithmNotAllowedError(log_detail="token is unsigned")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    return CompactJws(
        header=header,
        claims=claims,
        signing_input=signing_input,
        signature=signature,
        claims_text=claims_text,
    )
