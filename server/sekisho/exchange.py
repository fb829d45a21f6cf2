"""The exchange pipeline: verify → decide → mint. Every entry point (gRPC, HTTP, ext_authz)
calls `TokenExchanger.exchange`; nothing else knows the order.
"""

from sekisho.audit import AuditLog
from sekisho.clock import Clock
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT
from sekisho.errors import ServiceError
from sekisho.identity.verifier import TokenVerifier
from sekisho.minting.minter import TokenMinter
from sekisho.models import ExchangeRequest, ExchangeResult, VerifiedToken
from sekisho.policy.engine import PolicyEngine
from sekisho.policy.input import build_input
from sekisho.policy.outcome import granted


class TokenExchanger:
    """Orchestrates one exchange; owns no policy, crypto or transport logic of its own."""

    def __init__(
        self,
        verifier: TokenVerifier,
        policy: PolicyEngine,
        minter: TokenMinter,
        clock: Clock,
        audit: AuditLog,
    ) -> None:
        self._verifier = verifier
        self._policy = policy
        self._minter = minter
        self._clock = clock
        self._audit = audit

    async def exchange(self, request: ExchangeRequest) -> ExchangeResult:
        """Run the pipeline.

        Raises: ServiceError subclasses for every refusal (audited before they propagate).
        """
        subject: VerifiedToken | None = None
        decision_id = ""
        try:
            subject = await self._verifier.verify(request.subject_token, request.subject_token_type)
            actor = await self._verify_actor(request)
            document = build_input(request, subject, actor, self._clock.now())
            decision = await self._policy.decide(document)
            decision_id = decision.decision_id
            minted = await self._minter.mint(request, subject, actor, granted(decision, request))
        except ServiceError as error:
            self._audit.rejected(request, subject, error, decision_id)
            raise
        self._audit.exchanged(request, subject, minted, decision_id)
        expires_in = minted.expires_at - minted.issued_at
        return ExchangeResult(minted=minted, expires_in=expires_in, decision_id=decision_id)

    async def _verify_actor(self, request: ExchangeRequest) -> VerifiedToken | None:
        if not request.actor_token:
            return None
        # A generic JWT actor token is held to the access-token rules (aud or client check).
        token_type = request.actor_token_type
        if token_type == TOKEN_TYPE_JWT:
            token_type = TOKEN_TYPE_ACCESS_TOKEN
        return await self._verifier.verify(request.actor_token, token_type)
