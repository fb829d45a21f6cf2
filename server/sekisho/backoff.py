"""Exponential backoff: `base · 2^attempt` capped at `max_seconds`, with or without full jitter
(AWS Architecture Blog, "Exponential Backoff And Jitter"). The one rule behind every retry: the
client SDK's UNAVAILABLE retries, KMS throttling, worker restarts, bundle and key reload retries,
and the fetches of an IdP's JWKS before its first success. Standard library only, so the SDKs may
use it.
"""

import random
from dataclasses import dataclass

_MAX_EXPONENT = 62  # 2**62 · base is past any cap; bigger exponents only cost big-int work


@dataclass(frozen=True, slots=True)
class Backoff:
    """`ceiling(attempt)` = min(max_seconds, base_seconds · 2^attempt); attempt 0 is the first."""

    base_seconds: float
    max_seconds: float

    def ceiling(self, attempt: int) -> float:
        """The capped delay without jitter (restarts and reloads, where spread is not needed)."""
        growth: float = 2 ** min(max(attempt, 0), _MAX_EXPONENT)
        return min(self.max_seconds, self.base_seconds * growth)

    def jittered(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full jitter: uniform in [0, ceiling(attempt)], so retrying callers spread out."""
        draw = rng.uniform if rng is not None else random.uniform
        return draw(0, self.ceiling(attempt))
