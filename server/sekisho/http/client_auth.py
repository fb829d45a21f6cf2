"""Client authentication at the token endpoint (RFC 6749 §2.3).

- client_secret_basic (RFC 6749 §2.3.1): HTTP Basic with the form-urlencoded id and secret,
  checked against an argon2id hash off the event loop (secrets.py), after the attempt gate
  (attempts.py) has admitted the peer; an unknown id costs no hash (the decoy, secrets.py).
- private_key_jwt (RFC 7523 §2.2 and §3, OpenID Connect Core §9): a JWT signed with a key from the
  client's registered JWK Set; iss = sub = client id, aud = the token endpoint or the issuer,
  short-lived, and its jti single-use (replay cache) so a captured assertion cannot be replayed.
  Parsed by the strict JOSE layer shared with subject tokens (assertion.py). Its own attempt gate
  (per-second budgets, attempts.py) admits it before it is parsed or any key is looked up; an
  unknown client, unknown kid or malformed assertion is refused before any signature work.

A refusal by either gate is 429 slow_down + Retry-After, answered after the same pause (tarpit).

A request presenting more than one method is refused (RFC 6749 §2.3: MUST NOT use more than one).
"""

import asyncio
import base64
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote_plus

import jwt

from sekisho.attempts import AttemptGate
from sekisho.errors import (
    InvalidClientError,
    InvalidRequestError,
    SlowDownError,
    TemporarilyUnavailableError,
)
from sekisho.http.assertion import INVALID, check_claims, parse_assertion, verify_signature
from sekisho.http.secrets import SecretChecker
from sekisho.models import Caller
from sekisho.verify.jwk_set import jwks_from_json
from sekisho.verify.replay import ReplayCache, ReplayCacheUnavailableError

log = logging.getLogger(__name__)

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_INVALID = INVALID
TARPIT_SECONDS = 1.0  # how long a login refused by the attempt gate waits for its 429


@dataclass(frozen=True, slots=True)
class RegisteredClient:
    """A client from [[clients]]: its id, argon2id secret hash and/or public keys."""

    id: str
    secret_hash: str = ""
    keys: Mapping[str, jwt.PyJWK] | None = None


def registered_client(client_id: str, secret_hash: str, jwks: str) -> RegisteredClient:
    """Build from config values (the JWK Set is parsed once, here)."""
    return RegisteredClient(client_id, secret_hash, jwks_from_json(jwks) if jwks else None)


class ClientAuthenticator:
    """Turns the request's credentials into an authenticated Caller, or refuses."""

    def __init__(
        self,
        clients: Mapping[str, RegisteredClient],
        *,
        audiences: frozenset[str],
        replay_cache: ReplayCache,
        gate: AttemptGate,
        assertion_gate: AttemptGate,
        secrets: SecretChecker,
        leeway_seconds: int,
        tarpit_seconds: float = TARPIT_SECONDS,
    ) -> None:
        self._clients = clients
        self._audiences = audiences
        self._replay = replay_cache
        self._gate = gate
        self._assertion_gate = assertion_gate
        self._secrets = secrets
        self._leeway = leeway_seconds
        self._tarpit = tarpit_seconds

    async def authenticate(
        self, authorization: str, form: Mapping[str, str], now: float, *, peer: str = ""
    ) -> Caller:
        """`peer` is the client's address (the attempt gate's key).

        Raises: InvalidClientError, InvalidRequestError, TemporarilyUnavailableError,
        SlowDownError (too many attempts).
        """
        basic = authorization[:6].lower() == "basic "
        assertion = "client_assertion" in form or "client_assertion_type" in form
        if "client_secret" in form:
            raise InvalidClientError("client_secret_post is not supported; use HTTP Basic")
        if basic and assertion:
            raise InvalidRequestError("use exactly one client authentication method")
        if basic:
            return await self._basic(authorization[6:].strip(), form, peer)
        if assertion:
            return await self._private_key_jwt(form, now, peer)
        raise InvalidClientError("client authentication is required")

    async def _basic(self, credentials: str, form: Mapping[str, str], peer: str) -> Caller:
        client_id, secret = _decode_basic(credentials)
        await self._admit(self._gate.acquire, peer)  # before the lookup: known and unknown alike
        try:
            client = self._clients.get(client_id)
            if client is None or not client.secret_hash:
                await self._secrets.decoy()
                raise InvalidClientError(_INVALID, log_detail="unknown client or no secret")
            if not await self._secrets.verify(client.secret_hash, secret):
                raise InvalidClientError(_INVALID, log_detail="bad client secret")
        finally:
            self._gate.release(peer)
        _check_form_client_id(form, client.id)
        return Caller(id=client.id, authenticated_by="client_secret")

    async def _admit(self, take: Callable[[str], None], peer: str) -> None:
        try:
            take(peer)
        except SlowDownError:
            # Answer a refused attempt only after a pause: a flooding client in a closed loop
            # then sends one login per pause per connection instead of hundreds a second, and a
            # sleeping coroutine costs nothing ([http] connection bounds cap how many sleep).
            await asyncio.sleep(self._tarpit)
            raise

    async def _private_key_jwt(self, form: Mapping[str, str], now: float, peer: str) -> Caller:
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise InvalidClientError("unsupported client_assertion_type")
        # Before parsing, key lookup and the signature check (~0.1 ms of CPU each): a flood of
        # assertions, valid-looking or not, costs at most the gate's budget of verifications.
        await self._admit(self._assertion_gate.admit, peer)
        jws, sub = parse_assertion(form.get("client_assertion", ""))
        client = self._clients.get(sub)
        if client is None or client.keys is None:
            raise InvalidClientError(_INVALID, log_detail="unknown client or no jwks")
        verify_signature(jws, client.keys)
        claims = check_claims(jws.claims, client.id, self._audiences, now, self._leeway)
        _check_form_client_id(form, client.id)
        try:
            first = await self._replay.first_use(
                client.id, claims.jti, claims.expires_at + self._leeway, now
            )
        except ReplayCacheUnavailableError as exc:
            raise TemporarilyUnavailableError("try again later", log_detail=str(exc)) from exc
        if not first:
            raise InvalidClientError(_INVALID, log_detail="client assertion replayed")
        return Caller(id=client.id, authenticated_by="private_key_jwt")


def _decode_basic(credentials: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode()
    # binascii.Error (bad base64) and UnicodeDecodeError are ValueErrors; so is b64decode's own
    # refusal of a str that is not ASCII (a header byte aiohttp decoded), once a 500.
    except ValueError:
        raise InvalidClientError(_INVALID, log_detail="malformed Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id:
        raise InvalidClientError(_INVALID, log_detail="malformed Basic credentials")
    # RFC 6749 §2.3.1: both parts are application/x-www-form-urlencoded before Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


def _check_form_client_id(form: Mapping[str, str], client_id: str) -> None:
    if form.get("client_id", client_id) != client_id:
        raise InvalidClientError(_INVALID, log_detail="client_id parameter disagrees")
