"""Value objects passed between the layers; none of them knows about grpc or HTTP."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

AuthenticatedBy = Literal["mtls", "client_secret", "private_key_jwt", "none"]


@dataclass(frozen=True, slots=True)
class Caller:
    """The workload calling Sekisho (agent runtime, gateway), as authenticated by the transport."""

    id: str = ""
    spiffe_id: str = ""
    authenticated_by: AuthenticatedBy = "none"
    # (audience, client id) pairs from the callers registry: the caller's client id downstream.
    client_ids: tuple[tuple[str, str], ...] = ()

    def client_id_at(self, audience: str) -> str:
        """The registered client id of this caller at `audience`, or ""."""
        return next((client for aud, client in self.client_ids if aud == audience), "")


@dataclass(frozen=True, slots=True)
class ExchangeRequest:
    """An RFC 8693 token exchange request, transport-neutral, with defaults already applied."""

    subject_token: str
    subject_token_type: str
    requested_token_type: str
    audience: str
    resources: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    actor_token: str = ""
    actor_token_type: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)
    requested_lifetime_seconds: int = 0
    caller: Caller = field(default_factory=Caller)


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """Claims of an inbound token whose signature, issuer, audience and times were checked."""

    issuer: str
    subject: str
    token_type: str
    expires_at: int
    client_id: str = ""
    tenant: str = ""
    email: str = ""
    groups: tuple[str, ...] = ()
    acr: str = ""
    amr: tuple[str, ...] = ()
    auth_time: int = 0
    act: Mapping[str, Any] | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """A policy decision, parsed strictly from the engine's output (docs/architecture.md §5)."""

    allow: bool
    scopes: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    ttl_seconds: int | None = None
    client_id: str = ""
    claims: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""
    cache_ttl_seconds: int = 0
    error: str = ""
    acr_values: str = ""
    max_age: int = 0
    authorization_url: str = ""
    # The policy approves the actor token although the subject's may_act does not name it.
    actor_approved: bool = False
    decision_id: str = ""


@dataclass(frozen=True, slots=True)
class MintedToken:
    """A signed JWT and the facts about it a caller and the audit log need."""

    token: str
    jti: str
    kid: str
    issued_at: int
    expires_at: int
    issued_token_type: str
    token_type: str
    audience: str
    scopes: tuple[str, ...]
    resources: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ExchangeResult:
    """What ExchangeToken returns (RFC 8693 §2.2.1 plus the decision id)."""

    minted: MintedToken
    expires_in: int
    decision_id: str
    # (kind, value) pairs a revocation could name for this token ([status_list] on): lets caches
    # of minted tokens drop it when `sekisho revoke` covers it (status/revocations.py).
    revocation_keys: tuple[tuple[str, str], ...] = ()
