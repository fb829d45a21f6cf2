"""One contract for every StatusStore backend (file, Redis): leases never overlap, lists roll over
and are never reissued, a revocation marks exactly the live tokens it covers whichever of record
and revoke runs first (a user also where they were the actor, a downstream also where it was a
granted resource), and elapsed state is forgotten."""

import pytest
from sekisho.status.models import IssuedToken, Revocation, RevocationKind, subject_key
from sekisho.status.store import StatusStore

NOW = 1_800_000_000
ALICE = subject_key("https://idp.example.com", "alice")
BOB = subject_key("https://idp.example.com", "bob")


def _lease(store: StatusStore, size: int = 10, lease: int = 4, now: int = NOW) -> tuple[int, range]:
    got = store.lease(
        now, list_size=size, lease_size=lease, use_until=now + 60, valid_until=now + 390
    )
    return got.list_id, range(got.start, got.end)


def _token(
    jti: str,
    subject: str,
    idx: int,
    *,
    list_id: int = 1,
    caller: str = "agent-1",
    audience: str = "https://crm-as.example.com",
    exp: int = NOW + 300,
    actor: str = "",
    resources: tuple[str, ...] = (),
    peer: str | None = None,
    acting: tuple[tuple[RevocationKind, str], ...] = (),
) -> IssuedToken:
    return IssuedToken(
        jti, subject, caller, audience, list_id, idx, exp, actor, resources, peer, acting
    )


def _revocation(kind: RevocationKind, key: str) -> Revocation:
    return Revocation(kind=kind, key=key, reason="incident 42", operator="sec", created_at=NOW)


def test_leases_never_overlap_and_lists_roll_over(store: StatusStore) -> None:
    seen: set[tuple[int, int]] = set()
    lists = []
    for _ in range(7):  # 10 per list in leases of 4: 4, 4, 2, then a new list
        list_id, indexes = _lease(store)
        lists.append(list_id)
        for idx in indexes:
            assert (list_id, idx) not in seen
            seen.add((list_id, idx))
    assert len(seen) == 4 + 4 + 2 + 4 + 4 + 2 + 4
    assert len(set(lists)) == 3 and lists == sorted(lists)


def test_a_retired_list_id_is_never_issued_again(store: StatusStore) -> None:
    first, _ = _lease(store, size=4, lease=4)
    later = NOW + 10_000  # past valid_until of every lease of the full first list
    store.prune(later)
    assert store.snapshot(first) is None
    second, indexes = _lease(store, size=4, lease=4, now=later)
    assert second > first and list(indexes) == [0, 1, 2, 3]


def test_revoke_marks_recorded_live_tokens_it_covers(store: StatusStore) -> None:
    list_id, _ = _lease(store)
    store.record(
        NOW,
        [
            _token("a1", ALICE, 0, list_id=list_id),
            _token("b1", BOB, 1, list_id=list_id),
            _token("a-old", ALICE, 2, list_id=list_id, exp=NOW - 1),
        ],
    )
    assert store.revoke(NOW, _revocation("subject", ALICE)) == 1
    snapshot = store.snapshot(list_id)
    assert snapshot is not None and snapshot.invalid == {0}


def test_a_token_recorded_after_the_revocation_is_marked_too(store: StatusStore) -> None:
    # The race a worker's batch flush has with `sekisho revoke`: record runs second.
    list_id, _ = _lease(store)
    store.revoke(NOW, _revocation("caller", "agent-evil"))
    marked = store.record(
        NOW,
        [
            _token("x", ALICE, 3, list_id=list_id, caller="agent-evil"),
            _token("y", ALICE, 2, list_id=list_id),
        ],
    )
    assert marked == 1
    snapshot = store.snapshot(list_id)
    assert snapshot is not None and snapshot.invalid == {3}


@pytest.mark.parametrize(
    ("kind", "key"),
    [("token", "b1"), ("subject", BOB), ("caller", "agent-2"), ("audience", "https://docs-as")],
)
def test_each_kind_covers_only_its_tokens(
    store: StatusStore, kind: RevocationKind, key: str
) -> None:
    list_id, _ = _lease(store)
    store.record(
        NOW,
        [
            _token("a1", ALICE, 0, list_id=list_id),
            _token("b1", BOB, 1, list_id=list_id, caller="agent-2", audience="https://docs-as"),
        ],
    )
    assert store.revoke(NOW, _revocation(kind, key)) == 1
    snapshot = store.snapshot(list_id)
    assert snapshot is not None and snapshot.invalid == {1}


def test_lift_ends_refusal_but_marked_tokens_stay_invalid(store: StatusStore) -> None:
    list_id, _ = _lease(store)
    store.record(NOW, [_token("a1", ALICE, 0, list_id=list_id)])
    store.revoke(NOW, _revocation("subject", ALICE))
    assert [r.key for r in store.revocations(NOW)] == [ALICE]
    assert store.lift("subject", ALICE) is True
    assert store.lift("subject", ALICE) is False
    assert store.revocations(NOW) == []
    snapshot = store.snapshot(list_id)
    assert snapshot is not None and snapshot.invalid == {0}  # INVALID is final (draft §7.1)
    store.record(NOW, [_token("a2", ALICE, 1, list_id=list_id)])
    assert store.snapshot(list_id).invalid == {0}  # type: ignore[union-attr]


def test_a_token_revocation_ends_when_the_token_expires(store: StatusStore) -> None:
    list_id, _ = _lease(store)
    store.record(NOW, [_token("a1", ALICE, 0, list_id=list_id, exp=NOW + 100)])
    store.revoke(NOW, _revocation("token", "a1"))
    (revocation,) = store.revocations(NOW)
    assert revocation.until == NOW + 100 and revocation.reason == "incident 42"
    assert store.revocations(NOW + 101) == []
    store.prune(NOW + 101)
    assert store.lift("token", "a1") is False


def test_a_subject_revocation_stays_until_lifted(store: StatusStore) -> None:
    store.revoke(NOW, _revocation("subject", ALICE))
    assert [r.kind for r in store.revocations(NOW + 86_400 * 30)] == ["subject"]


def test_live_lists_are_those_a_valid_token_may_point_into(store: StatusStore) -> None:
    first, _ = _lease(store, size=4, lease=4)
    second, _ = _lease(store, size=4, lease=4)
    assert store.live_lists(NOW) == [first, second]
    store.prune(NOW + 10_000)
    assert store.live_lists(NOW + 10_000) == []


CRM_MCP = "https://crm.example.com/mcp"
DOCS_MCP = "https://docs.example.com/mcp"
GATEWAY = "spiffe://example.org/ns/gw/sa/gateway"
AGENT_X = subject_key("https://idp.example.com", "agent-x")
# An earlier actor nested in `act` (twice: a chain may name an agent at two levels), as
# revocations.act_keys names it.
NESTED: tuple[tuple[RevocationKind, str], ...] = (
    ("caller", "agent-x"),
    ("subject", AGENT_X),
    ("caller", "agent-x"),
    ("subject", AGENT_X),
)


def _acted_and_granted(list_id: int) -> list[IssuedToken]:
    """Tokens in which ALICE is the subject (0), the actor for BOB (1, through the GATEWAY
    caller), both at once (3), or not at all (2), tokens granted the CRM resource (4, 5) or
    not (6), and one whose subject token nested agent-x in its `act` (7)."""
    return [
        _token("a1", ALICE, 0, list_id=list_id),
        _token("b-by-a", BOB, 1, list_id=list_id, caller="alice", actor=ALICE, peer=GATEWAY),
        _token("b1", BOB, 2, list_id=list_id),
        _token("a-by-a", ALICE, 3, list_id=list_id, caller="alice", actor=ALICE),
        _token("at-crm", BOB, 4, list_id=list_id, audience="https://as", resources=(CRM_MCP,)),
        _token("at-two", BOB, 5, list_id=list_id, resources=(DOCS_MCP, CRM_MCP, CRM_MCP)),
        _token("at-docs", BOB, 6, list_id=list_id, audience="https://as", resources=(DOCS_MCP,)),
        _token("b-via-x", BOB, 7, list_id=list_id, acting=NESTED),
    ]


@pytest.mark.parametrize(
    ("kind", "key", "marked"),
    [
        pytest.param("subject", ALICE, {0, 1, 3}, id="subject-also-as-actor"),
        pytest.param("audience", CRM_MCP, {4, 5}, id="audience-also-as-resource"),
        pytest.param("caller", "alice", {1, 3}, id="caller-as-the-actor"),
        pytest.param("caller", GATEWAY, {1}, id="caller-also-as-mtls-caller-of-an-actor"),
        pytest.param("caller", "agent-x", {7}, id="caller-also-as-a-nested-actor"),
        pytest.param("subject", AGENT_X, {7}, id="subject-also-as-a-nested-actor"),
    ],
)
def test_a_revocation_marks_the_tokens_it_covers_under_any_name(
    store: StatusStore, kind: RevocationKind, key: str, marked: set[int]
) -> None:
    # One `revoke subject` cuts the user off everywhere: the exchange gate refuses them as the
    # subject or as the actor, so the live tokens they acted in are marked too (before, only
    # `revoke caller SUB` marked those). Likewise an audience named as an access token's `aud`.
    list_id, _ = _lease(store)
    store.record(NOW, _acted_and_granted(list_id))
    assert store.revoke(NOW, _revocation(kind, key)) == len(marked)  # each token counted once
    snapshot = store.snapshot(list_id)
    assert snapshot is not None and snapshot.invalid == marked


@pytest.mark.parametrize(
    ("kind", "key", "marked"),
    [
        pytest.param("subject", ALICE, {0, 1, 3}, id="subject-also-as-actor"),
        pytest.param("audience", CRM_MCP, {4, 5}, id="audience-also-as-resource"),
        pytest.param("caller", GATEWAY, {1}, id="caller-also-as-mtls-caller-of-an-actor"),
        pytest.param("caller", "agent-x", {7}, id="caller-also-as-a-nested-actor"),
        pytest.param("subject", AGENT_X, {7}, id="subject-also-as-a-nested-actor"),
    ],
)
def test_a_token_recorded_after_the_revocation_is_marked_under_any_name(
    store: StatusStore, kind: RevocationKind, key: str, marked: set[int]
) -> None:
    list_id, _ = _lease(store)
    store.revoke(NOW, _revocation(kind, key))
    assert store.record(NOW, _acted_and_granted(list_id)) == len(marked)
    snapshot = store.snapshot(list_id)
    assert snapshot is not None and snapshot.invalid == marked


def test_expired_tokens_are_not_marked_under_their_other_names(store: StatusStore) -> None:
    list_id, _ = _lease(store)
    store.record(NOW, _acted_and_granted(list_id))
    later = NOW + 301  # every token expired (not pruned yet)
    assert store.revoke(later, _revocation("subject", ALICE)) == 0
    assert store.revoke(later, _revocation("audience", CRM_MCP)) == 0
    snapshot = store.snapshot(list_id)
    assert snapshot is not None and snapshot.invalid == frozenset()


def test_entries_of_one_second_are_listed_in_the_order_they_were_put_in_force(
    store: StatusStore,
) -> None:
    """`sekisho revoke list` shows the store's order, and `created_at` is to the second: two
    revocations (or suspensions) of one second were listed in Redis in its hash's order (for a
    hash of long values, its table's: any). One revoked again keeps its place (the first
    stands)."""
    callers = [f"agent-{n:02d}" for n in range(40)]  # enough, with the reason, for a hash table
    for caller in callers:
        store.revoke(NOW, _revocation("caller", caller))
        store.suspend(NOW, _revocation("caller", caller))
    store.revoke(NOW, _revocation("caller", callers[0]))
    assert [r.key for r in store.revocations(NOW)] == callers
    assert [r.key for r in store.suspensions(NOW)] == callers
    in_force = store.in_force(NOW)
    assert [r.key for r in in_force.revocations] == callers
    assert [r.key for r in in_force.suspensions] == callers


@pytest.mark.parametrize("put", ["revoke", "suspend"])
def test_a_second_entry_of_what_is_in_force_leaves_the_first_standing(
    store: StatusStore, put: str
) -> None:
    """Revoking (or suspending) one value twice replaced the first entry, both audited: `revoke
    list` then gave the second operator's time and reason, and when and why the value was first
    cut off (what an incident review asks) was left only in the audit log. The first stands; the
    second still marks the live tokens it covers."""
    list_id, _ = _lease(store)
    first = Revocation("subject", ALICE, "INC-1 laptop stolen", "alice", NOW)
    second = Revocation("subject", ALICE, "INC-2 seen again", "bob", NOW + 60)
    listed = {"revoke": store.revocations, "suspend": store.suspensions}[put]
    marks = {"revoke": "invalid", "suspend": "suspended"}[put]

    assert getattr(store, put)(NOW, first) == 0
    store.record(NOW + 30, [_token("a1", ALICE, 0, list_id=list_id)])  # marked as recorded
    assert getattr(store, put)(NOW + 60, second) == 0  # nothing left to mark

    assert listed(NOW + 60) == [first]
    snapshot = store.snapshot(list_id)
    assert snapshot is not None and getattr(snapshot, marks) == {0}


def test_an_elapsed_entry_is_replaced_by_a_new_one(store: StatusStore) -> None:
    """Control: only an entry in force stands; one whose end has passed (not pruned yet) is
    replaced."""
    ended = Revocation("caller", "agent-9", "INC-1", "alice", NOW, until=NOW + 10)
    store.revoke(NOW, ended)
    again = Revocation("caller", "agent-9", "INC-2", "bob", NOW + 20)
    store.revoke(NOW + 20, again)
    assert store.revocations(NOW + 20) == [again]
