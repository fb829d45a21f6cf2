"""`sekisho revoke suspend` / `reinstate` end to end in one process, through every cache that could
outlive a suspension: the served Status List Token reads SUSPENDED (0x02) for the user's live
token and VALID again after reinstate; new exchanges are refused while suspended and served after;
a downstream's `sekisho.verify` StatusListClient refuses the token while its list copy says
SUSPENDED and accepts it once a later copy says VALID; the client SDK drops its cached token
during the suspension and exchanges afresh after."""

import logging
import time
from pathlib import Path

import grpc
import pytest
from sekisho.client import ChannelOptions, ExchangeError, TokenExchangeClient
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN
from sekisho.status.bitlist import INVALID, SUSPENDED, VALID
from sekisho.status.filestore import FileStatusStore
from sekisho.status.models import Revocation, subject_key
from sekisho.verify import JwksClient, StatusListClient, TokenRejectedError

from tests.integration.conftest import LiveStack
from tests.integration.test_status_list import (  # noqa: F401 (the fixture)
    CRM_AS,
    CRM_MCP,
    HANG_GUARD_SECONDS,
    TTL,
    _exchange,
    _status_of,
    _until_status,
    addressable,
    status_live,
)
from tests.status_records import recorded_tokens
from tests.workers_pod import within

# Safety timeout only: each wait below is for the event that does the work (a worker's record
# flush every 0.05 s, the gate's 0.2 s poll, the 1 s reuse of a signed list), with a hang guard,
# never a fixed sleep: at load ~10 a sleep sized for a quiet host asserted too early.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _store(tmp_path: Path) -> FileStatusStore:
    return FileStatusStore(tmp_path / "status" / "status.db")


async def _outcome(live: LiveStack, sub: str) -> str:
    try:
        await _exchange(live, sub=sub)
    except grpc.aio.AioRpcError as error:
        return str(error.code().name)
    return "OK"


async def _recorded(live: LiveStack, tmp_path: Path, sub: str, count: int = 1) -> None:
    """Wait until a worker has flushed `sub`'s minted tokens to the store (so a suspension or
    revocation of the subject marks them)."""
    db, issuer = tmp_path / "status" / "status.db", live.idp.issuer

    async def flushed() -> bool:
        return recorded_tokens(db, issuer, sub) == count

    await within(flushed, HANG_GUARD_SECONDS)


async def _gate_loaded(caplog: pytest.LogCaptureFixture, revoked: int, suspended: int) -> None:
    """Wait until the gate has loaded a view of `revoked` revocations and `suspended`
    suspensions in force (its `revocations_loaded` line, logged when its view changes)."""

    async def loaded() -> bool:
        return any(
            r.getMessage() == "revocations_loaded"
            and (r.__dict__["count"], r.__dict__["suspended"]) == (revoked, suspended)
            for r in caplog.records
        )

    await within(loaded, HANG_GUARD_SECONDS)


async def test_suspend_then_reinstate_flips_the_list_and_the_gate(
    status_live: LiveStack,  # noqa: F811 (the imported fixture)
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sekisho.status.revocations")
    live = status_live
    alice = (await _exchange(live, sub="alice"))["status"]["status_list"]  # type: ignore[index]
    bob = (await _exchange(live, sub="bob"))["status"]["status_list"]  # type: ignore[index]
    await _recorded(live, tmp_path, "alice")
    store, key = _store(tmp_path), subject_key(live.idp.issuer, "alice")
    assert store.suspend(int(time.time()), Revocation("subject", key, "INC-7", "sec", 1)) == 1
    await _gate_loaded(caplog, revoked=0, suspended=1)
    assert await _outcome(live, "alice") == "PERMISSION_DENIED"
    assert await _outcome(live, "bob") == "OK"
    await _until_status(live, alice, SUSPENDED)
    assert await _status_of(live, bob) == VALID

    assert store.reinstate(int(time.time()), "subject", key) == 1
    await _gate_loaded(caplog, revoked=0, suspended=0)
    assert await _outcome(live, "alice") == "OK"
    await _until_status(live, alice, VALID)


async def test_reinstate_does_not_bring_back_a_token_revoked_meanwhile(
    status_live: LiveStack,  # noqa: F811 (the imported fixture)
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sekisho.status.revocations")
    live = status_live
    claims = await _exchange(live, sub="alice")
    reference = claims["status"]["status_list"]  # type: ignore[index]
    await _recorded(live, tmp_path, "alice")
    store, key = _store(tmp_path), subject_key(live.idp.issuer, "alice")
    now = int(time.time())
    store.suspend(now, Revocation("subject", key, "INC-7 look", "sec", now))
    store.revoke(now, Revocation("token", str(claims["jti"]), "INC-7 confirmed", "sec", now))
    assert store.reinstate(now, "subject", key) == 0
    await _until_status(live, reference, INVALID)  # final (draft §7.1)
    await _gate_loaded(caplog, revoked=1, suspended=0)  # the gate's view after the reinstate
    assert await _outcome(live, "alice") == "OK"  # the user, though, is served again


async def test_downstream_and_client_sdk_follow_suspend_and_reinstate(
    addressable: LiveStack,  # noqa: F811 (the imported fixture)
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sekisho.status.revocations")
    live = addressable
    issuer = live.settings.server.issuer
    now = [time.time()]
    keys = JwksClient(issuer + "/.well-known/jwks.json", clock=time.time)
    downstream = StatusListClient(issuer=issuer, keys=keys, clock=lambda: now[0])
    sdk_status = StatusListClient(issuer=issuer, keys=keys, clock=lambda: now[0])
    subject = live.user_token(sub="alice")
    fields = {"resources": [CRM_MCP], "requested_token_type": TOKEN_TYPE_ACCESS_TOKEN}
    async with TokenExchangeClient(
        f"127.0.0.1:{live.service.grpc.port}",
        channel_options=ChannelOptions(insecure=True),
        status=sdk_status,
        # A hang guard: with the SDK's 2 s default a list fetch on the request path that a
        # loaded host slowed past the call's deadline would serve the cached token as unknown.
        timeout_seconds=30,
    ) as client:
        first = await client.exchange(subject, CRM_AS, **fields)  # type: ignore[arg-type]
        assert first.status is not None
        await downstream.check(first.status)  # VALID: the downstream holds a copy now
        await _recorded(live, tmp_path, "alice")
        store, key = _store(tmp_path), subject_key(live.idp.issuer, "alice")
        store.suspend(int(time.time()), Revocation("subject", key, "INC-7", "sec", 1))
        await _until_status(live, first.status["status_list"], SUSPENDED)  # the served list
        await _gate_loaded(caplog, revoked=0, suspended=1)  # and the gate
        now[0] += TTL + 1  # every copy of the list held is past its ttl

        with pytest.raises(TokenRejectedError, match="suspended"):
            await downstream.check(first.status)
        with pytest.raises(ExchangeError) as refused:
            await client.exchange(subject, CRM_AS, **fields)  # type: ignore[arg-type]
        assert refused.value.reason == "access_denied" and client.rpc_count == 2

        store.reinstate(int(time.time()), "subject", key)
        await _until_status(live, first.status["status_list"], VALID)
        await _gate_loaded(caplog, revoked=0, suspended=0)
        now[0] += TTL + 1
        await downstream.check(first.status)  # the same token verifies again
        again = await client.exchange(subject, CRM_AS, **fields)  # type: ignore[arg-type]
        assert again.jti != first.jti and client.rpc_count == 3
