"""Strict parsing of a policy decision (docs/architecture.md §5): the engine fails closed.

An undefined result, a missing required field, or any present field of the wrong type is a deny.
"""

from collections.abc import Callable
from typing import Any

from sekisho.errors import DECISION_ERRORS
from sekisho.models import Decision


class InvalidDecisionError(Exception):
    """The policy's output does not fit the decision contract."""


def _is_int(value: Any) -> bool:
    """A non-negative number without a fraction. JSON has one number type, and `60.0` is the
    integer 60 (as JSON Schema's "integer" reads it): OPA prints a number as the policy or data
    spelled it, and of equal numbers in a set the Wasm module may keep `60.0` where OPA's server
    keeps `60`, so both spellings must decide alike. Never a bool, infinity or NaN."""
    if type(value) is float:
        return value.is_integer() and value >= 0
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _int(value: Any) -> Any:
    """An integral float as its int (after _is_int passed); anything else as it is."""
    return int(value) if type(value) is float else value


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


_OPTIONAL: dict[str, tuple[Callable[[Any], bool], str]] = {
    "scopes": (_is_str_list, "an array of strings"),
    "resources": (_is_str_list, "an array of strings"),
    "ttl_seconds": (_is_int, "a non-negative integer"),
    "client_id": (lambda v: isinstance(v, str), "a string"),
    "claims": (lambda v: isinstance(v, dict), "an object"),
    "reason": (lambda v: isinstance(v, str), "a string"),
    "cache_ttl_seconds": (_is_int, "a non-negative integer"),
    # isinstance first: `[] in mapping` raises TypeError (unhashable), which would escape the
    # fail-closed handling in decide() and reload().
    "error": (
        lambda v: isinstance(v, str) and v in DECISION_ERRORS,
        f"one of {sorted(DECISION_ERRORS)}",
    ),
    "acr_values": (lambda v: isinstance(v, str), "a string"),
    "max_age": (_is_int, "a non-negative integer"),
    "authorization_url": (lambda v: isinstance(v, str), "a string"),
    "actor_approved": (lambda v: isinstance(v, bool), "a boolean"),
}


def parse_decision(raw: Any, decision_id: str = "") -> Decision:
    """Turn engine output into a Decision. Raises: InvalidDecisionError."""
    if not isinstance(raw, dict):
        raise InvalidDecisionError("decision is undefined or not an object")
    allow = raw.get("allow")
    if not isinstance(allow, bool):
        raise InvalidDecisionError("'allow' is missing or not a boolean")
    if allow and "scopes" not in raw:
        raise InvalidDecisionError("'scopes' is required when allow is true")
    for name, (check, expected) in _OPTIONAL.items():
        if name in raw and not check(raw[name]):
            raise InvalidDecisionError(f"'{name}' must be {expected}")
    return Decision(
        allow=allow,
        scopes=tuple(raw.get("scopes", ())),
        resources=tuple(raw.get("resources", ())),
        ttl_seconds=_int(raw.get("ttl_seconds")),
        client_id=raw.get("client_id", ""),
        claims=dict(raw.get("claims", {})),
        reason=raw.get("reason", ""),
        cache_ttl_seconds=_int(raw.get("cache_ttl_seconds", 0)),
        error=raw.get("error", ""),
        acr_values=raw.get("acr_values", ""),
        max_age=_int(raw.get("max_age", 0)),
        authorization_url=raw.get("authorization_url", ""),
        actor_approved=raw.get("actor_approved", False),
        decision_id=decision_id,
    )
