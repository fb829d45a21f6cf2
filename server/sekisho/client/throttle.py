"""Client-side adaptive throttling (Google SRE book, "Handling Overload": client-side throttling).

Each client remembers how many requests it attempted lately and how many the service accepted
(answered with anything but an overload refusal). When the service is refusing, the client
starts rejecting new requests locally with probability

    max(0, (requests - K * accepts) / (requests + 1))

so a fleet of agents stops sending calls that would only be refused, while K > 1 keeps enough
requests flowing to notice recovery. Locally rejected requests count as requests, as in the book.

"Lately" is a decaying window: both counts fade with time constant `window_seconds` (5 s: the
same mean age as a 10 s sliding window, go-zero's googleBreaker), not the book's 2 minutes.
Two rules keep a past outage from locking the client out once the service answers again; both
apply only in a deep hole, when the accepts counted have faded below one (nothing accepted for
about a window: the service was down or stalled, not saturated):

- probes: while calls are being rejected, one is sent anyway when none has gone out for
  `probe_seconds` (1 s, go-zero's forcePassDuration), so the client learns of a recovery
  however high the rejection probability is;
- the first accept after `probe_seconds` without one ends the outage: the refusals and local
  rejections counted so far are forgotten (requests fall to accepts) and every call is sent
  again; if the service is still overloaded its refusals bring the throttle back within a few
  answers.

Without them the SRE rule recovers slowly from a deep hole: the client may send only about K
times what was accepted over the window, plus one call per window (the +1), so after a stall its
sending grows by a factor of ~K per window (the book's window served none of a client's calls in
the minute after a 5 s stall; these rules, 90 % within a second). They apply only in a deep hole
because, while the service accepts a share (saturated, not down), every client's probe and every
accept read as a recovery let a fleet of low-rate clients send up to three times the calls per
accept the SRE rule alone does. The window is 5 s, not longer: a longer one lets fewer calls
through per accept, but in one of two rounds against a real server left clients rejecting
locally for seconds after a collapse.
The numbers, the model and the A/B runs behind each of these: bench/results/throttle_recovery.md.
"""

import math
import random
from collections.abc import Callable

# Accepts counted (decayed) below which the client is in a deep hole (nothing accepted for about
# a window: the service down or stalled), where probes go out and an accept ends the outage.
# Above it the service is accepting a share (saturated, not down): the SRE rule alone throttles,
# as a fleet of low-rate clients needs.
DEEP_HOLE_ACCEPTS = 1.0


class AdaptiveThrottle:
    """Requests and accepts, decaying with time constant `window_seconds`."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        k: float = 2.0,
        window_seconds: float = 5.0,
        probe_seconds: float = 1.0,
        deep_hole_accepts: float = DEEP_HOLE_ACCEPTS,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if window_seconds <= 0 or probe_seconds <= 0:
            raise ValueError("window_seconds and probe_seconds must be positive")
        self._clock = clock
        self._k = k
        self._window = window_seconds
        self._probe = probe_seconds
        self._deep_hole = deep_hole_accepts
        self._rand = rand
        self._requests = 0.0
        self._accepts = 0.0
        self._counted_at = clock()
        # A new client has just sent and been answered: no probe nor recovery before one is due.
        self._last_sent = self._last_accept = clock()

    def rejection_probability(self) -> float:
        """The chance a new request is rejected locally now (a probe that is due aside)."""
        self._decay()
        return max(0.0, (self._requests - self._k * self._accepts) / (self._requests + 1))

    def allow(self) -> bool:
        """Whether to send a new request. A local rejection counts as a request at once; a sent
        one counts when its answer comes (`accepted` or `refused`), so calls still in flight do
        not look like refusals: a cold client's first burst goes out whole."""
        now = self._clock()
        rejected = self._rand() < self.rejection_probability()
        if rejected and (self._accepts >= self._deep_hole or now - self._last_sent < self._probe):
            self._requests += 1
            return False
        self._last_sent = now
        return True

    def accepted(self) -> None:
        """The service answered a sent request (anything but an overload refusal)."""
        self._decay()
        hole = self._accepts < self._deep_hole
        self._requests += 1
        self._accepts += 1
        now = self._clock()
        if hole and now - self._last_accept >= self._probe:
            self._requests = self._accepts  # the first accept after an outage: it is over
        self._last_accept = now

    def refused(self) -> None:
        """The service refused a sent request for overload, or did not answer in time."""
        self._decay()
        self._requests += 1

    def _decay(self) -> None:
        now = self._clock()
        if now > self._counted_at:
            kept = math.exp((self._counted_at - now) / self._window)
            self._requests *= kept
            self._accepts *= kept
        self._counted_at = max(now, self._counted_at)
