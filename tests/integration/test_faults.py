"""Fault injection, one named test per scenario: the IdP's JWKS endpoint down, slow or serving
garbage; a corrupted keystore at start and under a running service; a process killed in the
middle of a key rotation. (OPA, KMS and broken-policy faults: see docs/security.md for the tests
in test_opa_engine.py, test_opa_service.py, test_keystore_contract.py, test_kms_faults.py and
test_operations.py.)

Every fault is real: HTTP over loopback, files on disk, SIGKILLed processes.
"""

import asyncio
import contextlib
import dataclasses
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.constants import TOKEN_TYPE_ID_TOKEN
from sekisho.devidp import DevIdentityProvider
from sekisho.errors import TemporarilyUnavailableError
from sekisho.service import start_service
from sekisho.signing.filestore import KEYRING_FILE, FileKeyStore
from sekisho.signing.keyring import Keyring
from sekisho.signing.keys import KeyState
from sekisho.signing.signer import LocalSigner
from sekisho.verify.fetcher import HttpJsonFetcher

from tests.fakes.clock import FakeClock
from tests.fakes.idp import TestIdp
from tests.grpc_errors import error_info
from tests.harness import IDP_A, POLICIES
from tests.integration.conftest import AGENT_AUDIENCE, stack_settings
from tests.jwks_server import JwksServer, jwks_server, live_verifier

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CRASH_LAUNCHER = REPO / "tests" / "crash_launcher.py"
MAX_STALE = 3600
T0 = 1_800_000_000

# --- IdP JWKS endpoint faults -----------------------------------------------------------------

DEEP_NESTING = b"[" * 100_000 + b"]" * 100_000


# The fetch timeout the "slow" IdP (SLOW_SECONDS) runs out; also the one every good fetch here
# has, so it is a hang guard for those: at 0.5 s a fetch from the in-process IdP that a loaded
# host stalled would fail the first verification or the recovery.
FETCH_TIMEOUT_SECONDS = 5.0
SLOW_SECONDS = 30.0


@pytest.fixture
async def fetcher() -> AsyncIterator[HttpJsonFetcher]:
    client = HttpJsonFetcher(timeout_seconds=FETCH_TIMEOUT_SECONDS)
    yield client
    await client.close()


@pytest.mark.parametrize(
    ("fault", "garbage"),
    [
        ("down", b""),
        ("slow", b""),
        ("garbage", b"<html>502 Bad Gateway</html>"),
        ("garbage", b'{"keys": "not-a-list"}'),
        ("garbage", b"\xff\xfe\x00garbage"),
        ("garbage", DEEP_NESTING),
    ],
    ids=["down", "slow", "html", "not-a-jwks", "binary", "deep-nesting"],
)
async def test_jwks_down_slow_or_garbage_keeps_last_good_keys_until_they_expire(
    fetcher: HttpJsonFetcher, fault: str, garbage: bytes
) -> None:
    """Last good keys keep verifying through the outage; `jwks_max_stale_seconds` after the last
    good fetch they expire and the issuer fails closed (UNAVAILABLE), until the IdP recovers."""
    idp, clock = TestIdp(IDP_A), FakeClock()
    async with jwks_server(idp.jwks()) as server:
        cache_verifier = live_verifier(
            server, fetcher, clock, issuer=IDP_A, max_stale_seconds=MAX_STALE
        )
        verify = cache_verifier.verify
        await verify(idp.token(clock.now()), TOKEN_TYPE_ID_TOKEN)
        server.mode, server.delay, server.garbage = fault, SLOW_SECONDS, garbage
        clock.advance(31)
        # An unknown kid refetches and that fetch fails: an outage (the kid may be the IdP's
        # new key), never a bad token, as the verify SDK answers (before: UNAUTHENTICATED).
        with pytest.raises(TemporarilyUnavailableError):
            await verify(idp.token(clock.now(), headers={"kid": "rotated"}), TOKEN_TYPE_ID_TOKEN)
        assert server.hits == 2
        clock.advance(MAX_STALE - 31)  # exactly at the bound: still the last good keys
        await verify(idp.token(clock.now()), TOKEN_TYPE_ID_TOKEN)
        clock.advance(1)  # past it: expired, one refetch attempt, then fail closed
        with pytest.raises(TemporarilyUnavailableError) as expired:
            await verify(idp.token(clock.now()), TOKEN_TYPE_ID_TOKEN)
        assert (expired.value.grpc_code, expired.value.reason) == (
            "UNAVAILABLE",
            "temporarily_unavailable",
        )
        assert server.hits == 3
        server.mode = "ok"  # the IdP recovers: the next allowed refetch restores service
        clock.advance(31)
        await verify(idp.token(clock.now()), TOKEN_TYPE_ID_TOKEN)
        assert server.hits == 4


async def test_jwks_never_fetched_and_idp_down_fails_closed(fetcher: HttpJsonFetcher) -> None:
    """No last good keys at all: UNAVAILABLE from the first request, never a verified token."""
    idp, clock = TestIdp(IDP_A), FakeClock()
    async with jwks_server(idp.jwks()) as server:
        server.mode = "down"
        verifier = live_verifier(server, fetcher, clock, issuer=IDP_A)
        with pytest.raises(TemporarilyUnavailableError):
            await verifier.verify(idp.token(clock.now()), TOKEN_TYPE_ID_TOKEN)


# How long the service's unknown kid waits ([trust] unknown_kid_wait_seconds), and how slowly the
# IdP answers meanwhile: far apart, so a loaded host cannot blur the two.
UNKNOWN_KID_WAIT = 0.2
SLOW_IDP_SECONDS = 3.0


async def test_a_made_up_kid_at_a_slow_idp_is_unavailable_within_the_wait(tmp_path: Path) -> None:
    """Red team session 20 (server side): an exchange whose token names a kid the IdP's set
    lacks waited for the refetch it triggered for the whole fetch (up to the fetch timeout)
    while the IdP answered slowly, holding its admission slot. Now ExchangeToken answers
    UNAVAILABLE / temporarily_unavailable within `unknown_kid_wait_seconds`; the refetch goes
    on, and a key the IdP really rotated in is served from it to the next exchange."""
    async with jwks_server() as server:
        issuer = server.url_for("")
        idp = DevIdentityProvider.open(tmp_path / "idp", issuer)
        server.document = idp.jwks()
        async with _stack(tmp_path, server, issuer) as stub:
            await stub.ExchangeToken(_request(idp))  # the IdP's set is held
            fetches = server.hits
            server.mode, server.delay = "slow", SLOW_IDP_SECONDS
            refusal, took = await _refused(stub, _request(dataclasses.replace(idp, kid="made-up")))
            assert (refusal.code(), error_info(refusal).reason) == (
                grpc.StatusCode.UNAVAILABLE,
                "temporarily_unavailable",
            )
            assert took < SLOW_IDP_SECONDS / 2
            # The IdP rotates while that refetch is under way; the set it answers carries it.
            rotated = DevIdentityProvider.open(tmp_path / "rotated", issuer)
            server.document = {"keys": idp.jwks()["keys"] + rotated.jwks()["keys"]}
            response = await _until_exchanged(stub, _request(rotated))
            assert response.access_token
            assert server.hits == fetches + 1  # one refetch, shared by every call above


@contextlib.asynccontextmanager
async def _stack(
    tmp_path: Path, server: JwksServer, issuer: str
) -> AsyncIterator[pb_grpc.TokenExchangeServiceStub]:
    """Sekisho trusting `issuer`, whose JWKS `server` serves, with the unknown-kid wait set."""
    keys_dir = tmp_path / "keys"
    FileKeyStore(keys_dir).init("ES256", T0)
    trust = {
        "issuers": [{"issuer": issuer, "jwks_uri": server.url, "audiences": [AGENT_AUDIENCE]}],
        "jwks_refetch_min_interval_seconds": 0.0,
        "unknown_kid_wait_seconds": UNKNOWN_KID_WAIT,
        "http_timeout_seconds": 2 * SLOW_IDP_SECONDS,
    }
    service = await start_service(stack_settings(issuer, keys_dir, trust=trust))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc.port}")
    try:
        yield pb_grpc.TokenExchangeServiceStub(channel)
    finally:
        await channel.close()
        await service.stop(0.5)


def _request(idp: DevIdentityProvider) -> pb.ExchangeTokenRequest:
    claims = {"sub": "alice", "aud": AGENT_AUDIENCE, "groups": ["sales"], "tenant": "acme"}
    return pb.ExchangeTokenRequest(
        subject_token=idp.token(claims, ttl=600), audience="https://crm-as.example.com"
    )


async def _refused(
    stub: pb_grpc.TokenExchangeServiceStub, request: pb.ExchangeTokenRequest
) -> tuple[grpc.aio.AioRpcError, float]:
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ExchangeToken(request, timeout=4 * SLOW_IDP_SECONDS)
    return refused.value, time.monotonic() - started


async def _until_exchanged(
    stub: pb_grpc.TokenExchangeServiceStub, request: pb.ExchangeTokenRequest
) -> pb.ExchangeTokenResponse:
    """Exchanged once the refetch lands; UNAVAILABLE (retryable) until then, nothing else."""
    deadline = time.monotonic() + 4 * SLOW_IDP_SECONDS
    while True:
        try:
            return await stub.ExchangeToken(request, timeout=4 * SLOW_IDP_SECONDS)
        except grpc.aio.AioRpcError as refused:
            if refused.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)


# --- corrupted keystore -----------------------------------------------------------------------


def _corrupt(keys_dir: Path, how: str) -> str:
    """Damage the keystore; returns the text the error must name."""
    keyring_path = keys_dir / KEYRING_FILE
    records = json.loads(keyring_path.read_text())["keys"]
    active = next(r["kid"] for r in records if r["state"] == "active")
    pem = keys_dir / f"{active}.pem"
    if how == "truncated-keyring":
        keyring_path.write_bytes(keyring_path.read_bytes()[:40])
        return KEYRING_FILE
    if how == "two-active":
        for record in records:
            record["state"] = "active"
        keyring_path.write_text(json.dumps({"version": 1, "keys": records}))
        return "more than one key is active"
    if how == "garbage-pem":
        pem.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
        return active
    if how == "swapped-pem":
        other = next(r["kid"] for r in records if r["kid"] != active)
        pem.write_bytes((keys_dir / f"{other}.pem").read_bytes())
        return active
    pem.unlink()
    return active


CORRUPTIONS = ["truncated-keyring", "two-active", "garbage-pem", "swapped-pem", "missing-pem"]


def _serve_config(tmp_path: Path, keys_dir: Path) -> Path:
    config = tmp_path / "sekisho.toml"
    config.write_text(
        "[server]\n"
        'grpc_listen = "127.0.0.1:0"\nhttp_listen = "127.0.0.1:0"\n'
        'issuer = "https://sekisho.test"\n'
        f'[policy]\npath = "{POLICIES}"\n'
        f'[keys]\ndir = "{keys_dir}"\n'
    )
    return config


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_corrupted_keystore_refuses_to_start_with_a_clear_message(tmp_path: Path, how: str) -> None:
    keys_dir = tmp_path / "keys"
    FileKeyStore(keys_dir).init("ES256", T0)
    named = _corrupt(keys_dir, how)
    sekisho = [sys.executable, "-m", "sekisho", "serve", "--config"]
    done = subprocess.run(
        [*sekisho, str(_serve_config(tmp_path, keys_dir))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("sekisho: ")
    assert named in done.stderr
    assert "Traceback" not in done.stderr
    assert "PRIVATE KEY" not in done.stderr


@pytest.mark.parametrize("how", CORRUPTIONS)
async def test_running_service_stops_signing_when_the_keystore_is_corrupted(
    tmp_path: Path, how: str
) -> None:
    # Keeping the last good keys would keep signing with a key the keystore may have revoked or
    # replaced: the replica goes not ready instead, and publishes only what it can still load.
    keys_dir = tmp_path / "keys"
    FileKeyStore(keys_dir).init("ES256", T0)
    keyring = Keyring(FileKeyStore(keys_dir))
    keyring.load()
    active = keyring.signing_key()[0].kid
    _corrupt(keys_dir, how)
    assert await keyring.refresh() is False  # logged as keyring_reload_failed
    assert not keyring.loaded
    assert keyring.degraded
    assert active not in keyring.jwks_bytes.decode()
    with pytest.raises(TemporarilyUnavailableError):
        keyring.signing_key()


# --- a process killed in the middle of a key rotation ------------------------------------------


def _promote(config: Path, kill_at: int) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [sys.executable, str(CRASH_LAUNCHER), str(kill_at), "keys", "promote", "--force",
         "--reason", "crash test", "--operator", "test", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip


def _state(keys_dir: Path) -> tuple[tuple[str, str], ...]:
    """The keystore as a starting replica sees it, checked for consistency."""
    keys = FileKeyStore(keys_dir).load()  # raises on any inconsistency a replica would hit
    states = tuple(sorted((r.kid, r.state.value) for r in keys.records))
    assert sum(state == KeyState.ACTIVE.value for _, state in states) == 1
    jwks = keys.jwks()["keys"]
    published = {r.kid for r in keys.records if r.published}
    assert {jwk["kid"] for jwk in jwks} == published
    active = keys.active
    assert active is not None
    assert isinstance(active[1], LocalSigner)
    return states


def test_process_killed_mid_rotation_leaves_a_consistent_keystore(tmp_path: Path) -> None:
    """SIGKILL before each durable-write step of `keys promote`: after every kill the keystore is
    exactly the old or exactly the new keyring, loads, has one active key and a valid JWKS, and
    the next rotation (new process) succeeds — the kernel released the lock."""
    keys_dir = tmp_path / "keys"
    FileKeyStore(keys_dir).init("ES256", T0)
    config = _serve_config(tmp_path, keys_dir)
    clean = _promote(config, kill_at=0)
    assert clean.returncode == 0, clean.stderr
    total_steps = int(clean.stderr.rsplit("steps=", 1)[1])
    assert total_steps >= 4  # key file: fsync, replace, dir fsync; keyring.json: the same
    outcomes: set[str] = set()
    for kill_at in range(1, total_steps + 1):
        before = _state(keys_dir)
        crashed = _promote(config, kill_at)
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        after = _state(keys_dir)
        if after == before:
            outcomes.add("old")
        else:
            old_active = next(kid for kid, state in before if state == "active")
            assert (old_active, "retiring") in after  # the whole promotion, not a part of it
            outcomes.add("new")
    assert outcomes == {"old", "new"}  # kills landed both before and after the commit point
    final = _promote(config, kill_at=0)
    assert final.returncode == 0, final.stderr
    _state(keys_dir)
    audit = keys_dir / "audit.log"
    if audit.exists():
        for line in audit.read_text().splitlines():
            if line.strip():
                json.loads(line)  # killed runs never leave a torn audit line
