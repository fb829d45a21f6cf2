"""The revocations and suspensions in force, as this worker knows them: refreshed from the store
every poll, and checked before policy on every exchange (a revoked or suspended user, caller,
audience or token is refused access_denied on every worker within poll + one store round trip).
Being before policy, the check also comes before the decision cache: a cached allow never
outlives a revocation or suspension.

Fail closed: when the view is older than `max_stale_seconds` (the store is unreachable), exchanges
are refused temporarily_unavailable, because a revocation made meanwhile would go unseen.
"""

import asyncio
import logging
from collections.abc import Iterable

from sekisho.clock import Clock
from sekisho.errors import RevokedError, TemporarilyUnavailableError
from sekisho.loops import Loop, LoopFailures
from sekisho.models import ExchangeRequest, VerifiedToken
from sekisho.status.models import RevocationKind, subject_key
from sekisho.status.store import StatusStore

log = logging.getLogger(__name__)
REVOCATIONS_REFRESH = Loop("revocations_refresh", "revocations_refresh_failed", log)


def covered_keys(
    request: ExchangeRequest, subject: VerifiedToken, actor: VerifiedToken | None
) -> list[tuple[RevocationKind, str]]:
    """Every (kind, value) a revocation could name for this exchange. An anonymous caller's id
    is "" and is named too, as the status store names it when it marks tokens: a revocation of
    caller "" (which `sekisho revoke` refuses to make) would refuse what it marks."""
    keys: list[tuple[RevocationKind, str]] = [
        ("subject", subject_key(subject.issuer, subject.subject)),
        ("audience", request.audience),
        ("caller", request.caller.id),
    ]
    # An access token's `aud` is its resource(s), not the exchange's audience: `revoke audience`
    # naming what a downstream sees in its tokens must cover them too.
    keys.extend(resource_keys(request.resources))
    for token in (subject, actor):
        if token is None:
            continue
        if isinstance(jti := token.claims.get("jti"), str):
            keys.append(("token", jti))
    if actor is not None:
        keys.append(("caller", actor.subject))
        # A revoked user is refused in either role: their token as the actor (named by another
        # user's may_act, or approved by policy) would put them in a new token's `act`.
        keys.append(("subject", subject_key(actor.issuer, actor.subject)))
    # The earlier actors a token carries (a subject token that is itself the result of a
    # delegation): the new token nests them again, so a revoked or suspended agent must not keep
    # acting through a token that names it.
    keys.extend(act_keys(subject))
    if actor is not None:
        keys.extend(act_keys(actor))
    return keys


def act_keys(token: VerifiedToken) -> list[tuple[RevocationKind, str]]:
    """The (kind, value) a revocation names each member of a token's `act` chain by: its `sub`
    as a caller (as `revoke caller` names an actor, act.sub) and as a user (`revoke subject`:
    the level's `iss`, or the token's own issuer for a level without one, JWT `sub` being
    scoped by its issuer). The chain is VerifiedToken.act, already read and bounded by
    `[trust] max_act_depth` (delegation.inbound_act): at most 2 x max_act_depth names."""
    keys: list[tuple[RevocationKind, str]] = []
    level = token.act
    while level is not None:
        sub = level["sub"]
        keys.append(("caller", sub))
        keys.append(("subject", subject_key(level.get("iss") or token.issuer, sub)))
        level = level.get("act")
    return keys


def resource_keys(resources: Iterable[str]) -> list[tuple[RevocationKind, str]]:
    """The (kind, value) a revocation names a token's resources by: each is an audience (an
    access token's `aud`; the ID-JAG's `resource` claim), requested or granted by policy."""
    return [("audience", resource) for resource in resources]


class RevocationGate:
    """Refuses exchanges a revocation or suspension in force covers."""

    def __init__(self, store: StatusStore, clock: Clock, *, max_stale_seconds: float) -> None:
        self._store = store
        self._clock = clock
        self._max_stale = max_stale_seconds
        # (kind, key) -> "revoked" | "suspended" (a key both revoked and suspended: "revoked")
        self._active: dict[tuple[str, str], str] = {}
        self._loaded_at: float | None = None

    async def refresh(self) -> None:
        """Reload the revocations and suspensions in force. Raises: StatusStoreError."""
        now = self._clock.now()
        loaded = await asyncio.to_thread(self._store.in_force, int(now))  # one moment of the store
        active: dict[tuple[str, str], str] = {
            (s.kind, s.key): "suspended" for s in loaded.suspensions
        }
        active.update({(r.kind, r.key): "revoked" for r in loaded.revocations})
        if active != self._active:
            counts = {"count": len(loaded.revocations), "suspended": len(loaded.suspensions)}
            log.info("revocations_loaded", extra=counts)
        self._active, self._loaded_at = active, now

    def check(
        self, request: ExchangeRequest, subject: VerifiedToken, actor: VerifiedToken | None
    ) -> None:
        """Raises: RevokedError (covered), TemporarilyUnavailableError (view too old)."""
        self.check_keys(covered_keys(request, subject, actor))

    def check_keys(self, keys: Iterable[tuple[str, str]]) -> None:
        """Refuse when a revocation or suspension in force names any of `keys` (check() for an
        exchange; the exchange also checks the resources policy granted unasked).

        Raises: RevokedError (covered), TemporarilyUnavailableError (view too old)."""
        if self._stale():
            raise TemporarilyUnavailableError(
                "token status is unavailable", log_detail="revocation view is stale"
            )
        for kind, key in keys:
            if (effect := self._active.get((kind, key))) is not None:
                raise RevokedError(log_detail=f"{effect} {kind}")

    def revoked(self, keys: Iterable[tuple[str, str]]) -> bool:
        """Whether a revocation or suspension in force names any of `keys` (for caches of minted
        tokens: a suspended token must not be served from one either). A view too old to trust
        names every key, failing closed as check() does: a cache must not keep serving what a
        fresh exchange is refused for (a revocation made meanwhile would go unseen)."""
        return self._stale() or any(key in self._active for key in keys)

    def _stale(self) -> bool:
        loaded_at = self._loaded_at
        return loaded_at is None or self._clock.now() - loaded_at > self._max_stale

    async def refresh_forever(self, interval: float, failures: LoopFailures) -> None:
        """Refresh every `interval` seconds; a failed refresh is counted (check() fails closed
        once the view is too old)."""
        await failures.repeat(REVOCATIONS_REFRESH, self.refresh, lambda: interval)
