"""Suspension on every StatusStore backend (file, Redis): SUSPENDED is the reversible status
(draft-ietf-oauth-status-list §7.1). A suspension marks exactly the live tokens it covers, also
those recorded after it; reinstating returns to VALID only live tokens that no other suspension
covers and that are not INVALID; nothing ever turns INVALID back to VALID."""

import pytest
from sekisho.status.models import IssuedToken, ListSnapshot, Revocation, RevocationKind, subject_key
from sekisho.status.store import StatusStore

NOW = 1_800_000_000
ALICE = subject_key("https://idp.example.com", "alice")
BOB = subject_key("https://idp.example.com", "bob")


def _list(store: StatusStore) -> int:
    lease = store.lease(NOW, list_size=10, lease_size=10, use_until=NOW + 60, valid_until=NOW + 390)
    return lease.list_id


def _token(
    jti: str, subject: str, idx: int, list_id: int, *, caller: str = "agent-1", exp: int = NOW + 300
) -> IssuedToken:
    return IssuedToken(jti, subject, caller, "https://crm-as.example.com", list_id, idx, exp)


def _entry(kind: RevocationKind, key: str) -> Revocation:
    return Revocation(kind=kind, key=key, reason="INC-7 look", operator="sec", created_at=NOW)


def _snapshot(store: StatusStore, list_id: int) -> ListSnapshot:
    snapshot = store.snapshot(list_id)
    assert snapshot is not None
    return snapshot


@pytest.mark.parametrize(
    ("kind", "key"),
    [("token", "b1"), ("subject", BOB), ("caller", "agent-2")],
)
def test_suspend_marks_only_the_live_tokens_it_covers(
    store: StatusStore, kind: RevocationKind, key: str
) -> None:
    list_id = _list(store)
    store.record(
        NOW,
        [
            _token("a1", ALICE, 0, list_id),
            _token("b1", BOB, 1, list_id, caller="agent-2"),
            _token("b-old", BOB, 2, list_id, caller="agent-2", exp=NOW - 1),
        ],
    )
    assert store.suspend(NOW, _entry(kind, key)) == 1
    snapshot = _snapshot(store, list_id)
    assert snapshot.suspended == {1} and snapshot.invalid == frozenset()
    assert [(s.kind, s.key) for s in store.suspensions(NOW)] == [(kind, key)]
    assert store.revocations(NOW) == []  # a suspension is not a revocation


def test_a_token_recorded_during_a_suspension_is_marked_suspended(store: StatusStore) -> None:
    # The race a worker's batch flush has with `sekisho revoke suspend`: record runs second.
    list_id = _list(store)
    store.suspend(NOW, _entry("subject", ALICE))
    assert store.record(NOW, [_token("a1", ALICE, 4, list_id), _token("b1", BOB, 5, list_id)]) == 1
    assert _snapshot(store, list_id).suspended == {4}


def test_reinstate_returns_live_tokens_to_valid(store: StatusStore) -> None:
    list_id = _list(store)
    store.record(NOW, [_token("a1", ALICE, 0, list_id), _token("a2", ALICE, 1, list_id)])
    store.suspend(NOW, _entry("subject", ALICE))
    assert store.reinstate(NOW + 5, "subject", ALICE) == 2
    snapshot = _snapshot(store, list_id)
    assert snapshot.suspended == frozenset() and snapshot.invalid == frozenset()
    assert store.suspensions(NOW + 5) == []
    assert store.reinstate(NOW + 5, "subject", ALICE) is None  # none in force any more
    store.record(NOW + 5, [_token("a3", ALICE, 2, list_id)])  # minted after: VALID
    assert _snapshot(store, list_id).suspended == frozenset()


def test_reinstate_never_turns_invalid_back_to_valid(store: StatusStore) -> None:
    """Suspended while investigated, then revoked for good: reinstating the suspension must leave
    the revoked token INVALID (draft §7.1: INVALID is final)."""
    list_id = _list(store)
    store.record(NOW, [_token("a1", ALICE, 0, list_id), _token("a2", ALICE, 1, list_id)])
    store.suspend(NOW, _entry("subject", ALICE))
    store.revoke(NOW, _entry("token", "a1"))
    assert store.reinstate(NOW, "subject", ALICE) == 1  # only a2 reads VALID again
    snapshot = _snapshot(store, list_id)
    assert snapshot.invalid == {0} and snapshot.suspended == frozenset()


def test_reinstate_keeps_tokens_another_suspension_covers(store: StatusStore) -> None:
    list_id = _list(store)
    store.record(
        NOW,
        [_token("a1", ALICE, 0, list_id, caller="agent-x"), _token("a2", ALICE, 1, list_id)],
    )
    store.suspend(NOW, _entry("subject", ALICE))
    store.suspend(NOW, _entry("caller", "agent-x"))
    assert store.reinstate(NOW, "subject", ALICE) == 1
    assert _snapshot(store, list_id).suspended == {0}  # agent-x is still suspended
    assert store.reinstate(NOW, "caller", "agent-x") == 1
    assert _snapshot(store, list_id).suspended == frozenset()


def test_reinstate_leaves_expired_tokens_as_they_are(store: StatusStore) -> None:
    list_id = _list(store)
    store.record(
        NOW, [_token("a1", ALICE, 0, list_id, exp=NOW + 10), _token("a2", ALICE, 1, list_id)]
    )
    store.suspend(NOW, _entry("subject", ALICE))
    assert store.reinstate(NOW + 20, "subject", ALICE) == 1  # a1 expired meanwhile
    assert _snapshot(store, list_id).suspended == {0}


def test_a_subject_suspension_stays_until_reinstated(store: StatusStore) -> None:
    store.suspend(NOW, _entry("subject", ALICE))
    store.prune(NOW + 86_400 * 30)
    assert [s.kind for s in store.suspensions(NOW + 86_400 * 30)] == ["subject"]


def test_a_token_suspension_ends_when_the_token_expires(store: StatusStore) -> None:
    list_id = _list(store)
    store.record(NOW, [_token("a1", ALICE, 0, list_id, exp=NOW + 100)])
    store.suspend(NOW, _entry("token", "a1"))
    (suspension,) = store.suspensions(NOW)
    assert suspension.until == NOW + 100
    store.prune(NOW + 101)
    assert store.suspensions(NOW + 101) == []
    assert store.reinstate(NOW + 101, "token", "a1") is None


def test_suspension_and_revocation_of_one_key_are_independent(store: StatusStore) -> None:
    list_id = _list(store)
    store.record(NOW, [_token("a1", ALICE, 0, list_id)])
    store.suspend(NOW, _entry("subject", ALICE))
    store.revoke(NOW, _entry("subject", ALICE))
    assert store.reinstate(NOW, "subject", ALICE) == 0
    assert [r.key for r in store.revocations(NOW)] == [ALICE]  # the revocation stays in force
    assert _snapshot(store, list_id).invalid == {0}
    assert store.lift("subject", ALICE) is True
    assert _snapshot(store, list_id).invalid == {0}


def test_prune_forgets_the_marks_of_retired_lists(store: StatusStore) -> None:
    lease = store.lease(NOW, list_size=4, lease_size=4, use_until=NOW + 60, valid_until=NOW + 390)
    store.record(NOW, [_token("a1", ALICE, 0, lease.list_id)])
    store.suspend(NOW, _entry("subject", ALICE))
    store.prune(NOW + 10_000)
    assert store.snapshot(lease.list_id) is None


def test_in_force_is_both_reads_together(store: StatusStore) -> None:
    store.revoke(NOW, _entry("subject", BOB))
    store.suspend(NOW, _entry("subject", ALICE))
    store.suspend(NOW, Revocation("caller", "agent-9", "r", "o", NOW, until=NOW + 10))
    for now in (NOW, NOW + 10):  # the caller suspension has ended at NOW + 10
        loaded = store.in_force(now)
        assert loaded.revocations == store.revocations(now)
        assert loaded.suspensions == store.suspensions(now)
    assert [s.key for s in store.in_force(NOW + 10).suspensions] == [ALICE]


def test_a_user_suspended_is_suspended_where_they_acted_and_comes_back_there(
    store: StatusStore,
) -> None:
    # Suspension uses the revocation's coverage: the tokens the user acted in (act.sub) are
    # suspended with theirs and reinstated with them.
    list_id = _list(store)
    acted = IssuedToken(
        "b-by-a", BOB, "alice", "https://crm-as.example.com", list_id, 1, NOW + 300, actor=ALICE
    )
    store.record(NOW, [_token("a1", ALICE, 0, list_id), acted, _token("b1", BOB, 2, list_id)])
    assert store.suspend(NOW, _entry("subject", ALICE)) == 2
    assert _snapshot(store, list_id).suspended == {0, 1}
    assert store.reinstate(NOW + 5, "subject", ALICE) == 2
    assert _snapshot(store, list_id).suspended == frozenset()


# What revoke, suspend, reinstate and record return (the CLI's "N live token(s) …" and the audit
# log's `marked`): the tokens whose status changed, each once. Before, a token already INVALID
# was counted again by a revoke and by a suspend ("1 live token(s) marked SUSPENDED" for a token
# that stayed INVALID), and one recorded under a revocation and a suspension counted twice.


def test_suspend_counts_only_the_tokens_it_turns_suspended(store: StatusStore) -> None:
    list_id = _list(store)
    store.record(
        NOW,
        [
            _token("a1", ALICE, 0, list_id),
            _token("a2", ALICE, 1, list_id, caller="agent-x"),
            _token("a3", ALICE, 2, list_id),
        ],
    )
    assert store.revoke(NOW, _entry("token", "a1")) == 1
    assert store.suspend(NOW, _entry("caller", "agent-x")) == 1
    assert store.suspend(NOW, _entry("subject", ALICE)) == 1  # a3: a1 INVALID, a2 SUSPENDED
    snapshot = _snapshot(store, list_id)
    assert snapshot.invalid == {0} and snapshot.suspended >= {1, 2}


def test_revoke_counts_suspended_tokens_but_not_invalid_ones(store: StatusStore) -> None:
    list_id = _list(store)
    store.record(
        NOW,
        [
            _token("a1", ALICE, 0, list_id),
            _token("a2", ALICE, 1, list_id, caller="agent-x"),
            _token("a3", ALICE, 2, list_id),
        ],
    )
    assert store.revoke(NOW, _entry("token", "a1")) == 1
    assert store.suspend(NOW, _entry("caller", "agent-x")) == 1
    assert store.revoke(NOW, _entry("subject", ALICE)) == 2  # a2 SUSPENDED -> INVALID, a3
    assert store.revoke(NOW, _entry("caller", "agent-x")) == 0  # a2 is INVALID already
    assert _snapshot(store, list_id).invalid == {0, 1, 2}


def test_a_token_recorded_under_a_revocation_and_a_suspension_counts_once(
    store: StatusStore,
) -> None:
    list_id = _list(store)
    store.suspend(NOW, _entry("subject", ALICE))
    store.revoke(NOW, _entry("caller", "agent-1"))
    assert store.record(NOW, [_token("a1", ALICE, 0, list_id)]) == 1
    assert _snapshot(store, list_id).invalid == {0}
