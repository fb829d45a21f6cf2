"""KmsKeyStore with a fake KMS: states in aliases, timestamps in tags, reader-safe ordering of
half-applied changes, public keys fetched once, the KMS lock and its lease."""

import json
from pathlib import Path

import pytest
from sekisho.errors import KeyStoreError
from sekisho.signing.audit import Actor, KeyAuditLog
from sekisho.signing.filestore import KeyStoreLockedError
from sekisho.signing.keyring import Keyring
from sekisho.signing.keys import KeyState
from sekisho.signing.kms import KmsSigner
from sekisho.signing.kms_client import KmsError
from sekisho.signing.kmsstore import KmsKeyStore
from sekisho.signing.lifecycle import Timing
from sekisho.signing.manager import KeyManager
from sekisho.signing.material import public_jwk, public_key_from_der, thumbprint

from tests.fakes.clock import FakeClock
from tests.fakes.kms import FakeKey, FakeKms

S = KeyState
T0 = 1_800_000_000
PREFIX = "sekisho-test"
TIMING = Timing(jwks_max_age=300, max_token_lifetime=300, leeway=30, rotation_period=0)
ALICE = Actor(operator="alice", reason="test")


def _store(kms: FakeKms, clock: FakeClock) -> KmsKeyStore:
    return KmsKeyStore(kms, PREFIX, clock=clock)


def _manager(kms: FakeKms, clock: FakeClock, tmp_path: Path) -> KeyManager:
    return KeyManager(
        _store(kms, clock), KeyAuditLog(tmp_path / "audit.log"), TIMING, clock, "ES256"
    )


def _aliases(kms: FakeKms) -> dict[str, str]:
    base = f"alias/{PREFIX}/"
    return {name[len(base) :]: key for name, key in kms.aliases.items() if name.startswith(base)}


@pytest.fixture
def kms() -> FakeKms:
    return FakeKms()


def test_init_names_each_key_by_state_and_kid_and_tags_its_times(
    kms: FakeKms, tmp_path: Path
) -> None:
    transition = _manager(kms, FakeClock(T0), tmp_path).init(ALICE)
    active, upcoming = transition.records
    assert set(_aliases(kms)) == {f"active/{active.kid}", f"next/{upcoming.kid}"}
    tags = kms.keys[_aliases(kms)[f"active/{active.kid}"]].tags
    assert tags["sekisho:alg"] == "ES256"
    assert tags["sekisho:state"] == "active"
    assert tags["sekisho:activated-at"] == str(T0)
    assert tags["sekisho:keyring"] == PREFIX
    assert kms.keys[_aliases(kms)[f"active/{active.kid}"]].spec == "ECC_NIST_P256"


def test_kid_is_the_thumbprint_of_the_kms_public_key(kms: FakeKms, tmp_path: Path) -> None:
    _manager(kms, FakeClock(T0), tmp_path).init(ALICE)
    keys = _store(kms, FakeClock(T0)).load()
    for name, key_id in _aliases(kms).items():
        kid = name.split("/")[1]
        public = public_key_from_der(kms.get_public_key(key_id), "ES256")
        assert kid == thumbprint(public_jwk(public))
        signer = keys.signers[kid]
        assert isinstance(signer, KmsSigner)
        assert signer.key_id == key_id
    assert {jwk["kid"] for jwk in keys.jwks()["keys"]} == {r.kid for r in keys.records}


def test_full_lifecycle_moves_aliases_and_disables_keys_that_left(
    kms: FakeKms, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    manager = _manager(kms, clock, tmp_path)
    first, second = (r.kid for r in manager.init(ALICE).records)
    clock.advance(600)
    manager.promote(ALICE)
    third = next(r.kid for r in manager.records() if r.state is S.NEXT)
    assert set(_aliases(kms)) == {f"retiring/{first}", f"active/{second}", f"next/{third}"}
    clock.advance(630)
    manager.retire(first, ALICE)
    manager.revoke(second, ALICE)
    states = {r.kid: r.state for r in manager.records()}
    assert states[first] is S.RETIRED and states[second] is S.REVOKED
    assert states[third] is S.ACTIVE
    assert not kms.keys[_aliases(kms)[f"retired/{first}"]].enabled
    assert not kms.keys[_aliases(kms)[f"revoked/{second}"]].enabled
    assert kms.keys[_aliases(kms)[f"active/{third}"]].enabled
    assert len(kms.aliases) == 4  # no alias left behind, no lock alias


def test_public_keys_are_fetched_once_and_steady_polls_cost_one_call(
    kms: FakeKms, tmp_path: Path
) -> None:
    _manager(kms, FakeClock(T0), tmp_path).init(ALICE)
    keyring = Keyring(_store(kms, FakeClock(T0)))
    keyring.load()
    calls = dict(kms.calls)
    for _ in range(10):
        assert keyring.reload()
    assert kms.calls["GetPublicKey"] == calls["GetPublicKey"]
    assert kms.calls["ListResourceTags"] == calls["ListResourceTags"]
    assert kms.calls["ListAliases"] == calls["ListAliases"] + 10


def _key_of(kms: FakeKms, kid: str) -> FakeKey:
    (key_id,) = (key for name, key in _aliases(kms).items() if name.endswith("/" + kid))
    return kms.keys[key_id]


@pytest.mark.parametrize("code", ["AccessDeniedException", "ThrottlingException"])
def test_a_revoke_whose_disable_fails_can_be_run_again_until_the_key_is_disabled(
    kms: FakeKms, tmp_path: Path, code: str
) -> None:
    # Red team session 11: DisableKey ran after the alias moved to revoked/, so when it failed
    # the key stayed enabled in KMS and a rerun of `keys revoke` said "already revoked".
    clock = FakeClock(T0)
    manager = _manager(kms, clock, tmp_path)
    compromised, upcoming = (r.kid for r in manager.init(ALICE).records)
    clock.advance(600)
    kms.fail("DisableKey", KmsError("DisableKey", code, "refused", retryable=False))
    with pytest.raises(KeyStoreError):
        manager.revoke(compromised, ALICE)
    assert _key_of(kms, compromised).enabled  # the failure left it enabled...
    assert f"revoked/{compromised}" not in _aliases(kms)  # ...so not yet gone from the JWKS
    reader = Keyring(_store(kms, clock))
    reader.load()
    assert reader.signing_key()[0].kid == upcoming  # the promotion applied first: it signs
    manager.revoke(compromised, ALICE)  # the operator runs it again
    assert not _key_of(kms, compromised).enabled
    assert f"revoked/{compromised}" in _aliases(kms)
    reader.load()
    assert compromised not in {k["kid"] for k in json.loads(reader.jwks_bytes)["keys"]}


def test_a_half_applied_promotion_never_leaves_readers_without_an_active_key(
    kms: FakeKms, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    manager = _manager(kms, clock, tmp_path)
    old, new = (r.kid for r in manager.init(ALICE).records)
    # Stop the commit after the promotion but before the demotion (a crash or a slow reader).
    real_apply = KmsKeyStore._apply
    applied: list[str] = []

    def crash_after_first(store: KmsKeyStore, record: object) -> None:
        if applied:
            raise RuntimeError("crash")
        applied.append("x")
        real_apply(store, record)  # type: ignore[arg-type]

    store = _store(kms, clock)
    store._apply = crash_after_first.__get__(store)  # type: ignore[method-assign]
    clock.advance(600)
    with pytest.raises(RuntimeError):
        KeyManager(store, KeyAuditLog(tmp_path / "a.log"), TIMING, clock, "ES256").promote(ALICE)
    assert {f"active/{old}", f"active/{new}"} <= set(_aliases(kms))
    reader = Keyring(_store(kms, clock))
    reader.load()
    assert reader.signing_key()[0].kid == new  # the key activated last signs
    jwks_kids = {k["kid"] for k in json.loads(reader.jwks_bytes)["keys"]}
    assert {old, new} <= jwks_kids  # the old key stays published while the change finishes


def test_a_kid_left_under_two_states_takes_the_later_and_is_cleaned_up(
    kms: FakeKms, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    manager = _manager(kms, clock, tmp_path)
    _, upcoming = (r.kid for r in manager.init(ALICE).records)
    key_id = _aliases(kms)[f"next/{upcoming}"]
    kms.aliases[f"alias/{PREFIX}/revoked/{upcoming}"] = key_id  # crash between create and delete
    states = {r.kid: r.state for r in _store(kms, clock).records()}
    assert states[upcoming] is S.REVOKED  # revocation is never undone by a leftover alias
    clock.advance(10)
    manager.rotate(ALICE)  # any change cleans the leftover
    assert f"next/{upcoming}" not in _aliases(kms)


def test_an_alias_pointing_at_another_key_is_refused(kms: FakeKms, tmp_path: Path) -> None:
    clock = FakeClock(T0)
    _manager(kms, clock, tmp_path).init(ALICE)
    names = sorted(kms.aliases)
    kms.aliases[names[0]], kms.aliases[names[1]] = kms.aliases[names[1]], kms.aliases[names[0]]
    with pytest.raises(KeyStoreError, match="does not hold the key of kid"):
        _store(kms, clock).load()


@pytest.mark.parametrize(
    "name", ["alias/sekisho-test/bogus/abc", "alias/sekisho-test/next/not a kid"]
)
def test_a_foreign_alias_under_the_prefix_is_named(kms: FakeKms, tmp_path: Path, name: str) -> None:
    clock = FakeClock(T0)
    _manager(kms, clock, tmp_path).init(ALICE)
    kms.aliases[name] = next(iter(kms.keys))
    with pytest.raises(KeyStoreError, match=f"KMS alias {name} is not"):
        _store(kms, clock).records()


def test_missing_keys_point_to_keys_init(kms: FakeKms) -> None:
    with pytest.raises(KeyStoreError, match=f"no keys under alias/{PREFIX}/.*keys init"):
        _store(kms, FakeClock(T0)).records()


def test_kms_outage_while_reading_is_a_keystore_error(kms: FakeKms, tmp_path: Path) -> None:
    from sekisho.signing.kms_client import KmsError

    _manager(kms, FakeClock(T0), tmp_path).init(ALICE)
    keyring = Keyring(_store(kms, FakeClock(T0)))
    keyring.load()
    kms.fail("ListAliases", KmsError("ListAliases", "ThrottlingException", "", retryable=True))
    assert keyring.reload() is False  # last good keys kept: unreachable is not unknown
    assert keyring.signing_key()
    assert keyring.degraded  # and the retry loop asks again


def test_a_kms_refusal_while_reading_states_withdraws_every_key(
    kms: FakeKms, tmp_path: Path
) -> None:
    from sekisho.signing.kms_client import KmsError

    _manager(kms, FakeClock(T0), tmp_path).init(ALICE)
    keyring = Keyring(_store(kms, FakeClock(T0)))
    keyring.load()
    kms.fail("ListAliases", KmsError("ListAliases", "AccessDeniedException", "", retryable=False))
    assert keyring.reload() is False
    assert not keyring.loaded
    assert keyring.jwks_bytes == b'{"keys":[]}'


def test_algorithms_kms_cannot_sign_are_refused(kms: FakeKms) -> None:
    with pytest.raises(KeyStoreError, match="EdDSA is not available with backend kms"):
        _store(kms, FakeClock(T0)).create_key("EdDSA", T0)


# --- the lock ------------------------------------------------------------------------------------


def test_the_lock_is_exclusive_and_released(kms: FakeKms, tmp_path: Path) -> None:
    clock = FakeClock(T0)
    _manager(kms, clock, tmp_path).init(ALICE)
    holder = _store(kms, clock)
    with holder.locked():
        assert f"alias/{PREFIX}/lock" in kms.aliases
        contender = _store(kms, clock).locked(wait_seconds=0.2)
        with pytest.raises(KeyStoreLockedError, match="locked by another sekisho process"):
            contender.__enter__()
    assert f"alias/{PREFIX}/lock" not in kms.aliases
    lock_tags = {k for key in kms.keys.values() for k in key.tags if k == "sekisho:lock"}
    assert not lock_tags


def test_a_crashed_holders_lock_expires_with_its_lease(kms: FakeKms, tmp_path: Path) -> None:
    clock = FakeClock(T0)
    manager = _manager(kms, clock, tmp_path)
    manager.init(ALICE)
    crashed = _store(kms, clock).locked()
    crashed.__enter__()  # never released
    with pytest.raises(KeyStoreLockedError):
        _store(kms, clock).locked(wait_seconds=0.1).__enter__()
    clock.advance(61)  # past the 60 s lease
    with _store(kms, clock).locked(wait_seconds=0.5):
        pass


def test_a_rotation_refused_for_its_audit_log_creates_no_kms_key(
    kms: FakeKms, tmp_path: Path
) -> None:
    """Red team session 17: the promotion's new `next` key was created in KMS before the audit
    log was opened, so automatic rotation with a log it cannot write (key_rotation_failed,
    retried each check) left one more unaliased, billed KMS key per check, forever."""
    clock = FakeClock(T0)
    timing = Timing(jwks_max_age=300, max_token_lifetime=300, leeway=30, rotation_period=3600)
    log = tmp_path / "audit.log"
    KeyManager(_store(kms, clock), KeyAuditLog(log), timing, clock, "ES256").init(ALICE)
    clock.advance(7200)  # the rotation is due and the next key promotable
    keys_before = set(kms.keys)
    (tmp_path / "taken").mkdir()
    refused = KeyManager(
        _store(kms, clock), KeyAuditLog(tmp_path / "taken"), timing, clock, "ES256"
    )

    for _ in range(3):  # three rotation checks
        with pytest.raises(KeyStoreError, match=r"keys\.audit_log"):
            refused.auto_rotate(Actor(operator="sekisho-service", source="service"))

    assert set(kms.keys) == keys_before
    rotated = KeyManager(_store(kms, clock), KeyAuditLog(log), timing, clock, "ES256")
    assert [c.action.value for c in rotated.auto_rotate(ALICE).changes].count("create") == 1
