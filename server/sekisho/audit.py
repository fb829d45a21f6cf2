"""The audit trail: exactly one JSON line per exchange decision, allow or deny (issue 7 item 7).

`token_exchanged` (outcome "allow") and `token_rejected` (outcome "deny") carry the same fields
(AUDIT_FIELDS, in that order; an allow adds the token's `exp`, a refusal the internal `detail`):
decision id, request id, caller (id, SPIFFE ID, how it was authenticated), the actor token's
`sub` (the acting workload: the minted token's `act.sub`, what `sekisho revoke caller` names),
issuer and subject hash, audience, requested and granted scopes, resources, kid and jti of the
minted token, the reason, and for a refusal the internal error `code` (errors.py: `token_expired`,
`signature_invalid`, …). Refusals before policy (caller authentication, request validation, rate
limits) are audited too, with the fields known at that point left empty.

Never a token value. The subject is logged as `sub_hash`: a plain (unkeyed) SHA-256 of
`iss NUL sub`, truncated to 128 bits, so lines about one user correlate and an investigator who
knows a user can find them, without the log itself naming anyone (MCP Enterprise-Managed
Authorization §7.4.2). It is pseudonymous, not anonymous: treat the log as personal data.

The line is written once per exchange, so it takes the direct path when it can
(logs.direct_handler: the handler `configure_logging` installed is the only one that would see
it): the same stamps, scrubbing, format and flushed write as a log record, without building one.
The fields that change on every line are named (`_FRESH`), so the rest of the line is encoded
from one remembered text (jsonfields.FieldEncoder.items_of_line), still scrubbed as it always is.
"""

import contextvars
import logging
from collections.abc import Mapping

from sekisho.errors import ServiceError
from sekisho.identifiers import subject_hash
from sekisho.logs import direct_handler
from sekisho.models import Caller, ExchangeRequest, MintedToken, VerifiedToken

log = logging.getLogger("sekisho.audit")

AUDIT_FIELDS = (
    "outcome",
    "decision_id",
    "request_id",
    "caller",
    "caller_spiffe_id",
    "caller_authenticated_by",
    "actor",
    "iss",
    "sub_hash",
    "audience",
    "requested_scopes",
    "granted_scopes",
    "resources",
    "requested_token_type",
    "kid",
    "jti",
    "reason",
    "code",
)

_MAX_SUBJECT_HASHES = 4096
# What changes from one line to the next (ids, expiry); the rest of a line mostly repeats (the
# same caller, audience, scopes, resources, token type, kid), and is encoded as one remembered
# text (jsonfields.FieldEncoder.items_of_line), still scrubbed as it always is.
_FRESH: Mapping[str, frozenset[str]] = {
    "token_exchanged": frozenset({"decision_id", "request_id", "sub_hash", "jti", "exp"}),
    "token_rejected": frozenset({"decision_id", "request_id", "sub_hash", "detail"}),
}


class AuditLog:
    """Writes `token_exchanged` and `token_rejected` events: AUDIT_FIELDS, plus `exp` for an
    allow and `detail` for a refusal."""

    def __init__(self, request_id: contextvars.ContextVar[str] | None = None) -> None:
        self._request_id = request_id
        # sub_hash of recent subjects: the same users exchange again and again (a warm exchange
        # is mostly a repeat), and a SHA-256 costs more than the lookup. Bounded; cleared whole.
        self._subject_hashes: dict[tuple[str, str], str] = {}

    def exchanged(
        self,
        request: ExchangeRequest,
        subject: VerifiedToken,
        minted: MintedToken,
        decision_id: str,
        *,
        reason: str = "",
        actor: VerifiedToken | None = None,
    ) -> None:
        fields = self._fields("allow", request, request.caller, decision_id, subject, actor=actor)
        fields["granted_scopes"] = minted.scopes
        fields["resources"] = minted.resources
        fields["kid"] = minted.kid
        fields["jti"] = minted.jti
        fields["exp"] = minted.expires_at
        fields["reason"] = reason
        _write("token_exchanged", fields)

    def rejected(
        self,
        request: ExchangeRequest | None,
        subject: VerifiedToken | None,
        error: ServiceError,
        decision_id: str,
        *,
        caller: Caller | None = None,
        actor: VerifiedToken | None = None,
    ) -> None:
        who = caller or (request.caller if request else Caller())
        fields = self._fields("deny", request, who, decision_id, subject, actor=actor)
        # `code` is the stable internal code (errors.py): why a token was refused, not only that.
        fields["reason"] = error.reason
        fields["code"] = error.code
        fields["detail"] = error.log_detail
        _write("token_rejected", fields)

    def _fields(
        self,
        outcome: str,
        request: ExchangeRequest | None,
        caller: Caller,
        decision_id: str,
        subject: VerifiedToken | None,
        *,
        actor: VerifiedToken | None,
    ) -> dict[str, object]:
        """Every AUDIT_FIELDS member, in that order, built in one dict (one line per exchange).
        Scopes and resources stay the request's and token's tuples (no copy): a record gets
        lists (`_write`), and both encode as the same JSON array."""
        return {
            "outcome": outcome,
            "decision_id": decision_id,
            "request_id": self._request_id.get("") if self._request_id else "",
            "caller": caller.id,
            "caller_spiffe_id": caller.spiffe_id,
            "caller_authenticated_by": caller.authenticated_by,
            "actor": actor.subject if actor is not None else "",
            "iss": subject.issuer if subject is not None else "",
            "sub_hash": self._subject_hash(subject) if subject is not None else "",
            "audience": request.audience if request else "",
            "requested_scopes": request.scopes if request else (),
            "granted_scopes": (),
            "resources": request.resources if request else (),
            "requested_token_type": request.requested_token_type if request else "",
            "kid": "",
            "jti": "",
            "reason": "",
            "code": "",
        }

    def _subject_hash(self, subject: VerifiedToken) -> str:
        key = (subject.issuer, subject.subject)
        known = self._subject_hashes.get(key)
        if known is None:
            if len(self._subject_hashes) >= _MAX_SUBJECT_HASHES:
                self._subject_hashes.clear()
            known = self._subject_hashes[key] = subject_hash(*key)
        return known


def _write(event: str, fields: dict[str, object]) -> None:
    """`log.info(event, extra=fields)`, written straight by the handler when nothing else would
    see the record (logs.direct_handler). A record carries scopes and resources as lists, as it
    always has (what another handler or a test reads from it)."""
    handler = direct_handler(log, logging.INFO)
    if handler is None or not handler.write_event(
        log.name, logging.INFO, event, fields, _FRESH[event]
    ):
        log.info(event, extra={k: list(v) if type(v) is tuple else v for k, v in fields.items()})
