"""What a decision means for the request: a typed error for a deny, or the grant narrowed so
granted scopes ⊆ requested scopes and granted resources ⊆ requested resources, whatever the
policy returned (defence in depth against a policy bug). Resources are never narrowed: a grant
that leaves out a requested resource is refused with invalid_target.
"""

import logging
from dataclasses import replace

from sekisho.codepoints import is_scope_token
from sekisho.errors import (
    DECISION_ERRORS,
    AccessDeniedError,
    ConsentRequiredError,
    InsufficientUserAuthenticationError,
    InvalidScopeError,
    InvalidTargetError,
    PolicyGrantError,
    ServiceError,
)
from sekisho.models import Decision, ExchangeRequest

log = logging.getLogger(__name__)


def denial(decision: Decision) -> ServiceError:
    """The error a deny decision answers with; its metadata tells the agent what to do next."""
    cls = DECISION_ERRORS.get(decision.error, AccessDeniedError)
    metadata: dict[str, str] = {}
    if cls is InsufficientUserAuthenticationError:
        if decision.acr_values:
            metadata["acr_values"] = decision.acr_values
        if decision.max_age:
            metadata["max_age"] = str(decision.max_age)
    if cls is ConsentRequiredError and decision.authorization_url:
        metadata["authorization_url"] = decision.authorization_url
    return cls(log_detail=decision.reason or cls.reason, metadata=metadata)


def granted(decision: Decision, request: ExchangeRequest) -> Decision:
    """The allowed decision, narrowed to what was requested.

    Raises: ServiceError for a deny; InvalidScopeError when nothing requested is granted.
    """
    if not decision.allow:
        raise denial(decision)
    scopes = decision.scopes
    if request.scopes:
        scopes = tuple(s for s in scopes if s in request.scopes)
    resources = decision.resources or request.resources
    if request.resources:
        resources = tuple(r for r in resources if r in request.resources)
        if set(resources) != set(request.resources):
            # A token silently missing a requested resource is a token for something else
            # (issue 15 item 1): the caller asked for all of them, so refuse.
            raise InvalidTargetError(log_detail="grant drops a requested resource")
    if any(not is_scope_token(s) for s in scopes):
        log.error("policy_scope_invalid", extra={"decision_id": decision.decision_id})
        raise PolicyGrantError(log_detail="ill-formed scope")
    if request.scopes and not scopes:
        raise InvalidScopeError(log_detail="grant ∩ request = ∅")
    if len(scopes) != len(decision.scopes):
        log.warning("policy_grant_narrowed", extra={"decision_id": decision.decision_id})
    scopes, resources = tuple(dict.fromkeys(scopes)), tuple(dict.fromkeys(resources))
    if scopes == decision.scopes and resources == decision.resources:
        return decision  # frozen, and already exactly the grant: no copy on the hot path
    return replace(decision, scopes=scopes, resources=resources)
