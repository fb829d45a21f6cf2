"""Issue 15 item 7: downstream SDK edge cases and strict client assertions.

- `sekisho.verify` accepts the access tokens Sekisho mints for several resources (`aud` a list);
  an ID-JAG still names exactly one audience.
- The in-memory replay cache remembers a jti for as long as the verifier accepts the token
  (exp + leeway, inclusive), like the Redis one.
- private_key_jwt assertions go through the strict JOSE layer: ill-typed `exp`, an `alg` that
  does not fit the key, non-canonical base64url and duplicate members are `invalid_client`,
  never a 500.
- `sekisho.client` waits out a refusal's `retry_after` for at most MAX_RETRY_AFTER_SECONDS.
"""

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho.attempts import AttemptGate
from sekisho.callers import RateLimit
from sekisho.client import Downstream, SekishoAuth, TokenExchangeClient, sekisho_interceptors
from sekisho.client.channel import ChannelOptions
from sekisho.client.errors import (
    MAX_RETRY_AFTER_SECONDS,
    ExchangeDeniedError,
    RateLimitedError,
    StepUpRequiredError,
)
from sekisho.client.refusals import REPEAT_SECONDS
from sekisho.config import TrustConfig
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN as ACCESS
from sekisho.constants import TOKEN_TYPE_ID_JAG as ID_JAG
from sekisho.errors import AccessDeniedError, InvalidClientError, ServiceError, SlowDownError
from sekisho.http.client_auth import CLIENT_ASSERTION_TYPE, ClientAuthenticator, RegisteredClient
from sekisho.http.secrets import SecretChecker
from sekisho.rpc.status import to_grpc_status
from sekisho.status.bitlist import SUSPENDED
from sekisho.verify import (
    InMemoryReplayCache,
    ReplayedTokenError,
    SekishoTokenVerifier,
    StatusIssuerMismatchError,
    StatusListClient,
    TokenRejectedError,
)

from tests.bounds import attempt_limits
from tests.fakes.clock import FakeClock
from tests.integration.test_client_throttle import (
    Handler,
    _exchange_server,
    bare_server,
    silent_listener,  # noqa: F401 (fixture)
)
from tests.loopback import free_port
from tests.unit.verify.test_status import Clock, ListServer, _status
from tests.unit.verify.test_status import server as status_server  # noqa: F401 (fixture)
from tests.unit.verify.test_tokens import AS, ISSUER, MCP, NOW, StaticKeys, mint

pytestmark = pytest.mark.security

DOCS = "https://docs.example.com/mcp"
SEARCH = "https://docs.example.com/search"
TOKEN_ENDPOINT = "https://sekisho.test/oauth2/token"
HANG_GUARD = 30.0  # seconds: a deadline or wait that only ends a hang, never reached on a pass
CLIENT_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --- sekisho.verify: aud lists and the replay window ---------------------------------------------


def _access_verifier(audience: str) -> SekishoTokenVerifier:
    return SekishoTokenVerifier(
        issuer=ISSUER,
        audience=audience,
        keys=StaticKeys(),
        profile="access_token",
        replay_cache=InMemoryReplayCache(),
        clock=lambda: NOW,
    )


async def test_access_token_minted_for_several_resources_verifies_at_each() -> None:
    for resource in (DOCS, SEARCH):
        token = mint(typ="at+jwt", aud=[DOCS, SEARCH], resource=[DOCS, SEARCH])
        verified = await _access_verifier(resource).verify(token)
        assert verified.resources == (DOCS, SEARCH)


async def test_access_token_for_other_resources_is_still_rejected() -> None:
    token = mint(typ="at+jwt", aud=[DOCS, SEARCH], resource=[DOCS, SEARCH])
    with pytest.raises(TokenRejectedError, match=r"(?i)audience"):
        await _access_verifier(MCP).verify(token)


async def test_id_jag_with_an_aud_list_is_still_rejected() -> None:
    verifier = SekishoTokenVerifier(
        issuer=ISSUER, audience=AS, keys=StaticKeys(), replay_cache=InMemoryReplayCache(),
        resources={MCP}, clock=lambda: NOW,
    )  # fmt: skip
    with pytest.raises(TokenRejectedError, match="one audience"):
        await verifier.verify(
            mint(aud=[AS, "https://other-as.example.com"]), client_id="agent-at-crm"
        )


@pytest.mark.parametrize("offset", [0, 30], ids=["at-exp", "at-exp-plus-leeway"])
async def test_replayed_token_is_refused_up_to_exp_plus_leeway_inclusive(offset: int) -> None:
    cache = InMemoryReplayCache()
    token = mint()
    exp = int(NOW) + 300

    def verifier_at(now: float) -> SekishoTokenVerifier:
        return SekishoTokenVerifier(
            issuer=ISSUER, audience=AS, keys=StaticKeys(), replay_cache=cache,
            resources={MCP}, clock=lambda: now,
        )  # fmt: skip

    await verifier_at(NOW).verify(token, client_id="agent-at-crm")
    with pytest.raises(ReplayedTokenError):
        await verifier_at(exp + offset).verify(token, client_id="agent-at-crm")


async def test_in_memory_replay_cache_matches_the_redis_window() -> None:
    cache = InMemoryReplayCache()
    assert await cache.first_use("iss", "j", 100, 50.0)
    assert not await cache.first_use("iss", "j", 100, 100.0)  # still remembered at expiry
    assert await cache.first_use("iss", "j", 200, 100.5)  # forgotten only after it


# --- private_key_jwt through the strict JOSE layer ----------------------------------------------


# One argon2 checker for the module (private_key_jwt never uses it; the constructor needs one).
CHECKER = SecretChecker(1)


def _authenticator() -> ClientAuthenticator:
    keys = {
        "ec-1": jwt.PyJWK.from_json(jwt.algorithms.ECAlgorithm.to_jwk(CLIENT_KEY.public_key())),
        "rsa-1": jwt.PyJWK.from_json(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key())),
    }
    loose = attempt_limits(
        max_concurrent=100, max_concurrent_per_peer=100,
        rate=RateLimit(1e6, 1_000_000), rate_per_peer=RateLimit(1e6, 1_000_000),
    )  # fmt: skip
    return ClientAuthenticator(
        {"agent": RegisteredClient("agent", keys=keys)},
        audiences=frozenset({TOKEN_ENDPOINT}),
        replay_cache=InMemoryReplayCache(),
        gate=AttemptGate(FakeClock(NOW), loose),
        assertion_gate=AttemptGate(FakeClock(NOW), loose),
        secrets=CHECKER,
        leeway_seconds=TrustConfig().leeway_seconds,
    )


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": "agent", "sub": "agent", "aud": TOKEN_ENDPOINT,
        "iat": int(NOW), "exp": int(NOW) + 60, "jti": uuid.uuid4().hex,
    }  # fmt: skip
    claims.update(overrides)
    return claims


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw_assertion(header: dict[str, Any], payload: bytes, key: Any = CLIENT_KEY) -> str:
    """An ES256-signed compact JWS over exactly these payload bytes."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(payload)}".encode()
    algorithm = jwt.algorithms.ECAlgorithm(jwt.algorithms.ECAlgorithm.SHA256)
    return signing_input.decode() + "." + _b64(algorithm.sign(signing_input, key))


async def _authenticate(assertion: str) -> object:
    form = {"client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": assertion}
    return await _authenticator().authenticate("", form, NOW)


async def test_a_well_formed_assertion_authenticates() -> None:
    caller = await _authenticate(
        jwt.encode(_claims(), CLIENT_KEY, algorithm="ES256", headers={"kid": "ec-1"})
    )
    assert getattr(caller, "id", "") == "agent"


@pytest.mark.parametrize(
    "exp",
    ['"9999999999"', "NaN", "Infinity", "[1800000060]", "true", "1e400", "{}", "null"],
    ids=["string", "nan", "infinity", "list", "bool", "huge", "object", "null"],
)
async def test_ill_typed_exp_is_invalid_client_not_a_crash(exp: str) -> None:
    claims = json.dumps(_claims())
    payload = claims.replace(f'"exp": {int(NOW) + 60}', f'"exp": {exp}').encode()
    assert exp.encode() in payload
    with pytest.raises(InvalidClientError):
        await _authenticate(_raw_assertion({"alg": "ES256", "kid": "ec-1"}, payload))


@pytest.mark.parametrize("jti", ['"a\\ud800b"', '"\\udfff"'], ids=["high-half", "low-half"])
async def test_a_jti_holding_a_lone_surrogate_is_invalid_client_not_a_crash(jti: str) -> None:
    # Valid JSON that cannot be encoded: the replay key's hash raised UnicodeEncodeError (a 500).
    claims = _claims()
    payload = json.dumps(claims).replace(json.dumps(claims["jti"]), jti).encode()
    assert jti.encode() in payload
    with pytest.raises(InvalidClientError):
        await _authenticate(_raw_assertion({"alg": "ES256", "kid": "ec-1"}, payload))


async def test_alg_that_does_not_fit_the_key_type_is_refused() -> None:
    # An EC signature presented under the RSA key's kid, and an RSA one under the EC key's kid.
    ec_under_rsa_kid = jwt.encode(
        _claims(), CLIENT_KEY, algorithm="ES256", headers={"kid": "rsa-1"}
    )
    rsa_under_ec_kid = jwt.encode(_claims(), RSA_KEY, algorithm="PS256", headers={"kid": "ec-1"})
    for assertion in (ec_under_rsa_kid, rsa_under_ec_kid):
        with pytest.raises(InvalidClientError):
            await _authenticate(assertion)


async def test_duplicate_members_in_the_assertion_are_refused() -> None:
    claims = json.dumps(_claims())
    payload = (claims[:-1] + ', "sub": "someone-else"}').encode()
    with pytest.raises(InvalidClientError):
        await _authenticate(_raw_assertion({"alg": "ES256", "kid": "ec-1"}, payload))


async def test_non_canonical_base64url_spelling_of_an_assertion_is_refused() -> None:
    good = jwt.encode(_claims(), CLIENT_KEY, algorithm="ES256", headers={"kid": "ec-1"})
    header, payload, signature = good.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # Flip the unused low bits of the last character: same bytes, another spelling.
    last = signature[-1]
    twin = alphabet[alphabet.index(last) ^ 1]
    assert base64.urlsafe_b64decode(signature[:-1] + twin + "==") == base64.urlsafe_b64decode(
        signature + "=="
    )
    with pytest.raises(InvalidClientError):
        await _authenticate(f"{header}.{payload}.{signature[:-1]}{twin}")


@pytest.mark.parametrize("header", [{"crit": ["exp"]}, {"b64": False}, {"zip": "DEF"}])
async def test_processing_header_parameters_in_an_assertion_are_refused(
    header: dict[str, Any],
) -> None:
    payload = json.dumps(_claims()).encode()
    with pytest.raises(InvalidClientError):
        await _authenticate(_raw_assertion({"alg": "ES256", "kid": "ec-1", **header}, payload))


# --- sekisho.client and a refusal's retry_after (red team, session 13) ----------------------------


class _Clock:
    now = 1_000.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def _client_of(
    handler: Handler, status: StatusListClient | None = None
) -> AsyncIterator[tuple[TokenExchangeClient, _Clock]]:
    """A TokenExchangeClient on a clock the test moves (and with `status`, when given),
    against a real gRPC server running `handler` for ExchangeToken. Its calls' deadline is a
    hang guard (HANG_GUARD), not the SDK's 2 s default: a fresh connection's first call, a
    background refresh or a list fetch on the request path could outlast 2 s on a loaded host
    (a refresh ended by its deadline is not a refusal; a fetch past it reads as unknown)."""
    clock = _Clock()
    async with _exchange_server(handler) as target:
        options = ChannelOptions(insecure=True)
        async with TokenExchangeClient(
            target, channel_options=options, clock=clock, status=status, timeout_seconds=HANG_GUARD
        ) as client:
            yield client, clock


@pytest.mark.integration
@pytest.mark.parametrize("retry_after", ["inf", "1e9"])
async def test_one_absurd_retry_after_never_stops_the_client_for_good(retry_after: str) -> None:
    """TokenExchangeClient holds every call until the server's retry_after has passed: one
    `slow_down` naming "inf" stopped it (every user, every audience) until restarted, failing
    each call at once without an RPC. A wait is now at most MAX_RETRY_AFTER_SECONDS."""
    answers: list[str] = []

    async def handler(_: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        if not answers:
            answers.append("slow_down")
            await context.abort_with_status(_slow_down(retry_after))
        answers.append("token")
        return pb.ExchangeTokenResponse(access_token="t", expires_in=300).SerializeToString()

    async with _client_of(handler) as (client, clock):
        with pytest.raises(RateLimitedError):
            await client.exchange("subject", AS, deadline_seconds=2)
        clock.now += MAX_RETRY_AFTER_SECONDS + 1
        # Before: RateLimitedError "retry after inf s", no RPC, for the life of the process.
        call = client.exchange("subject", AS, deadline_seconds=HANG_GUARD)
        assert (await call).access_token == "t"
    assert answers == ["slow_down", "token"]


def _slow_down(retry_after: str) -> grpc.Status:
    """The status a Sekisho sends for a slow_down naming `retry_after` (its own converter)."""
    return to_grpc_status(SlowDownError(metadata={"retry_after": retry_after}), "req-1")


@pytest.mark.integration
async def test_a_refresh_sekisho_refuses_drops_the_cached_token() -> None:
    """Red team session 14: in the refresh-ahead window (the token's last 30 s) each call
    served the cached token and, once the last background refresh had ended, started another;
    Sekisho refusing them (the user revoked or denied since) changed nothing: 50 calls 10 ms
    apart, 50 refused refreshes, the cached token served to all 50. A refresh refused for the
    request itself (not overload or unavailability) now drops the token: the next call
    exchanges on the request path and the caller gets the refusal."""
    answers: list[str] = []

    async def handler(_: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        if answers:
            answers.append("denied")
            await context.abort_with_status(to_grpc_status(AccessDeniedError(), "req-2"))
        answers.append("token")
        return pb.ExchangeTokenResponse(access_token="t", expires_in=300).SerializeToString()

    served = 0
    async with _client_of(handler) as (client, clock):
        await client.exchange("subject", AS, requested_token_type=ACCESS)
        clock.now += 300 - 20  # within the 30 s refresh-ahead window
        # The cached token, and a background refresh Sekisho refuses: awaited, not slept on,
        # so a slow host cannot serve a second call before the refusal lands.
        await client.exchange("subject", AS, requested_token_type=ACCESS)
        (refresh,) = client._background
        await asyncio.wait({refresh}, timeout=HANG_GUARD)  # its done callback has run by then
        assert refresh.done()
        for _ in range(49):
            try:
                await client.exchange("subject", AS, requested_token_type=ACCESS)
                served += 1
            except ExchangeDeniedError:
                pass
    # Before: the cached token served to all 49, each starting another refused refresh.
    assert served == 0
    assert answers.count("denied") == 50


def _listed_token(issuer: str) -> tuple[str, Handler]:
    """An access token of `issuer` at index 0 of its status list 1, and an ExchangeToken
    handler that answers it to every call."""
    reference = {"status_list": {"idx": 0, "uri": f"{issuer}/statuslists/1"}}
    token = mint(typ="at+jwt", iss=issuer, status=reference)

    async def handler(_: bytes, __: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return pb.ExchangeTokenResponse(access_token=token, expires_in=300).SerializeToString()

    return token, handler


@pytest.mark.integration
async def test_a_status_client_for_another_issuer_is_an_error_not_a_silent_cache_bypass() -> None:
    """Red team session 14 (left then): with `status=` built for another issuer than Sekisho's
    tokens, every cached token's status URI lay outside that issuer, which `_revoked` read as
    revoked: each call dropped the cached token and exchanged again (3 calls, 3 RPCs, each
    minting a token into a status list), and nothing said why. Now the first token received
    shows the mismatch, and the caller gets an error naming both issuers."""
    token, handler = _listed_token(ISSUER)  # as Sekisho mints it

    elsewhere = StatusListClient(issuer="https://sekisho-staging.test", keys=StaticKeys())
    async with _client_of(handler, status=elsewhere) as (client, _):
        for _ in range(3):
            with pytest.raises(StatusIssuerMismatchError) as refused:
                await client.exchange("subject", AS, requested_token_type=ACCESS)
        assert "'https://sekisho-staging.test'" in str(refused.value)
        assert repr(ISSUER) in str(refused.value)
        assert client.rpc_count == 3 and not client.forget(token)  # never cached nor served
    # The same client with the tokens' issuer caches as before (the token has no status to
    # fetch here: only the issuer is compared when it is received).
    plain = mint(typ="at+jwt")

    async def plain_handler(_: bytes, __: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return pb.ExchangeTokenResponse(access_token=plain, expires_in=300).SerializeToString()

    ours = StatusListClient(issuer=ISSUER, keys=StaticKeys())
    async with _client_of(plain_handler, status=ours) as (client, _):
        for _ in range(3):
            await client.exchange("subject", AS, requested_token_type=ACCESS)
        assert client.rpc_count == 1


@pytest.mark.integration
async def test_a_status_outage_keeps_the_cached_token_not_an_exchange_per_call() -> None:
    """Red team session 14 (left then): with `status=`, a cached token whose list could not be
    read (unreachable beyond its staleness bound) was taken for revoked, so every call during a
    status outage exchanged afresh (3 calls, 3 RPCs, each minting a token into a list). Unknown
    is not revoked: the cached token is served, and the downstream, which checks the status
    itself, decides."""
    issuer = f"http://127.0.0.1:{free_port()}"  # nothing listens: the list cannot be fetched
    token, handler = _listed_token(issuer)
    status = StatusListClient(issuer=issuer, keys=StaticKeys(), timeout_seconds=1.0)
    async with _client_of(handler, status=status) as (client, _):
        for _ in range(3):
            got = await client.exchange("subject", AS, requested_token_type=ACCESS)
            assert got.access_token == token
        assert client.rpc_count == 1


@contextlib.asynccontextmanager
async def _downstream_refusing(token: str, seen: list[str]) -> AsyncIterator[str]:
    """A gRPC downstream on loopback (unary Say, server-streaming Repeat) answering
    UNAUTHENTICATED to `Bearer <token>`, as one using sekisho.verify does for a token whose key
    was revoked (`sekisho keys revoke`) or whose status entry is no longer VALID."""

    async def check(context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
        presented = dict(context.invocation_metadata())["authorization"]
        seen.append(str(presented))
        if presented == f"Bearer {token}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, 'Bearer error="invalid_token"')

    async def say(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        await check(context)
        return request

    async def repeat(
        request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        await check(context)
        yield request

    methods = {
        "Say": grpc.unary_unary_rpc_method_handler(say),
        "Repeat": grpc.unary_stream_rpc_method_handler(repeat),
    }
    async with bare_server("demo.Echo", methods) as target:
        yield target


async def _eventually(condition: Callable[[], bool]) -> bool:
    """Polls until `condition` holds (the stream's refusal is read after its end), HANG_GUARD
    at most: a fixed 2 s could pass on a loaded host before the done callback ran."""
    give_up = time.monotonic() + HANG_GUARD
    while not condition():
        if time.monotonic() > give_up:
            return False
        await asyncio.sleep(0.01)
    return True


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["unary", "server-streaming"])
async def test_a_token_a_grpc_downstream_refuses_is_forgotten_not_sent_until_it_expires(
    kind: str,
) -> None:
    """Red team session 16: SekishoAuth (httpx) forgets a token its downstream refuses as
    invalid_token, but the gRPC interceptors never did: after `sekisho keys revoke` (or a
    revocation a downstream saw before the client), every call to a gRPC downstream carried the
    same refused token until the cache's refresh-ahead window, up to ~270 s of UNAUTHENTICATED
    with the default 300 s tokens. An UNAUTHENTICATED answer to the token the interceptor set
    now forgets it: the next call gets a fresh one."""
    minted: list[str] = []

    async def handler(_: bytes, __: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        minted.append(f"token-{len(minted) + 1}")
        return pb.ExchangeTokenResponse(access_token=minted[-1], expires_in=300).SerializeToString()

    seen: list[str] = []
    downstream = Downstream(audience=AS, requested_token_type=ACCESS)
    async with (
        _client_of(handler) as (client, _),
        _downstream_refusing("token-1", seen) as target,
    ):
        interceptors = sekisho_interceptors(client, downstream, lambda: "subject")
        async with grpc.aio.insecure_channel(target, interceptors=interceptors) as channel:
            say = channel.unary_unary("/demo.Echo/Say")
            repeat = channel.unary_stream("/demo.Echo/Repeat")

            async def call(body: bytes) -> list[bytes]:
                if kind == "unary":
                    return [await say(body)]
                return [chunk async for chunk in repeat(body)]

            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call(b"first")
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert await _eventually(lambda: len(client.cache._entries) == 0)
            # Before: token-1 again (and on every call until the refresh-ahead window).
            assert await call(b"second") == [b"second"]
            assert await call(b"third") == [b"third"]  # the fresh token, cached
    assert seen == ["Bearer token-1", "Bearer token-2", "Bearer token-2"]
    assert client.rpc_count == 2


@pytest.mark.integration
@pytest.mark.parametrize(
    ("held", "age", "max_stale", "later"),
    [
        ("revoked", "400", 300, 2),  # whoever answers for the list URL says the copy is old
        ("revoked", "", 60, 61),  # a max_stale_seconds shorter than the tokens live
        ("suspended", "400", 300, 2),
    ],
    ids=["revoked-copy-aged-by-its-Age", "revoked-copy-past-a-short-max-stale", "suspended"],
)
async def test_a_cached_token_the_last_list_read_as_revoked_is_not_kept_as_unknown(
    status_server: ListServer,  # noqa: F811 (the imported fixture)
    held: str,
    age: str,
    max_stale: float,
    later: float,
) -> None:
    """Red team session 16 (of 017ed7f): a cached token whose list cannot be read is kept as
    unknown, but the client may hold a copy that already read it INVALID (final) or SUSPENDED,
    fetched for another token of the same list (one list holds every user's tokens). Once that
    copy was past max_stale_seconds (at once, with an `Age` the network or a cache in front of
    the list adds) and the next fetch failed, the revoked token was served from the cache as
    "unknown" for as long as the list stayed unreadable, up to its expiry. What the last copy
    read counts: not VALID drops the token (the re-exchange is Sekisho's to refuse); a VALID
    one stays kept during the outage."""
    base = status_server.base
    tokens = iter(
        mint(typ="at+jwt", iss=base, status=_status(status_server, idx)) for idx in (0, 1, 2)
    )

    async def handler(_: bytes, __: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return pb.ExchangeTokenResponse(
            access_token=next(tokens), expires_in=300
        ).SerializeToString()

    list_clock = Clock()
    status = StatusListClient(
        issuer=base, keys=StaticKeys(), clock=list_clock, max_stale_seconds=max_stale
    )
    async with _client_of(handler, status=status) as (client, _):
        valid = await client.exchange("subject", AS, requested_token_type=ACCESS)
        other = await client.exchange("subject", SEARCH, requested_token_type=ACCESS)
        if held == "revoked":
            status_server.invalid = {1}
        else:
            status_server.bits, status_server.others = 2, {1: SUSPENDED}
        status_server.age = age
        # A call for the first token fetches the list: it reads VALID there, and 1 not VALID.
        assert await client.exchange("subject", AS, requested_token_type=ACCESS) is valid
        list_clock.now += later
        status_server.status = 503  # the list cannot be read from now on
        # The token the held copy read VALID is kept (unknown is not revoked: 017ed7f)...
        assert await client.exchange("subject", AS, requested_token_type=ACCESS) is valid
        assert client.rpc_count == 2
        # ...the one it read revoked (or suspended) is not served again. Before: `other`.
        again = await client.exchange("subject", SEARCH, requested_token_type=ACCESS)
        assert (other.status["status_list"]["idx"], again.status["status_list"]["idx"]) == (1, 2)
        assert client.rpc_count == 3


@pytest.mark.integration
async def test_a_status_list_that_never_answers_does_not_hold_a_cached_call_past_its_deadline(
    silent_listener: str,  # noqa: F811 (the imported fixture)
) -> None:
    """Red team session 16: with `status=`, a cache hit whose list must be fetched (none held,
    or the held copy past its ttl) waited for the fetch on the request path, bounded only by
    the StatusListClient's own timeout (5 s by default), not by the call's deadline
    (`timeout_seconds`, 2 s by default, "retries included"). Whoever can slow the list URL (a
    tarpit, a stalled proxy) held every such call for the whole fetch timeout. The fetch now
    waits at most what is left of the call's deadline; then the status is unknown (the fetch
    goes on for the next call): the cached token is served in time."""
    issuer = f"http://{silent_listener}"  # accepts, never answers
    token, handler = _listed_token(issuer)
    # The fetch's own timeout far from the call's deadline (the mark between them: 10 s), so a
    # stall of a loaded host cannot carry a call that gave up in time past the mark.
    status = StatusListClient(issuer=issuer, keys=StaticKeys(), timeout_seconds=30.0)
    async with _client_of(handler, status=status) as (client, _):
        await client.exchange("subject", AS, requested_token_type=ACCESS)
        started = time.monotonic()
        got = await client.exchange(
            "subject", AS, requested_token_type=ACCESS, deadline_seconds=0.5
        )
        took = time.monotonic() - started
        assert got.access_token == token and client.rpc_count == 1
    # Before: the status client's timeout (4.0 s then, 30 s now) for a call whose deadline was
    # 0.5 s.
    assert took < 10


def _minting_handler() -> tuple[list[str], Handler]:
    """An ExchangeToken handler minting token-1, token-2, ... (the list of those minted)."""
    minted: list[str] = []

    async def handler(_: bytes, __: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        minted.append(f"token-{len(minted) + 1}")
        return pb.ExchangeTokenResponse(access_token=minted[-1], expires_in=300).SerializeToString()

    return minted, handler


def _refusing_transport(refused: Callable[[str], bool], seen: list[str]) -> httpx.MockTransport:
    """A downstream answering 401 invalid_token (RFC 6750) to the tokens `refused` names."""

    def answer(request: httpx.Request) -> httpx.Response:
        token = request.headers["Authorization"].removeprefix("Bearer ")
        seen.append(token)
        if refused(token):
            challenge = 'Bearer error="invalid_token", error_description="refused"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return httpx.Response(200)

    return httpx.MockTransport(answer)


@pytest.mark.integration
async def test_a_downstream_refusing_every_token_costs_an_exchange_per_hold_not_per_call() -> None:
    """Red team: a downstream that refuses every token (its issuer or clock wrong) made each
    call forget the cached token and exchange again (SekishoAuth: and send the request twice):
    one RPC and one minted token per call, bounded only by the throttle, which counts each as
    an accept. Now the first refusal still replaces the token at once, but once the fresh one
    is refused too it is kept for a hold (1 s, doubling), the 401 returned as it is."""
    minted, handler = _minting_handler()
    seen: list[str] = []
    downstream = Downstream(audience=AS, requested_token_type=ACCESS)
    async with _client_of(handler) as (client, clock):
        auth = SekishoAuth(client, downstream, lambda: "subject")
        transport = _refusing_transport(lambda _: True, seen)
        async with httpx.AsyncClient(auth=auth, transport=transport) as http:
            for _ in range(20):
                assert (await http.get("https://api.example/x")).status_code == 401
            # Before: 21 exchanges and 40 requests (every call: forget, exchange, send again).
            assert client.rpc_count == 2 and len(seen) == 21
            clock.now += 1.0  # the hold is over: the next refusal probes with a fresh token
            for _ in range(5):
                await http.get("https://api.example/x")
            assert client.rpc_count == 3 and len(seen) == 27
            clock.now += 1.0  # the second hold is 2 s: still held
            await http.get("https://api.example/x")
            assert client.rpc_count == 3
            clock.now += 1.0
            await http.get("https://api.example/x")
            assert client.rpc_count == 4
    assert minted == ["token-1", "token-2", "token-3", "token-4"]


@pytest.mark.parametrize(
    ("sent", "read"),
    [
        pytest.param("900", 900, id="digits"),
        pytest.param("", 0, id="absent"),
        pytest.param("300.0", 0, id="decimal"),
        pytest.param("soon", 0, id="word"),
        pytest.param("\uff19\uff10\uff10", 0, id="fullwidth-digits"),
        pytest.param("-5", 0, id="negative"),
    ],
)
def test_a_step_up_max_age_is_read_as_digits_or_not_at_all(sent: str, read: int) -> None:
    """Red team session 20: `max_age` was int() of whatever the answer's metadata held, so
    the property raised ValueError in the caller's step-up handler."""
    error = StepUpRequiredError(
        "insufficient_user_authentication", "step up", "FAILED_PRECONDITION", {"max_age": sent}
    )
    assert error.max_age == read


@pytest.mark.integration
async def test_a_downstream_refusing_every_id_jag_costs_one_exchange_per_call_never_two() -> None:
    """The decision of session 20 (docs/integrators.md, "Refused ID-JAGs are not backed off"):
    an ID-JAG is never cached, so a refused one costs what an accepted one does, one exchange
    per call, each a fresh token (a revocation is never hidden), and SekishoAuth never sends
    one twice. A change that caches ID-JAGs, or holds or resends them, fails here."""
    minted, handler = _minting_handler()
    seen: list[str] = []
    downstream = Downstream(audience=AS, requested_token_type=ID_JAG)
    async with _client_of(handler) as (client, _clock):
        auth = SekishoAuth(client, downstream, lambda: "subject")
        transport = _refusing_transport(lambda _: True, seen)
        async with httpx.AsyncClient(auth=auth, transport=transport) as http:
            for _ in range(10):
                assert (await http.get("https://api.example/x")).status_code == 401
        assert client.forget(seen[-1]) is False  # nothing cached: nothing to drop or hold
    assert client.rpc_count == 10
    assert seen == minted == [f"token-{n}" for n in range(1, 11)]


@pytest.mark.integration
async def test_a_refused_token_is_still_replaced_at_once_when_the_fresh_one_is_taken() -> None:
    """What the backoff must not hide: a downstream that refuses one token (revoked, its key
    revoked) and takes the fresh one. Each such refusal, however often, replaces the token at
    once, as long as the token exchanged after the last was taken for a while."""
    minted, handler = _minting_handler()
    seen: list[str] = []
    revoked: set[str] = set()
    downstream = Downstream(audience=AS, requested_token_type=ACCESS)
    async with _client_of(handler) as (client, clock):
        auth = SekishoAuth(client, downstream, lambda: "subject")
        transport = _refusing_transport(revoked.__contains__, seen)
        async with httpx.AsyncClient(auth=auth, transport=transport) as http:
            for round_ in range(1, 4):
                assert (await http.get("https://api.example/x")).status_code == 200
                revoked.add(f"token-{round_}")  # `sekisho revoke`: this token is refused now
                clock.now += REPEAT_SECONDS
                assert (await http.get("https://api.example/x")).status_code == 200
    assert minted == ["token-1", "token-2", "token-3", "token-4"]
    assert seen == [
        "token-1", "token-1", "token-2", "token-2", "token-2", "token-3", "token-3", "token-3",
        "token-4",
    ]  # fmt: skip


def _new_reason_error() -> ServiceError:
    """A reason a later Sekisho might send, which this SDK does not know (INTERNAL). An
    instance, not a subclass: tests/unit/test_error_wire.py checks every ServiceError class
    against the contract, and a test's subclass would join them (CI, session 19)."""
    error = ServiceError()
    error.reason = "a_reason_this_sdk_does_not_know"
    return error


@pytest.mark.integration
@pytest.mark.parametrize("answer", ["server_error", "bare-internal", "unknown-reason"])
async def test_a_refresh_sekisho_fails_with_a_fault_keeps_the_cached_token(answer: str) -> None:
    """Red team: a background refresh answered INTERNAL (a fault of Sekisho's, or of whatever
    answers for it) dropped the cached token like a denial, so every call after it went to
    Sekisho on the request path and failed until it recovered, although the token was still
    valid: a fault is not evidence against the token. Only Sekisho's verdict on the request
    (denied, invalid request or client, step-up, consent) drops it now; a fault keeps it, and
    the next refresh waits a second instead of going out with every call."""
    answers: list[str] = []

    async def handler(_: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        if answers:
            answers.append(answer)
            if answer == "server_error":
                await context.abort_with_status(to_grpc_status(ServiceError(), "req-3"))
            elif answer == "unknown-reason":
                await context.abort_with_status(to_grpc_status(_new_reason_error(), "req-4"))
            await context.abort(grpc.StatusCode.INTERNAL, "boom")
        answers.append("token")
        return pb.ExchangeTokenResponse(access_token="t", expires_in=300).SerializeToString()

    async with _client_of(handler) as (client, clock):
        first = await client.exchange("subject", AS, requested_token_type=ACCESS)
        clock.now += 300 - 20  # within the 30 s refresh-ahead window
        for _ in range(20):
            # Before: after the first failed refresh, ExchangeError (INTERNAL) on every call.
            assert await client.exchange("subject", AS, requested_token_type=ACCESS) is first
            for refresh in list(client._background):
                await asyncio.wait({refresh}, timeout=HANG_GUARD)
        assert answers == ["token", answer]  # one refresh: the next waits a second
        clock.now += 1.0
        assert await client.exchange("subject", AS, requested_token_type=ACCESS) is first
        for refresh in list(client._background):
            await asyncio.wait({refresh}, timeout=HANG_GUARD)
        assert answers == ["token", answer, answer]
