"""FileKeyStore: init, file modes, atomic writes, strict keyring.json parsing, key/kid binding."""

import asyncio
import contextlib
import json
import logging
import os
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sekisho.config import Settings
from sekisho.errors import KeyStoreError
from sekisho.service_tasks import key_tasks
from sekisho.signing import filestore
from sekisho.signing.filestore import KEYRING_FILE, FileKeyStore
from sekisho.signing.keyring import Keyring
from sekisho.signing.keys import KeyState
from sekisho.signing.material import PrivateKey, private_key_from_pem, public_jwk, thumbprint

from tests.fakes.clock import FakeClock
from tests.fakes.loops import RecordedFailures
from tests.unit.signing.keystores import kid_of, write_keyring_json, write_keystore

NOW = 1_800_000_000


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def store(tmp_path: Path) -> FileKeyStore:
    return FileKeyStore(tmp_path / "keys")


def test_init_creates_an_active_and_a_next_key(store: FileKeyStore) -> None:
    created = store.init("ES256", NOW)
    assert [(r.state, r.alg, r.created_at) for r in created] == [
        (KeyState.ACTIVE, "ES256", NOW),
        (KeyState.NEXT, "ES256", NOW),
    ]
    active, upcoming = created
    assert (active.activated_at, upcoming.activated_at) == (NOW, 0)
    assert active.kid != upcoming.kid
    assert store.records() == created


def test_init_names_each_key_by_its_thumbprint(store: FileKeyStore) -> None:
    for record in store.init("ES256", NOW):
        key = private_key_from_pem((store.directory / f"{record.kid}.pem").read_bytes(), "ES256")
        assert record.kid == thumbprint(public_jwk(key.public_key()))


def test_init_refuses_a_second_init_and_keeps_the_keys(store: FileKeyStore) -> None:
    first = store.init("ES256", NOW)
    before = (store.directory / KEYRING_FILE).read_bytes()
    with pytest.raises(KeyStoreError, match="already exists"):
        store.init("ES256", NOW + 60)
    assert (store.directory / KEYRING_FILE).read_bytes() == before
    assert store.records() == first


def test_init_refuses_an_unsupported_algorithm_without_writing(store: FileKeyStore) -> None:
    with pytest.raises(KeyStoreError, match="unsupported signing algorithm"):
        store.init("HS256", NOW)
    assert not store.exists()


def test_private_key_files_are_owner_only(store: FileKeyStore) -> None:
    records = store.init("ES256", NOW)
    for record in records:
        assert _mode(store.directory / f"{record.kid}.pem") == 0o600
    assert _mode(store.directory) == 0o700


def test_private_key_files_are_owner_only_under_a_permissive_umask(store: FileKeyStore) -> None:
    old = os.umask(0)
    try:
        records = store.init("ES256", NOW)
    finally:
        os.umask(old)
    for record in records:
        assert _mode(store.directory / f"{record.kid}.pem") == 0o600


def test_init_leaves_no_temporary_files(store: FileKeyStore) -> None:
    records = store.init("ES256", NOW)
    expected = {KEYRING_FILE, ".lock", *(f"{r.kid}.pem" for r in records)}
    assert {p.name for p in store.directory.iterdir()} == expected


def test_interrupted_init_leaves_no_keyring_and_can_be_retried(
    store: FileKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace

    def crash_on_keyring(src: Any, dst: Any) -> None:
        if Path(dst).name == KEYRING_FILE:
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(filestore.os, "replace", crash_on_keyring)
    with pytest.raises(OSError, match="disk full"):
        store.init("ES256", NOW)
    assert not store.exists()  # the rename never happened, so no half-written keyring.json

    monkeypatch.setattr(filestore.os, "replace", real_replace)
    assert [r.state for r in store.init("ES256", NOW)] == [KeyState.ACTIVE, KeyState.NEXT]


def test_failed_write_keeps_the_previous_keyring(
    store: FileKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.init("ES256", NOW)
    before = (store.directory / KEYRING_FILE).read_bytes()

    def crash(fd: int) -> None:
        raise OSError("I/O error")

    monkeypatch.setattr(filestore.os, "fsync", crash)
    with pytest.raises(OSError, match="I/O error"):
        store._write_records([])
    assert (store.directory / KEYRING_FILE).read_bytes() == before


def test_records_without_a_keystore_point_to_keys_init(store: FileKeyStore) -> None:
    with pytest.raises(KeyStoreError, match="sekisho keys init"):
        store.records()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("", "not JSON", id="empty-file"),
        pytest.param("{not json", "not JSON", id="corrupt-json"),
        pytest.param(b"\xff\xfe".decode("latin-1"), "not JSON", id="not-utf8-json"),
        pytest.param("[]", "unknown format", id="top-level-list"),
        pytest.param('{"keys": []}', "unknown format", id="no-version"),
        pytest.param('{"version": 2, "keys": []}', "unknown format", id="future-version"),
        pytest.param('{"version": "1", "keys": []}', "unknown format", id="version-as-string"),
        pytest.param('{"version": true, "keys": []}', "unknown format", id="version-as-bool"),
        pytest.param(
            '{"version": 1, "keys": [{"kid": "../../etc/x", "alg": "ES256", "state": "next", "created_at": 1}]}',
            "invalid key record",
            id="kid-with-path-characters",
        ),
        pytest.param(
            '{"version": 1, "keys": [{"kid": "a", "alg": "ES256", "state": "next", "created_at": 1},'
            ' {"kid": "a", "alg": "ES256", "state": "retiring", "created_at": 1}]}',
            "more than once",
            id="duplicate-kid",
        ),
        pytest.param(
            '{"version": 1, "keys": [{"kid": "a", "alg": "ES256", "state": "active", "created_at": 1},'
            ' {"kid": "b", "alg": "ES256", "state": "active", "created_at": 1}]}',
            "more than one key is active",
            id="two-active-keys",
        ),
        pytest.param('{"version": 1}', "'keys' must be a list", id="no-keys"),
        pytest.param('{"version": 1, "keys": {}}', "'keys' must be a list", id="keys-not-a-list"),
        pytest.param(
            '{"version": 1, "keys": ["kid"]}', "invalid key record", id="record-not-object"
        ),
        pytest.param(
            '{"version": 1, "keys": [{"alg": "ES256", "state": "active", "created_at": 1}]}',
            "invalid key record",
            id="record-without-kid",
        ),
        pytest.param(
            '{"version": 1, "keys": [{"kid": "k", "alg": "ES256", "state": "on", "created_at": 1}]}',
            "invalid key record",
            id="unknown-state",
        ),
        pytest.param(
            '{"version": 1, "keys": [{"kid": "k", "alg": "ES256", "state": "next",'
            ' "created_at": -1}]}',
            "invalid key record",
            id="negative-timestamp",
        ),
        pytest.param(
            '{"version": 1, "keys": [{"kid": "", "alg": "ES256", "state": "next",'
            ' "created_at": 1}]}',
            "invalid key record",
            id="empty-kid",
        ),
        pytest.param(
            '{"version": 1, "keys": [{"kid": "k", "alg": "ES256", "state": "next",'
            ' "created_at": true}]}',
            "invalid key record",
            id="boolean-timestamp",
        ),
    ],
)
def test_records_rejects_a_bad_keyring_naming_the_file(
    store: FileKeyStore, content: str, message: str
) -> None:
    store.directory.mkdir()
    path = store.directory / KEYRING_FILE
    path.write_text(content, encoding="latin-1")
    with pytest.raises(KeyStoreError, match=message) as raised:
        store.records()
    assert str(path) in str(raised.value)


def test_load_signs_with_published_keys_only(
    store: FileKeyStore, es256_keys: list[PrivateKey]
) -> None:
    entries = [
        (KeyState.RETIRED, "ES256", es256_keys[0]),
        (KeyState.RETIRING, "ES256", es256_keys[1]),
        (KeyState.ACTIVE, "ES256", es256_keys[2]),
        (KeyState.NEXT, "ES256", es256_keys[3]),
        (KeyState.REVOKED, "ES256", es256_keys[4]),
    ]
    records = write_keystore(store.directory, entries)
    keys = store.load()
    assert keys.records == tuple(records)
    assert set(keys.signers) == {kid_of(k) for k in es256_keys[1:4]}  # retiring, active, next
    assert keys.active is not None
    assert keys.active[0].kid == kid_of(es256_keys[2])


def test_load_does_not_need_the_pem_of_a_retired_or_revoked_key(
    store: FileKeyStore, es256_keys: list[PrivateKey]
) -> None:
    write_keystore(
        store.directory,
        [
            (KeyState.ACTIVE, "ES256", es256_keys[0]),
            (KeyState.RETIRED, "ES256", es256_keys[1]),
            (KeyState.REVOKED, "ES256", es256_keys[2]),
        ],
    )
    (store.directory / f"{kid_of(es256_keys[1])}.pem").unlink()
    (store.directory / f"{kid_of(es256_keys[2])}.pem").unlink()
    assert set(store.load().signers) == {kid_of(es256_keys[0])}


def test_load_rejects_a_pem_whose_thumbprint_differs_from_its_kid(
    store: FileKeyStore, es256_keys: list[PrivateKey]
) -> None:
    # A swapped key file would make tokens carry a kid that the JWKS maps to another key.
    active, upcoming = es256_keys[0], es256_keys[1]
    write_keystore(
        store.directory,
        [(KeyState.ACTIVE, "ES256", active), (KeyState.NEXT, "ES256", upcoming)],
    )
    active_pem = store.directory / f"{kid_of(active)}.pem"
    active_pem.write_bytes((store.directory / f"{kid_of(upcoming)}.pem").read_bytes())
    with pytest.raises(KeyStoreError, match=f"kid {kid_of(active)} holds a different key"):
        store.load()


def test_load_rejects_a_missing_pem_of_a_published_key(
    store: FileKeyStore, es256_keys: list[PrivateKey]
) -> None:
    write_keystore(store.directory, [(KeyState.ACTIVE, "ES256", es256_keys[0])])
    (store.directory / f"{kid_of(es256_keys[0])}.pem").unlink()
    with pytest.raises(
        KeyStoreError, match=f"cannot read private key for kid {kid_of(es256_keys[0])}"
    ):
        store.load()


def test_load_rejects_a_pem_that_does_not_fit_the_recorded_alg(
    store: FileKeyStore, es256_keys: list[PrivateKey]
) -> None:
    write_keystore(store.directory, [(KeyState.ACTIVE, "EdDSA", es256_keys[0])])
    with pytest.raises(KeyStoreError, match="does not match algorithm EdDSA"):
        store.load()


def test_init_then_load_round_trips(store: FileKeyStore) -> None:
    created = store.init("ES256", NOW)
    keys = store.load()
    assert keys.records == tuple(created)
    assert keys.active is not None
    record, signer = keys.active
    assert (record.kid, signer.kid, signer.alg) == (created[0].kid, created[0].kid, "ES256")


def test_keyring_json_is_versioned_and_lists_every_record(store: FileKeyStore) -> None:
    created = store.init("ES256", NOW)
    body = json.loads((store.directory / KEYRING_FILE).read_text(encoding="utf-8"))
    assert body == {"version": 1, "keys": [r.to_json() for r in created]}


def test_write_keyring_json_helper_round_trips(store: FileKeyStore) -> None:
    # The hand-written keystores other tests rely on must be what FileKeyStore reads.
    store.directory.mkdir()
    write_keyring_json(store.directory, [])
    assert store.records() == []


@pytest.mark.parametrize(
    ("name", "scratch"),
    [
        pytest.param(".lock", True, id="lock"),
        pytest.param(".keyring.json.k3x_9qab.tmp", True, id="temporary"),
        pytest.param(KEYRING_FILE, False, id="keyring"),
        pytest.param("k1.pem", False, id="key"),
        pytest.param(".keyring.json.k3x_9qab", False, id="not-ours"),
    ],
)
def test_scratch_files_are_the_lock_and_write_temporaries(name: str, scratch: bool) -> None:
    assert filestore.is_scratch_file(name) is scratch


def test_the_temporary_a_write_makes_is_a_scratch_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The name _write_atomic gives mkstemp and the name is_scratch_file knows are one rule.
    renamed: list[str] = []
    replace = os.replace

    def recording(source: str, target: Path) -> None:
        renamed.append(Path(source).name)
        replace(source, target)

    monkeypatch.setattr(filestore.os, "replace", recording)
    filestore._write_atomic(tmp_path / KEYRING_FILE, b"{}", mode=0o644)
    (temporary,) = renamed
    assert filestore.is_scratch_file(temporary)
    assert not filestore.is_scratch_file(KEYRING_FILE)


async def test_the_keys_watch_names_key_files_not_the_keystores_scratch_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`files_changed` for the keys folder listed _write_atomic's temporaries (`.keyring.json.
    k3x_9qab`) beside the files they became: names that exist for milliseconds and say nothing.
    The watch key_tasks starts leaves them (and the lock) out."""
    folder = tmp_path / "keys"
    store = FileKeyStore(folder)
    store.init("ES256", NOW)
    settings = Settings(keys={"dir": str(folder)})
    watch, *others = key_tasks(settings, store, Keyring(store), FakeClock(NOW), RecordedFailures())
    for other in others:
        other.close()  # the retry loop: not this test's
    task = asyncio.create_task(watch)

    def changed() -> list[list[str]]:
        return [r.__dict__["files"] for r in caplog.records if r.message == "files_changed"]

    try:
        with caplog.at_level(logging.INFO, logger="sekisho.reload"):
            for _ in range(150):  # until the watch, once started, reports a change
                store.create_key("ES256", NOW)
                await asyncio.sleep(0.2)
                if changed():
                    break
        assert changed(), "the watch reported no change"
        names = {name for files in changed() for name in files}
        assert names and all(name.endswith(".pem") or name == KEYRING_FILE for name in names)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _revoke(store: FileKeyStore, kid: str) -> None:
    """What `sekisho keys revoke -- KID` commits: the record of `kid` in state REVOKED."""
    (revoked,) = [r for r in store.records() if r.kid == kid]
    after = [r for r in store.records() if r.kid != kid]
    with store.locked():
        store.commit(store.records(), [*after, replace(revoked, state=KeyState.REVOKED)])


async def _until_unpublished(keyring: Keyring, kid: str) -> None:
    """Until the keyring no longer publishes `kid`: a 30 s hang guard (the poll is every 0.1 s;
    4 s was near a stall)."""
    for _ in range(300):
        if not keyring.publishes(kid):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the revoked key {kid} is still published")


async def test_a_revocation_no_file_event_announces_still_reaches_the_keyring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replicas may share the keys folder over NFS (docs/security-team.md); a change written on
    another host raises no inotify event on this one, so the watch never fired there: that
    replica kept publishing (and, were it active, signing with) a key `sekisho keys revoke`
    removed, until a restart or SIGHUP (red team session 15). keyring.json is also checked every
    `[keys] poll_seconds`."""

    async def silent(*_: Any, **__: Any) -> Any:  # a volume whose changes raise no event
        await asyncio.Event().wait()
        yield

    monkeypatch.setattr("sekisho.reload.watchfiles.awatch", silent)
    folder = tmp_path / "keys"
    store = FileKeyStore(folder)
    store.init("ES256", NOW)
    settings = Settings(keys={"dir": str(folder), "poll_seconds": 0.1})
    keyring = Keyring(store)
    keyring.load()
    (next_kid,) = [r.kid for r in store.records() if r.state is KeyState.NEXT]
    assert keyring.publishes(next_kid)
    tasks = [
        asyncio.create_task(task)
        for task in key_tasks(settings, store, keyring, FakeClock(NOW), RecordedFailures())
    ]
    try:
        await asyncio.sleep(0.3)  # the tasks have started (and taken the folder as it is)
        _revoke(store, next_kid)
        await _until_unpublished(keyring, next_kid)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_revocation_made_while_the_service_starts_reaches_the_keyring(
    tmp_path: Path,
) -> None:
    """Red team session 17: the keyring loads first thing at start, and the keys watch and the
    keyring.json poll begin only once policy, the status store and the listeners are up
    (seconds: opa build). A `sekisho keys revoke` committed in between was already in the poll's
    first look and before the watch: the starting replica (a rolling restart, a replaced
    worker) published, and signed with, the revoked key until the next key change. The poll's
    first look now counts as a change: the keyring is read again once."""
    folder = tmp_path / "keys"
    store = FileKeyStore(folder)
    store.init("ES256", NOW)
    settings = Settings(keys={"dir": str(folder), "poll_seconds": 0.1})
    keyring = Keyring(store)
    keyring.load()  # start_core: keys first
    (next_kid,) = [r.kid for r in store.records() if r.state is KeyState.NEXT]
    _revoke(store, next_kid)  # `sekisho keys revoke` while policy and listeners start
    tasks = [
        asyncio.create_task(task)
        for task in key_tasks(settings, store, keyring, FakeClock(NOW), RecordedFailures())
    ]
    try:
        await _until_unpublished(keyring, next_kid)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
