"""Index allocation in a worker: indexes come from the lease in order, a used-up or expired lease
is renewed, a store outage refuses minting (no token without a status entry), and the revocation
gate refuses covered exchanges and fails closed when its view is stale."""

from dataclasses import replace
from pathlib import Path

import pytest
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN
from sekisho.errors import AccessDeniedError, TemporarilyUnavailableError
from sekisho.minting.minter import TokenMinter
from sekisho.models import Caller, Decision, ExchangeRequest, VerifiedToken
from sekisho.status.filestore import FileStatusStore
from sekisho.status.issuer import AllocationPolicy, StatusListIssuer
from sekisho.status.models import Revocation, RevocationKind, subject_key
from sekisho.status.revocations import RevocationGate, act_keys, covered_keys
from sekisho.status.store import StatusStoreError

from tests.fakes.clock import FakeClock
from tests.harness import CRM_AUDIENCE, CRM_RESOURCE, IDP_A
from tests.unit.minting.signing_keys import StaticKeyStore, keyring_over
from tests.unit.status.test_store_contract import NOW

POLICY = AllocationPolicy(list_size=1000, lease_size=3, lease_seconds=60, max_token_lifetime=330)


def _issuer(tmp_path: Path, clock: FakeClock) -> StatusListIssuer:
    store = FileStatusStore(tmp_path / "status.db")
    return StatusListIssuer(store, clock, base_uri="https://s.example/statuslists", policy=POLICY)


async def test_indexes_follow_the_lease_and_renew(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    issuer = _issuer(tmp_path, clock)
    taken = [(await issuer.reserve()).idx for _ in range(5)]
    assert taken == [0, 1, 2, 3, 4]  # the second lease starts where the first ended
    clock.advance(61)  # the lease's use_until passed: its last index is abandoned
    after = await issuer.reserve()
    assert after.idx == 6 and after.uri == "https://s.example/statuslists/1"
    assert after.claim() == {"status_list": {"idx": 6, "uri": after.uri}}


class _DownStore(FileStatusStore):
    def lease(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        raise StatusStoreError("unreachable")


async def test_an_unreachable_store_refuses_minting(tmp_path: Path) -> None:
    store = _DownStore(tmp_path / "status.db")
    issuer = StatusListIssuer(store, FakeClock(NOW), base_uri="https://s", policy=POLICY)
    with pytest.raises(TemporarilyUnavailableError):
        await issuer.reserve()


async def test_a_store_file_that_cannot_be_made_refuses_minting_for_now(tmp_path: Path) -> None:
    # Not INTERNAL: the exchange is refused temporarily_unavailable, as for any store outage.
    (tmp_path / "var").write_text("")  # the store's folder is a file
    store = FileStatusStore(tmp_path / "var" / "status.db")
    issuer = StatusListIssuer(store, FakeClock(NOW), base_uri="https://s", policy=POLICY)
    with pytest.raises(TemporarilyUnavailableError):
        await issuer.reserve()


def _subject(jti: str = "idp-jti-1") -> VerifiedToken:
    return VerifiedToken(
        issuer=IDP_A,
        subject="alice",
        token_type="id_token",
        expires_at=NOW + 600,
        claims={"jti": jti},
    )


def _request(caller: str = "spiffe://example.org/agent") -> ExchangeRequest:
    return ExchangeRequest(
        subject_token="t",
        subject_token_type="urn:ietf:params:oauth:token-type:id_token",
        requested_token_type="urn:ietf:params:oauth:token-type:id-jag",
        audience=CRM_AUDIENCE,
        caller=Caller(id=caller),
    )


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        pytest.param("subject", subject_key(IDP_A, "alice"), id="subject"),
        pytest.param("caller", "spiffe://example.org/agent", id="caller"),
        pytest.param("audience", CRM_AUDIENCE, id="audience"),
        pytest.param("token", "idp-jti-1", id="inbound-token-jti"),
    ],
)
async def test_the_gate_refuses_what_a_revocation_covers(
    tmp_path: Path, kind: RevocationKind, key: str
) -> None:
    store = FileStatusStore(tmp_path / "status.db")
    clock = FakeClock(NOW)
    gate = RevocationGate(store, clock, max_stale_seconds=2)
    await gate.refresh()
    gate.check(_request(), _subject(), None)
    store.revoke(NOW, Revocation(kind, key, "r", "sec", NOW))
    await gate.refresh()
    with pytest.raises(AccessDeniedError):
        gate.check(_request(), _subject(), None)
    if kind in ("caller", "token"):  # another agent, another inbound token: still served
        gate.check(_request("spiffe://example.org/other"), _subject("other-jti"), None)


async def test_a_revoked_user_is_refused_as_the_actor_too(tmp_path: Path) -> None:
    # `revoke subject` covers every token of that user: their token presented as actor_token
    # for another user (who named them in may_act) must not get them into a new token's `act`.
    store = FileStatusStore(tmp_path / "status.db")
    gate = RevocationGate(store, FakeClock(NOW), max_stale_seconds=2)
    mallory = VerifiedToken(
        issuer=IDP_A, subject="mallory", token_type="id_token", expires_at=NOW + 600
    )
    store.revoke(NOW, Revocation("subject", subject_key(IDP_A, "mallory"), "r", "sec", NOW))
    await gate.refresh()
    gate.check(_request(), _subject(), None)  # alice alone: served
    with pytest.raises(AccessDeniedError):
        gate.check(_request(), _subject(), mallory)
    other_idp = VerifiedToken(issuer="https://other-idp.example.com", subject="mallory",
                              token_type="id_token", expires_at=NOW + 600)  # fmt: skip
    gate.check(_request(), _subject(), other_idp)  # another issuer's mallory is someone else


async def test_an_audience_revocation_naming_a_resource_covers_it(tmp_path: Path) -> None:
    # An access token's `aud` is the resource: an operator revoking what a downstream's tokens
    # carry in `aud` must not get a revocation that covers nothing.
    store = FileStatusStore(tmp_path / "status.db")
    gate = RevocationGate(store, FakeClock(NOW), max_stale_seconds=2)
    resource = "https://mcp.crm.example.com/mcp"
    for_resource = replace(_request(), resources=(resource,))
    store.revoke(NOW, Revocation("audience", resource, "r", "sec", NOW))
    await gate.refresh()
    gate.check(_request(), _subject(), None)  # the audience without that resource: served
    with pytest.raises(AccessDeniedError):
        gate.check(for_resource, _subject(), None)


async def test_a_minted_token_is_marked_by_each_user_caller_and_downstream_the_gate_refuses(
    tmp_path: Path,
) -> None:
    # One `revoke subject` / `caller` / `audience` reaches the live tokens as well as new
    # exchanges: the user as the subject or as the actor, the workload as the actor or as the
    # mTLS caller, the downstream as the audience or as a granted resource (an access token's
    # `aud`). Before, the minter recorded one subject, one caller (the actor's sub when there
    # was an actor token) and one audience.
    request = replace(
        _request(), resources=(CRM_RESOURCE,), requested_token_type=TOKEN_TYPE_ACCESS_TOKEN
    )
    mallory = VerifiedToken(
        issuer=IDP_A, subject="mallory", token_type="id_token", expires_at=NOW + 600
    )
    decision = Decision(
        allow=True, scopes=("crm.read",), resources=(CRM_RESOURCE,), client_id="crm-client"
    )
    names = [
        (kind, key)
        for kind, key in covered_keys(request, _subject(), mallory)
        if kind != "token"  # the inbound tokens' jti: not the minted token's
    ]
    assert len(names) == 6  # alice, mallory; the mTLS caller, mallory's sub; audience, resource
    for n, (kind, key) in enumerate(names):  # a store each: a token changes status once
        store = await _minted_into(tmp_path / f"{n}.db", request, _subject(), mallory, decision)
        assert store.revoke(NOW, Revocation(kind, key, "r", "sec", NOW)) == 1, (kind, key)
        store.close()


CRM_READ = Decision(allow=True, scopes=("crm.read",), client_id="crm-client")
OTHER_IDP = "https://other-idp.example.com"
# A subject token that is itself the result of earlier delegations: agent-x acted last (no `iss`:
# named by the token's issuer), agent-y (another IdP's) before it, agent-z deepest, at the
# default max_act_depth of 4.
CHAIN = {
    "sub": "agent-x",
    "act": {"sub": "agent-y", "iss": OTHER_IDP, "act": {"sub": "w", "act": {"sub": "agent-z"}}},
}


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        pytest.param("caller", "agent-x", id="caller-nested-first"),
        pytest.param("subject", subject_key(IDP_A, "agent-x"), id="subject-without-iss"),
        pytest.param("caller", "agent-y", id="caller-nested-second"),
        pytest.param("subject", subject_key(OTHER_IDP, "agent-y"), id="subject-with-its-iss"),
        pytest.param("caller", "agent-z", id="caller-at-max-act-depth"),
    ],
)
async def test_an_agent_nested_in_the_subject_tokens_act_is_refused(
    tmp_path: Path, kind: RevocationKind, key: str
) -> None:
    # Session 11: only the direct actor token was checked. A revoked or suspended agent kept
    # acting through a subject token that nests it in `act`, and the new token nested it again.
    store = FileStatusStore(tmp_path / "status.db")
    gate = RevocationGate(store, FakeClock(NOW), max_stale_seconds=2)
    delegated = replace(_subject(), act=CHAIN)
    await gate.refresh()
    gate.check(_request(), delegated, None)
    store.suspend(NOW, Revocation(kind, key, "r", "sec", NOW))
    await gate.refresh()
    with pytest.raises(AccessDeniedError):
        gate.check(_request(), delegated, None)
    gate.check(_request(), _subject(), None)  # alice's own token, no chain: served
    # The same chain carried by the actor token (an agent whose own token was delegated to it).
    actor = VerifiedToken(
        issuer=IDP_A, subject="agent-q", token_type="id_token", expires_at=NOW + 600, act=CHAIN
    )
    with pytest.raises(AccessDeniedError):
        gate.check(_request(), _subject(), actor)
    if kind == "subject" and key == subject_key(IDP_A, "agent-x"):
        other = replace(_subject(), act={"sub": "agent-x", "iss": OTHER_IDP})
        gate.check(_request(), other, None)  # another issuer's agent-x is someone else


async def _minted_into(
    path: Path,
    request: ExchangeRequest,
    subject: VerifiedToken,
    actor: VerifiedToken | None,
    decision: Decision = CRM_READ,
) -> FileStatusStore:
    """A fresh store holding one token minted for `request` (its record flushed)."""
    store = FileStatusStore(path)
    clock = FakeClock(NOW)
    issuer = StatusListIssuer(store, clock, base_uri="https://s.example/sl", policy=POLICY)
    minter = TokenMinter(
        keyring_over(StaticKeyStore()),
        clock,
        issuer="https://sekisho.example.com",
        max_lifetime_seconds=300,
        status=issuer,
    )
    await minter.mint(request, subject, actor, decision)
    await issuer.flush()
    return store


async def test_a_minted_token_is_marked_by_each_nested_actor_the_gate_refuses(
    tmp_path: Path,
) -> None:
    # The marks agree with the gate over the `act` chains too: `revoke caller agent-x` (or
    # `revoke subject` of it) flips the live tokens that nest it, not only refuses new ones.
    delegated = replace(_subject(), act=CHAIN)
    actor = VerifiedToken(
        issuer=IDP_A,
        subject="mallory",
        token_type="id_token",
        expires_at=NOW + 600,
        act={"sub": "agent-m"},
    )
    nested = act_keys(delegated) + act_keys(actor)
    assert len(nested) == 10  # 4 levels and 1, each as a caller and as a subject
    names = covered_keys(_request(), delegated, actor)
    assert set(nested) <= set(names)
    for n, (kind, key) in enumerate(names):
        if kind == "token":  # the inbound tokens' jti: not the minted token's
            continue
        store = await _minted_into(tmp_path / f"{n}.db", _request(), delegated, actor)
        assert store.revoke(NOW, Revocation(kind, key, "r", "sec", NOW)) == 1, (kind, key)
        store.close()


async def test_the_gate_and_the_marking_agree_on_the_anonymous_caller(tmp_path: Path) -> None:
    # The store marks an anonymous caller's tokens under caller "" (sekisho revoke no longer
    # makes such a revocation, but an older one may be in force): the gate must refuse what
    # is marked, never mint tokens born revoked.
    store = FileStatusStore(tmp_path / "status.db")
    gate = RevocationGate(store, FakeClock(NOW), max_stale_seconds=2)
    store.revoke(NOW, Revocation("caller", "", "r", "sec", NOW))
    await gate.refresh()
    with pytest.raises(AccessDeniedError):
        gate.check(_request(""), _subject(), None)
    gate.check(_request(), _subject(), None)  # an identified caller is not covered


async def test_the_gate_fails_closed_when_its_view_is_stale(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    gate = RevocationGate(FileStatusStore(tmp_path / "s.db"), clock, max_stale_seconds=2)
    with pytest.raises(TemporarilyUnavailableError):  # never loaded
        gate.check(_request(), _subject(), None)
    await gate.refresh()
    clock.advance(2.5)
    with pytest.raises(TemporarilyUnavailableError):
        gate.check(_request(), _subject(), None)
