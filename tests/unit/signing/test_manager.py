"""KeyManager over the file keystore: atomic, locked, re-read-under-lock mutations, the audit
log, private-key file modes, passphrase encryption and kms-wrapped keys (with a fake KMS)."""

import contextlib
import errno
import json
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from sekisho.errors import KeyStoreError, KeyStoreMissingError
from sekisho.signing.audit import Actor, KeyAuditLog
from sekisho.signing.codec import PemCodec, PrivateKeyCodec
from sekisho.signing.filestore import KEYRING_FILE, FileKeyStore, KeyStoreLockedError
from sekisho.signing.keyring import Keyring
from sekisho.signing.keys import KeyRecord, KeyState
from sekisho.signing.kmsstore import KmsKeyStore
from sekisho.signing.lifecycle import LifecycleError, Timing
from sekisho.signing.manager import KeyManager
from sekisho.signing.wrapped import KmsWrappedCodec

from tests.fakes.clock import FakeClock
from tests.fakes.kms import FakeKms

S = KeyState
T0 = 1_800_000_000
TIMING = Timing(jwks_max_age=300, max_token_lifetime=300, leeway=30, rotation_period=0)
ALICE = Actor(operator="alice", reason="quarterly rotation")
PASSPHRASE = b"correct horse battery staple"


def _manager(directory: Path, clock: FakeClock, codec: PrivateKeyCodec | None = None) -> KeyManager:
    store = FileKeyStore(directory, codec)
    return KeyManager(store, KeyAuditLog(directory / "audit.log"), TIMING, clock, "ES256")


def _audit(directory: Path) -> list[dict[str, object]]:
    lines = (directory / "audit.log").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _states(manager: KeyManager) -> list[tuple[str, KeyState]]:
    return [(r.kid, r.state) for r in manager.records()]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the audit log ------------------------------------------------------------------------------


def test_every_change_is_one_audit_line_with_who_what_why_and_when(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    manager = _manager(tmp_path, clock)
    manager.init(Actor(operator="bob", reason="first keys"))
    clock.advance(600)
    transition = manager.promote(ALICE)
    lines = _audit(tmp_path)
    assert [line["action"] for line in lines] == ["create", "create", "demote", "promote", "create"]
    demote, promote = lines[2], lines[3]
    assert demote == {
        "time": "2027-01-15T08:10:00Z",
        "action": "demote",
        "kid": transition.changes[0].kid,
        "alg": "ES256",
        "from_state": "active",
        "to_state": "retiring",
        "operator": "alice",
        "source": "cli",
        "reason": "quarterly rotation",
        "forced": [],
        "note": "published until at least 2027-01-15T08:20:30Z",
    }
    assert (promote["from_state"], promote["to_state"]) == ("next", "active")
    assert lines[0]["operator"] == "bob"


def test_audit_log_is_append_only_and_owner_only(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    manager = _manager(tmp_path, clock)
    manager.init(ALICE)
    first = (tmp_path / "audit.log").read_bytes()
    clock.advance(600)
    manager.rotate(ALICE)
    assert (tmp_path / "audit.log").read_bytes().startswith(first)
    assert _mode(tmp_path / "audit.log") == 0o600


def test_forced_changes_record_the_rule_they_skipped(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    manager = _manager(tmp_path, clock)
    manager.init(ALICE)
    manager.promote(Actor(operator="alice", reason="incident 42"), force=True)
    promote = next(line for line in _audit(tmp_path) if line["action"] == "promote")
    assert promote["reason"] == "incident 42"
    (skipped,) = promote["forced"]  # type: ignore[misc]
    assert "has been published for 0 s; promotion needs 600 s" in skipped


def test_a_refused_operation_changes_nothing_and_writes_no_audit_line(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    manager = _manager(tmp_path, clock)
    manager.init(ALICE)
    before = (tmp_path / KEYRING_FILE).read_bytes()
    with pytest.raises(LifecycleError, match="promotion needs"):
        manager.promote(ALICE)
    with pytest.raises(LifecycleError, match="no key with kid 'missing'"):
        manager.retire("missing", ALICE)
    assert (tmp_path / KEYRING_FILE).read_bytes() == before
    assert len(_audit(tmp_path)) == 2


# --- file modes -----------------------------------------------------------------------------------


def test_keys_created_by_rotation_are_owner_only_too(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    manager = _manager(tmp_path, clock)
    manager.init(ALICE)
    clock.advance(600)
    manager.rotate(ALICE)
    pems = list(tmp_path.glob("*.pem"))
    assert len(pems) == 3
    assert {_mode(p) for p in pems} == {0o600}


# --- racing invocations -------------------------------------------------------------------------


GIVE_UP_SECONDS = 30.0  # a hang guard: the other rotation's thread has begun by then
LOCK_GRACE_SECONDS = 0.3  # how long a reader waits for another one its lock should hold back


class RacingReadStore(FileKeyStore):
    """Reads the keyring, then waits until the other racing operation has read it too: without
    the lock both read before either writes. Once the other is at the lock it cannot read (when
    the lock works), so the wait for it then ends after LOCK_GRACE_SECONDS. Without it (a fixed
    0.3 s sleep) a thread started over 0.3 s late on a loaded host read after the first had
    written, and the control found no lost update (reproduced by starting it 1 s late)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.other: RacingReadStore = self
        self.at_lock = threading.Event()
        self.has_read = threading.Event()

    def locked(self, wait_seconds: float = 30.0) -> contextlib.AbstractContextManager[None]:
        self.at_lock.set()
        return super().locked(wait_seconds)

    def records(self) -> list[KeyRecord]:
        records = super().records()
        self.has_read.set()
        give_up = time.monotonic() + GIVE_UP_SECONDS
        while not self.other.has_read.wait(0.01):
            if self.other.at_lock.is_set():
                self.other.has_read.wait(LOCK_GRACE_SECONDS)
                break
            assert time.monotonic() < give_up, "the other rotation never began"
        return records


def _race(tmp_path: Path, *, lock: bool) -> list[KeyState]:
    clock = FakeClock(T0)
    _manager(tmp_path, clock).init(ALICE)
    clock.advance(600)
    stores = [RacingReadStore(tmp_path), RacingReadStore(tmp_path)]
    stores[0].other, stores[1].other = stores[1], stores[0]
    managers = []
    for store in stores:
        if not lock:
            store.locked = lambda wait_seconds=0.0: contextlib.nullcontext()  # type: ignore[method-assign]
        managers.append(
            KeyManager(store, KeyAuditLog(tmp_path / "audit.log"), TIMING, clock, "ES256")
        )
    threads = [threading.Thread(target=m.rotate, args=(ALICE,)) for m in managers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [r.state for r in FileKeyStore(tmp_path).records()]


def test_two_racing_rotations_promote_once(tmp_path: Path) -> None:
    states = _race(tmp_path, lock=True)
    assert sorted(states) == sorted([S.RETIRING, S.ACTIVE, S.NEXT])
    promotions = [line for line in _audit(tmp_path) if line["action"] == "promote"]
    assert len(promotions) == 1  # the second rotation re-read under the lock: nothing to do


def test_without_the_lock_the_same_race_loses_an_update(tmp_path: Path) -> None:
    # Control for the test above: it does detect a missing lock.
    _race(tmp_path, lock=False)
    promotions = [line for line in _audit(tmp_path) if line["action"] == "promote"]
    created = {line["kid"] for line in _audit(tmp_path) if line["action"] == "create"}
    listed = {r.kid for r in FileKeyStore(tmp_path).records()}
    assert len(promotions) == 2
    assert created - listed  # a next key one writer created was overwritten by the other


def test_lock_wait_gives_up_with_a_clear_error(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path)
    with store.locked(), pytest.raises(KeyStoreLockedError, match="locked by another"):
        FileKeyStore(tmp_path).locked(wait_seconds=0.1).__enter__()


# --- a missing keystore -------------------------------------------------------------------------

# Every change but init, by the name an operator or the replica's rotation knows it by (reseal
# is given the manager's store, a file store). A fixed kid: none is looked up, the keystore is
# missing.
KeyChange = Callable[[KeyManager, Callable[[], FileKeyStore]], object]
CHANGES: dict[str, KeyChange] = {
    "rotate": lambda manager, store: manager.rotate(ALICE),
    "promote": lambda manager, store: manager.promote(ALICE),
    "retire": lambda manager, store: manager.retire("kid-1", ALICE),
    "revoke": lambda manager, store: manager.revoke("kid-1", ALICE),
    "auto_rotate": lambda manager, store: manager.auto_rotate(ALICE),
    "reseal": lambda manager, store: manager.reseal(store(), ALICE),
}


@pytest.mark.parametrize("removed", [False, True], ids=["never-made", "folder-removed"])
@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_to_a_missing_keystore_is_refused_leaving_nothing_behind(
    tmp_path: Path, change: str, removed: bool
) -> None:
    """The lock was taken before the keystore was read: a replica's automatic rotation after
    its keys folder was removed (or any caller but `sekisho keys` itself) made the folder and
    `.lock` (and reseal the audit log) and only then found no keyring.json."""
    keys = tmp_path / "keys"
    if removed:
        _manager(keys, FakeClock(T0)).init(ALICE)
        shutil.rmtree(keys)
    manager = _manager(keys, FakeClock(T0 + 600))
    with pytest.raises(KeyStoreMissingError, match=r"no keystore at .*run `sekisho keys init`"):
        CHANGES[change](manager, lambda: FileKeyStore(keys))
    assert not keys.exists()


def test_init_still_makes_a_missing_keystore(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    manager = _manager(keys, FakeClock(T0))
    manager.init(ALICE)
    assert sorted(state for _, state in _states(manager)) == sorted([S.ACTIVE, S.NEXT])


@pytest.mark.parametrize("change", [name for name in CHANGES if name != "reseal"])
def test_a_change_to_an_empty_kms_prefix_is_refused_and_init_still_works(
    tmp_path: Path, change: str
) -> None:
    """The KMS store has no folder and no lock without a key: a change to an empty prefix is
    still the store's own KeyStoreMissingError, nothing is created in KMS, and init works."""
    kms, clock = FakeKms(), FakeClock(T0)
    store = KmsKeyStore(kms, "sekisho-test", clock=clock)
    manager = KeyManager(store, KeyAuditLog(tmp_path / "audit.log"), TIMING, clock, "ES256")
    with pytest.raises(KeyStoreMissingError, match="no keys under alias/sekisho-test/"):
        CHANGES[change](manager, lambda: pytest.fail("reseal is not a KMS store's"))
    assert (kms.keys, kms.aliases) == ({}, {})
    assert not (tmp_path / "audit.log").exists()
    manager.init(ALICE)
    assert len(store.records()) == 2


# --- passphrase encryption at rest ----------------------------------------------------------------


def _encrypted(tmp_path: Path) -> tuple[KeyManager, FakeClock]:
    clock = FakeClock(T0)
    manager = _manager(tmp_path, clock, PemCodec(PASSPHRASE, "SEKISHO_KEY_PASSPHRASE"))
    manager.init(ALICE)
    return manager, clock


def test_passphrase_encrypted_keys_are_unreadable_without_it(tmp_path: Path) -> None:
    _encrypted(tmp_path)
    for pem in tmp_path.glob("*.pem"):
        assert pem.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        with pytest.raises(TypeError, match="encrypted"):
            serialization.load_pem_private_key(pem.read_bytes(), password=None)
    with pytest.raises(KeyStoreError, match=r"passphrase \(\$SEKISHO_KEY_PASSPHRASE"):
        FileKeyStore(tmp_path, PemCodec(None, "SEKISHO_KEY_PASSPHRASE")).load()
    with pytest.raises(KeyStoreError) as unconfigured:
        FileKeyStore(tmp_path).load()  # no passphrase configured at all
    # Says the key is encrypted and which setting is missing (newcomer run, session 19: "the
    # passphrase (the variable keys.passphrase_env names, from keys.passphrase_env) is not set").
    assert "it is encrypted and keys.passphrase_env is not set" in str(unconfigured.value)


def test_wrong_passphrase_is_refused(tmp_path: Path) -> None:
    _encrypted(tmp_path)
    with pytest.raises(KeyStoreError, match="wrong passphrase"):
        FileKeyStore(tmp_path, PemCodec(b"not the passphrase", "X")).load()


def test_right_passphrase_signs(tmp_path: Path) -> None:
    _encrypted(tmp_path)
    keyring = Keyring(FileKeyStore(tmp_path, PemCodec(PASSPHRASE, "X")))
    keyring.load()
    assert keyring.signing_key()[0].state is S.ACTIVE


def test_configured_encryption_without_the_passphrase_never_writes_a_plain_key(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T0)
    manager = _manager(tmp_path, clock, PemCodec(None, "SEKISHO_KEY_PASSPHRASE"))
    with pytest.raises(
        KeyStoreError, match=r"cannot encrypt .*SEKISHO_KEY_PASSPHRASE.* is not set"
    ):
        manager.init(ALICE)
    assert not list(tmp_path.glob("*.pem"))


def test_plain_keys_are_refused_once_encryption_is_configured_until_resealed(
    tmp_path: Path,
) -> None:
    # Issue 19 class 4: a planted (or forgotten) unencrypted key must not load silently.
    clock = FakeClock(T0)
    _manager(tmp_path, clock).init(ALICE)  # unencrypted
    encrypted = FileKeyStore(tmp_path, PemCodec(PASSPHRASE, "X"))
    with pytest.raises(KeyStoreError, match=r"is not encrypted but keys\.passphrase_env is set"):
        encrypted.load()
    assert len(encrypted.reseal()) == 2
    for pem in tmp_path.glob("*.pem"):
        assert pem.read_bytes().startswith(b"-----BEGIN ENCRYPTED")
    assert len(encrypted.load().signers) == 2


# --- kms-wrapped keys (fake KMS; tests/integration runs the same against moto) --------------------


@contextlib.contextmanager
def _wrapped(tmp_path: Path) -> Iterator[tuple[FakeKms, str, KeyManager]]:
    kms = FakeKms()
    wrapping = kms.create_symmetric_key()
    manager = _manager(tmp_path, FakeClock(T0), KmsWrappedCodec(kms, wrapping))
    manager.init(ALICE)
    yield kms, wrapping, manager


def test_wrapped_keys_are_kms_ciphertext_on_disk(tmp_path: Path) -> None:
    with _wrapped(tmp_path) as (_, _, manager):
        for record in manager.records():
            data = (tmp_path / f"{record.kid}.kms").read_bytes()
            assert b"PRIVATE KEY" not in data
            with pytest.raises(ValueError, match="Could not deserialize"):
                serialization.load_der_private_key(data, password=None)
            assert _mode(tmp_path / f"{record.kid}.kms") == 0o600
        assert not list(tmp_path.glob("*.pem"))


def test_wrapped_key_copied_onto_another_kid_does_not_open(tmp_path: Path) -> None:
    with _wrapped(tmp_path) as (kms, wrapping, manager):
        active, upcoming = (r.kid for r in manager.records())
        (tmp_path / f"{upcoming}.kms").write_bytes((tmp_path / f"{active}.kms").read_bytes())
        with pytest.raises(
            KeyStoreError, match=f"cannot unwrap the private key for kid {upcoming}"
        ):
            FileKeyStore(tmp_path, KmsWrappedCodec(kms, wrapping)).load()


def test_wrapped_keys_cost_one_decrypt_per_key_not_per_reload(tmp_path: Path) -> None:
    with _wrapped(tmp_path) as (kms, wrapping, _):
        keyring = Keyring(FileKeyStore(tmp_path, KmsWrappedCodec(kms, wrapping)))
        keyring.load()
        for _ in range(5):
            assert keyring.reload()
        assert kms.calls["Decrypt"] == 2  # the active and the next key, once each


def test_wrapped_keys_without_kms_access_fail_to_load(tmp_path: Path) -> None:
    from sekisho.signing.kms_client import KmsError

    with _wrapped(tmp_path) as (kms, wrapping, _):
        kms.fail("Decrypt", KmsError("Decrypt", "AccessDeniedException", "no", retryable=False))
        with pytest.raises(KeyStoreError, match="AccessDeniedException"):
            FileKeyStore(tmp_path, KmsWrappedCodec(kms, wrapping)).load()


class _FullDiskAuditLog(KeyAuditLog):
    """Opens (ready) as a log on a full disk does; its append fails."""

    def record(self, now: int, changes: object, actor: Actor) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_change_whose_audit_line_fails_is_not_made(tmp_path: Path) -> None:
    """Red team session 17: an append that failed after the log was opened (disk full, quota)
    came after the commit, so the change was made and unaudited. The lines are written first
    now: the append fails, nothing is committed, and the error says so."""
    clock = FakeClock(T0)
    _manager(tmp_path, clock).init(ALICE)
    upcoming = next(kid for kid, state in _states(_manager(tmp_path, clock)) if state is S.NEXT)
    full = KeyManager(
        FileKeyStore(tmp_path), _FullDiskAuditLog(tmp_path / "audit.log"), TIMING, clock, "ES256"
    )

    with pytest.raises(KeyStoreError) as refused:
        full.revoke(upcoming, ALICE)

    message = str(refused.value)
    assert "nothing was changed" in message, message
    assert "keys.audit_log" in message and "No space left on device" in message, message
    assert dict(_states(full))[upcoming] is S.NEXT  # not revoked, as said


class _CommitSeesTheLines(FileKeyStore):
    """Records what the audit log held when the commit ran, then commits or fails."""

    def __init__(self, directory: Path, error: KeyStoreError | None = None) -> None:
        super().__init__(directory)
        self.error = error
        self.log_at_commit: list[dict[str, object]] = []

    def commit(self, before: object, after: object) -> None:
        self.log_at_commit = _audit(self._dir)
        if self.error is not None:
            raise self.error
        super().commit(before, after)  # type: ignore[arg-type]


def test_a_change_is_audited_before_it_is_committed(tmp_path: Path) -> None:
    """Write-ahead: a crash between the line and the commit leaves a line for a change that
    may not be made, never a change without its line (the residual risk of session 17)."""
    clock = FakeClock(T0)
    _manager(tmp_path, clock).init(ALICE)
    upcoming = next(kid for kid, state in _states(_manager(tmp_path, clock)) if state is S.NEXT)
    store = _CommitSeesTheLines(tmp_path)
    manager = KeyManager(store, KeyAuditLog(tmp_path / "audit.log"), TIMING, clock, "ES256")

    manager.revoke(upcoming, ALICE)

    assert ("revoke", upcoming) in [(e["action"], e["kid"]) for e in store.log_at_commit]
    assert dict(_states(manager))[upcoming] is S.REVOKED
    assert all("outcome" not in e for e in _audit(tmp_path))


def test_a_commit_that_fails_after_its_lines_adds_failed_lines(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    _manager(tmp_path, clock).init(ALICE)
    upcoming = next(kid for kid, state in _states(_manager(tmp_path, clock)) if state is S.NEXT)
    store = _CommitSeesTheLines(tmp_path, KeyStoreError("the keystore refused the write"))
    manager = KeyManager(store, KeyAuditLog(tmp_path / "audit.log"), TIMING, clock, "ES256")

    with pytest.raises(KeyStoreError, match="the keystore refused the write"):
        manager.revoke(upcoming, ALICE)

    ahead = store.log_at_commit[2:]  # the revocation's lines (init wrote two before them)
    failed = _audit(tmp_path)[len(store.log_at_commit) :]
    assert ("revoke", upcoming) in [(e["action"], e["kid"]) for e in ahead]
    for written, failure in zip(ahead, failed, strict=True):
        assert {k: v for k, v in failure.items() if k not in ("outcome", "detail")} == written
        assert (failure["outcome"], failure["detail"]) == (
            "failed",
            "the keystore refused the write",
        )
    assert dict(_states(manager))[upcoming] is S.NEXT


def test_a_line_cut_short_by_an_earlier_append_does_not_swallow_the_next(tmp_path: Path) -> None:
    """An append that failed part-way (disk full mid-line) left a line without its newline: the
    next change's line ran on from it, one line no reader could parse, and the change read as
    unaudited. The fragment is ended first (signing/audit.append_fsynced, both audit logs)."""
    clock = FakeClock(T0)
    _manager(tmp_path, clock).init(ALICE)
    upcoming = next(kid for kid, state in _states(_manager(tmp_path, clock)) if state is S.NEXT)
    with (tmp_path / "audit.log").open("ab") as log:
        log.write(b'{"time": "2027-01-15T08:00:00Z", "act')

    _manager(tmp_path, clock).revoke(upcoming, ALICE)

    *_, fragment, revoked, created = (tmp_path / "audit.log").read_text().splitlines()
    assert fragment == '{"time": "2027-01-15T08:00:00Z", "act'
    assert (json.loads(revoked)["action"], json.loads(revoked)["kid"]) == ("revoke", upcoming)
    assert json.loads(created)["action"] == "create"


class _LogFillsAfterWriteAhead(KeyAuditLog):
    def record_failed(self, now: int, changes: object, actor: Actor, detail: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_commit_whose_failure_cannot_be_logged_says_the_log_shows_it(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T0)
    _manager(tmp_path, clock).init(ALICE)
    upcoming = next(kid for kid, state in _states(_manager(tmp_path, clock)) if state is S.NEXT)
    store = _CommitSeesTheLines(tmp_path, KeyStoreError("the keystore refused the write"))
    log = _LogFillsAfterWriteAhead(tmp_path / "audit.log")
    manager = KeyManager(store, log, TIMING, clock, "ES256")

    with pytest.raises(KeyStoreError) as refused:
        manager.revoke(upcoming, ALICE)

    message = str(refused.value)
    assert message.startswith("the keystore refused the write; "), message
    assert "has this change's lines" in message and "No space left on device" in message
    assert "record it by hand" in message, message


def test_a_reseal_whose_audit_line_fails_says_which_key_file_is_rewritten(tmp_path: Path) -> None:
    """As every other key change: the line is appended as soon as the file is rewritten, and a
    failed append names what is done (the first key) and stops (the second is not rewritten)."""
    clock = FakeClock(T0)
    _manager(tmp_path, clock).init(ALICE)  # unencrypted
    store = FileKeyStore(tmp_path, PemCodec(PASSPHRASE, "X"))
    full = KeyManager(store, _FullDiskAuditLog(tmp_path / "audit.log"), TIMING, clock, "ES256")
    first, second = store.records()

    with pytest.raises(KeyStoreError) as refused:
        full.reseal(store, ALICE)

    message = str(refused.value)
    assert f"reseal {first.kid} -> {first.state.value}" in message, message
    assert "committed" in message, message
    assert "keys.audit_log" in message and "No space left on device" in message, message
    sealed = {kid: (tmp_path / f"{kid}.pem").read_bytes() for kid in (first.kid, second.kid)}
    assert sealed[first.kid].startswith(b"-----BEGIN ENCRYPTED")
    assert not sealed[second.kid].startswith(b"-----BEGIN ENCRYPTED")


def test_a_reseal_that_cannot_be_audited_rewrites_nothing(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    _manager(tmp_path, clock).init(ALICE)
    (tmp_path / "audit.log").unlink()
    (tmp_path / "audit.log").mkdir()  # a folder in its place: cannot be appended to
    store = FileKeyStore(tmp_path, PemCodec(PASSPHRASE, "X"))
    manager = KeyManager(store, KeyAuditLog(tmp_path / "audit.log"), TIMING, clock, "ES256")
    before = {pem.name: pem.read_bytes() for pem in tmp_path.glob("*.pem")}
    with pytest.raises(KeyStoreError, match="nothing was changed"):
        manager.reseal(store, ALICE)
    assert {pem.name: pem.read_bytes() for pem in tmp_path.glob("*.pem")} == before
