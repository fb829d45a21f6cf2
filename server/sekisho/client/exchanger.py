"""`TokenExchangeClient`: ExchangeToken for agent runtimes and gateways, made cheap and correct.

- cache: a token is reused until shortly before expiry and refreshed ahead in the background;
  a refresh Sekisho refuses for the request itself drops it (the refusal reaches the next call),
  one it does not serve (overload, unavailable, INTERNAL) keeps it, retried a second later;
- single-flight: concurrent identical requests share one RPC;
- retries: UNAVAILABLE and CANCELLED (not taken) with jittered exponential backoff, and
  slow_down after the server's `retry_after` (jittered), never past the caller's deadline
  (every other status is an answer, and retrying a denial would only add load); while a
  `retry_after` runs, calls that cannot wait it out fail at once without an RPC;
- call slots (slots.py): at most `max_in_flight` RPCs on the wire, the rest wait in the client,
  oldest first, where a call whose deadline would pass before it could be answered is never
  sent, and, while calls arrive faster than slots free, one that waited past four answers fails
  at once (adaptive LIFO with CoDel);
- client-side adaptive throttling (throttle.py): when the service keeps refusing (slow_down,
  grpc's REFUSED_STREAM or RESOURCE_EXHAUSTED, or no answer within the deadline), requests are
  rejected locally in proportion, so a fleet of agents cannot hammer it; a call refused
  without an RPC (throttled, or inside a retry_after) yields to the event loop first;
- typed errors: ExchangeError subclasses carrying the OAuth reason and step-up/consent metadata;
- a token a downstream refuses (`forget`) is dropped and exchanged afresh, unless the token
  exchanged after the last refusal was refused too: then it is kept for a doubling hold
  (refusals.py), so a downstream refusing every token costs one exchange per hold, not per call;
- revocation: with `status=StatusListClient(…)`, a cached token whose status list entry is no
  longer VALID (`sekisho revoke`) is dropped and exchanged again (which Sekisho then refuses);
  one whose list cannot be read is kept (unknown is not revoked; the downstream decides).

ID-JAGs are not cached by default: a downstream authorization server must refuse a second
redemption of the same `jti` (MCP Enterprise-Managed Authorization), so a cached ID-JAG would
fail on reuse; cache the access token the downstream returns instead.
"""

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import jwt
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.backoff import Backoff
from sekisho.client.cache import CacheKey, ExchangedToken, TokenCache
from sekisho.client.channel import ChannelOptions, open_channel
from sekisho.client.errors import (
    ExchangeError,
    ExchangeUnavailableError,
    RateLimitedError,
    error_for,
)
from sekisho.client.params import ExchangeParams, checked
from sekisho.client.refusals import RefusalBackoff
from sekisho.client.slots import CallSlots
from sekisho.client.throttle import AdaptiveThrottle
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_JAG, TOKEN_TYPE_ID_TOKEN
from sekisho.lru import LruMap
from sekisho.singleflight import SingleFlight

if TYPE_CHECKING:
    # Only a caller that follows revocation passes one, and has installed sekisho[verify] to do
    # so: sekisho[client] alone brings neither cryptography nor aiohttp (test_packaging.py).
    from sekisho.verify.status import StatusListClient


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff for UNAVAILABLE: base * 2^attempt, capped, with full jitter."""

    max_attempts: int = 4
    base_seconds: float = 0.05
    max_backoff_seconds: float = 1.0

    def backoff(self, attempt: int) -> float:
        return Backoff(self.base_seconds, self.max_backoff_seconds).jittered(attempt)

    def after(self, retry_after: float) -> float:
        """The server's retry_after, plus up to half again of jitter (no synchronised retries)."""
        return retry_after * random.uniform(1.0, 1.5)  # noqa: S311 (jitter, not crypto)


# The service did not take the call, so it is retried with backoff: REFUSED_STREAM or no
# connection (UNAVAILABLE), or grpc core's refusal beyond the worker's pending-call bound
# (CANCELLED, docs/operations.md "Overload"); this client's own cancellation is CancelledError.
NOT_TAKEN_CODES = frozenset({"UNAVAILABLE", "CANCELLED"})
# After a background refresh that failed without refusing the request, the next is not started
# for this long: the cached token serves meanwhile (one RPC a second at most, not one per call).
REFRESH_RETRY_SECONDS = 1.0


def _error_from_rpc(error: grpc.aio.AioRpcError) -> ExchangeError:
    code = error.code().name
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return error_for(info.reason, error.details() or "", code, dict(info.metadata))
    if code in NOT_TAKEN_CODES or code == "DEADLINE_EXCEEDED":
        return ExchangeUnavailableError("temporarily_unavailable", error.details() or "", code)
    return ExchangeError("server_error", error.details() or "", code)


def _retry_after(error: ExchangeError) -> float:
    found = error.retry_after
    return 1.0 if found is None else found


# Answers that mean the service did not take the call: slow_down, and grpc's own refusals
# (REFUSED_STREAM arrives as UNAVAILABLE; RESOURCE_EXHAUSTED from grpc core has no reason; a
# call beyond the worker's pending-call bound is CANCELLED by grpc core) and a deadline spent
# queued behind the connection's stream limit. None of them is an accept.
OVERLOAD_CODES = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED"})


def _overload_refusal(error: ExchangeError) -> bool:
    return isinstance(error, RateLimitedError) or error.code in OVERLOAD_CODES


async def _yield_before_failing_fast() -> None:
    """Let the event loop run before a call fails without an RPC (throttled locally, inside
    the server's retry_after). Otherwise `exchange()` raises without ever suspending, and a
    caller that retries at once spins in one loop turn: no other task runs, not even the
    answers that would let the throttle recover (session 15)."""
    await asyncio.sleep(0)


class TokenExchangeClient:
    """Async client; one per process and target, shared by every task."""

    def __init__(
        self,
        target: str,
        *,
        channel_options: ChannelOptions | None = None,
        timeout_seconds: float = 2.0,
        retry: RetryPolicy | None = None,
        refresh_ahead_seconds: float = 30.0,
        cache_token_types: Collection[str] = (TOKEN_TYPE_ACCESS_TOKEN,),
        clock: Callable[[], float] = time.monotonic,
        status: "StatusListClient | None" = None,
        throttle: AdaptiveThrottle | None = None,
        max_in_flight: int = 16,
        refusals: RefusalBackoff | None = None,
    ) -> None:
        """`max_in_flight`: RPCs on the wire at once; more wait in the client (slots.py).
        `refusals`: when a token a downstream refused is dropped (refusals.py)."""
        self._status = status
        self._channel = open_channel(target, channel_options or ChannelOptions())
        self._stub = pb_grpc.TokenExchangeServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._timeout = timeout_seconds
        self._retry = retry or RetryPolicy()
        self._cache_types = frozenset(cache_token_types)
        self._clock = clock
        self.throttle = throttle or AdaptiveThrottle(clock)
        self.refusals = refusals or RefusalBackoff(clock)
        self._slots = CallSlots(max_in_flight, clock)
        self._not_before = 0.0  # the server's last retry_after, on the clock
        self.cache = TokenCache(refresh_ahead_seconds=refresh_ahead_seconds)
        # key -> when its last background refresh failed without refusing the request
        self._refresh_failed_at: LruMap[CacheKey, float] = LruMap(self.cache.max_entries)
        self._flights: SingleFlight[CacheKey, ExchangedToken] = SingleFlight()
        self._background: set[asyncio.Future[Any]] = set()
        self.rpc_count = 0

    async def exchange(
        self,
        subject_token: str,
        audience: str,
        *,
        resources: Sequence[str] = (),
        scopes: Sequence[str] = (),
        requested_token_type: str = TOKEN_TYPE_ID_JAG,
        subject_token_type: str = TOKEN_TYPE_ID_TOKEN,
        actor_token: str = "",
        actor_token_type: str = TOKEN_TYPE_ID_TOKEN,
        deadline_seconds: float | None = None,
    ) -> ExchangedToken:
        """A token for (audience, resources, scopes), from the cache when possible.

        `actor_token`: the acting agent's own token, when it acts for the user of
        `subject_token` (RFC 8693 delegation: the user's token names the agent in `may_act`,
        and the minted token's `act` claim names the agent). Part of the cache key.

        Raises: ExchangeError subclasses (ExchangeUnavailableError once the deadline passes;
            InvalidExchangeRequestError, without an RPC, for a string UTF-8 cannot encode);
            StatusIssuerMismatchError (a ValueError, from sekisho.verify) when `status=` is a
            client for another issuer than the tokens Sekisho mints.
        """
        params = checked(
            ExchangeParams(
                subject_token,
                audience,
                tuple(resources),
                tuple(scopes),
                requested_token_type,
                subject_token_type,
                actor_token,
                actor_token_type,
            )
        )
        budget = deadline_seconds if deadline_seconds is not None else self._timeout
        deadline = self._clock() + budget
        if requested_token_type not in self._cache_types:
            return await self._call_with_retries(params, deadline)
        key = params.key()
        cached, due = self.cache.get(key, self._clock())
        if cached is not None and await self._revoked(cached, deadline):
            self.cache.drop(key)
            cached = None
        if cached is not None:
            if due:
                self._refresh_in_background(key, params)
            return cached
        return await self._single_flight(key, params, deadline)

    def forget(self, token: ExchangedToken | str) -> bool:
        """Drop `token` from the cache, so the next `exchange` for its target asks Sekisho again.
        Call it when a downstream refuses the token (HTTP 401 `invalid_token`: its key was
        revoked, the token was revoked or suspended); `SekishoAuth` does so itself. True when
        it was dropped; False when it was not cached, or is kept because the downstream
        refused the token exchanged after its last refusal too (refusals.py: a backoff, not
        an exchange per call)."""
        access_token = token if isinstance(token, str) else token.access_token
        dropped = False
        for key in self.cache.keys_holding(access_token):
            if self.refusals.should_drop(key):
                self.cache.drop(key)
                dropped = True
        return dropped

    async def _revoked(self, token: ExchangedToken, deadline: float) -> bool:
        if self._status is None or token.status is None:
            return False
        # sekisho[verify], see the top
        from sekisho.status.bitlist import VALID
        from sekisho.verify.errors import VerificationError, VerifierUnavailableError

        try:
            # A list fetch on the request path waits no longer than the call may (red team
            # session 16: a list URL that never answered held each call for the status
            # client's whole timeout, 5 s by default, past a 2 s deadline); then unknown.
            await self._status.check(token.status, wait_seconds=deadline - self._clock())
        except VerifierUnavailableError:
            # The list cannot be read (beyond its staleness bound): the status is unknown, not
            # revoked. A fresh token would be just as unverifiable downstream, and exchanging
            # afresh on every call minted one token per call into a status list for the whole
            # outage (red team session 14): keep serving; the downstream decides (it checks
            # the status itself and fails closed). Unless the copy still held, fetched for
            # another token of the list, read this one INVALID (final) or SUSPENDED: that is
            # known, not unknown (red team session 16: kept until expiry, served as unknown).
            held = self._status.held_status(token.status)
            return held is not None and held != VALID
        except VerificationError:
            return True  # revoked or suspended: exchange afresh (which Sekisho then refuses)
        return False

    async def _single_flight(
        self, key: CacheKey, params: ExchangeParams, deadline: float
    ) -> ExchangedToken:
        pending = self._flights.start(key, lambda: self._fetch_and_store(key, params, deadline))
        remaining = max(0.0, deadline - self._clock())
        try:
            # shield: one waiter timing out must not cancel the RPC others are waiting on.
            return await asyncio.wait_for(asyncio.shield(pending), remaining)
        except TimeoutError:
            raise ExchangeUnavailableError(
                "temporarily_unavailable", "deadline exceeded", "DEADLINE_EXCEEDED"
            ) from None

    async def _fetch_and_store(
        self, key: CacheKey, params: ExchangeParams, deadline: float
    ) -> ExchangedToken:
        token = await self._call_with_retries(params, deadline)
        self.cache.put(key, token, self._clock())
        return token

    def _refresh_in_background(self, key: CacheKey, params: ExchangeParams) -> None:
        if self._flights.running(key):
            return
        failed_at = self._refresh_failed_at.peek(key)
        if failed_at is not None and self._clock() - failed_at < REFRESH_RETRY_SECONDS:
            return
        deadline = self._clock() + self._timeout
        task = self._flights.start(key, lambda: self._fetch_and_store(key, params, deadline))
        self._background.add(task)

        def done(finished: "asyncio.Future[ExchangedToken]") -> None:
            self._background.discard(task)
            if finished.cancelled():
                return
            error = finished.exception()  # marked seen: a failed refresh is not re-raised
            if isinstance(error, ExchangeError) and error.refuses_the_request:
                # Sekisho refused this very request (the user revoked or denied since, its token
                # no longer verifies): the cached token is not served again, and the next call
                # exchanges on the request path, so the refusal reaches the caller instead of
                # one refused RPC per call until expiry (red team session 14).
                self.cache.drop(key)
            elif error is not None:
                # Not served (overload, unavailable, INTERNAL, an unknown reason): no evidence
                # against the token, still valid, so it is kept (red team: an INTERNAL answer
                # dropped it, and every call failed until Sekisho recovered); the next refresh
                # waits REFRESH_RETRY_SECONDS, not the next call.
                self._refresh_failed_at.put(key, self._clock())

        task.add_done_callback(done)

    async def _call_with_retries(self, params: ExchangeParams, deadline: float) -> ExchangedToken:
        attempt = 0
        while True:
            await self._wait_out_retry_after(deadline)
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise ExchangeUnavailableError(
                    "temporarily_unavailable", "deadline exceeded", "DEADLINE_EXCEEDED"
                )
            # The throttle decides whether a call goes out at all; its retries are bounded by
            # the retry policy and the deadline (and each answer still counts).
            if attempt == 0 and not self.throttle.allow():
                await _yield_before_failing_fast()
                raise RateLimitedError(
                    "slow_down", "throttled locally: the service is refusing", "RESOURCE_EXHAUSTED"
                )
            try:
                token = await self._call_once(params, deadline)
            except ExchangeError as error:
                attempt += 1
                pause = self._pause_before_retry(error, attempt)
                if pause is None or self._clock() + pause >= deadline:
                    raise
                await asyncio.sleep(pause)
                continue
            self.throttle.accepted()
            return token

    def _pause_before_retry(self, error: ExchangeError, attempt: int) -> float | None:
        """How long to wait before retrying `error`, or None when it must not be retried."""
        if _overload_refusal(error):
            self.throttle.refused()
        else:
            self.throttle.accepted()  # an answer, even a denial: the service is not refusing
        if attempt >= self._retry.max_attempts:
            return None
        if error.code in NOT_TAKEN_CODES:
            return self._retry.backoff(attempt)
        if isinstance(error, RateLimitedError):
            retry_after = _retry_after(error)
            self._not_before = max(self._not_before, self._clock() + retry_after)
            return self._retry.after(retry_after)
        return None

    async def _wait_out_retry_after(self, deadline: float) -> None:
        """Honour the server's last retry_after: wait if it ends before the deadline, else fail
        at once without sending (the answer would be slow_down again)."""
        wait = self._not_before - self._clock()
        if wait <= 0:
            return
        if self._clock() + wait >= deadline:
            await _yield_before_failing_fast()
            raise RateLimitedError(
                "slow_down",
                f"retry after {wait:.1f}s (server's retry_after)",
                "RESOURCE_EXHAUSTED",
                {"retry_after": f"{wait:.3f}"},
            )
        await asyncio.sleep(wait)

    async def _call_once(self, params: ExchangeParams, deadline: float) -> ExchangedToken:
        request = pb.ExchangeTokenRequest(
            subject_token=params.subject_token,
            subject_token_type=params.subject_token_type,
            requested_token_type=params.requested_token_type,
            audience=params.audience,
            resource=list(params.resources),
            scope=list(params.scopes),
        )
        if params.actor_token:
            request.actor_token = params.actor_token
            request.actor_token_type = params.actor_token_type
        async with self._slots.slot(deadline) as budget:
            self.rpc_count += 1
            started = self._clock()
            try:
                response = await self._stub.ExchangeToken(request, timeout=budget)
            except grpc.aio.AioRpcError as error:
                failure = _error_from_rpc(error)
                if not _overload_refusal(failure):  # an answer: how long answers take
                    self._slots.answered(self._clock() - started)
                raise failure from error
            self._slots.answered(self._clock() - started)
        return ExchangedToken(
            access_token=response.access_token,
            issued_token_type=response.issued_token_type,
            token_type=response.token_type,
            expires_at=started + response.expires_in,
            scopes=tuple(response.scope),
            resources=tuple(response.resource),
            audience=response.audience,
            jti=response.jti,
            decision_id=response.decision_id,
            status=self._status_claim(response.access_token),
        )

    def _status_claim(self, token: str) -> Any:
        """The token's `status` claim when a status client is set.

        Raises: StatusIssuerMismatchError when the status client is for another issuer than
            the token's (it would read every cached token as revoked, silently).
        """
        if self._status is None:
            return None
        # Our own token, just received over the authenticated channel: read, not verified here
        # (the downstream verifies it); only the status reference is needed.
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        self._status.check_issuer(claims.get("iss"))
        return claims.get("status")

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ExchangeError):
                await task
        await self._channel.close()

    async def __aenter__(self) -> "TokenExchangeClient":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
