"""The gateway through a revocation: a token cached before `sekisho revoke subject` is not served
after it (a cache hit skips the pipeline, so the cache must drop it), the fresh exchange is
refused 403, and other users' cached tokens keep being served."""

from dataclasses import replace
from pathlib import Path

from sekisho.gateway.authorizer import Allowed, Denied
from sekisho.gateway.routes import RouteTable
from sekisho.status.models import Revocation, subject_key

from tests.harness import CRM_RESOURCE, IDP_A, Harness
from tests.unit.gateway.revocable import revocable_gateway
from tests.unit.gateway.test_authorizer import ROUTES, bearer, gw, minted_claims


async def test_a_revoked_users_cached_token_is_not_served(harness: Harness, tmp_path: Path) -> None:
    gateway = await revocable_gateway(harness, tmp_path)
    authorizer = gateway.authorizer
    alice, bob = bearer(harness), bearer(harness, sub="bob")
    assert isinstance(await authorizer.authorize(gw("/crm", alice)), Allowed)
    bob_first = await authorizer.authorize(gw("/crm", bob))
    now = int(harness.clock.now())
    gateway.store.revoke(
        now, Revocation("subject", subject_key(IDP_A, "alice"), "stolen", "sec", now)
    )
    await gateway.gate.refresh()
    refused = await authorizer.authorize(gw("/crm", alice))
    assert isinstance(refused, Denied) and refused.status == 403
    assert await authorizer.authorize(gw("/crm", bob)) == bob_first  # still the cached token


async def test_a_cached_token_is_not_served_once_the_revocation_view_is_stale(
    harness: Harness, tmp_path: Path
) -> None:
    """Red team, session 5: with the status store out of reach past max_stale_seconds, a fresh
    exchange is refused (a revocation or suspension made meanwhile would go unseen) but the
    gateway cache kept serving its tokens until they expired: the two paths disagreed. A stale
    view now names every key for the cache too."""
    gateway = await revocable_gateway(harness, tmp_path)
    authorizer = gateway.authorizer
    alice = bearer(harness)
    first = await authorizer.authorize(gw("/crm", alice))
    assert isinstance(first, Allowed)
    harness.clock.advance(5)
    assert await authorizer.authorize(gw("/crm", alice)) == first  # a cache hit, view fresh
    harness.clock.advance(6)  # no refresh since: the view is 11 s old, past max_stale (10 s)
    stale = await authorizer.authorize(gw("/crm", alice))
    assert isinstance(stale, Denied) and stale.status == 503
    await gateway.gate.refresh()  # the store answers again: served again
    assert isinstance(await authorizer.authorize(gw("/crm", alice)), Allowed)


async def test_a_resource_policy_granted_unasked_is_covered_by_its_audience_revocation(
    harness: Harness, tmp_path: Path
) -> None:
    # A route naming no resource: policy grants the CRM resource by default, so the token's
    # `aud` is that resource. `revoke audience` of it marks the token (the store records
    # granted resources); the gateway must drop it from its cache and refuse the fresh exchange
    # too, rather than keep serving (or mint) a token the status list calls INVALID.
    crm = ROUTES.match("mcp.example.com", "/crm", "POST")
    assert crm is not None
    routes = RouteTable([replace(crm, resources=())])
    gateway = await revocable_gateway(harness, tmp_path, routes=routes)
    alice = bearer(harness)
    first = await gateway.authorizer.authorize(gw("/crm", alice))
    assert isinstance(first, Allowed)
    assert minted_claims(harness, first, CRM_RESOURCE)["aud"] == CRM_RESOURCE  # granted unasked
    assert await gateway.authorizer.authorize(gw("/crm", alice)) == first  # cached
    now = int(harness.clock.now())
    gateway.store.revoke(now, Revocation("audience", CRM_RESOURCE, "INC-9", "sec", now))
    await gateway.gate.refresh()
    refused = await gateway.authorizer.authorize(gw("/crm", alice))
    assert isinstance(refused, Denied) and refused.status == 403


async def test_a_cached_token_nesting_a_revoked_agent_is_not_served(
    harness: Harness, tmp_path: Path
) -> None:
    # Session 11: a subject token that is itself the result of a delegation names agent-x in
    # its `act`; the minted token nests it again. `revoke caller agent-x` must reach the token
    # cached for it (the cache's keys are the gate's) and refuse the fresh exchange.
    gateway = await revocable_gateway(harness, tmp_path)
    authorizer = gateway.authorizer
    delegated, plain = bearer(harness, act={"sub": "agent-x"}), bearer(harness)
    first = await authorizer.authorize(gw("/crm", delegated))
    assert isinstance(first, Allowed)
    nested = minted_claims(harness, first, CRM_RESOURCE)["act"]
    assert nested == {"sub": "agent-x", "iss": IDP_A}  # nested again, named by its issuer
    plain_first = await authorizer.authorize(gw("/crm", plain))
    assert await authorizer.authorize(gw("/crm", delegated)) == first  # cached
    now = int(harness.clock.now())
    gateway.store.revoke(now, Revocation("caller", "agent-x", "INC-11", "sec", now))
    await gateway.gate.refresh()
    refused = await authorizer.authorize(gw("/crm", delegated))
    assert isinstance(refused, Denied) and refused.status == 403
    assert await authorizer.authorize(gw("/crm", plain)) == plain_first  # still the cached token
