"""The audit trail: one JSON line per decision, allow or deny, never a token value.

Subjects are logged as a salted-free SHA-256 prefix so a line can be correlated without
writing the user identifier itself (MCP Enterprise-Managed Authorization §7.4.2).
"""

import hashlib
import logging
from collections.abc import Sequence

from sekisho.errors import ServiceError
from sekisho.models import ExchangeRequest, MintedToken, VerifiedToken

log = logging.getLogger("sekisho.audit")


def subject_hash(issuer: str, subject: str) -> str:
    return hashlib.sha256(f"{issuer}\x00{subject}".encode()).hexdigest()[:32]


class AuditLog:
    """Writes `token_exchanged` and `token_rejected` events."""

    def exchanged(
        self,
        request: ExchangeRequest,
        subject: VerifiedToken,
        minted: MintedToken,
        decision_id: str,
    ) -> None:
        log.info(
            "token_exchanged",
            extra={
                **self._common(request, decision_id, request.scopes),
                "iss": subject.issuer,
                "sub_hash": subject_hash(subject.issuer, subject.subject),
                "granted_scopes": list(minted.scopes),
                "resources": list(minted.resources),
                "kid": minted.kid,
                "jti": minted.jti,
                "exp": minted.expires_at,
            },
        )

    def rejected(
        self,
        request: ExchangeRequest | None,
        subject: VerifiedToken | None,
        error: ServiceError,
        decision_id: str,
    ) -> None:
        fields = self._common(request, decision_id, request.scopes if request else ())
        if subject is not None:
            fields["iss"] = subject.issuer
            fields["sub_hash"] = subject_hash(subject.issuer, subject.subject)
        fields.update({"reason": error.reason, "detail": error.log_detail})
        log.info("token_rejected", extra=fields)

    @staticmethod
    def _common(
        request: ExchangeRequest | None, decision_id: str, scopes: Sequence[str]
    ) -> dict[str, object]:
        if request is None:
            return {"decision_id": decision_id}
        return {
            "decision_id": decision_id,
            "caller": request.caller.id,
            "audience": request.audience,
            "requested_scopes": list(scopes),
            "requested_token_type": request.requested_token_type,
        }
