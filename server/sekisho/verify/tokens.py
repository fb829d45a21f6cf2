"""Validation of Sekisho-issued tokens by a downstream server.

Two profiles (docs/architecture.md §4), never confusable: `id-jag` (`typ: oauth-id-jag+jwt`,
`aud` = the downstream authorization server's issuer, redeemed once via RFC 7523 jwt-bearer) and
`access_token` (RFC 9068 `typ: at+jwt`, `aud` = the resource). Signature layer first, then one
`_check_<claim>` per rule; `now` comes from the caller's clock, never read inside a check.
"""

import math
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from sekisho.codepoints import is_scope_token
from sekisho.constants import MAX_HEADER_SEGMENT, SIGNING_ALGORITHMS
from sekisho.profiles import BY_NAME, ProfileName
from sekisho.verify.errors import (
    InsufficientScopeError,
    ReplayedTokenError,
    TokenRejectedError,
    VerifierUnavailableError,
)
from sekisho.verify.keys import KeySource
from sekisho.verify.replay import ReplayCache, ReplayCacheUnavailableError
from sekisho.verify.status import StatusListClient

__all__ = ["KeySource", "SekishoTokenVerifier", "VerifiedSekishoToken"]

Profile = ProfileName
DEFAULT_ALGORITHMS = SIGNING_ALGORITHMS
_REQUIRED = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id")
# The longest token `verify` reads. A Sekisho token is ~1 KB, and a downstream is handed whatever
# a client sends; PyJWT base64-decodes every segment before it checks the signature, so a larger
# one is refused on its length alone (the server's own bound on inbound tokens is
# trust.max_token_bytes, 16,384 by default).
MAX_TOKEN_CHARS = 16384


@dataclass(frozen=True, slots=True)
class VerifiedSekishoToken:
    """A token that passed every check, with scope helpers."""

    subject: str
    audience: str
    client_id: str
    jti: str
    expires_at: int
    scopes: frozenset[str]
    resources: tuple[str, ...]
    tenant: str
    claims: Mapping[str, Any] = field(default_factory=dict)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def require_scopes(self, *needed: str) -> None:
        """Raises: InsufficientScopeError naming the missing scopes."""
        missing = sorted(set(needed) - self.scopes)
        if missing:
            raise InsufficientScopeError(f"missing scope(s): {' '.join(missing)}")


class SekishoTokenVerifier:
    """Validates one profile of Sekisho token for one audience."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        keys: KeySource,
        profile: Profile = "id-jag",
        resources: Collection[str] | None = None,
        replay_cache: ReplayCache | None = None,
        algorithms: Collection[str] = DEFAULT_ALGORITHMS,
        leeway_seconds: int = 30,
        clock: Callable[[], float] = time.time,
        status: StatusListClient | None = None,
        require_status: bool = False,
    ) -> None:
        """`require_status`: refuse a token without a `status` claim (one that cannot be
        revoked before its `exp`); needs `status`.

        Raises: ValueError for an id-jag verifier without a replay cache, or `require_status`
            without a status client; StatusIssuerMismatchError (a ValueError) for a status
            client of another issuer.
        """
        self._profile = BY_NAME[profile]
        if self._profile.single_use and replay_cache is None:
            raise ValueError("the id-jag profile needs a replay cache (MCP EMA: jti is single-use)")
        if require_status and status is None:
            raise ValueError("require_status needs a status client (status=StatusListClient(...))")
        if status is not None:
            status.check_issuer(issuer)
        self._issuer = issuer
        self._audience = audience
        self._keys = keys
        self._typ = self._profile.typ
        self._resources = frozenset(resources) if resources is not None else None
        self._replay = replay_cache
        self._algorithms = list(algorithms)
        self._leeway = leeway_seconds
        self._clock = clock
        self._status = status
        self._require_status = require_status

    async def verify(self, token: str, *, client_id: str | None = None) -> VerifiedSekishoToken:
        """Validate `token`; `client_id` must equal its client_id claim: the client that
        authenticated, required for the id-jag profile, optional for access tokens.

        Raises: ValueError for an id-jag verifier called without `client_id` (before the token
            is read); TokenRejectedError (incl. ReplayedTokenError), VerifierUnavailableError.
        """
        if client_id is None and self._profile.single_use:
            # draft-ietf-oauth-identity-assertion-authz-grant (leg 2): the authorization server
            # MUST check that the ID-JAG's client_id is the client that authenticated. Optional,
            # it was skipped by a caller that left it out, and an ID-JAG minted for one client
            # was redeemable by any other (session 14 walkthrough, red team): a wiring error,
            # raised as such, like a missing replay cache.
            raise ValueError(
                "the id-jag profile needs the authenticated client's id: "
                "verify(token, client_id=...)"
            )
        now = self._clock()
        if len(token) > MAX_TOKEN_CHARS:
            raise TokenRejectedError(f"token longer than {MAX_TOKEN_CHARS} characters")
        header = self._header(token)
        key = await self._keys.key(header["kid"])
        claims = self._decode(token, key, now)
        self._check_client(claims, client_id)
        scopes = self._check_scope(claims)
        resources = self._check_resource(claims)
        await self._check_status(claims)
        await self._check_replay(claims, now)
        return VerifiedSekishoToken(
            subject=claims["sub"],
            audience=self._audience,
            client_id=claims["client_id"],
            jti=claims["jti"],
            expires_at=int(claims["exp"]),
            scopes=scopes,
            resources=resources,
            tenant=str(claims.get("tenant", "")),
            claims=claims,
        )

    def _header(self, token: str) -> dict[str, Any]:
        if len(token.partition(".")[0]) > MAX_HEADER_SEGMENT:  # before PyJWT parses it as JSON
            raise TokenRejectedError(f"token header longer than {MAX_HEADER_SEGMENT} characters")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRejectedError("malformed token") from exc
        if header.get("alg") not in self._algorithms:
            raise TokenRejectedError("algorithm not allowed")
        # typ keeps the profiles apart: an access token is never redeemable as an ID-JAG.
        if header.get("typ") != self._typ:
            raise TokenRejectedError(f"typ must be {self._typ}")
        if not isinstance(header.get("kid"), str):
            raise TokenRejectedError("kid is missing")
        return header

    def _decode(self, token: str, key: jwt.PyJWK, now: float) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={
                    "require": list(_REQUIRED),
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_exp": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenRejectedError(f"token rejected: {exc}") from exc
        # Times against the caller's clock, not the library's; ill-typed times are a rejection.
        for name in ("exp", "iat"):
            value = claims[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TokenRejectedError(f"{name} is not a number")
            if not math.isfinite(value):
                raise TokenRejectedError(f"{name} is not a number")
        # Strings, as VerifiedSekishoToken types them (PyJWT checks `sub` and `jti`): a list for
        # `client_id` (signed, so a minting fault, not a forgery) would reach the downstream's
        # own comparisons as such, and a list `scope` read as one scope spelled like a list.
        for name, value in (("client_id", claims["client_id"]), ("scope", claims.get("scope", ""))):
            if not isinstance(value, str):
                raise TokenRejectedError(f"{name} is not a string")
        if not isinstance(claims.get("tenant", ""), str):
            raise TokenRejectedError("tenant is not a string")
        if now > int(claims["exp"]) + self._leeway:
            raise TokenRejectedError("token expired")
        if int(claims["iat"]) > now + self._leeway:
            raise TokenRejectedError("token issued in the future")
        # ID-JAG: exactly one audience (an array would allow audience injection at leg 2).
        # Access tokens: RFC 9068 §3 lets `aud` list several resources, and Sekisho mints one
        # token for all the resources requested; jwt.decode already checked ours is among them.
        aud = claims["aud"]
        if self._profile.single_audience and isinstance(aud, list) and len(aud) != 1:
            raise TokenRejectedError("aud must name exactly one audience")
        return claims

    def _check_client(self, claims: Mapping[str, Any], client_id: str | None) -> None:
        if client_id is not None and claims["client_id"] != client_id:
            raise TokenRejectedError("client_id does not match the authenticated client")

    @staticmethod
    def _check_scope(claims: Mapping[str, Any]) -> frozenset[str]:
        # Split on SP only, as the server reads a scope string (identity/claims.py, the token
        # endpoint's form): str.split() also splits on tabs, \x1c-\x1f, U+00A0, U+3000 and the
        # other Unicode spaces, so "crm.read<TAB>crm.admin", one string to the server, read as
        # two scopes here, crm.admin among them (red team session 20). The server grants only
        # scope tokens (RFC 6749 §3.3), so any other character is a malformed claim.
        scopes = frozenset(scope for scope in claims.get("scope", "").split(" ") if scope)
        if not all(is_scope_token(scope) for scope in scopes):
            raise TokenRejectedError("scope is not a space-separated list of scope tokens")
        return scopes

    def _check_resource(self, claims: Mapping[str, Any]) -> tuple[str, ...]:
        raw = claims.get("resource", [])
        # A string or a list of strings (RFC 8707 URIs). Read with str() and iterated whatever
        # it was, a number raised a bare TypeError from verify(), an object passed as the list
        # of its keys and a list's number as its digits (red team session 20).
        if isinstance(raw, str):
            resources: tuple[str, ...] = (raw,)
        elif isinstance(raw, list) and all(isinstance(r, str) for r in raw):
            resources = tuple(raw)
        else:
            raise TokenRejectedError("resource is not a string or a list of strings")
        # (aud, resource) is a bound pair: this audience serves only its registered resources.
        if self._resources is not None and not set(resources) <= self._resources:
            raise TokenRejectedError("resource is not served by this audience")
        if self._resources is not None and not resources:
            raise TokenRejectedError("resource is missing")
        return resources

    async def _check_status(self, claims: Mapping[str, Any]) -> None:
        # draft-ietf-oauth-status-list §8: a token that names a status list is valid only while
        # its entry reads VALID. A token without `status` is checked as before, unless the
        # downstream requires revocability: such a token (a replica with [status_list] off, or
        # minted before it was turned on) could not be revoked before its `exp` (red team
        # session 14, left then).
        if self._status is not None:
            await self._status.check_token(claims, require_status=self._require_status)

    async def _check_replay(self, claims: Mapping[str, Any], now: float) -> None:
        if self._replay is None:
            return
        try:
            first = await self._replay.first_use(
                claims["iss"], str(claims["jti"]), int(claims["exp"]) + self._leeway, now
            )
        except ReplayCacheUnavailableError as exc:
            raise VerifierUnavailableError("replay cache unavailable") from exc
        if not first:
            raise ReplayedTokenError("token already used")
