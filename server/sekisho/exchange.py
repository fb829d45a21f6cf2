"""The exchange pipeline: verify → decide → mint. Every entry point (gRPC, HTTP, ext_authz)
calls `TokenExchanger.handle` with an `ExchangeCall`; nothing else knows the order, builds a
request or audits an outcome (docs/architecture.md §2).
"""

import copy
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

from sekisho.admission import NO_DEADLINE, UNQUEUED, Admission
from sekisho.audit import AuditLog
from sekisho.clock import Clock
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT
from sekisho.delegation import check_actor
from sekisho.errors import DeadlineExceededError, ServerError, ServiceError
from sekisho.identity.role import InboundVerifier
from sekisho.instruments import ExchangeInstruments
from sekisho.minting.minter import TokenMinter
from sekisho.models import Caller, ExchangeRequest, ExchangeResult, VerifiedToken
from sekisho.policy.engine import PolicyEngine
from sekisho.policy.input import build_input
from sekisho.policy.outcome import granted
from sekisho.status.revocations import RevocationGate, covered_keys, resource_keys
from sekisho.validation import ExchangeParams, RequestLimits, build_request

log = logging.getLogger(__name__)


class ExchangeCall(Protocol):
    """One exchange as a transport received it: each transport's only job is these two reads."""

    async def caller(self) -> Caller:
        """The authenticated calling workload. Raises: InvalidClientError, InvalidRequestError."""
        ...

    async def params(self) -> ExchangeParams:
        """The request parameters off the wire. Raises: InvalidRequestError."""
        ...


class TokenExchanger:
    """Orchestrates one exchange; owns no policy, crypto or transport logic of its own."""

    def __init__(
        self,
        verifier: InboundVerifier,
        policy: PolicyEngine,
        minter: TokenMinter,
        clock: Clock,
        audit: AuditLog,
        *,
        admission: Admission | None = None,
        instruments: ExchangeInstruments | None = None,
        entrypoint: str = "grpc",
        revocations: RevocationGate | None = None,
        limits: RequestLimits,
    ) -> None:
        self._verifier = verifier
        self._policy = policy
        self._minter = minter
        self._clock = clock
        self._audit = audit
        # No queue or shedding unless the composition root sets a policy.
        self._admission = admission or Admission(clock, policy=UNQUEUED)
        self._instruments = instruments or ExchangeInstruments()
        self._entrypoint = entrypoint
        self._revocations = revocations
        self._limits = limits

    @property
    def limits(self) -> RequestLimits:
        """The request limits every transport's requests are held to."""
        return self._limits

    def with_entrypoint(self, entrypoint: str) -> "TokenExchanger":
        """The same pipeline, counted in metrics under another entry point ("http", "ext_authz")."""
        view = copy.copy(self)
        view._entrypoint = entrypoint
        return view

    def screen(self, flow: str, time_budget: float | None) -> None:
        """Refuse a call the worker cannot serve in time, before any per-call work: for a
        transport to call as the call arrives (admission.Admission.screen). Not audited: the
        transport logs these refusals rate-limited. Raises: SlowDownError."""
        self._admission.screen(flow, time_budget)

    async def handle(
        self, call: ExchangeCall, *, time_budget: float | None = None, flow: str = ""
    ) -> ExchangeResult:
        """The one entry for every transport: authenticate, validate, run; every outcome audited.

        `time_budget` is the seconds left before the caller's deadline; `flow` the overload
        fairness key used when the caller has no id (its connection or address).
        Raises: ServiceError subclasses for every refusal (audited before they propagate).
        """
        caller = Caller()
        try:
            caller = await call.caller()
            request = build_request(await call.params(), caller, self._limits)
        except ServiceError as error:
            self.refused(error, caller)
            raise
        return await self.exchange(request, time_budget=time_budget, flow=flow)

    async def exchange(
        self, request: ExchangeRequest, *, time_budget: float | None = None, flow: str = ""
    ) -> ExchangeResult:
        """Run the pipeline; `time_budget` is the seconds left before the caller's deadline,
        `flow` the overload fairness key when the caller has no id (its connection).

        Raises: ServiceError subclasses for every refusal (audited before they propagate).
        """
        with self._instruments.exchange(request.audience, self._entrypoint) as scope:
            return await self._run(request, time_budget, flow, scope.stage)

    async def _run(
        self,
        request: ExchangeRequest,
        time_budget: float | None,
        flow: str,
        stage: Callable[[str], AbstractContextManager[None]],
    ) -> ExchangeResult:
        subject: VerifiedToken | None = None
        actor: VerifiedToken | None = None
        decision_id = ""
        deadline = None if time_budget is None else self._clock.now() + time_budget
        try:
            async with self._admission.admit(
                request.caller,
                flow=request.caller.id or flow,
                deadline=NO_DEADLINE if deadline is None else deadline,
                # The agent when one acts, else the user: a shared caller's turns go round
                # the tokens it presents (unverified yet: a made-up token is one more turn of
                # that caller, refused at verification, as it would be in a single FIFO).
                user=request.actor_token or request.subject_token,
            ):
                with stage("verify"):
                    subject = await self._verifier.verify(
                        request.subject_token, request.subject_token_type
                    )
                    actor = await self._verify_actor(request)
                if self._revocations is not None:  # `sekisho revoke …` (status/revocations.py)
                    self._revocations.check(request, subject, actor)
                document = build_input(request, subject, actor, self._clock.now())
                self._check_deadline(deadline, "policy")
                with stage("policy"):
                    decision = await self._policy.decide(document)
                decision_id = decision.decision_id
                grant = granted(decision, request)
                if self._revocations is not None and grant.resources != request.resources:
                    # Resources policy granted unasked (none was requested) name a downstream
                    # as requested ones do: the token is recorded under them, so a revocation
                    # of one refuses it here rather than mint a token born revoked.
                    self._revocations.check_keys(resource_keys(grant.resources))
                check_actor(subject, actor, decision)
                self._check_deadline(deadline, "signing")
                with stage("sign"):
                    minted = await self._minter.mint(request, subject, actor, grant)
        except ServiceError as error:
            if decision_id:  # the caller can quote it; `sekisho audit show ID` finds the line
                error.metadata.setdefault("decision_id", decision_id)
            self._audit.rejected(request, subject, error, decision_id, actor=actor)
            raise
        self._audit.exchanged(
            request, subject, minted, decision_id, reason=decision.reason, actor=actor
        )
        expires_in = minted.expires_at - minted.issued_at
        keys: tuple[tuple[str, str], ...] = ()
        if self._revocations is not None:
            keys = (
                *covered_keys(request, subject, actor),
                *resource_keys(minted.resources),  # also those granted unasked
                ("token", minted.jti),
            )
        return ExchangeResult(
            minted=minted, expires_in=expires_in, decision_id=decision_id, revocation_keys=keys
        )

    def crashed(self, exc: BaseException, caller: Caller | None = None) -> ServerError:
        """A bug at an entry point (issue 15 item 5): log it with its traceback, write the audit
        line like any other refusal, and return the generic error the transport answers with
        (server_error / INTERNAL, no detail)."""
        log.error("exchange_internal_error", exc_info=exc, extra={"entrypoint": self._entrypoint})
        error = ServerError(log_detail=f"unhandled {type(exc).__name__} at {self._entrypoint}")
        self.refused(error, caller or Caller())
        return error

    def refused(self, error: ServiceError, caller: Caller) -> None:
        """Audit a refusal made before the pipeline ran (caller authentication, validation)."""
        self._audit.rejected(None, None, error, "", caller=caller)

    def _check_deadline(self, deadline: float | None, stage: str) -> None:
        # Work for a caller that has given up only burns capacity others are waiting for, and a
        # token minted after the deadline is never delivered: abandon it (issue 7 item 6).
        if deadline is not None and self._clock.now() >= deadline:
            raise DeadlineExceededError(
                "the caller's deadline passed", log_detail=f"deadline passed before {stage}"
            )

    async def _verify_actor(self, request: ExchangeRequest) -> VerifiedToken | None:
        if not request.actor_token:
            return None
        # A generic JWT actor token is held to the access-token rules (aud or client check).
        token_type = request.actor_token_type
        if token_type == TOKEN_TYPE_JWT:
            token_type = TOKEN_TYPE_ACCESS_TOKEN
        return await self._verifier.verify(request.actor_token, token_type)
