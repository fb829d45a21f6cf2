"""The gateway and the decision cache through a suspension: a token cached before `sekisho revoke
suspend subject` is not served during it (the cache drops it), the fresh exchange is refused 403
although policy's allow is still in the decision cache, other users are untouched, and after
`reinstate` the user is served again."""

import logging
from pathlib import Path

import pytest
from sekisho.gateway.authorizer import Allowed, Denied
from sekisho.policy.cache import CachingPolicyEngine
from sekisho.status.models import Revocation, subject_key

from tests.harness import IDP_A, Harness
from tests.unit.gateway.revocable import revocable_gateway
from tests.unit.gateway.test_authorizer import bearer, gw


async def test_a_suspended_user_is_cut_off_and_served_again_after_reinstate(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sekisho.audit")
    policy = CachingPolicyEngine(harness.policy, harness.clock, max_entries=100)
    gateway = await revocable_gateway(harness, tmp_path, policy)
    store, gate, cache, authorizer = gateway.store, gateway.gate, gateway.cache, gateway.authorizer
    alice, bob = bearer(harness), bearer(harness, sub="bob")
    alice_first = await authorizer.authorize(gw("/crm", alice))
    bob_first = await authorizer.authorize(gw("/crm", bob))
    assert isinstance(alice_first, Allowed) and isinstance(bob_first, Allowed)
    alice_key = subject_key(IDP_A, "alice")
    now = int(harness.clock.now())
    store.suspend(now, Revocation("subject", alice_key, "INC-7", "sec", now))
    await gate.refresh()

    refused = await authorizer.authorize(gw("/crm", alice))
    assert isinstance(refused, Denied) and refused.status == 403
    assert await authorizer.authorize(gw("/crm", bob)) == bob_first  # still the cached token
    # The audit line says why, telling a suspension from a revocation.
    (line,) = [r for r in caplog.records if r.getMessage() == "token_rejected"]
    assert line.detail == "suspended subject" and line.reason == "access_denied"  # type: ignore[attr-defined]

    # The decision cache still holds policy's allow for alice: the gate must come first.
    cache.clear()
    hits = policy.hits
    assert isinstance(await authorizer.authorize(gw("/crm", bob)), Allowed)
    assert policy.hits == hits + 1  # bob's decision came from the decision cache
    refused = await authorizer.authorize(gw("/crm", alice))
    assert isinstance(refused, Denied) and refused.status == 403

    # 0: this test mints without a status issuer, so the store holds no records to return.
    assert store.reinstate(int(harness.clock.now()), "subject", alice_key) == 0
    await gate.refresh()
    again = await authorizer.authorize(gw("/crm", alice))
    assert isinstance(again, Allowed) and again != alice_first  # a fresh token
