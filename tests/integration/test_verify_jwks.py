"""sekisho.verify.JwksClient against a real HTTP server: Cache-Control honoured, refetch on an
unknown kid throttled, fetch failures reported as unavailability (never as a bad token). It is
the server's own JWKS cache (sekisho.verify.jwks.JwksCache), so the server's defences hold for
downstreams too: single-flight fetches, the key-count cap, no symmetric keys."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from sekisho.verify import JwksClient, TokenRejectedError, VerifierUnavailableError, max_age_seconds
from sekisho.verify.freshness import MAX_FRESH_SECONDS, MIN_FRESH_SECONDS, age_seconds
from sekisho.verify.jwk_set import MAX_KEYS

pytestmark = pytest.mark.integration


def _jwk(kid: str) -> dict[str, str]:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key)), "kid": kid, "alg": "ES256"}


@dataclass
class Publisher:
    """A JWKS endpoint whose keys and Cache-Control the test changes."""

    url: str = ""
    keys: list[dict[str, str]] = field(default_factory=list)
    cache_control: str = "public, max-age=300"
    status: int = 200
    hits: int = 0
    age: str = ""  # the Age header of an HTTP cache answering for the JWKS (RFC 9111 §5.1)
    delay: float = 0.0  # seconds each answer takes (a slow or overloaded publisher)


@pytest.fixture
async def publisher() -> AsyncIterator[Publisher]:
    state = Publisher(keys=[_jwk("k1")])

    async def jwks(_: web.Request) -> web.Response:
        state.hits += 1
        await asyncio.sleep(state.delay)
        return web.json_response(
            {"keys": state.keys},
            status=state.status,
            headers={"Cache-Control": state.cache_control}
            | ({"Age": state.age} if state.age else {}),
        )

    app = web.Application()
    app.router.add_get("/jwks.json", jwks)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}/jwks.json"
    yield state
    await runner.cleanup()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_cached_for_max_age_then_refetched(publisher: Publisher) -> None:
    clock = Clock()
    client = JwksClient(publisher.url, clock=clock)
    await client.key("k1")
    clock.now += 299
    await client.key("k1")
    assert publisher.hits == 1
    clock.now += 2
    await client.key("k1")
    assert publisher.hits == 2


async def test_a_set_in_the_last_fifth_of_its_max_age_is_refetched_ahead_without_a_wait(
    publisher: Publisher,
) -> None:
    # At max-age every verification waited for the refetch: with a slow publisher, up to the
    # fetch timeout (5 s) every max-age, a set whose keys had expired meanwhile (red team
    # session 20). A kid found in the last fifth of max-age now starts it in the background.
    clock = Clock()
    client = JwksClient(publisher.url, clock=clock)
    await client.key("k1")
    publisher.delay = SLOW_PUBLISHER_SECONDS
    clock.now += 0.8 * 300 - 1
    await client.key("k1")
    await asyncio.sleep(0.05)
    assert publisher.hits == 1  # not yet in the last fifth
    clock.now += 2
    refused, took = await _timed(client.key("k1"))
    assert refused is None and took < SLOW_PUBLISHER_SECONDS / 2  # served from memory
    await _until_hits(publisher, 2)
    clock.now += 300 - 0.8 * 300  # past the first set's max-age: the refetched set serves
    await _until(lambda: client.key("k1"))  # (once the refetch has landed)
    refused, took = await _timed(client.key("k1"))
    assert refused is None and took < SLOW_PUBLISHER_SECONDS / 2
    assert publisher.hits == 2


async def test_a_failed_refetch_ahead_is_retried_after_the_interval_not_per_call(
    publisher: Publisher,
) -> None:
    clock = Clock()
    client = JwksClient(publisher.url, clock=clock, min_refetch_interval=30)
    await client.key("k1")
    publisher.status = 500
    clock.now += 250
    for _ in range(20):
        assert (await client.key("k1")).key_id == "k1"
        await asyncio.sleep(0.01)
    await _until_hits(publisher, 2)
    for _ in range(20):
        assert (await client.key("k1")).key_id == "k1"
    await asyncio.sleep(0.05)
    assert publisher.hits == 2
    publisher.status = 200
    clock.now += 30  # the interval after the failed one: one more, which lands
    await client.key("k1")
    await _until_hits(publisher, 3)


async def _until_hits(publisher: Publisher, hits: int, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while publisher.hits < hits:
        assert time.monotonic() < deadline, f"{publisher.hits} fetches, not {hits}"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    "max_age",
    [pytest.param("31536000", id="a-cdn-year"), pytest.param("9" * 400, id="past-a-double")],
)
async def test_a_set_is_held_at_most_a_day_whatever_its_max_age(
    publisher: Publisher, max_age: str
) -> None:
    # Red team session 20: a CDN's static-asset max-age kept a revoked key for a year; a max-age
    # past a double's range read as infinity and failed every verification as unavailable.
    publisher.cache_control = f"public, max-age={max_age}"
    clock = Clock()
    client = JwksClient(publisher.url, clock=clock)
    assert (await client.key("k1")).key_id == "k1"
    clock.now += 1  # held, not refetched (past a double: expired at once, every call refused)
    assert (await client.key("k1")).key_id == "k1"
    assert publisher.hits == 1
    clock.now += MAX_FRESH_SECONDS - 2
    publisher.keys = [_jwk("k2")]  # `sekisho keys revoke k1`
    clock.now += 2  # a day since the fetch: refetched, and k1 is refused
    await _until(lambda: _refused_as(client, "k1", TokenRejectedError))


async def test_a_set_a_cache_held_is_fresh_only_for_what_is_left_of_its_max_age(
    publisher: Publisher,
) -> None:
    # Red team session 14: a set an HTTP cache took just before `sekisho keys revoke KID` and
    # serves 290 s later (Age: 290) was held for a whole max-age from its arrival: the revoked
    # key verified for up to 2 x max-age (600 s with the defaults), not max-age.
    clock = Clock()
    client = JwksClient(publisher.url, clock=clock)
    publisher.age = "290"
    await client.key("k1")
    publisher.keys, publisher.age = [_jwk("k2")], ""  # k1 revoked: gone from the set
    clock.now += 11  # the cached copy is past its max-age: refetched, and k1 is refused
    with pytest.raises(TokenRejectedError):
        await client.key("k1")
    assert publisher.hits == 2


async def test_unknown_kid_refetches_once_per_interval(publisher: Publisher) -> None:
    clock = Clock()
    client = JwksClient(publisher.url, clock=clock, min_refetch_interval=30)
    await client.key("k1")
    publisher.keys.append(_jwk("k2"))  # a rotation: the new key is published
    clock.now += 30
    assert (await client.key("k2")).key_id == "k2"
    assert publisher.hits == 2
    for _ in range(5):  # garbage kids must not make us hammer the issuer
        with pytest.raises(TokenRejectedError):
            await client.key("forged")
    assert publisher.hits == 2


@pytest.mark.parametrize("cache_control", ["no-store", "no-cache", "max-age=0"])
async def test_a_set_not_to_be_cached_serves_for_the_floor_then_is_refetched(
    publisher: Publisher, cache_control: str
) -> None:
    # Session 12: a set fetched with max-age 0 (`[tokens] jwks_max_age_seconds = 0`, or a proxy
    # adding no-store) was expired as soon as the clock moved past the fetch: every
    # verification fetched the set (a new connection each) and then failed as unavailable.
    # The clock moves on every call here, as a real one does.
    publisher.cache_control = cache_control
    clock = Clock()
    client = JwksClient(publisher.url, clock=clock)
    assert (await client.key("k1")).key_id == "k1"
    for _ in range(20):  # 20 more verifications within the floor: each served, no fetch
        clock.now += MIN_FRESH_SECONDS / 40
        assert (await client.key("k1")).key_id == "k1"
    assert publisher.hits == 1
    clock.now += MIN_FRESH_SECONDS  # past the floor since the fetch
    assert (await client.key("k1")).key_id == "k1"  # refetched
    assert publisher.hits == 2


async def test_a_set_not_to_be_cached_verifies_on_a_real_clock(publisher: Publisher) -> None:
    # What a downstream saw: with time.time every call failed "not refreshed for over 0 s".
    publisher.cache_control = "no-store"
    client = JwksClient(publisher.url, clock=time.time)
    for _ in range(5):
        assert (await client.key("k1")).key_id == "k1"


async def test_a_key_dropped_from_a_set_not_to_be_cached_is_refused_after_the_floor(
    publisher: Publisher,
) -> None:
    publisher.cache_control = "no-store"
    clock = Clock()
    client = JwksClient(publisher.url, clock=clock)
    await client.key("k1")
    publisher.keys = [_jwk("k2")]  # k1 revoked
    clock.now += MIN_FRESH_SECONDS
    with pytest.raises(TokenRejectedError):
        await client.key("k1")


async def _until(call: Callable[[], Awaitable[object]], limit: float = 10.0) -> object:
    """`call()`'s first result that does not raise VerifierUnavailableError, polled (bounded)
    while a background fetch lands."""
    deadline = time.monotonic() + limit
    while True:
        try:
            return await call()
        except VerifierUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def _timed(call: Awaitable[object]) -> tuple[type[BaseException] | None, float]:
    started = time.monotonic()
    try:
        await call
    except (TokenRejectedError, VerifierUnavailableError) as exc:
        return type(exc), time.monotonic() - started
    return None, time.monotonic() - started


SLOW_PUBLISHER_SECONDS = 2.0
UNKNOWN_KID_WAIT = 0.2


async def test_an_unknown_kid_waits_for_a_slow_refetch_only_its_bound_then_is_unavailable(
    publisher: Publisher,
) -> None:
    # Red team session 20: a kid not in the set held waited for the refetch it triggered for
    # the whole fetch timeout (5 s): a forged kid sent while the publisher answered slowly held
    # its request that long. Now at most `unknown_kid_wait_seconds`, refused as unavailable
    # (the kid may be in the set not yet read), and the fetch goes on for the next call.
    clock = Clock()
    client = JwksClient(
        publisher.url,
        clock=clock,
        min_refetch_interval=30,
        unknown_kid_wait_seconds=UNKNOWN_KID_WAIT,
    )
    await client.key("k1")
    publisher.keys.append(_jwk("k2"))  # a rotation, published by a slow publisher
    publisher.delay = SLOW_PUBLISHER_SECONDS
    clock.now += 30
    refused, took = await _timed(client.key("k2"))
    assert refused is VerifierUnavailableError
    assert took < SLOW_PUBLISHER_SECONDS / 2
    assert (await client.key("k1")).key_id == "k1"  # the set held still serves meanwhile
    # The refetch went on: its keys serve the next call, with no fetch of its own.
    found = await _until(lambda: client.key("k2"))
    assert isinstance(found, jwt.PyJWK) and found.key_id == "k2"
    assert publisher.hits == 2


async def test_a_kid_spray_at_a_slow_publisher_costs_one_fetch_and_waits_its_bound(
    publisher: Publisher,
) -> None:
    # Concurrent forged kids share the one refetch and are each held at most the bound, and
    # once it lands they are rejected as unknown without another fetch until the interval.
    clock = Clock()
    client = JwksClient(
        publisher.url,
        clock=clock,
        min_refetch_interval=30,
        unknown_kid_wait_seconds=UNKNOWN_KID_WAIT,
    )
    await client.key("k1")
    publisher.delay = SLOW_PUBLISHER_SECONDS
    clock.now += 30
    answers = await asyncio.gather(*(_timed(client.key(f"forged-{i}")) for i in range(50)))
    assert {refused for refused, _ in answers} == {VerifierUnavailableError}
    assert max(took for _, took in answers) < SLOW_PUBLISHER_SECONDS / 2
    await _until(lambda: client.key("k1"))
    # The refetch landed: every forged kid is now a bad token, answered without a fetch.
    await _until(lambda: _refused_as(client, "forged-late", TokenRejectedError))
    answers = await asyncio.gather(*(_timed(client.key(f"forged-b{i}")) for i in range(50)))
    assert {refused for refused, _ in answers} == {TokenRejectedError}
    assert publisher.hits == 2
    clock.now += 30  # the next interval: one more refetch at most
    publisher.delay = 0.0
    answers = await asyncio.gather(*(_timed(client.key(f"forged-c{i}")) for i in range(50)))
    assert {refused for refused, _ in answers} == {TokenRejectedError}
    assert publisher.hits == 3


async def _refused_as(client: JwksClient, kid: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        await client.key(kid)


async def test_an_unknown_kid_refetch_that_fails_within_the_bound_is_unavailability(
    publisher: Publisher,
) -> None:
    # An outage is never a bad token: the refetch answered 500 within the bound.
    clock = Clock()
    client = JwksClient(publisher.url, clock=clock, min_refetch_interval=30)
    await client.key("k1")
    publisher.status = 500
    clock.now += 30
    with pytest.raises(VerifierUnavailableError):
        await client.key("k2")


async def test_with_no_set_held_the_first_fetch_is_waited_for_past_the_bound(
    publisher: Publisher,
) -> None:
    # Nothing to answer with but a refusal: the first fetch is waited for (up to its timeout).
    publisher.delay = 3 * UNKNOWN_KID_WAIT
    client = JwksClient(publisher.url, clock=Clock(), unknown_kid_wait_seconds=UNKNOWN_KID_WAIT)
    assert (await client.key("k1")).key_id == "k1"


def test_a_negative_unknown_kid_wait_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown_kid_wait_seconds"):
        JwksClient("http://127.0.0.1:1/jwks.json", clock=Clock(), unknown_kid_wait_seconds=-1)


async def test_fetch_failure_is_unavailability(publisher: Publisher) -> None:
    publisher.status = 500
    with pytest.raises(VerifierUnavailableError):
        await JwksClient(publisher.url, clock=Clock()).key("k1")


async def test_concurrent_first_calls_share_one_fetch(publisher: Publisher) -> None:
    client = JwksClient(publisher.url, clock=Clock())
    keys = await asyncio.gather(*(client.key("k1") for _ in range(8)))
    assert {key.key_id for key in keys} == {"k1"}
    assert (publisher.hits, client.fetch_count) == (1, 1)


async def test_a_set_over_the_key_cap_is_unavailability(publisher: Publisher) -> None:
    publisher.keys = [_jwk(f"k{i}") for i in range(MAX_KEYS + 1)]
    with pytest.raises(VerifierUnavailableError):
        await JwksClient(publisher.url, clock=Clock()).key("k1")


async def test_a_published_symmetric_key_is_never_a_verification_key(
    publisher: Publisher,
) -> None:
    # HMAC key confusion bait: an `oct` key in a public JWKS is a published secret.
    publisher.keys.append({"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ", "kid": "hmac"})
    client = JwksClient(publisher.url, clock=Clock())
    assert (await client.key("k1")).key_id == "k1"
    with pytest.raises(TokenRejectedError):
        await client.key("hmac")


async def test_a_failed_refetch_after_max_age_fails_closed_and_is_throttled(
    publisher: Publisher,
) -> None:
    clock = Clock()
    client = JwksClient(publisher.url, clock=clock, min_refetch_interval=30)
    await client.key("k1")
    publisher.status = 500
    clock.now += 301  # past max-age=300: refetch, which fails; the old keys are not trusted
    with pytest.raises(VerifierUnavailableError):
        await client.key("k1")
    clock.now += 1
    with pytest.raises(VerifierUnavailableError):
        await client.key("k1")
    assert publisher.hits == 2  # the second call did not refetch within the interval
    publisher.status = 200
    clock.now += 30
    assert (await client.key("k1")).key_id == "k1"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("public, max-age=60", 60.0),
        ("max-age=0", 0.0),
        ("no-cache", 0.0),
        ("private", 300.0),
        ("s-maxage=5, max-age=7", 7.0),
        ("max-age=" + "9" * 400, 2.0**31),  # RFC 9111 §1.2.2, not a float's infinity
    ],
)
def test_max_age_parsing(header: str, seconds: float) -> None:
    assert max_age_seconds(header, 300.0) == seconds


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("", 0.0),
        ("290", 290.0),
        (" 7 ", 7.0),
        ("-5", 0.0),
        ("1e3", 0.0),
        ("12, 13", 0.0),
        # RFC 9111 §1.2.2: a delta-seconds too large to represent is 2^31, never ignored (red
        # team session 15b: eleven digits read as no Age, so the copy was as young as its iat).
        ("99999999999", 2147483648.0),
        ("123456789012345678901234567890", 2147483648.0),
        ("\uff15", 0.0),  # a fullwidth digit is not delta-seconds (DIGIT is ASCII, RFC 5234)
    ],
)
def test_age_parsing(header: str, seconds: float) -> None:
    assert age_seconds(header) == seconds
