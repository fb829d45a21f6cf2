"""The minter: lifetime, claims, signing. Every token is self-verified before it is returned."""

import logging
from collections.abc import Callable

from sekisho.clock import Clock
from sekisho.delegation import actor_chain
from sekisho.errors import (
    NoClientIdError,
    PolicyGrantError,
    ServerError,
    TemporarilyUnavailableError,
    TokenExpiredError,
)
from sekisho.identifiers import random_jti
from sekisho.minting.claims import RESERVED_CLAIMS, TokenFacts, build_claims
from sekisho.models import Decision, ExchangeRequest, MintedToken, VerifiedToken
from sekisho.profiles import profile_for
from sekisho.signing.jws import JwsEncoder, SelfVerificationError
from sekisho.signing.keyring import Keyring
from sekisho.status.issuer import StatusListIssuer
from sekisho.status.models import IssuedToken, subject_key
from sekisho.status.revocations import act_keys

log = logging.getLogger(__name__)


class TokenMinter:
    """Builds and signs the outbound token for an allowed decision."""

    def __init__(
        self,
        keyring: Keyring,
        clock: Clock,
        *,
        issuer: str,
        max_lifetime_seconds: int,
        jti_factory: Callable[[], str] = random_jti,
        status: StatusListIssuer | None = None,
    ) -> None:
        self._keyring = keyring
        self._clock = clock
        self._issuer = issuer
        self._max_lifetime = max_lifetime_seconds
        self._jti = jti_factory
        self._encoder = JwsEncoder()
        self._status = status

    async def mint(
        self,
        request: ExchangeRequest,
        subject: VerifiedToken,
        actor: VerifiedToken | None,
        decision: Decision,
    ) -> MintedToken:
        """Sign a token for `decision`.

        Raises:
            PolicyGrantError: a reserved claim or a zero lifetime; NoClientIdError.
            TokenExpiredError: the subject token expires before a token could be useful.
            TemporarilyUnavailableError: no active signing key, or its backend is unreachable.
            ServerError: the signature failed self-verification or the backend refused.
        """
        record, signer = self._keyring.signing_key()
        now = int(self._clock.now())
        expires_at = now + self._lifetime(request, subject, decision, now, record.retire_after)
        client_id = self._client_id(request, subject, decision)
        extra = _extra_claims(decision)
        # Last, after every check that can refuse: a refusal must not use up a status index.
        reference = await self._status.reserve() if self._status is not None else None
        facts = TokenFacts(
            issuer=self._issuer,
            profile=request.requested_token_type,
            audience=request.audience,
            resources=decision.resources,
            scopes=decision.scopes,
            client_id=client_id,
            jti=self._jti(),
            issued_at=now,
            expires_at=expires_at,
            act=actor_chain(request.caller, actor, subject.act),
            extra=extra,
            status=reference.claim() if reference is not None else None,
        )
        profile = profile_for(request.requested_token_type)
        try:
            token = await self._encoder.encode(build_claims(facts, subject), signer, profile.typ)
        except SelfVerificationError as exc:
            raise ServerError("token signing failed", log_detail=str(exc)) from exc
        if self._status is not None and reference is not None:
            self._status.issued(
                IssuedToken(
                    jti=facts.jti,
                    subject=subject_key(subject.issuer, subject.subject),
                    caller=actor.subject if actor else request.caller.id,
                    audience=request.audience,
                    list_id=reference.list_id,
                    idx=reference.idx,
                    expires_at=expires_at,
                    actor=subject_key(actor.issuer, actor.subject) if actor else "",
                    resources=facts.resources,
                    peer=request.caller.id if actor else None,
                    acting=(*act_keys(subject), *(act_keys(actor) if actor else ())),
                )
            )
        return MintedToken(
            token=token,
            jti=facts.jti,
            kid=signer.kid,
            issued_at=now,
            expires_at=expires_at,
            issued_token_type=request.requested_token_type,
            token_type=profile.token_type,
            audience=request.audience,
            scopes=facts.scopes,
            resources=facts.resources,
        )

    def _lifetime(
        self,
        request: ExchangeRequest,
        subject: VerifiedToken,
        decision: Decision,
        now: int,
        key_retire_after: int,
    ) -> int:
        """min(policy ttl, config max, requested, subject token's exp, key retirement)."""
        caps = [self._max_lifetime, subject.expires_at - now]
        if decision.ttl_seconds is not None:
            caps.append(decision.ttl_seconds)
        if request.requested_lifetime_seconds > 0:
            caps.append(request.requested_lifetime_seconds)
        if key_retire_after:
            caps.append(key_retire_after - now)
        lifetime = min(caps)
        if subject.expires_at - now <= 0:
            raise TokenExpiredError("the subject token is expired", log_detail=f"caps {caps}")
        if key_retire_after and key_retire_after <= now:
            raise TemporarilyUnavailableError(
                "no signing key is available", log_detail="active key is past its retirement"
            )
        if lifetime <= 0:  # policy granted a zero lifetime
            raise PolicyGrantError(log_detail=f"lifetime caps {caps} leave nothing")
        return lifetime

    @staticmethod
    def _client_id(request: ExchangeRequest, subject: VerifiedToken, decision: Decision) -> str:
        # docs/architecture.md §4: the decision's, else the registered caller's at this audience,
        # else the subject token's.
        registered = request.caller.client_id_at(request.audience)
        client_id = decision.client_id or registered or subject.client_id
        if not client_id:
            raise NoClientIdError(log_detail="decision and subject token carry no client id")
        return client_id


def _extra_claims(decision: Decision) -> dict[str, object]:
    reserved = RESERVED_CLAIMS & decision.claims.keys()
    if reserved:
        # A policy trying to set iss/sub/aud/... is a policy bug or an attack: fail closed.
        raise PolicyGrantError(log_detail=f"policy claims override reserved {sorted(reserved)}")
    return dict(decision.claims)
