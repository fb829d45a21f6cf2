"""Hand-built compact JWS for attack tests: any header, any payload bytes, any signing key.

`TestIdp.token` goes through PyJWT, which refuses to build most hostile tokens (HS256 with a PEM
secret, duplicate JSON members, non-UTF-8 payloads). These helpers sign exactly the bytes a test
asks for, so the only thing wrong with a token is the thing the test is about.
"""

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

from jwt.algorithms import get_default_algorithms


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def encode_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def signing_input(header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes) -> str:
    """`b64url(header).b64url(payload)`; bytes are taken verbatim, dicts are JSON-encoded."""
    raw_header = header if isinstance(header, bytes) else encode_json(header)
    raw_payload = payload if isinstance(payload, bytes) else encode_json(payload)
    return f"{b64url(raw_header)}.{b64url(raw_payload)}"


def sign_with_key(
    header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes, key: Any, alg: str
) -> str:
    """A compact JWS signed with an asymmetric private key under `alg` (RS*/PS*/ES*)."""
    message = signing_input(header, payload)
    signature = get_default_algorithms()[alg].sign(message.encode("ascii"), key)
    return f"{message}.{b64url(signature)}"


def sign_with(
    header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes]
) -> str:
    """A compact JWS signed by any `sign(signing_input) -> signature` callable (e.g. a Signer)."""
    message = signing_input(header, payload)
    return f"{message}.{b64url(sign(message.encode('ascii')))}"


def sign_hs256(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """A compact JWS MACed with HS256 under `secret` (for the RSA/HMAC key confusion attack)."""
    message = signing_input(header, payload)
    mac = hmac.new(secret, message.encode("ascii"), hashlib.sha256).digest()
    return f"{message}.{b64url(mac)}"


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A token with an arbitrary (possibly empty) signature segment."""
    return f"{signing_input(header, payload)}.{b64url(signature)}"
