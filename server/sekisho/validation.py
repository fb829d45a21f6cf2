"""Request validation shared by every transport (gRPC, HTTP form, ext_authz): defaults per
ARCHITECTURE.md §3, RFC 8693 §2.1 parameter rules, RFC 6749 §3.3 scope syntax, RFC 8707 resources.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sekisho.constants import (
    SUPPORTED_ACTOR_TOKEN_TYPES,
    SUPPORTED_REQUESTED_TOKEN_TYPES,
    SUPPORTED_SUBJECT_TOKEN_TYPES,
    TOKEN_TYPE_ID_JAG,
    TOKEN_TYPE_ID_TOKEN,
)
from sekisho.errors import InvalidRequestError
from sekisho.models import Caller, ExchangeRequest

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """Bounds on request fields; each violation names the limit."""

    max_scopes: int = 64
    max_resources: int = 16
    max_value_length: int = 1024
    max_lifetime_seconds: int = 86400


def is_scope_token(value: str) -> bool:
    return _SCOPE_TOKEN.fullmatch(value) is not None


def _is_absolute_uri(value: str) -> bool:
    parts = urlsplit(value)
    return bool(parts.scheme) and "#" not in value and (bool(parts.netloc) or ":" in value)


def _check_list(name: str, values: Sequence[str], limit: int, limits: RequestLimits) -> None:
    if len(values) > limit:
        raise InvalidRequestError(f"too many {name} values (limit {limit})")
    if any(len(v) > limits.max_value_length for v in values):
        raise InvalidRequestError(f"a {name} value exceeds {limits.max_value_length} characters")
    if len(set(values)) != len(values):
        raise InvalidRequestError(f"duplicate {name} values")


def build_request(
    *,
    subject_token: str,
    subject_token_type: str,
    requested_token_type: str,
    audience: str,
    resources: Sequence[str],
    scopes: Sequence[str],
    actor_token: str,
    actor_token_type: str,
    context: Mapping[str, Any],
    requested_lifetime_seconds: int,
    caller: Caller,
    limits: RequestLimits,
) -> ExchangeRequest:
    """Apply defaults and validate. Raises: InvalidRequestError naming the bad parameter."""
    subject_token_type = subject_token_type or TOKEN_TYPE_ID_TOKEN
    requested_token_type = requested_token_type or TOKEN_TYPE_ID_JAG
    if not subject_token:
        raise InvalidRequestError("subject_token is required")
    if subject_token_type not in SUPPORTED_SUBJECT_TOKEN_TYPES:
        raise InvalidRequestError("unsupported subject_token_type")
    if requested_token_type not in SUPPORTED_REQUESTED_TOKEN_TYPES:
        raise InvalidRequestError("unsupported requested_token_type")
    if not audience:
        raise InvalidRequestError("audience is required")
    if len(audience) > limits.max_value_length:
        raise InvalidRequestError(f"audience exceeds {limits.max_value_length} characters")
    if bool(actor_token) != bool(actor_token_type):
        raise InvalidRequestError("actor_token and actor_token_type go together")
    if actor_token_type and actor_token_type not in SUPPORTED_ACTOR_TOKEN_TYPES:
        raise InvalidRequestError("unsupported actor_token_type")
    _check_list("scope", scopes, limits.max_scopes, limits)
    if not all(is_scope_token(s) for s in scopes):
        raise InvalidRequestError(
            "scope values must be RFC 6749 scope tokens (no spaces or controls)"
        )
    _check_list("resource", resources, limits.max_resources, limits)
    if not all(_is_absolute_uri(r) for r in resources):
        raise InvalidRequestError("resource values must be absolute URIs without a fragment")
    if not 0 <= requested_lifetime_seconds <= limits.max_lifetime_seconds:
        raise InvalidRequestError("requested_lifetime_seconds is out of range")
    return ExchangeRequest(
        subject_token=subject_token,
        subject_token_type=subject_token_type,
        requested_token_type=requested_token_type,
        audience=audience,
        resources=tuple(resources),
        scopes=tuple(scopes),
        actor_token=actor_token,
        actor_token_type=actor_token_type,
        context=dict(context),
        requested_lifetime_seconds=requested_lifetime_seconds,
        caller=caller,
    )
