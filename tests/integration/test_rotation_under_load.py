"""Rotation under load: a downstream verifier that honours the JWKS Cache-Control and refetches
(throttled) on an unknown kid validates a continuous stream of tokens minted by a real Sekisho
over gRPC, and keeps re-validating each token until it expires, while the keys go through

1. the routine cycle (rotate → promote → retire) at the speed the timing rules allow: zero
   verification failures;
2. a revocation: the revoked kid leaves the JWKS and, once the service has picked the change up,
   no token signed by it is issued; tokens of other keys keep verifying;
3. a control: a forced promotion of a key published a moment ago, which this verifier does
   reject — proof that the routine run would have caught a promotion made too early.

Durations are shrunk through config (max-age 1 s, lifetime 10 s, leeway 1 s), so the whole run
takes about 25 s of real time.
"""

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import jwt
import pytest
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.clock import SystemClock
from sekisho.devidp import DevIdentityProvider
from sekisho.keystores import build_key_manager, build_keystore
from sekisho.service import start_service
from sekisho.signing.audit import Actor
from sekisho.signing.keys import KeyState
from sekisho.signing.lifecycle import LifecycleError
from sekisho.signing.manager import KeyManager

from tests.integration.conftest import AGENT_AUDIENCE, SEKISHO_ISSUER, stack_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

CRM_AS = "https://crm-as.example.com"
MAX_AGE, LIFETIME, LEEWAY = 1, 10, 1
# Only stops a test whose change is never picked up; how fast changes are picked up is a
# timing, not asserted here.
GIVE_UP_SECONDS = 30.0
OPS = Actor(operator="load-test", reason="rotation under load")


class UnknownKidError(Exception):
    pass


class CachingVerifier:
    """A downstream verifier: caches the JWKS for its Cache-Control max-age, refetches on an
    unknown kid at most once per `refetch_interval` (what careful verifiers do to avoid
    stampedes), validates iss/aud/exp with a small leeway."""

    def __init__(self, session: aiohttp.ClientSession, url: str, refetch_interval: float) -> None:
        self._session = session
        self._url = url
        self._refetch_interval = refetch_interval
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._expires_at = 0.0
        self.fetched = asyncio.Event()

    async def _fetch(self) -> None:
        async with self._session.get(self._url) as response:
            body = await response.json(content_type=None)
            match = re.search(r"max-age=(\d+)", response.headers.get("Cache-Control", ""))
        now = time.monotonic()
        self._keys = {k["kid"]: jwt.PyJWK(k) for k in body["keys"]}
        self._fetched_at = now
        self._expires_at = now + (int(match.group(1)) if match else 0)
        self.fetched.set()

    def freeze(self) -> None:
        """Keep the keys held now: no refresh on age nor on an unknown kid."""
        self._expires_at = self._refetch_interval = math.inf

    async def verify(self, token: str) -> str:
        now = time.monotonic()
        if now >= self._expires_at:
            await self._fetch()
        kid = jwt.get_unverified_header(token)["kid"]
        if kid not in self._keys and now - self._fetched_at >= self._refetch_interval:
            await self._fetch()
        if kid not in self._keys:
            raise UnknownKidError(kid)
        jwt.decode(
            token,
            self._keys[kid],
            algorithms=["ES256"],
            audience=CRM_AS,
            issuer=SEKISHO_ISSUER,
            leeway=LEEWAY,
        )
        return str(kid)


@dataclass
class Minted:
    started: float  # monotonic time the exchange was sent
    kid: str
    exp: float  # monotonic deadline equivalent of the token's exp
    token: str


@dataclass
class Load:
    """The token stream and everything the assertions need."""

    stub: pb_grpc.TokenExchangeServiceStub
    verifier: CachingVerifier
    subject_token: str
    minted: list[Minted] = field(default_factory=list)
    failures: list[tuple[float, str, str]] = field(default_factory=list)  # time, kid, error

    async def produce(self) -> None:
        while True:
            started = time.monotonic()
            request = pb.ExchangeTokenRequest(subject_token=self.subject_token, audience=CRM_AS)
            response = await self.stub.ExchangeToken(request)
            token = response.access_token
            kid = str(jwt.get_unverified_header(token)["kid"])
            self.minted.append(Minted(started, kid, started + response.expires_in, token))
            await self._check(token, kid)
            await asyncio.sleep(0.005)

    async def recheck(self) -> None:
        """Tokens stay in use until they expire: re-validate every live one, twice a second."""
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for minted in [m for m in self.minted if m.exp - 0.5 > now]:
                await self._check(minted.token, minted.kid)

    async def _check(self, token: str, kid: str) -> None:
        try:
            await self.verifier.verify(token)
        except (UnknownKidError, jwt.InvalidTokenError) as exc:
            self.failures.append((time.monotonic(), kid, f"{type(exc).__name__}: {exc}"))

    def failures_between(self, start: float, end: float, *, excluding: str = "") -> list[Any]:
        return [f for f in self.failures if start <= f[0] < end and f[1] != excluding]


async def _until_allowed(action: Any, within: float) -> int:
    """Retry a key operation until the timing rules allow it (the rules are the clock here);
    returns how many times the rules refused it first."""
    deadline = time.monotonic() + within
    refusals = 0
    while True:
        try:
            action()
            return refusals
        except LifecycleError:
            refusals += 1
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def _until(condition: Any) -> None:
    """Wait until `condition()` holds; fails after GIVE_UP_SECONDS (a hang guard)."""
    give_up = time.monotonic() + GIVE_UP_SECONDS
    while not condition():
        assert time.monotonic() < give_up, "not reached"
        await asyncio.sleep(0.05)


@pytest.fixture
async def stack(
    tmp_path: Path, dev_idp: DevIdentityProvider
) -> AsyncIterator[tuple[KeyManager, Load, str, float]]:
    settings = stack_settings(
        dev_idp.issuer,
        tmp_path / "keys",
        tokens={"max_lifetime_seconds": LIFETIME, "jwks_max_age_seconds": MAX_AGE},
        trust={"leeway_seconds": LEEWAY},
    )
    manager = build_key_manager(settings, build_keystore(settings, SystemClock()), SystemClock())
    initialised_at = time.monotonic()  # the `next` key's pre-publication starts here
    manager.init(OPS)
    with pytest.raises(LifecycleError):  # the moment after: the next key is not pre-published
        manager.promote(OPS)
    service = await start_service(settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc.port}")
    jwks_url = f"http://127.0.0.1:{service.http_port}/.well-known/jwks.json"
    async with aiohttp.ClientSession() as session:
        verifier = CachingVerifier(session, jwks_url, refetch_interval=5.0)
        token = dev_idp.token({"sub": "alice", "aud": AGENT_AUDIENCE, "groups": ["sales"]}, ttl=600)
        load = Load(pb_grpc.TokenExchangeServiceStub(channel), verifier, token)
        tasks = [asyncio.create_task(load.produce()), asyncio.create_task(load.recheck())]
        try:
            yield manager, load, jwks_url, initialised_at
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await channel.close()
            await service.stop(0.2)


def _state(manager: KeyManager, state: KeyState) -> str:
    return next(r.kid for r in manager.records() if r.state is state)


async def _jwks_kids(url: str) -> list[str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return [k["kid"] for k in (await response.json(content_type=None))["keys"]]


async def test_routine_cycle_then_revocation_under_continuous_load(
    stack: tuple[KeyManager, Load, str, float],
) -> None:
    manager, load, jwks_url, started = stack
    first = _state(manager, KeyState.ACTIVE)

    # 1. Routine cycle, each step as soon as the rules allow it. What the rules waited for is
    # read from the key records (the service's own clock), not from elapsed time here.
    await _until_allowed(lambda: manager.promote(OPS), within=2 * MAX_AGE + 2)
    second = _state(manager, KeyState.ACTIVE)
    records = {r.kid: r for r in manager.records()}
    promoted = records[second]
    assert promoted.activated_at - promoted.created_at >= 2 * MAX_AGE  # pre-publication
    assert records[first].retire_after - promoted.activated_at >= LIFETIME + LEEWAY + MAX_AGE
    # The first attempt comes right after the promotion: refused, the key still in its window.
    refusals = await _until_allowed(
        lambda: manager.retire(first, OPS), within=LIFETIME + LEEWAY + MAX_AGE + 2
    )
    assert refusals >= 1  # retire waited for retire_after
    await asyncio.sleep(MAX_AGE + 1.5)  # the verifier refreshes without the retired key
    routine_end = time.monotonic()

    # Event order, not a pickup deadline: once the service signs with the new key it never
    # signs with the old one again (the stream is one exchange at a time).
    kids = [m.kid for m in load.minted if m.started < routine_end]
    switched = kids.index(second)
    assert set(kids[:switched]) == {first} and set(kids[switched:]) == {second}
    assert len(load.minted) > 100, "the stream must be continuous"
    assert load.failures_between(started, routine_end) == []

    # 2. Revocation of the active key.
    revoked = second
    replacement = _state(manager, KeyState.NEXT)
    manager.revoke(revoked, OPS)
    revoked_at = time.monotonic()
    while revoked in await _jwks_kids(jwks_url):
        assert time.monotonic() - revoked_at < GIVE_UP_SECONDS, "revocation never picked up"
        await asyncio.sleep(0.02)
    gone_at = time.monotonic()
    await asyncio.sleep(2.0)  # the stream goes on meanwhile: no token may use the revoked key
    # Until a token was issued since and the verifier has dropped the revoked key (events, each
    # within about a second on a quiet host; stalls of seconds on a loaded one).
    await _until(lambda: any(m.started >= gone_at for m in load.minted))
    await _until(lambda: any(f[1] == revoked for f in load.failures))
    revoke_end = time.monotonic()

    late = [m for m in load.minted if m.kid == revoked and m.started >= gone_at]
    assert late == []  # no token signed by the revoked key once the service knows
    issued_after = [m for m in load.minted if m.started >= gone_at]
    assert issued_after and {m.kid for m in issued_after} == {replacement}
    assert load.failures_between(routine_end, revoke_end, excluding=revoked) == []

    # 3. Control: a key signing the moment it is published is rejected by this verifier. Its
    # cache is held from just before the promotion (as for its max-age, but for as long as the
    # service takes to sign with the key: within the 1 s max-age only on a quiet host).
    load.verifier.fetched.clear()
    await load.verifier.fetched.wait()  # right after the verifier refreshed its cache
    load.verifier.freeze()
    fresh = manager.retire(_state(manager, KeyState.NEXT), OPS)  # a brand-new next key
    manager.promote(Actor("load-test", "control"), force=True)
    control_at = time.monotonic()
    forced = _state(manager, KeyState.ACTIVE)
    assert any(c.kid == forced for c in fresh.changes)
    await _until(lambda: any(f[1] == forced for f in load.failures))
    control = load.failures_between(control_at, time.monotonic(), excluding=revoked)
    assert control, "a promotion without pre-publication must fail this verifier"
    assert {f[1] for f in control} == {forced}
