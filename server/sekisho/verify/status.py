"""Token status for downstream servers (draft-ietf-oauth-status-list §8): fetch the Status List
Token a Sekisho token points at, validate it with the same keys, and cache it for its `ttl`.

Freshness: a list is used for `ttl` seconds (or the response's Cache-Control max-age, whichever is
shorter) less its age, and at least MIN_FRESH_SECONDS; in the last fifth of that it is refreshed in
the background, so verification does not wait on the network under steady traffic. Its age is
the response's `Age` header (RFC 9111 §4.2.3), and never less than the time since its own `iat`:
a copy an HTTP cache in front of the list URL took just before a `revoke` and served near the end
of its max-age was held for a whole `ttl` from its arrival, so the revoked token read VALID for up
to twice the `ttl` (red team session 14; a cache such as nginx's sends no `Age`, hence `iat`). A
downstream clock ahead of Sekisho's only makes the lists it holds fresh for less (a fetch a
second at worst) and stale for less. Past `ttl` the next verification fetches; if that fails,
the last good list serves until it is `max_stale_seconds` old by the same age (never past its
`exp`), then verification fails closed (VerifierUnavailableError). Counted from its arrival, a
copy an HTTP cache served late stretched the allowance by what it had already aged there, up to
a whole `ttl` (red team session 14, left then).

Bounded waits: a verification that finds its list past `ttl` while the copy held may still serve
(within `max_stale_seconds`) waits for the refresh no later than `refresh_wait_seconds` after that
fetch began; then the held copy serves and the fetch goes on, shared, for the next verification
(stale-while-revalidate). A list URL that answers slowly held every such verification for the
whole fetch timeout (`timeout_seconds`, 5 s), although a copy it could serve was at hand (red
team). With no copy to serve, a verification waits for the fetch up to its timeout (or the
caller's `wait_seconds`): there is nothing else to answer with but a refusal.

One fetch at a time, and at most one a RETRY_SECONDS after a failure: concurrent verifications
past `ttl` share one fetch, and a fetch that failed (an error, a 503, a list refused as older) is
not tried again for RETRY_SECONDS, the last good list serving meanwhile (or the failure raised);
the background refresh waits likewise (red team session 14: in the last fifth of the `ttl` each
verification started a new refresh once the last had failed, a fetch and a WARNING each).
Each verification past `ttl` fetched while the fetch failed, every one on a new connection: a
status endpoint answering 503 because it is flooded (`Retry-After: 1`) got one more request per
verification from every downstream, and those new connections spent the HTTP listener's shared
new-connection budget (red team session 12, second pass).

Never backwards: a list issued (`iat`) before the one held is a failed fetch, not a replacement,
and so is one of the same second that no longer reads INVALID an entry the held one does.
A validly signed list stays valid until its `exp` (600 s by default, longer than a token lives),
so whoever answers for the list's URL (a cache, a proxy, a replayed response) could otherwise
serve one from before a revocation and have the revoked token read VALID again.

Bounded: at most `max_lists` lists are held (default MAX_LISTS), the least recently used evicted
first. Sekisho starts a new list every `[status_list] list_size` tokens and never reuses an id,
so a downstream that runs for weeks meets thousands of lists, of which only the few whose tokens
are still alive are ever read again; holding every one grew without bound (a list of 100,000
two-bit entries is 25 KB). An evicted list is fetched again when a token names it, and the `iat`
of the newest copy seen, its `bits` and how many of its entries read INVALID are remembered for
WATERMARK_FACTOR times as many lists: a list evicted and fetched again is still never one issued
before the newest seen, nor one of that same second with other `bits` or fewer INVALID entries
(INVALID is final, so such a copy was built from an older view; red team session 13b: with the
`iat` alone, a same-second copy from before `revoke` put the revoked token back to VALID).

A stale list served is logged once per SUMMARY_INTERVAL per list (`status_list_stale`, counting
the verifications since the last line), not once per verification: during an outage of the
status endpoint every verification of every request wrote a WARNING, for up to
`max_stale_seconds` (red team session 13).
"""

import asyncio
import logging
import math
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt

from sekisho.clock import CallableClock
from sekisho.constants import (
    MAX_HEADER_SEGMENT,
    MEDIA_TYPE_STATUS_LIST,
    SIGNING_ALGORITHMS,
    TYP_STATUS_LIST,
)
from sekisho.log_throttle import SUMMARY_INTERVAL, LogThrottle
from sekisho.lru import LruMap
from sekisho.singleflight import SingleFlight
from sekisho.status.bitlist import (
    INVALID,
    SUSPENDED,
    VALID,
    StatusList,
    StatusListFormatError,
    drops_invalid,
    from_claim,
    invalid_count,
)
from sekisho.verify.errors import (
    StatusIssuerMismatchError,
    TokenRejectedError,
    VerificationError,
    VerifierUnavailableError,
)
from sekisho.verify.fetcher import FetchError, read_capped
from sekisho.verify.freshness import age_seconds, fresh_seconds, max_age_seconds
from sekisho.verify.keys import KeySource

log = logging.getLogger(__name__)

MAX_LIST_TOKEN_BYTES = 4 * 1024 * 1024
_REFRESH_AHEAD = 0.2  # of the ttl
# After a failed fetch of a list, the next is not tried for this long (module docstring).
RETRY_SECONDS = 1.0
# How long after a refresh began a verification waits for it while the copy held may still serve
# (module docstring): a fetch from a Sekisho nearby takes milliseconds.
REFRESH_WAIT_SECONDS = 0.5
# Lists held at once by default (module docstring): far more than are live at once (a list's
# tokens live minutes; a busy Sekisho fills one of 100,000 entries in a few of them).
MAX_LISTS = 64
# The `iat` of the newest copy seen is kept for this many times `max_lists` lists (a float per
# list, not the list).
WATERMARK_FACTOR = 16
# draft §7.1 names; any other value (0x03, application specific, or unassigned) is refused too.
_STATUS_NAMES = {INVALID: "revoked", SUSPENDED: "suspended"}


@dataclass(frozen=True, slots=True)
class _Seen:
    """What is remembered of the newest copy of a list taken, after the list is evicted."""

    issued_at: float
    bits: int
    invalid: int  # entries reading INVALID

    def newer_than(self, issued_at: float, status_list: StatusList) -> bool:
        """Whether this copy was built from a newer view than (`issued_at`, `status_list`)."""
        if issued_at != self.issued_at:
            return issued_at < self.issued_at
        return status_list.bits != self.bits or invalid_count(status_list) < self.invalid


@dataclass(frozen=True, slots=True)
class _CachedList:
    status_list: StatusList
    issued_at: float
    fetched_at: float
    fresh_until: float
    expires_at: float | None
    born_at: float  # fetched_at less the copy's age: max_stale_seconds counts from here


class StatusListClient:
    """Fetches, validates and caches Status List Tokens of one issuer (at most `max_lists`).

    `refresh_wait_seconds`: how long after a refresh began a verification waits for it while
    the copy held may still serve (module docstring); `timeout_seconds`: a fetch's own bound.

    Raises: ValueError when `max_lists` is below 1 or `refresh_wait_seconds` negative.
    """

    def __init__(
        self,
        *,
        issuer: str,
        keys: KeySource,
        clock: Callable[[], float] = time.time,
        max_stale_seconds: float = 300.0,
        default_ttl_seconds: float = 60.0,
        timeout_seconds: float = 5.0,
        algorithms: Collection[str] = SIGNING_ALGORITHMS,
        max_lists: int = MAX_LISTS,
        refresh_wait_seconds: float = REFRESH_WAIT_SECONDS,
    ) -> None:
        if max_lists < 1:
            raise ValueError("max_lists must be at least 1")
        if refresh_wait_seconds < 0:
            raise ValueError("refresh_wait_seconds must not be negative")
        self._refresh_wait = refresh_wait_seconds
        self._issuer = issuer
        self._keys = keys
        self._clock = clock
        self._max_stale = max_stale_seconds
        self._default_ttl = default_ttl_seconds
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._algorithms = list(algorithms)
        self._lists: LruMap[str, _CachedList] = LruMap(max_lists)
        # uri -> the newest copy taken (`iat`, bits, INVALID count), kept after it is evicted.
        self._newest: LruMap[str, _Seen] = LruMap(WATERMARK_FACTOR * max_lists)
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._fetches: SingleFlight[str, _CachedList] = SingleFlight()
        self._fetch_started: dict[str, float] = {}  # uri -> when its running fetch began
        self._failed_at: LruMap[str, float] = LruMap(max_lists)  # uri -> its last failed fetch
        self._stale_lines: LruMap[str, LogThrottle] = LruMap(max_lists)  # status_list_stale
        self.fetch_count = 0

    @property
    def issuer(self) -> str:
        """The issuer whose lists this client reads (only URIs under it are fetched)."""
        return self._issuer

    def check_issuer(self, issuer: object) -> None:
        """Check that tokens of `issuer` (a verifier's, or a token's `iss`) are this client's.

        Every `status` claim of another issuer's tokens names a URI outside this one, refused
        as the token's fault: a client built with the wrong issuer made a verifier refuse
        every token as bad, and made `sekisho.client` read every cached token as revoked and
        exchange again on each call, silently (red team session 14, left then).

        Raises: StatusIssuerMismatchError naming both issuers (public URLs, nothing secret).
        """
        if issuer != self._issuer:
            raise StatusIssuerMismatchError(
                f"status list client is for issuer {self._issuer!r}, but the tokens' issuer is "
                f"{issuer!r}: build StatusListClient(issuer=...) with the tokens' issuer"
            )

    async def status(self, claim: object, *, wait_seconds: float | None = None) -> int:
        """The status value of a token's `status` claim (0 = VALID). `wait_seconds`: the
        longest a fetch is waited for (None: the fetch's own timeout); past it, the fetch is
        failed for this call (the last good list serves within max_stale_seconds) and goes on
        for the next.

        Raises: TokenRejectedError (malformed reference, foreign URI, index out of range),
            VerifierUnavailableError (no list fresh enough could be had).
        """
        uri, idx = self._reference(claim)
        status_list = await self._list(uri, wait_seconds)
        try:
            return status_list.status(idx)
        except StatusListFormatError as exc:
            raise TokenRejectedError("status index is outside the list") from exc

    async def check(self, claim: object, *, wait_seconds: float | None = None) -> None:
        """`wait_seconds` as in `status`.

        Raises: TokenRejectedError unless the status is VALID (SUSPENDED is refused like
        INVALID while it lasts; a later copy of the list may read VALID again),
        VerifierUnavailableError."""
        status = await self.status(claim, wait_seconds=wait_seconds)
        if status != VALID:
            name = _STATUS_NAMES.get(status, f"status {status:#04x}")
            raise TokenRejectedError(f"token status is not valid ({name})")

    async def check_token(
        self,
        claims: Mapping[str, Any],
        *,
        require_status: bool = False,
        wait_seconds: float | None = None,
    ) -> None:
        """The status check of a referenced token, given its verified claims, for a downstream
        that verifies tokens itself (SekishoTokenVerifier calls it too): its `iss` must be this
        client's issuer, and without a `status` claim it passes unless `require_status` (such
        a token cannot be revoked before its `exp`). `check(claims["status"])` alone reads the
        list the claim names under this issuer, whoever issued the token (red team: only the
        verifier could bind the two, or refuse a token without `status`).

        Raises: StatusIssuerMismatchError (a token of another issuer: a wiring error, never
            read as its status), TokenRejectedError (no `status` while required; not VALID;
            a bad reference), VerifierUnavailableError.
        """
        self.check_issuer(claims.get("iss"))
        if "status" in claims:
            await self.check(claims["status"], wait_seconds=wait_seconds)
        elif require_status:
            raise TokenRejectedError("token has no status claim, and this verifier requires one")

    def held_status(self, claim: object) -> int | None:
        """The status the copy of the list held now reads for `claim`, however stale, without
        a fetch; None when no copy is held (or the reference is not one this client reads).

        For a caller that must tell "unknown" from "last read revoked" once the list cannot
        be read (`check` raised VerifierUnavailableError): INVALID is final, and a copy held
        for another token of the same list may already have read this one INVALID or
        SUSPENDED (sekisho.client, red team session 16).
        """
        try:
            uri, idx = self._reference(claim)
        except TokenRejectedError:
            return None
        held = self._lists.peek(uri)
        if held is None:
            return None
        try:
            return held.status_list.status(idx)
        except StatusListFormatError:
            return None

    def _reference(self, claim: object) -> tuple[str, int]:
        reference = claim.get("status_list") if isinstance(claim, Mapping) else None
        if not isinstance(reference, Mapping):
            raise TokenRejectedError("status claim has no status_list reference")
        uri, idx = reference.get("uri"), reference.get("idx")
        if not isinstance(uri, str) or not isinstance(idx, int) or isinstance(idx, bool):
            raise TokenRejectedError("status_list needs a string uri and an integer idx")
        # Only lists the issuer serves: a token must not make us fetch arbitrary URLs (SSRF).
        if not uri.startswith(self._issuer + "/") or idx < 0:
            raise TokenRejectedError("status list uri is not the issuer's")
        return uri, idx

    async def _list(self, uri: str, wait_seconds: float | None = None) -> StatusList:
        now = self._clock()
        cached = self._lists.get(uri)
        if cached is not None and now < cached.fresh_until:
            if now >= cached.fresh_until - _REFRESH_AHEAD * (
                cached.fresh_until - cached.fetched_at
            ):
                self._refresh_in_background(uri)
            return cached.status_list
        stale_usable = cached is not None and self._usable_stale(cached, now)
        try:
            fetch = self._shared_fetch(uri, now)
            wait = self._wait(uri, now, wait_seconds, stale_usable=stale_usable)
            return (await self._waited(fetch, wait)).status_list
        except VerifierUnavailableError:
            if cached is not None and stale_usable:
                self._log_stale(uri)
                return cached.status_list
            raise

    def _wait(
        self, uri: str, now: float, wait_seconds: float | None, *, stale_usable: bool
    ) -> float | None:
        """How long this verification waits for the fetch of `uri`: the caller's bound, and,
        while the copy held may still serve, until `refresh_wait_seconds` after the fetch began
        (one that began long enough ago is not waited for at all: the held copy serves)."""
        if not stale_usable:
            return wait_seconds
        started = self._fetch_started.get(uri, now)  # not begun yet: this call begins it
        bound = max(0.0, started + self._refresh_wait - now)
        return bound if wait_seconds is None else min(wait_seconds, bound)

    @staticmethod
    async def _waited(
        fetch: "asyncio.Future[_CachedList]", wait_seconds: float | None
    ) -> _CachedList:
        """`fetch`, given up after `wait_seconds` (the shared fetch itself is shielded: it goes
        on). A caller with a deadline (sekisho.client: its call's) is not held for the whole
        fetch timeout by a list URL that does not answer (red team session 16).

        Raises: VerifierUnavailableError (also when given up).
        """
        if wait_seconds is None:
            return await asyncio.shield(fetch)
        try:
            return await asyncio.wait_for(asyncio.shield(fetch), max(0.0, wait_seconds))
        except TimeoutError:
            raise VerifierUnavailableError(
                f"status list fetch not answered within {wait_seconds:.3g} s"
            ) from None

    def _log_stale(self, uri: str) -> None:
        throttle = self._stale_lines.get(uri)
        if throttle is None:
            throttle = LogThrottle(CallableClock(self._clock), SUMMARY_INTERVAL)
            self._stale_lines.put(uri, throttle)
        served = throttle.count()
        if served is not None:
            log.warning("status_list_stale", extra={"uri": uri, "served": served})

    def _usable_stale(self, cached: _CachedList, now: float) -> bool:
        within_exp = cached.expires_at is None or now < cached.expires_at
        return within_exp and now - cached.born_at < self._max_stale

    def _refresh_in_background(self, uri: str) -> None:
        if uri in self._refreshing or self._failed_recently(uri, self._clock()):
            return

        async def refresh() -> None:
            try:
                await self._fetches.run(uri, lambda: self._fetch(uri))
            except VerificationError as exc:  # the held list serves; retried after the interval
                log.warning("status_list_refresh_failed", extra={"uri": uri, "detail": str(exc)})
            finally:
                self._refreshing.pop(uri, None)

        self._refreshing[uri] = asyncio.create_task(refresh())

    def _shared_fetch(self, uri: str, now: float) -> "asyncio.Future[_CachedList]":
        """The fetch under way for `uri`, else a new one (begun now, whatever the caller then
        waits) unless the last failed within RETRY_SECONDS.

        Raises: VerifierUnavailableError."""
        if self._fetches.running(uri):
            return self._fetches.start(uri, lambda: self._fetch(uri))
        if self._failed_recently(uri, now):
            raise VerifierUnavailableError(
                f"status list fetch failed less than {RETRY_SECONDS:g} s ago"
            )
        fetch = self._fetches.start(uri, lambda: self._fetch(uri))
        # Every waiter may have given up before it ends: its failure is read here, not left
        # unretrieved ("Task exception was never retrieved"); the waiters still get it.
        fetch.add_done_callback(lambda done: done.cancelled() or done.exception())
        return fetch

    def _failed_recently(self, uri: str, now: float) -> bool:
        """Whether the last fetch of `uri` failed less than RETRY_SECONDS ago: the request path
        and the background refresh alike wait that long before the next."""
        failed_at = self._failed_at.peek(uri)
        return failed_at is not None and 0 <= now - failed_at < RETRY_SECONDS

    async def _fetch(self, uri: str) -> _CachedList:
        self._fetch_started[uri] = self._clock()
        try:
            fetched = await self._fetch_once(uri)
        except Exception:  # unavailable, refused, or a bug: no fetch for RETRY_SECONDS either way
            self._failed_at.put(uri, self._clock())
            raise
        finally:
            self._fetch_started.pop(uri, None)
        self._failed_at.pop(uri)
        return fetched

    async def _fetch_once(self, uri: str) -> _CachedList:
        self.fetch_count += 1
        now = self._clock()
        body, cache_control, age = await self._download(uri)
        claims = await self._validate(body.decode("ascii", "replace"), uri, now)
        exp = claims.get("exp")
        try:
            status_list = from_claim(claims["status_list"])
        except StatusListFormatError as exc:
            raise VerifierUnavailableError(f"status list is malformed: {exc}") from exc
        issued_at = float(claims["iat"])
        ttl = float(claims.get("ttl", self._default_ttl))
        # Its ttl or a shorter max-age, less its age; max_stale_seconds counts by the same age
        # (module docstring).
        lifetime = min(ttl, max_age_seconds(cache_control, ttl))
        copy_age = max(age_seconds(age), now - issued_at)
        fresh_for = fresh_seconds(lifetime, copy_age)
        held = self._lists.peek(uri)
        # Never backwards: a list issued before the one held, or one of the same second (`iat`
        # is whole seconds; each worker and replica signs its own) that no longer reads INVALID
        # an entry the held one does (INVALID is final), was built from an older view.
        if held is not None and (
            issued_at < held.issued_at
            or (issued_at == held.issued_at and drops_invalid(held.status_list, status_list))
        ):
            # A failed fetch whether or not the held list is still fresh (a background refresh):
            # the held one serves, and the next fetch waits RETRY_SECONDS.
            raise VerifierUnavailableError("status list is older than one already seen")
        newest = self._newest.peek(uri)
        if held is None and newest is not None and newest.newer_than(issued_at, status_list):
            # Evicted, and now an older copy: the same replay as above (module docstring).
            raise VerifierUnavailableError("status list is older than one already seen")
        cached = _CachedList(
            status_list,
            issued_at,
            now,
            now + fresh_for,
            float(exp) if exp is not None else None,
            born_at=now - copy_age,
        )
        self._lists.put(uri, cached)
        seen = _Seen(issued_at, status_list.bits, invalid_count(status_list))
        self._newest.put(uri, seen)
        return cached

    async def _download(self, uri: str) -> tuple[bytes, str, str]:
        """The body, Cache-Control and Age of the list's response."""
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.get(
                    uri, headers={"Accept": MEDIA_TYPE_STATUS_LIST}, allow_redirects=False
                ) as answer,
            ):
                if answer.status != 200:
                    raise VerifierUnavailableError(f"status list answered HTTP {answer.status}")
                # Read whole (fetcher.read_capped): one `content.read(cap)` answered with what
                # had arrived so far, and a list token arriving in several reads (over any
                # network) was cut and refused as malformed (red team session 20).
                body = await read_capped(answer.content, uri, MAX_LIST_TOKEN_BYTES)
                cache_control = answer.headers.get("Cache-Control", "")
                age = answer.headers.get("Age", "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise VerifierUnavailableError(
                f"status list fetch failed: {type(exc).__name__}"
            ) from exc
        except FetchError as exc:
            raise VerifierUnavailableError("status list token too large") from exc
        return body, cache_control, age

    async def _validate(self, token: str, uri: str, now: float) -> dict[str, Any]:
        """draft §8.3: typ, signature by the issuer's keys, sub = uri, iat, exp, ttl."""
        if len(token.partition(".")[0]) > MAX_HEADER_SEGMENT:  # before PyJWT parses it as JSON
            raise VerifierUnavailableError(
                f"status list token header longer than {MAX_HEADER_SEGMENT} characters"
            )
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise VerifierUnavailableError("status list token is malformed") from exc
        if header.get("typ") != TYP_STATUS_LIST or header.get("alg") not in self._algorithms:
            raise VerifierUnavailableError("status list token has the wrong typ or alg")
        try:
            key = await self._keys.key(str(header.get("kid", "")))
        except TokenRejectedError as exc:
            # The list's key, not the token's: the token's status cannot be read, so it is
            # unavailable (the held list serves), never a rejected token (red team session 14).
            raise VerifierUnavailableError(f"status list key: {exc}") from exc
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=self._algorithms,
                options={"require": ["sub", "iat"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise VerifierUnavailableError(f"status list token rejected: {exc}") from exc
        if claims["sub"] != uri or claims.get("iss") != self._issuer:
            raise VerifierUnavailableError("status list token is for another list or issuer")
        # Numbers, checked before use: float() of a string or list `exp` raised a bare
        # ValueError/TypeError out of verify() (and out of the background refresh's task, which
        # catches VerificationError only), and a NaN `exp` never expired (red team session 20).
        for name in ("iat", "exp"):
            value = claims.get(name, 0)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise VerifierUnavailableError(f"status list {name} must be a number")
            if not math.isfinite(value):
                raise VerifierUnavailableError(f"status list {name} must be a number")
        if "exp" in claims and now >= claims["exp"]:
            raise VerifierUnavailableError("status list token expired")
        ttl = claims.get("ttl", self._default_ttl)
        if not isinstance(ttl, int | float) or isinstance(ttl, bool) or not ttl > 0:
            raise VerifierUnavailableError("status list ttl must be a positive number")
        return claims
