"""How two decisions on the same input differ: the one comparison behind shadow evaluation
(shadow.py) and impact replay (impact.py), and the decision's record form in the decision log.

Kinds of difference:
  allow       one allows, the other denies
  scopes      both allow, the scopes a token would carry differ (narrowed to the requested ones,
              as outcome.granted narrows them)
  resources   both allow, the resources differ
  ttl         both allow, ttl_seconds differs (absent = the configured maximum)
  claims      both allow, the extra claims differ
  client_id   both allow, client_id differs
  step_up     either demands stronger authentication, and they do not demand the same
  consent     either demands user consent, and they do not demand the same
  denial      both deny with different OAuth errors (other than step-up and consent)
  error       the candidate could not decide (raised, timed out, engine not ready)
"""

from collections.abc import Sequence
from typing import Any

from sekisho.models import Decision

KINDS = (
    "allow",
    "scopes",
    "resources",
    "ttl",
    "claims",
    "client_id",
    "step_up",
    "consent",
    "denial",
    "error",
)
STEP_UP = "insufficient_user_authentication"
CONSENT = "consent_required"


def decision_document(decision: Decision) -> dict[str, Any]:
    """The decision in the policy contract's shape (docs/architecture.md §5), defaults filled in;
    `ttl_seconds` only when the policy set it. What the decision log records as `result`."""
    document: dict[str, Any] = {
        "allow": decision.allow,
        "scopes": list(decision.scopes),
        "resources": list(decision.resources),
        "client_id": decision.client_id,
        "claims": dict(decision.claims),
        "reason": decision.reason,
        "cache_ttl_seconds": decision.cache_ttl_seconds,
        "error": decision.error,
        "acr_values": decision.acr_values,
        "max_age": decision.max_age,
        "authorization_url": decision.authorization_url,
    }
    if decision.ttl_seconds is not None:
        document["ttl_seconds"] = decision.ttl_seconds
    return document


def effective_scopes(decision: Decision, requested: Sequence[str]) -> frozenset[str]:
    """The scopes a token would carry: none on a deny, the grant ∩ request when scopes were
    requested."""
    if not decision.allow:
        return frozenset()
    if requested:
        return frozenset(s for s in decision.scopes if s in requested)
    return frozenset(decision.scopes)


def differences(
    live: Decision, candidate: Decision | None, requested: Sequence[str]
) -> tuple[str, ...]:
    """Every kind in which `candidate` differs from `live` (None: the candidate failed)."""
    if candidate is None:
        return ("error",)
    kinds: list[str] = []
    if live.allow != candidate.allow:
        kinds.append("allow")
    elif live.allow:
        kinds += _grant_differences(live, candidate, requested)
    elif _plain_denial(live) and _plain_denial(candidate) and live.error != candidate.error:
        kinds.append("denial")
    if _demand(live, STEP_UP) != _demand(candidate, STEP_UP):
        kinds.append("step_up")
    if _demand(live, CONSENT) != _demand(candidate, CONSENT):
        kinds.append("consent")
    return tuple(kinds)


def _grant_differences(live: Decision, candidate: Decision, requested: Sequence[str]) -> list[str]:
    pairs = {
        "scopes": (effective_scopes(live, requested), effective_scopes(candidate, requested)),
        "resources": (frozenset(live.resources), frozenset(candidate.resources)),
        "ttl": (live.ttl_seconds, candidate.ttl_seconds),
        "claims": (dict(live.claims), dict(candidate.claims)),
        "client_id": (live.client_id, candidate.client_id),
    }
    return [kind for kind, (a, b) in pairs.items() if a != b]


def _plain_denial(decision: Decision) -> bool:
    return decision.error not in (STEP_UP, CONSENT)


def _demand(decision: Decision, error: str) -> tuple[str, ...]:
    """What a deny with `error` asks of the user; () when the decision does not ask it."""
    if decision.allow or decision.error != error:
        return ()
    if error == STEP_UP:
        return (error, decision.acr_values, str(decision.max_age))
    return (error, decision.authorization_url)
