"""The policy input document, built exactly per docs/architecture.md §5."""

from typing import Any

from sekisho.models import ExchangeRequest, VerifiedToken


class InputDocument(dict[str, Any]):
    """The input document (a plain JSON object to every reader) that also remembers the verified
    tokens its `subject` and `actor` members were built from: those members are functions of the
    token objects alone (subject_member, actor_member), so the decision cache encodes them once
    per token object rather than once per request (policy/keying.py)."""

    __slots__ = ("actor_token", "subject_token")

    def __init__(
        self,
        members: dict[str, Any],
        subject_token: VerifiedToken,
        actor_token: VerifiedToken | None,
    ) -> None:
        super().__init__(members)
        self.subject_token = subject_token
        self.actor_token = actor_token


def subject_member(subject: VerifiedToken) -> dict[str, Any]:
    """`input.subject`: a function of the verified subject token only."""
    return {
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
    }


def actor_member(actor: VerifiedToken | None) -> dict[str, Any] | None:
    """`input.actor`: a function of the verified actor token only (null without one)."""
    if actor is None:
        return None
    return {"sub": actor.subject, "iss": actor.issuer, "claims": dict(actor.claims)}


def build_input(
    request: ExchangeRequest,
    subject: VerifiedToken,
    actor: VerifiedToken | None,
    now: float,
) -> InputDocument:
    """The document policy sees as `input`."""
    members = {
        "subject": subject_member(subject),
        "actor": actor_member(actor),
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
    return InputDocument(members, subject, actor)
