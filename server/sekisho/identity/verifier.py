"""Verification of inbound IdP tokens (subject and actor tokens).

Order: size → strict JWS parse → header rules → exact issuer match → key by kid from that issuer
only → alg allow-list and key type → signature → claim rules with the injected clock.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import Algorithm, get_default_algorithms

from sekisho import delegation
from sekisho.clock import Clock
from sekisho.constants import (
    TOKEN_TYPE_ACCESS_TOKEN,
    TOKEN_TYPE_ID_TOKEN,
)
from sekisho.errors import (
    AlgorithmNotAllowedError,
    BadSignatureError,
    InvalidRequestError,
    MalformedTokenError,
    TemporarilyUnavailableError,
    TokenTypeError,
    UnknownKeyError,
    UntrustedIssuerError,
)
from sekisho.identity import claims as rules
from sekisho.identity.issuer_config import IssuerConfig
from sekisho.identity.kind import check_kind
from sekisho.jose import FORBIDDEN_HEADERS, KTY_FOR_ALG, CompactJws, parse_compact
from sekisho.models import VerifiedToken
from sekisho.profiles import ID_JAG, MINTED_TYPS
from sekisho.verify.jwk_set import PublicJwk
from sekisho.verify.jwks import JwksCache, JwksUnavailableError

MAX_KID_LENGTH = 256

_SEKISHO_TYPS = MINTED_TYPS
# RSASSA-PKCS1-v1_5 (RFC 7518 §3.3) with its parameters built once: PyJWT's RSAAlgorithm.verify
# builds the padding and hash objects on every call. Other algorithms go through PyJWT.
_PKCS1 = padding.PKCS1v15()
_PKCS1_HASHES: dict[str, hashes.HashAlgorithm] = {
    "RS256": hashes.SHA256(),
    "RS384": hashes.SHA384(),
    "RS512": hashes.SHA512(),
}


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    """A configured IdP and its key cache."""

    config: IssuerConfig
    jwks: JwksCache


class TokenVerifier:
    """Verifies IdP-issued JWTs against the trusted issuers."""

    def __init__(
        self,
        issuers: Mapping[str, TrustedIssuer],
        clock: Clock,
        *,
        own_issuer: str,
        leeway_seconds: int,
        max_token_bytes: int,
        max_act_depth: int,
    ) -> None:
        # Every accepted spelling of an issuer's `iss` (identity/presets.py issuer forms, aliases).
        self._issuers = {
            form: issuer for issuer in issuers.values() for form in issuer.config.accepted_issuers
        }
        # Each accepted spelling → the `issuer` users are keyed by (delegation.inbound_act).
        self._configured = {form: issuer.config.issuer for form, issuer in self._issuers.items()}
        self._clock = clock
        self._own_issuer = own_issuer
        self._leeway = leeway_seconds
        self._max_bytes = max_token_bytes
        self._max_act_depth = max_act_depth
        self._algorithms: dict[str, Algorithm] = get_default_algorithms()

    async def verify(self, token: str, token_type: str) -> VerifiedToken:
        """Verify `token` as `token_type` (id_token or access_token rules).

        Raises:
            InvalidRequestError: the token exceeds the size limit.
            InvalidTokenError: a leaf naming the signature, header or claim rule that failed.
            TemporarilyUnavailableError: the issuer's keys cannot be fetched.
        """
        if len(token.encode()) > self._max_bytes:  # bytes, as validation.py measures it
            raise InvalidRequestError(f"token exceeds the {self._max_bytes}-byte limit")
        jws = parse_compact(token)
        self._check_header(jws.header, token_type)
        issuer = self._issuer_of(jws.claims)
        key = await self._key_for(issuer, jws.header)
        self._check_signature(jws, key)
        return self._validated(jws, issuer.config, token_type)

    def _check_header(self, header: dict[str, Any], token_type: str) -> None:
        for name in FORBIDDEN_HEADERS:
            if name in header:
                raise MalformedTokenError(log_detail=f"header parameter {name!r} is not accepted")
        if str(header.get("cty", "")).upper() == "JWT":
            raise MalformedTokenError(log_detail="nested JWTs are not accepted")
        typ = header.get("typ", "")
        if not isinstance(typ, str):
            raise MalformedTokenError(log_detail="typ is not a string")
        # RFC 7515 §4.1.9: "application/" may be omitted, so both spellings name one media type.
        media_type = typ.lower().removeprefix("application/")
        if media_type == ID_JAG.typ or (
            token_type == TOKEN_TYPE_ID_TOKEN and media_type in _SEKISHO_TYPS
        ):
            # The typ is the caller's own input, so naming it tells them nothing about keys.
            fix = (
                "the token's typ says it is an access token (at+jwt) but it was sent as an ID "
                f"token: set subject_token_type (or actor_token_type) to {TOKEN_TYPE_ACCESS_TOKEN}"
                if media_type == "at+jwt"
                else ""
            )
            raise TokenTypeError(fix, log_detail=f"typ {typ!r} is not acceptable for {token_type}")
        kid = header.get("kid", "")
        if not isinstance(kid, str) or len(kid) > MAX_KID_LENGTH:
            raise MalformedTokenError(log_detail="kid is not a string of acceptable length")
        # jku, x5u, jwk and x5c are never read: keys come only from the configured issuer.

    def _issuer_of(self, claims: dict[str, Any]) -> TrustedIssuer:
        iss = claims.get("iss")
        if not isinstance(iss, str) or not iss:
            raise UntrustedIssuerError(log_detail="missing iss")
        if iss.rstrip("/") == self._own_issuer.rstrip("/"):
            raise UntrustedIssuerError(
                log_detail="a token issued by Sekisho itself is not accepted as input"
            )
        issuer = self._issuers.get(iss)  # exact match: no case folding, no slash trimming
        if issuer is None:
            raise UntrustedIssuerError(log_detail="untrusted issuer")
        return issuer

    async def _key_for(self, issuer: TrustedIssuer, header: dict[str, Any]) -> PublicJwk:
        kid = header.get("kid", "")
        try:
            key = await issuer.jwks.key(kid)
        except JwksUnavailableError as exc:
            raise TemporarilyUnavailableError(
                "the identity provider's keys are unavailable", log_detail=str(exc)
            ) from exc
        if key is None and issuer.jwks.last_fetch_failed:
            # The refetch this kid asked for (or the last one) failed: the kid may be the IdP's
            # new key, so an outage, never a bad token (as the verify SDK answers): a client
            # told UNAUTHENTICATED signs its user in again, to a token of the same kid.
            raise TemporarilyUnavailableError(
                "the identity provider's keys are unavailable",
                log_detail="no key for the token's kid, and the JWKS refetch failed",
            )
        if key is None:
            raise UnknownKeyError(log_detail="no key for the token's kid at its issuer")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in issuer.config.algorithms:
            raise AlgorithmNotAllowedError(log_detail="alg is not allowed for this issuer")
        if KTY_FOR_ALG.get(alg) != key.kty or (key.alg and key.alg != alg):
            raise AlgorithmNotAllowedError(log_detail="alg does not match the key type")
        return key

    def _check_signature(self, jws: CompactJws, key: PublicJwk) -> None:
        alg = jws.header["alg"]
        pkcs1_hash = _PKCS1_HASHES.get(alg)
        try:
            if pkcs1_hash is not None and isinstance(key.key, RSAPublicKey):
                valid = _pkcs1_valid(key.key, jws, pkcs1_hash)
            else:
                valid = self._algorithms[alg].verify(jws.signing_input, key.key, jws.signature)
        except (ValueError, TypeError) as exc:
            raise BadSignatureError(log_detail="signature verification error") from exc
        if not valid:
            raise BadSignatureError(log_detail="bad signature")

    def _validated(self, jws: CompactJws, config: IssuerConfig, token_type: str) -> VerifiedToken:
        header, claims = jws.header, jws.claims
        exp = rules.validate_times(claims, self._clock.now(), self._leeway)
        sub = rules.validate_subject(claims)
        rules_type = (
            TOKEN_TYPE_ID_TOKEN if token_type == TOKEN_TYPE_ID_TOKEN else TOKEN_TYPE_ACCESS_TOKEN
        )
        check_kind(header, claims, config, rules_type)
        client_id = rules.client_id_of(claims, config, rules_type)
        rules.validate_audience(claims, config, rules_type, client_id)
        rules.validate_scopes(claims, config, rules_type)
        token = VerifiedToken(
            issuer=config.issuer,
            subject=sub,
            token_type=token_type,
            expires_at=exp,
            client_id=client_id,
            tenant=rules.string_claim(claims, config.tenant_claim),
            email=rules.string_claim(claims, "email"),
            groups=rules.groups_of(claims, config),
            acr=rules.string_claim(claims, "acr"),
            amr=rules.string_list_claim(claims, "amr"),
            auth_time=rules.numeric_date(claims, "auth_time", required=False) or 0,
            act=delegation.inbound_act(
                claims, self._max_act_depth, config.issuer, self._configured
            ),
            claims=claims,
        )
        rules.validate_strings(claims, _identity_values(token), claims_text=jws.claims_text)
        return token


def _pkcs1_valid(key: RSAPublicKey, jws: CompactJws, digest: hashes.HashAlgorithm) -> bool:
    try:
        key.verify(jws.signature, jws.signing_input, _PKCS1, digest)
    except InvalidSignature:
        return False
    return True


def _identity_values(token: VerifiedToken) -> list[str]:
    """The strings of a verified token that policy compares and the minted token repeats."""
    values = [token.subject, token.client_id, token.tenant, token.email, token.acr]
    values.extend(token.groups)
    values.extend(token.amr)
    values.extend(delegation.act_strings(token.act))
    return values
