"""The policy input document, built exactly per docs/architecture.md §5."""

from typing import Any

from sekisho.models import ExchangeRequest, VerifiedToken


def build_input(
    request: ExchangeRequest,
    subject: VerifiedToken,
    actor: VerifiedToken | None,
    now: float,
) -> dict[str, Any]:
    """The document policy sees as `input`."""
    return {
        "subject": {
            "iss": subject.issuer,
            "sub": subject.subject,
            "client_id": subject.client_id,
            "tenant": subject.tenant,
            "email": subject.email,
            "groups": list(subject.groups),
            "acr": subject.acr,
            "amr": list(subject.amr),
            "auth_time": subject.auth_time,
            "claims": dict(subject.claims),
        },
        "actor": None
        if actor is None
        else {"sub": actor.subject, "iss": actor.issuer, "claims": dict(actor.claims)},
        "caller": {
            "id": request.caller.id,
            "spiffe_id": request.caller.spiffe_id,
            "authenticated_by": request.caller.authenticated_by,
        },
        "request": {
            "audience": request.audience,
            "resources": list(request.resources),
            "scopes": list(request.scopes),
            "requested_token_type": request.requested_token_type,
            "subject_token_type": request.subject_token_type,
            "lifetime_seconds": request.requested_lifetime_seconds,
            "context": dict(request.context),
        },
        "now": int(now),
    }
