"""Backoff per request when a downstream refuses the tokens Sekisho mints for it, fresh ones too.

`TokenExchangeClient.forget(token)` (called by `SekishoAuth` on a 401 `invalid_token`, by the
gRPC interceptors on UNAUTHENTICATED) drops the token, so the next call exchanges afresh: after
`sekisho keys revoke`, a revocation or a suspension, a fresh token is the cure. But a downstream
that refuses every token (its issuer, audience or clock wrong, its JWKS unreachable and answered
as 401) turned every call into an exchange, each minting a token (and a status list entry), and
SekishoAuth sent each request twice; only the client-side throttle bounded it, and it counts
every such exchange as an accept (red team).

Per cache key (one request: subject, audience, resources, scopes, token type):
- a first refusal (no drop of the key's token within REPEAT_SECONDS before) always drops the
  token, so a revoked or rotated one is replaced at once: nothing fresh is hidden;
- a refusal of the token exchanged after that drop, within REPEAT_SECONDS of it, says the
  downstream refuses fresh tokens too: the token is kept (`forget` answers False, SekishoAuth
  returns the 401 without sending again) for a hold of BASE_SECONDS, doubling with each such
  refusal up to MAX_SECONDS;
- the first refusal after a hold drops the token again: a probe, the fresh token may be taken;
- a key whose hold or drop is REPEAT_SECONDS past starts over.
So a downstream refusing every token costs one exchange per hold (1, 2, 4 ... 60 s), not one
per call; during a hold a downstream that started accepting again accepts the kept token too
(nothing Sekisho would mint differs), and the next refusal after the hold probes.

Cached token types only. An ID-JAG is never cached: each call already exchanges afresh, a refused
one costs what an accepted one does, and there is no token to keep during a hold (single use),
so a hold would fail calls in the client past a downstream's recovery and in place of Sekisho's
own answer; docs/integrators.md ("Refused ID-JAGs are not backed off") gives the reasons.
"""

from collections.abc import Callable, Hashable
from dataclasses import dataclass

from sekisho.backoff import Backoff
from sekisho.lru import LruMap

BASE_SECONDS = 1.0
MAX_SECONDS = 60.0
# A fresh token refused within this long of the refusal that made the client fetch it is one the
# downstream refuses as such; a key quiet this long after its last hold or drop starts over.
REPEAT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class _Streak:
    holds: int  # holds so far in this streak
    hold_until: float  # until then a refused token is kept
    dropped_at: float | None  # the last drop (a fresh token fetched after it); None after a hold


class RefusalBackoff:
    """Whether to drop a token a downstream refused, per key (module docstring); bounded LRU."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        base_seconds: float = BASE_SECONDS,
        max_seconds: float = MAX_SECONDS,
        repeat_seconds: float = REPEAT_SECONDS,
        max_entries: int = 10_000,
    ) -> None:
        self._clock = clock
        self._backoff = Backoff(base_seconds, max_seconds)
        self._repeat = repeat_seconds
        self._streaks: LruMap[Hashable, _Streak] = LruMap(max_entries)

    def should_drop(self, key: Hashable) -> bool:
        """A downstream refused the token cached under `key`: True to drop it (the next call
        exchanges afresh), False to keep it (held: the downstream refuses fresh tokens too)."""
        now = self._clock()
        streak = self._streaks.peek(key)
        if streak is not None and now < streak.hold_until:
            return False
        if streak is None:
            self._streaks.put(key, _Streak(0, now, now))
            return True
        if streak.dropped_at is not None and now - streak.dropped_at < self._repeat:
            # The token exchanged after the last drop was refused as well: hold it.
            hold = self._backoff.ceiling(streak.holds)
            self._streaks.put(key, _Streak(streak.holds + 1, now + hold, None))
            return False
        # A probe right after a hold keeps the count (the next hold is longer); else start over.
        probe = streak.dropped_at is None and now - streak.hold_until < self._repeat
        self._streaks.put(key, _Streak(streak.holds if probe else 0, now, now))
        return True
