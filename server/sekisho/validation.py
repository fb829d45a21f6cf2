"""Request validation shared by every transport (gRPC, HTTP form, ext_authz): defaults per
docs/architecture.md §3, RFC 8693 §2.1 parameter rules, RFC 6749 §3.3 scope syntax, RFC 8707
resources.
"""

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sekisho.codepoints import free_text, is_scope_token, numbers_in, strings_in, uri_text
from sekisho.constants import (
    SUPPORTED_ACTOR_TOKEN_TYPES,
    SUPPORTED_SUBJECT_TOKEN_TYPES,
    TOKEN_TYPE_ID_JAG,
    TOKEN_TYPE_ID_TOKEN,
)
from sekisho.errors import InvalidRequestError
from sekisho.models import Caller, ExchangeRequest
from sekisho.profiles import BY_TOKEN_TYPE

# The longest requested_lifetime_seconds accepted at all (a day); not a setting: policy and
# [tokens] max_lifetime_seconds cap the lifetime granted, this only refuses absurd requests.
MAX_REQUESTED_LIFETIME_SECONDS = 86400

# The `context` member only the ext_authz adapter (gateway/authorizer.py) may set: policy reads
# `request.context.gateway` as the entry point, so a direct caller must not be able to send it
# (red team session 20, finding 4).
GATEWAY_CONTEXT_MEMBER = "gateway"


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """Bounds on request fields ([limits] and trust.max_token_bytes); each refusal names its key.
    Built by protection.request_limits (defaults: config.LimitsConfig and TrustConfig)."""

    max_scopes: int
    max_resources: int
    max_value_length: int
    max_lifetime_seconds: int
    max_scope_length: int
    max_token_bytes: int
    max_context_depth: int
    max_context_keys: int
    max_context_bytes: int


def _is_absolute_uri(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. "http://[": an unbalanced IPv6 literal (found by hypothesis)
        return False
    return bool(parts.scheme) and "#" not in value and (bool(parts.netloc) or ":" in value)


def _check_list(
    name: str, values: Sequence[str], count: tuple[str, int], length: tuple[str, int]
) -> None:
    (count_key, max_count), (length_key, max_length) = count, length
    if len(values) > max_count:
        raise InvalidRequestError(f"too many {name} values (limits.{count_key} = {max_count})")
    if any(len(v) > max_length for v in values):
        raise InvalidRequestError(
            f"a {name} value exceeds limits.{length_key} ({max_length} characters)"
        )
    if len(set(values)) != len(values):
        raise InvalidRequestError(f"duplicate {name} values")


def _check_token_size(name: str, token: str, limits: RequestLimits) -> None:
    # Checked before any parsing: a huge token is refused at the cost of a length check.
    if len(token.encode()) > limits.max_token_bytes:
        raise InvalidRequestError(
            f"{name} exceeds trust.max_token_bytes ({limits.max_token_bytes} bytes)"
        )


def _context_shape(value: Any, depth: int, max_depth: int) -> tuple[int, int]:
    """(deepest nesting, number of keys) of a JSON value, not descending past `max_depth`."""
    if isinstance(value, Mapping):
        children, keys = list(value.values()), len(value)
    elif isinstance(value, list):
        children, keys = value, 0
    else:
        return depth - 1, 0
    if depth > max_depth:  # already too deep: stop, so a hostile nesting costs no more
        return depth, 0
    deepest = depth
    for child in children:
        child_depth, child_keys = _context_shape(child, depth + 1, max_depth)
        deepest, keys = max(deepest, child_depth), keys + child_keys
    return deepest, keys


# The most bytes a google.protobuf.Struct takes on the wire per byte of the JSON _check_context
# measures: a list of numbers, 11 bytes (tag, length, a double) per `0.0,` (2.75); anything else
# takes fewer (a string, list or object 4 per `"",`; a map entry with a number 15 + key per
# `"k":0.0,`; a longer length prefix adds at most 1 byte per 128).
MAX_STRUCT_WIRE_BYTES_PER_JSON_BYTE = 3


def check_context_wire_size(wire_bytes: int, limits: RequestLimits) -> None:
    """Refuse a gRPC `context` whose encoding is too big for its JSON to be within
    limits.max_context_bytes, before it is converted: json_format walks every value in Python
    (a 240 KB Struct of 60,000 booleans, under the message cap, took 67 ms of event-loop CPU
    before this limit refused it, ahead of the caller's rate limit).

    Raises: InvalidRequestError.
    """
    if wire_bytes > MAX_STRUCT_WIRE_BYTES_PER_JSON_BYTE * limits.max_context_bytes:
        raise context_too_big(limits)


def max_context_values(limits: RequestLimits) -> int:
    """The most values (at any depth) a context within limits.max_context_bytes can hold: JSON
    takes at least two bytes per value (the value, and a separator or its container's bracket),
    so a transport converting a context may stop past this many and refuse it as too big."""
    return limits.max_context_bytes // 2


def context_too_big(limits: RequestLimits) -> InvalidRequestError:
    return InvalidRequestError(
        f"context exceeds limits.max_context_bytes ({limits.max_context_bytes} bytes as JSON)"
    )


def _check_context(context: Mapping[str, Any], limits: RequestLimits, *, gateway: bool) -> None:
    if not gateway and GATEWAY_CONTEXT_MEMBER in context:
        raise InvalidRequestError(
            f"context member '{GATEWAY_CONTEXT_MEMBER}' is reserved for the ext_authz gateway"
        )
    if not context and limits.max_context_depth >= 1 and limits.max_context_bytes >= 2:
        return  # `{}` (most requests): one level, no keys, two bytes, no strings or numbers
    depth, keys = _context_shape(context, 1, limits.max_context_depth)
    if depth > limits.max_context_depth:
        raise InvalidRequestError(
            f"context is nested deeper than limits.max_context_depth ({limits.max_context_depth})"
        )
    if keys > limits.max_context_keys:
        raise InvalidRequestError(
            f"context has more keys than limits.max_context_keys ({limits.max_context_keys})"
        )
    size = len(json.dumps(context, separators=(",", ":")).encode())
    if size > limits.max_context_bytes:
        raise context_too_big(limits)
    # One meaning per string (codepoints.py), and JSON that every engine parses alike: NaN and
    # Infinity are not JSON (RFC 8259 §6), and a gRPC Struct carries them as doubles.
    if not all(free_text(s) for s in strings_in(context)):
        raise InvalidRequestError("context strings must not hold control characters")
    if not all(math.isfinite(n) for n in numbers_in(context)):
        raise InvalidRequestError("context numbers must be finite")


@dataclass(frozen=True, slots=True)
class ExchangeParams:
    """The RFC 8693 §2.1 parameters as a transport read them, before defaults and validation."""

    subject_token: str = ""
    subject_token_type: str = ""
    requested_token_type: str = ""
    audience: str = ""
    resources: Sequence[str] = ()
    scopes: Sequence[str] = ()
    actor_token: str = ""
    actor_token_type: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)
    requested_lifetime_seconds: int = 0
    # Set by the ext_authz adapter only: its context may hold the reserved `gateway` member.
    from_gateway: bool = False


def build_request(params: ExchangeParams, caller: Caller, limits: RequestLimits) -> ExchangeRequest:
    """Apply defaults and validate, in a fixed order (the first failed rule is the one reported).

    Raises: InvalidRequestError naming the bad parameter.
    """
    subject_token_type = params.subject_token_type or TOKEN_TYPE_ID_TOKEN
    requested_token_type = params.requested_token_type or TOKEN_TYPE_ID_JAG
    _check_tokens(params, subject_token_type, requested_token_type, limits)
    _check_audience(params.audience, limits)
    _check_actor(params)
    _check_scopes(params.scopes, limits)
    _check_resources(params.resources, limits)
    if not 0 <= params.requested_lifetime_seconds <= limits.max_lifetime_seconds:
        raise InvalidRequestError("requested_lifetime_seconds is out of range")
    _check_context(params.context, limits, gateway=params.from_gateway)
    return ExchangeRequest(
        subject_token=params.subject_token,
        subject_token_type=subject_token_type,
        requested_token_type=requested_token_type,
        audience=params.audience,
        resources=tuple(params.resources),
        scopes=tuple(params.scopes),
        actor_token=params.actor_token,
        actor_token_type=params.actor_token_type,
        context=dict(params.context),
        requested_lifetime_seconds=params.requested_lifetime_seconds,
        caller=caller,
    )


def _check_tokens(
    params: ExchangeParams,
    subject_token_type: str,
    requested_token_type: str,
    limits: RequestLimits,
) -> None:
    if not params.subject_token:
        raise InvalidRequestError("subject_token is required")
    _check_token_size("subject_token", params.subject_token, limits)
    _check_token_size("actor_token", params.actor_token, limits)
    if subject_token_type not in SUPPORTED_SUBJECT_TOKEN_TYPES:
        raise InvalidRequestError("unsupported subject_token_type")
    if requested_token_type not in BY_TOKEN_TYPE:  # a token type Sekisho has a profile for
        raise InvalidRequestError("unsupported requested_token_type")


def _check_audience(audience: str, limits: RequestLimits) -> None:
    if not audience:
        raise InvalidRequestError("audience is required")
    if len(audience) > limits.max_value_length:
        raise InvalidRequestError(
            f"audience exceeds limits.max_value_length ({limits.max_value_length} characters)"
        )
    if not uri_text(audience):
        raise InvalidRequestError("audience may hold only URI characters (RFC 3986 §2)")


def _check_actor(params: ExchangeParams) -> None:
    if bool(params.actor_token) != bool(params.actor_token_type):
        raise InvalidRequestError("actor_token and actor_token_type go together")
    if params.actor_token_type and params.actor_token_type not in SUPPORTED_ACTOR_TOKEN_TYPES:
        raise InvalidRequestError("unsupported actor_token_type")


def _check_scopes(scopes: Sequence[str], limits: RequestLimits) -> None:
    _check_list(
        "scope",
        scopes,
        ("max_scopes", limits.max_scopes),
        ("max_scope_length", limits.max_scope_length),
    )
    if not all(is_scope_token(s) for s in scopes):
        raise InvalidRequestError(
            "scope values must be RFC 6749 scope tokens (non-empty printable ASCII, without"
            " spaces, '\"' or '\\')"
        )


def _check_resources(resources: Sequence[str], limits: RequestLimits) -> None:
    _check_list(
        "resource",
        resources,
        ("max_resources", limits.max_resources),
        ("max_value_length", limits.max_value_length),
    )
    if not all(uri_text(r) and _is_absolute_uri(r) for r in resources):
        raise InvalidRequestError("resource values must be absolute URIs without a fragment")
