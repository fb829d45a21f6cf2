"""The one JWKS client (RFC 7517), for both sides: the server verifying IdP tokens
(identity/verifier.py, one JwksCache per trusted issuer) and downstreams verifying Sekisho's
tokens (jwks_client.py's JwksClient, sekisho.verify's KeySource, wraps a JwksCache). Standard
library, pyjwt and aiohttp only, so `sekisho[verify]` carries it without the server.

- Size caps: documents over fetcher.MAX_DOCUMENT_BYTES or with more than MAX_KEYS keys are
  refused; only asymmetric public signing keys are kept, a duplicated kid drops both copies
  (jwk_set.py reads the document).
- Steady state never fetches on the request path: a kid seen before is answered from memory. The
  server refreshes in the background; a downstream refetches once the publisher's Cache-Control
  max-age has passed (`default_max_age`), less the response's `Age` (a set an HTTP cache
  served is as old as it says), within freshness.py's bounds (at least MIN_FRESH_SECONDS
  however short its max-age, `no-store`, `max-age=0`; at most MAX_FRESH_SECONDS). A kid found
  in the last REFRESH_AHEAD of that starts the refetch in the background, so under steady
  traffic no verification waits on it: at max-age every verification waited for the refetch
  (a slow publisher: up to the fetch timeout, 5 s).
- An unknown kid triggers a refetch at most once per `min_refetch_interval`, so a storm of made-up
  kids cannot hammer the publisher (the PyJWT advisory pattern STYLE.md warns about); concurrent
  fetches are single-flight.
- With `unknown_kid_wait_seconds` (the server: [trust] unknown_kid_wait_seconds; the SDK's
  JwksClient: jwks_client.UNKNOWN_KID_WAIT_SECONDS), a kid not in the set held waits for that
  refetch no later than this long after it began, then is refused as unavailable (the kid may be
  in the set not yet read); the fetch goes on, shared, and its keys serve the next call.
  Unbounded, each forged kid sent while the publisher answered slowly held its request for the
  whole fetch timeout (5 s): an attacker's cheap requests held the server's exchanges (and their
  admission slots) or the downstream's workers (red team session 20). With no usable set held,
  every kid needs the fetch and waits for it up to the fetch timeout, as before.
- Discovery (OIDC Discovery §4) is re-read before every fetch, so an IdP that moves its jwks_uri
  is followed without a restart; the new URI passes the same issuer and https rules, and a
  discovery document that fails or is refused keeps the last jwks_uri that served good keys.
- Fail-closed: once the last successful fetch is older than `max_stale_seconds` (after max-age
  for a downstream), the keys are gone and JwksUnavailableError is raised rather than trusting
  keys the publisher may have revoked since.
"""

import asyncio
import logging
import math
from typing import Any

from sekisho.backoff import Backoff
from sekisho.clock import Clock
from sekisho.singleflight import SingleFlight
from sekisho.urls import may_follow
from sekisho.verify.fetcher import DocumentFetcher, FetchError, JsonFetcher
from sekisho.verify.freshness import age_seconds, fresh_seconds, max_age_seconds
from sekisho.verify.jwk_set import PublicJwk, parse_jwks

log = logging.getLogger(__name__)

# The last part of a downstream's max-age in which a verification refetches in the background
# (module docstring), as status lists are refreshed (status.py).
REFRESH_AHEAD = 0.2


class JwksUnavailableError(Exception):
    """No keys were ever fetched for this issuer, or the last good ones expired, and the
    fetch failed now."""


class JwksCache:
    """Keys of one issuer, from a pinned jwks_uri or via OIDC discovery."""

    def __init__(
        self,
        issuer: str,
        fetcher: JsonFetcher,
        clock: Clock,
        *,
        jwks_uri: str = "",
        discovery_url: str = "",
        min_refetch_interval: float = 30.0,
        max_stale_seconds: float = math.inf,
        default_max_age: float | None = None,
        unknown_kid_wait_seconds: float | None = None,
    ) -> None:
        """`default_max_age` None (the server): keys stay in use until refreshed (`refresh`, in
        the background) or `max_stale_seconds` old. A number (a downstream): the publisher's
        Cache-Control max-age (this when it sends none) after which `key` refetches, and the
        keys are usable for `max_stale_seconds` beyond it. `unknown_kid_wait_seconds`: how long
        after a refetch began a kid not in the usable set held waits for it (None: until the
        fetch ends; module docstring)."""
        self._issuer = issuer
        self._fetcher = fetcher
        self._clock = clock
        self._jwks_uri = jwks_uri  # pinned by configuration: never discovered
        self._discovery_url = discovery_url
        self._discovered_uri = ""  # the discovered jwks_uri that last served good keys
        self._min_interval = min_refetch_interval
        self._max_stale = max_stale_seconds
        self._default_max_age = default_max_age
        self._unknown_kid_wait = unknown_kid_wait_seconds
        self._fresh_for = math.inf  # seconds after a fetch that `key` refetches first
        self._usable_for = max_stale_seconds  # seconds after a fetch that the keys expire
        self._keys: dict[str, PublicJwk] | None = None
        self._fetched_at = -math.inf
        self._last_attempt = -math.inf
        self._failed_in_a_row = 0
        self._fetches: SingleFlight[None, None] = SingleFlight()

    @property
    def loaded(self) -> bool:
        return self._keys is not None and not self._expired()

    @property
    def last_fetch_failed(self) -> bool:
        """Whether the latest fetch attempt failed (keys, if any, are from an earlier one)."""
        return self._last_attempt > self._fetched_at

    async def key(self, kid: str) -> PublicJwk | None:
        """The key for `kid` ("" = the issuer's only key), refetching (throttled) when unknown.

        Raises: JwksUnavailableError when no keys were ever fetched and fetching fails, the
            keys expired, or the refetch for an unknown kid was not answered in time.
        """
        if self._due():
            await self.refresh()
        found = self._lookup(kid)
        if found is not None:
            self._refresh_ahead()
            return found
        # Throttled even while no keys were ever fetched: a down IdP is not hammered at the
        # request rate; callers get UNAVAILABLE and the background loop keeps retrying. A fetch
        # under way is joined, whoever started it.
        if self._fetches.running(None) or (
            self._clock.now() - self._last_attempt >= self._min_interval
        ):
            await self._joined(self._unknown_kid_wait if self.loaded else None)
        if self._keys is None:
            raise JwksUnavailableError(f"no JWKS for {self._issuer}")
        if self._expired():
            raise JwksUnavailableError(
                f"JWKS for {self._issuer} not refreshed for over {self._usable_for:g} s"
            )
        return self._lookup(kid)

    def cached_key(self, kid: str) -> PublicJwk | None:
        """The key for `kid` from the last fetched set, never fetching (the subject cache's
        check that a cached token's key is still published)."""
        return self._lookup(kid)

    def _due(self) -> bool:
        """Past the publisher's max-age, and not just retried (a no-store set is refetched
        every time; a failed refetch of a cacheable one waits `min_refetch_interval`)."""
        if self._fresh_for == math.inf:  # the server's keys: refreshed in the background
            return False
        now = self._clock.now()
        retry_after = min(self._fresh_for, self._min_interval)
        return (
            self._keys is not None
            and now - self._fetched_at >= self._fresh_for
            and now - self._last_attempt >= retry_after
        )

    def _refresh_ahead(self) -> None:
        """A downstream's refetch in the last REFRESH_AHEAD of its max-age, not awaited; after
        a failed one, the next waits as `_due` does."""
        if self._fresh_for == math.inf or self._fetches.running(None):
            return
        now = self._clock.now()
        if now - self._fetched_at < (1 - REFRESH_AHEAD) * self._fresh_for:
            return
        if self.last_fetch_failed and now - self._last_attempt < min(
            self._fresh_for, self._min_interval
        ):
            return
        self._started()

    def _expired(self) -> bool:
        return self._clock.now() - self._fetched_at > self._usable_for

    def _lookup(self, kid: str) -> PublicJwk | None:
        if self._keys is None or self._expired():
            return None
        if kid:
            return self._keys.get(kid)
        # A token without a kid is accepted only when the issuer publishes exactly one key.
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    def next_refresh_in(self, interval: float) -> float:
        """Seconds until the background refresh: `interval` after a good fetch, sooner after a
        failed one (so an outage shorter than `max_stale_seconds` never expires the keys).

        While no keys were ever fetched, 1, 2, 4 … s up to the refetch interval: an IdP that
        was not up when the service started (make run starts both at once; a pod before its
        IdP's) serves its users within seconds of coming up, not after the 30 s throttle."""
        if self._keys is not None and self._fetched_at >= self._last_attempt:
            return interval
        retry = min(interval, self._min_interval)
        if self._keys is None:
            retry = Backoff(1.0, retry).ceiling(self._failed_in_a_row - 1)
        return max(1.0, retry)

    async def refresh(self) -> None:
        """Fetch now, single-flight: concurrent callers share one request."""
        await self._joined(None)

    async def _joined(self, wait: float | None) -> None:
        """The fetch under way (else a new one), waited for no later than `wait` seconds after
        it began (None: until it ends). Given up, it goes on (shielded) and stores its keys.

        Raises: JwksUnavailableError when given up.
        """
        fetch = self._started()
        if wait is None:
            await asyncio.shield(fetch)
            return
        left = max(0.0, self._last_attempt + wait - self._clock.now())
        try:
            await asyncio.wait_for(asyncio.shield(fetch), left)
        except TimeoutError:
            raise JwksUnavailableError(
                f"JWKS for {self._issuer} not answered within {wait:g} s of the refetch"
            ) from None

    def _started(self) -> "asyncio.Future[None]":
        """The fetch under way, else a new one."""
        if not self._fetches.running(None):
            # When it began, for the throttle and for `wait`: set here, not when the task first
            # runs, so a caller joining it in the same loop turn reads this fetch's start.
            self._last_attempt = self._clock.now()
            started = self._fetches.start(None, self._fetch)
            # Every waiter may give up before it ends (or none waits: a refresh ahead): a fault
            # it raises is read here, not left unretrieved; waiters still get it.
            started.add_done_callback(lambda done: done.cancelled() or done.exception())
        return self._fetches.start(None, self._fetch)

    async def _fetch(self) -> None:
        try:
            uri = await self._current_jwks_uri()
            document, fresh_for = await self._get(uri)
            keys = parse_jwks(document)
        except FetchError as exc:
            self._failed_in_a_row += 1
            log.warning("jwks_fetch_failed", extra={"iss": self._issuer, "error": str(exc)})
            return
        self._failed_in_a_row = 0
        if self._discovery_url and not self._jwks_uri and uri != self._discovered_uri:
            if self._discovered_uri:
                log.info(
                    "jwks_uri_changed",
                    extra={"iss": self._issuer, "old": self._discovered_uri, "new": uri},
                )
            self._discovered_uri = uri
        self._keys = keys
        self._fetched_at = self._clock.now()
        self._fresh_for = fresh_for
        self._usable_for = self._max_stale if fresh_for == math.inf else fresh_for + self._max_stale
        log.info("jwks_fetched", extra={"iss": self._issuer, "kids": sorted(keys)})

    async def _get(self, uri: str) -> tuple[Any, float]:
        """The JWK Set document and how long it is fresh."""
        if self._default_max_age is None:
            return await self._fetcher.fetch_json(uri), math.inf
        if not isinstance(self._fetcher, DocumentFetcher):
            return await self._fetcher.fetch_json(uri), fresh_seconds(self._default_max_age, 0.0)
        fetched = await self._fetcher.fetch_document(uri)
        max_age = max_age_seconds(fetched.cache_control, self._default_max_age)
        return fetched.body, fresh_seconds(max_age, age_seconds(fetched.age))

    async def _current_jwks_uri(self) -> str:
        """The pinned jwks_uri, else the one discovery names now; when discovery fails or its
        document is refused, the discovered one that last served good keys (if any).

        Raises: FetchError when discovery fails and no discovered jwks_uri ever served keys.
        """
        if self._jwks_uri:
            return self._jwks_uri
        try:
            return await self._discover()
        except FetchError as exc:
            if not self._discovered_uri:
                raise
            log.warning(
                "idp_discovery_failed",
                extra={"iss": self._issuer, "error": str(exc), "jwks_uri": self._discovered_uri},
            )
            return self._discovered_uri

    async def _discover(self) -> str:
        doc = await self._fetcher.fetch_json(self._discovery_url)
        # OpenID Connect Discovery §4.3: the document's issuer must equal the configured one.
        if not isinstance(doc, dict) or doc.get("issuer") != self._issuer:
            raise FetchError("discovery document issuer does not match the configured issuer")
        uri = doc.get("jwks_uri")
        if not isinstance(uri, str) or not may_follow(uri, self._discovery_url):
            raise FetchError("discovery document has no usable https jwks_uri")
        return uri
