"""The lifecycle rules (docs/architecture.md §7) as pure functions: every transition, every timing
rule, and what --force skips. Times are plain integers; keys are records from a counter."""

import itertools
from collections.abc import Sequence
from dataclasses import replace

import pytest
from sekisho.signing.keys import KeyRecord, KeyState
from sekisho.signing.lifecycle import Action, Lifecycle, LifecycleError, Timing, Transition

S = KeyState
T0 = 1_800_000_000
MAX_AGE, LIFETIME, LEEWAY = 300, 300, 30
TIMING = Timing(jwks_max_age=MAX_AGE, max_token_lifetime=LIFETIME, leeway=LEEWAY, rotation_period=0)
PREPUBLICATION = 2 * MAX_AGE
REMOVAL = LIFETIME + LEEWAY + MAX_AGE


class Keys:
    """A key factory whose kids are k1, k2, … so tests can name them."""

    def __init__(self) -> None:
        self._n = itertools.count(1)

    def new(self, now: int) -> KeyRecord:
        return KeyRecord(kid=f"k{next(self._n)}", alg="ES256", state=S.NEXT, created_at=now)

    def at(self, now: int, timing: Timing = TIMING) -> Lifecycle:
        return Lifecycle(timing, now, lambda: self.new(now))


def _states(transition: Transition) -> dict[str, KeyState]:
    return {r.kid: r.state for r in transition.records}


def _by_kid(records: Sequence[KeyRecord], kid: str) -> KeyRecord:
    return next(r for r in records if r.kid == kid)


def _steady(keys: Keys) -> tuple[KeyRecord, ...]:
    """k1 active since T0, k2 next since T0 (what `keys init` makes)."""
    return keys.at(T0).init([]).records


# --- init ----------------------------------------------------------------------------------


def test_init_makes_one_active_and_one_next_key() -> None:
    transition = Keys().at(T0).init([])
    assert _states(transition) == {"k1": S.ACTIVE, "k2": S.NEXT}
    assert _by_kid(transition.records, "k1").activated_at == T0
    assert [(c.action, c.kid, c.from_state, c.to_state) for c in transition.changes] == [
        (Action.CREATE, "k1", None, S.ACTIVE),
        (Action.CREATE, "k2", None, S.NEXT),
    ]


def test_init_refuses_a_keystore_with_keys() -> None:
    keys = Keys()
    with pytest.raises(LifecycleError, match="already holds keys"):
        keys.at(T0).init(_steady(keys))


# --- promote: pre-publication for 2 x jwks max-age ------------------------------------------


@pytest.mark.parametrize(
    ("elapsed", "allowed"),
    [
        pytest.param(0, False, id="just-created"),
        pytest.param(MAX_AGE, False, id="one-max-age"),
        pytest.param(PREPUBLICATION - 1, False, id="one-second-short"),
        pytest.param(PREPUBLICATION, True, id="exactly-two-max-ages"),
        pytest.param(PREPUBLICATION + 3600, True, id="long-after"),
    ],
)
def test_promote_only_after_two_max_ages_of_publication(elapsed: int, allowed: bool) -> None:
    keys = Keys()
    records = _steady(keys)
    lifecycle = keys.at(T0 + elapsed)
    if not allowed:
        with pytest.raises(LifecycleError, match=r"promotion needs 600 s \(2 x jwks_max_age"):
            lifecycle.promote(records)
        return
    assert _states(lifecycle.promote(records)) == {"k1": S.RETIRING, "k2": S.ACTIVE, "k3": S.NEXT}


def test_promote_demotes_the_active_key_with_its_removal_time_and_prepublishes_a_new_one() -> None:
    keys = Keys()
    now = T0 + PREPUBLICATION
    transition = keys.at(now).promote(_steady(keys))
    old, new, upcoming = (_by_kid(transition.records, k) for k in ("k1", "k2", "k3"))
    assert (old.state, old.retire_after) == (S.RETIRING, now + REMOVAL)
    assert (new.state, new.activated_at, new.retire_after) == (S.ACTIVE, now, 0)
    assert (upcoming.state, upcoming.created_at) == (S.NEXT, now)
    assert [(c.action, c.kid) for c in transition.changes] == [
        (Action.DEMOTE, "k1"),
        (Action.PROMOTE, "k2"),
        (Action.CREATE, "k3"),
    ]
    assert not any(c.forced for c in transition.changes)


def test_forced_promote_says_which_rule_it_skipped() -> None:
    keys = Keys()
    transition = keys.at(T0 + 10).promote(_steady(keys), force=True)
    promotion = next(c for c in transition.changes if c.action is Action.PROMOTE)
    assert promotion.kid == "k2"
    assert len(promotion.forced) == 1
    assert "published for 10 s; promotion needs 600 s" in promotion.forced[0]


def test_promote_without_a_next_key_points_to_rotate() -> None:
    keys = Keys()
    records = [r for r in _steady(keys) if r.state is S.ACTIVE]
    with pytest.raises(LifecycleError, match=r"no next key.*sekisho keys rotate"):
        keys.at(T0 + PREPUBLICATION).promote(records)


def test_promote_with_no_active_key_needs_no_wait() -> None:
    # Nothing signs, so no verifier can be broken by signing with a fresh key.
    keys = Keys()
    records = [r for r in _steady(keys) if r.state is S.NEXT]
    transition = keys.at(T0 + 1).promote(records)
    assert _states(transition)["k2"] is S.ACTIVE
    assert not any(c.forced for c in transition.changes)


# --- retire: stays published for lifetime + leeway + max-age after it stopped signing ---------


def _after_promotion(keys: Keys) -> tuple[tuple[KeyRecord, ...], int]:
    promoted_at = T0 + PREPUBLICATION
    return keys.at(promoted_at).promote(_steady(keys)).records, promoted_at


@pytest.mark.parametrize(
    ("elapsed", "allowed"),
    [
        pytest.param(0, False, id="right-after-demotion"),
        pytest.param(LIFETIME, False, id="tokens-just-expired"),
        pytest.param(LIFETIME + LEEWAY, False, id="plus-leeway"),
        pytest.param(REMOVAL - 1, False, id="one-second-short"),
        pytest.param(REMOVAL, True, id="lifetime-leeway-max-age"),
    ],
)
def test_retire_only_after_lifetime_leeway_and_max_age(elapsed: int, allowed: bool) -> None:
    keys = Keys()
    records, promoted_at = _after_promotion(keys)
    lifecycle = keys.at(promoted_at + elapsed)
    if not allowed:
        with pytest.raises(LifecycleError, match="may still have signed tokens in use until"):
            lifecycle.retire(records, "k1")
        return
    transition = lifecycle.retire(records, "k1")
    assert _states(transition)["k1"] is S.RETIRED
    assert [(c.action, c.kid, c.from_state) for c in transition.changes] == [
        (Action.RETIRE, "k1", S.RETIRING)
    ]


def test_forced_retire_records_the_skipped_rule() -> None:
    keys = Keys()
    records, promoted_at = _after_promotion(keys)
    transition = keys.at(promoted_at + 5).retire(records, "k1", force=True)
    (change,) = transition.changes
    assert change.to_state is S.RETIRED
    assert "may still have signed tokens in use" in change.forced[0]


def test_retire_of_an_unused_next_key_is_immediate_and_keeps_a_next_key() -> None:
    keys = Keys()
    transition = keys.at(T0 + 1).retire(_steady(keys), "k2")
    assert _states(transition) == {"k1": S.ACTIVE, "k2": S.RETIRED, "k3": S.NEXT}


@pytest.mark.parametrize(
    ("kid", "state", "message"),
    [
        pytest.param("nope", None, "no key with kid 'nope'", id="unknown-kid"),
        pytest.param("k1", S.ACTIVE, "k1 is the active key: promote the next key", id="active"),
        pytest.param("k1", S.RETIRED, "k1 is already retired", id="retired"),
        pytest.param("k1", S.REVOKED, "k1 is already revoked", id="revoked"),
    ],
)
def test_retire_refusals_name_the_problem(kid: str, state: KeyState | None, message: str) -> None:
    keys = Keys()
    records = list(_steady(keys))
    if state is not None and state is not S.ACTIVE:
        records = [replace(records[0], state=state), records[1]]
    with pytest.raises(LifecycleError, match=message):
        keys.at(T0 + 10_000).retire(records, kid, force=True)


# --- revoke -----------------------------------------------------------------------------------


def test_revoking_the_active_key_promotes_the_next_key_at_once() -> None:
    keys = Keys()
    now = T0 + 5
    transition = keys.at(now).revoke(_steady(keys), "k1")
    assert _states(transition) == {"k1": S.REVOKED, "k2": S.ACTIVE, "k3": S.NEXT}
    assert [(c.action, c.kid) for c in transition.changes] == [
        (Action.PROMOTE, "k2"),  # promotion first: issuance never stops
        (Action.REVOKE, "k1"),
        (Action.CREATE, "k3"),
    ]
    promotion = transition.changes[0]
    assert "verifiers whose cached JWKS predates it must refetch" in promotion.note


def test_revoking_the_active_key_without_a_next_key_creates_and_activates_one() -> None:
    keys = Keys()
    records = [r for r in _steady(keys) if r.state is S.ACTIVE]
    transition = keys.at(T0 + 5).revoke(records, "k1")
    assert _states(transition) == {"k1": S.REVOKED, "k3": S.ACTIVE, "k4": S.NEXT}


@pytest.mark.parametrize("state", [S.NEXT, S.RETIRING, S.RETIRED])
def test_revoking_a_key_that_does_not_sign_leaves_the_active_key(state: KeyState) -> None:
    keys = Keys()
    records, promoted_at = _after_promotion(keys)  # k1 retiring, k2 active, k3 next
    target = {S.NEXT: "k3", S.RETIRING: "k1", S.RETIRED: "k1"}[state]
    if state is S.RETIRED:
        records = keys.at(promoted_at + REMOVAL).retire(records, "k1").records
    transition = keys.at(promoted_at + REMOVAL + 1).revoke(records, target)
    states = _states(transition)
    assert states[target] is S.REVOKED
    assert states["k2"] is S.ACTIVE
    assert sum(s is S.NEXT for s in states.values()) == 1  # still one pre-published key


@pytest.mark.parametrize(
    ("kid", "message"),
    [
        pytest.param("nope", "no key with kid 'nope'", id="unknown"),
        pytest.param("k9", "already revoked", id="already-revoked"),
    ],
)
def test_revoke_refusals_name_the_problem(kid: str, message: str) -> None:
    keys = Keys()
    records = [*_steady(keys), KeyRecord(kid="k9", alg="ES256", state=S.REVOKED, created_at=T0)]
    with pytest.raises(LifecycleError, match=message):
        keys.at(T0 + 1).revoke(records, kid)


# --- rotate: the right next step --------------------------------------------------------------


def test_rotate_walks_the_whole_cycle_one_safe_step_at_a_time() -> None:
    keys = Keys()
    records = _steady(keys)
    # Too early: nothing changes, and rotate says when it can promote.
    early = keys.at(T0 + 10).rotate(records)
    assert not early.changes
    assert "k2 has been published for 10 s" in early.waiting
    # Pre-published long enough: promote.
    promoted_at = T0 + PREPUBLICATION
    step = keys.at(promoted_at).rotate(records)
    assert _states(step) == {"k1": S.RETIRING, "k2": S.ACTIVE, "k3": S.NEXT}
    # k1 still needed, k3 too young: nothing.
    assert not keys.at(promoted_at + 60).rotate(step.records).changes
    # k1's tokens are gone and k3 is old enough: retire k1 and promote k3 in one step.
    later = keys.at(promoted_at + max(REMOVAL, PREPUBLICATION)).rotate(step.records)
    assert _states(later) == {
        "k1": S.RETIRED,
        "k2": S.RETIRING,
        "k3": S.ACTIVE,
        "k4": S.NEXT,
    }


def test_rotate_without_a_next_key_creates_one_and_waits() -> None:
    keys = Keys()
    records = [r for r in _steady(keys) if r.state is S.ACTIVE]
    transition = keys.at(T0 + 100).rotate(records)
    assert _states(transition) == {"k1": S.ACTIVE, "k3": S.NEXT}
    assert "k3 may be promoted from" in transition.waiting


def test_forced_rotate_without_a_next_key_signs_with_a_fresh_key_and_says_so() -> None:
    keys = Keys()
    records = [r for r in _steady(keys) if r.state is S.ACTIVE]
    transition = keys.at(T0 + 100).rotate(records, force=True)
    assert _states(transition) == {"k1": S.RETIRING, "k3": S.ACTIVE, "k4": S.NEXT}
    promotion = next(c for c in transition.changes if c.action is Action.PROMOTE)
    assert "published for 0 s" in promotion.forced[0]


# --- automatic rotation ------------------------------------------------------------------------

AUTO = replace(TIMING, rotation_period=86_400)


def test_auto_rotate_waits_for_the_rotation_period() -> None:
    keys = Keys()
    records = _steady(keys)
    assert not keys.at(T0 + 86_399, AUTO).auto_rotate(records).changes
    transition = keys.at(T0 + 86_400, AUTO).auto_rotate(records)
    assert _states(transition) == {"k1": S.RETIRING, "k2": S.ACTIVE, "k3": S.NEXT}


def test_auto_rotate_never_skips_prepublication() -> None:
    keys = Keys()
    short = replace(TIMING, rotation_period=PREPUBLICATION)
    records = [r for r in _steady(keys) if r.state is S.ACTIVE]
    created = keys.at(T0 + 10_000, short).auto_rotate(records)  # due, but no next key yet
    assert _states(created) == {"k1": S.ACTIVE, "k3": S.NEXT}
    assert not keys.at(T0 + 10_000 + PREPUBLICATION - 1, short).auto_rotate(created.records).changes
    promoted = keys.at(T0 + 10_000 + PREPUBLICATION, short).auto_rotate(created.records)
    assert _states(promoted)["k3"] is S.ACTIVE


def test_auto_rotate_retires_what_has_expired() -> None:
    keys = Keys()
    records, promoted_at = _after_promotion(keys)
    transition = keys.at(promoted_at + REMOVAL, AUTO).auto_rotate(records)
    assert [(c.action, c.kid) for c in transition.changes] == [(Action.RETIRE, "k1")]


# --- whole-second records never make a rule fire early -------------------------------------------


def test_fractional_clocks_never_shorten_prepublication() -> None:
    keys = Keys()
    created = Lifecycle(TIMING, T0 + 0.9, lambda: keys.new(T0 + 1)).init([]).records
    assert [r.created_at for r in created] == [T0 + 1, T0 + 1]  # stamped rounded up
    with pytest.raises(LifecycleError):
        Lifecycle(TIMING, T0 + 0.9 + PREPUBLICATION, lambda: keys.new(T0)).promote(created)
    promoted = Lifecycle(TIMING, T0 + 1 + PREPUBLICATION, lambda: keys.new(T0)).promote(created)
    demoted = _by_kid(promoted.records, "k1")
    assert demoted.retire_after == T0 + 1 + PREPUBLICATION + REMOVAL


def test_fractional_clocks_never_shorten_retirement() -> None:
    keys = Keys()
    records = keys.at(T0).init([]).records
    promoted = Lifecycle(TIMING, T0 + PREPUBLICATION + 0.3, lambda: keys.new(T0)).promote(records)
    retire_after = _by_kid(promoted.records, "k1").retire_after
    assert retire_after == T0 + PREPUBLICATION + 1 + REMOVAL  # demotion time rounded up
    with pytest.raises(LifecycleError):
        Lifecycle(TIMING, retire_after - 0.1, lambda: keys.new(T0)).retire(promoted.records, "k1")
