"""Keyring and KeySet: which keys are published, which one signs, and reload that keeps the last
good keys. Keystores are written by hand in each state of docs/architecture.md §7."""

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from sekisho.errors import KeyStoreError, TemporarilyUnavailableError
from sekisho.signing.filestore import KEYRING_FILE, FileKeyStore
from sekisho.signing.keyring import Keyring
from sekisho.signing.keys import KeyState
from sekisho.signing.material import PrivateKey

from tests.unit.signing.keystores import KeyEntry, kid_of, write_keystore

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
PUBLIC_MEMBERS = {
    "EC": {"kty", "crv", "x", "y", "kid", "alg", "use"},
    "RSA": {"kty", "n", "e", "kid", "alg", "use"},
    "OKP": {"kty", "crv", "x", "kid", "alg", "use"},
}

S = KeyState


def _keyring(directory: Path, entries: list[KeyEntry]) -> Keyring:
    write_keystore(directory, entries)
    keyring = Keyring(FileKeyStore(directory))
    keyring.load()
    return keyring


def _jwks_kids(keyring: Keyring) -> list[str]:
    return [jwk["kid"] for jwk in json.loads(keyring.jwks_bytes)["keys"]]


@pytest.mark.parametrize(
    ("states", "published"),
    [
        pytest.param([S.ACTIVE], [0], id="active-only"),
        pytest.param([S.NEXT, S.ACTIVE], [1, 0], id="next-then-active"),
        pytest.param([S.RETIRING, S.NEXT, S.ACTIVE], [2, 1, 0], id="retiring-next-active"),
        pytest.param([S.ACTIVE, S.RETIRED], [0], id="retired-absent"),
        pytest.param([S.REVOKED, S.ACTIVE], [1], id="revoked-absent"),
        pytest.param(
            [S.RETIRED, S.RETIRING, S.REVOKED, S.NEXT, S.ACTIVE],
            [4, 3, 1],
            id="every-state",
        ),
        pytest.param([S.ACTIVE, S.RETIRING, S.RETIRING], [0, 1, 2], id="two-retiring"),
    ],
)
def test_jwks_publishes_next_active_retiring_with_active_first(
    tmp_path: Path, es256_keys: list[PrivateKey], states: list[KeyState], published: list[int]
) -> None:
    entries = [(state, "ES256", es256_keys[i]) for i, state in enumerate(states)]
    keyring = _keyring(tmp_path, entries)
    # Active first, then next, then retiring (docs/architecture.md §7), whatever the file order.
    assert _jwks_kids(keyring) == [kid_of(es256_keys[i]) for i in published]


def test_revoked_and_retired_keys_are_absent_even_with_their_pem_on_disk(
    tmp_path: Path, es256_keys: list[PrivateKey]
) -> None:
    entries = [
        (S.ACTIVE, "ES256", es256_keys[0]),
        (S.REVOKED, "ES256", es256_keys[1]),
        (S.RETIRED, "ES256", es256_keys[2]),
    ]
    keyring = _keyring(tmp_path, entries)
    assert (tmp_path / f"{kid_of(es256_keys[1])}.pem").exists()
    assert _jwks_kids(keyring) == [kid_of(es256_keys[0])]
    assert keyring.signing_key()[0].kid == kid_of(es256_keys[0])
    assert keyring.published_algorithms() == ["ES256"]


def test_a_key_that_did_not_load_is_neither_published_nor_advertised(
    tmp_path: Path, keys_by_alg: dict[str, PrivateKey]
) -> None:
    """RFC 8414 metadata lists the algorithms of the JWKS, not of every published record: after a
    partial load (one key's file unreadable) the two must still agree."""
    entries = [(S.ACTIVE, "ES256", keys_by_alg["ES256"]), (S.NEXT, "PS256", keys_by_alg["PS256"])]
    write_keystore(tmp_path, entries)
    keyring = Keyring(FileKeyStore(tmp_path))
    keyring.load()
    assert keyring.published_algorithms() == ["ES256", "PS256"]
    (tmp_path / f"{kid_of(keys_by_alg['PS256'])}.pem").write_text("not a key")
    assert not keyring.reload()  # the last load failed for one key; the others kept serving
    assert _jwks_kids(keyring) == [kid_of(keys_by_alg["ES256"])]
    assert keyring.published_algorithms() == ["ES256"]


def test_jwks_never_carries_private_members(
    tmp_path: Path, keys_by_alg: dict[str, PrivateKey]
) -> None:
    states = [S.ACTIVE, S.NEXT, S.RETIRING, S.RETIRING]
    entries = [
        (state, alg, key) for state, (alg, key) in zip(states, keys_by_alg.items(), strict=True)
    ]
    keyring = _keyring(tmp_path, entries)
    jwks = json.loads(keyring.jwks_bytes)
    assert len(jwks["keys"]) == 4
    for jwk in jwks["keys"]:
        assert not PRIVATE_MEMBERS & set(jwk), jwk["kid"]
        assert set(jwk) == PUBLIC_MEMBERS[jwk["kty"]], jwk["kid"]
        assert jwk["use"] == "sig"


def test_jwks_bytes_are_the_compact_jwk_set(tmp_path: Path, es256_keys: list[PrivateKey]) -> None:
    store = FileKeyStore(tmp_path)
    write_keystore(tmp_path, [(S.ACTIVE, "ES256", es256_keys[0]), (S.NEXT, "ES256", es256_keys[1])])
    keyring = Keyring(store)
    assert keyring.jwks_bytes == b'{"keys":[]}'
    keyring.load()
    assert keyring.jwks_bytes == json.dumps(store.load().jwks(), separators=(",", ":")).encode()


def test_signing_key_is_the_active_key(tmp_path: Path, es256_keys: list[PrivateKey]) -> None:
    entries = [
        (S.NEXT, "ES256", es256_keys[0]),
        (S.RETIRING, "ES256", es256_keys[1]),
        (S.ACTIVE, "ES256", es256_keys[2]),
    ]
    record, signer = _keyring(tmp_path, entries).signing_key()
    assert record.state is S.ACTIVE
    assert record.kid == signer.kid == kid_of(es256_keys[2])


def test_signing_key_before_load_is_temporarily_unavailable(tmp_path: Path) -> None:
    keyring = Keyring(FileKeyStore(tmp_path))
    assert not keyring.loaded
    with pytest.raises(TemporarilyUnavailableError) as raised:
        keyring.signing_key()
    assert raised.value.reason == "temporarily_unavailable"


@pytest.mark.parametrize(
    "states",
    [
        pytest.param([S.NEXT], id="next-only"),
        pytest.param([S.RETIRING, S.NEXT], id="retiring-and-next"),
        pytest.param([S.RETIRED, S.REVOKED], id="nothing-published"),
    ],
)
def test_first_load_without_an_active_key_refuses_to_start(
    tmp_path: Path, es256_keys: list[PrivateKey], states: list[KeyState]
) -> None:
    write_keystore(tmp_path, [(state, "ES256", es256_keys[i]) for i, state in enumerate(states)])
    keyring = Keyring(FileKeyStore(tmp_path))
    with pytest.raises(KeyStoreError, match="no active key"):
        keyring.load()
    assert not keyring.loaded
    with pytest.raises(TemporarilyUnavailableError):
        keyring.signing_key()


def test_first_load_of_a_missing_keystore_fails(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="sekisho keys init"):
        Keyring(FileKeyStore(tmp_path)).load()


def test_reload_picks_up_a_rotation(tmp_path: Path, es256_keys: list[PrivateKey]) -> None:
    old, new = es256_keys[0], es256_keys[1]
    keyring = _keyring(tmp_path, [(S.ACTIVE, "ES256", old), (S.NEXT, "ES256", new)])
    write_keystore(tmp_path, [(S.RETIRING, "ES256", old), (S.ACTIVE, "ES256", new)])
    assert keyring.reload() is True
    assert keyring.signing_key()[1].kid == kid_of(new)
    assert _jwks_kids(keyring) == [kid_of(new), kid_of(old)]


def _break_keyring_json(directory: Path) -> None:
    (directory / KEYRING_FILE).write_text("{truncated", encoding="utf-8")


def _delete_active_pem(directory: Path) -> None:
    body = json.loads((directory / KEYRING_FILE).read_text(encoding="utf-8"))
    active = next(k["kid"] for k in body["keys"] if k["state"] == "active")
    (directory / f"{active}.pem").unlink()


def _demote_every_key_to_next(directory: Path) -> None:
    # An operator retiring the active key before promoting a new one.
    body = json.loads((directory / KEYRING_FILE).read_text(encoding="utf-8"))
    for key in body["keys"]:
        key["state"] = "next"
    (directory / KEYRING_FILE).write_text(json.dumps(body), encoding="utf-8")


def _active_kid(directory: Path) -> str:
    body = json.loads((directory / KEYRING_FILE).read_text(encoding="utf-8"))
    return str(next(k["kid"] for k in body["keys"] if k["state"] == "active"))


def _unreadable(path: Path) -> None:
    # Tests run as root, which reads any mode: a folder in the file's place fails like EACCES.
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_break_keyring_json, id="corrupt-keyring-json"),
        pytest.param(lambda d: (d / KEYRING_FILE).unlink(), id="keyring-json-deleted"),
        pytest.param(lambda d: _unreadable(d / KEYRING_FILE), id="keyring-json-unreadable"),
    ],
)
def test_key_states_unknown_means_nothing_signs_and_nothing_is_published(
    tmp_path: Path,
    es256_keys: list[PrivateKey],
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[Path], object],
) -> None:
    # Keeping the last good keys would keep a kid revoked in the unreadable file in service.
    keyring = _keyring(
        tmp_path, [(S.ACTIVE, "ES256", es256_keys[0]), (S.NEXT, "ES256", es256_keys[1])]
    )
    damage(tmp_path)
    with caplog.at_level(logging.ERROR, logger="sekisho.signing.keyring"):
        assert keyring.reload() is False
    assert [r.getMessage() for r in caplog.records] == ["keyring_reload_failed"]
    assert keyring.jwks_bytes == b'{"keys":[]}'
    assert not keyring.loaded
    assert keyring.degraded
    with pytest.raises(TemporarilyUnavailableError):
        keyring.signing_key()


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda d: (d / f"{_active_kid(d)}.pem").unlink(), id="active-pem-deleted"),
        pytest.param(lambda d: _unreadable(d / f"{_active_kid(d)}.pem"), id="active-unreadable"),
        pytest.param(
            lambda d: (d / f"{_active_kid(d)}.pem").write_bytes(b"garbage"), id="active-corrupt"
        ),
    ],
)
def test_an_active_key_that_cannot_be_loaded_is_not_used_from_memory(
    tmp_path: Path, es256_keys: list[PrivateKey], damage: Callable[[Path], object]
) -> None:
    keyring = _keyring(
        tmp_path, [(S.ACTIVE, "ES256", es256_keys[0]), (S.NEXT, "ES256", es256_keys[1])]
    )
    damage(tmp_path)
    assert keyring.reload() is False
    assert not keyring.loaded  # not ready: /readyz and gRPC health say so
    assert _jwks_kids(keyring) == [kid_of(es256_keys[1])]  # the next key still loads
    with pytest.raises(TemporarilyUnavailableError):
        keyring.signing_key()


def test_no_active_key_after_reload_is_not_ready(
    tmp_path: Path, es256_keys: list[PrivateKey]
) -> None:
    keyring = _keyring(
        tmp_path, [(S.ACTIVE, "ES256", es256_keys[0]), (S.NEXT, "ES256", es256_keys[1])]
    )
    _demote_every_key_to_next(tmp_path)
    assert keyring.reload() is False
    assert not keyring.loaded
    assert sorted(_jwks_kids(keyring)) == sorted(kid_of(k) for k in es256_keys[:2])


def test_revocation_applies_when_the_new_key_files_cannot_be_loaded(
    tmp_path: Path, es256_keys: list[PrivateKey]
) -> None:
    """`keys revoke` promotes the next key and writes a new next key the service cannot read:
    the revoked kid must leave signing and the JWKS anyway (issue 19, class 1)."""
    old, upcoming, fresh = es256_keys[0], es256_keys[1], es256_keys[2]
    keyring = _keyring(tmp_path, [(S.ACTIVE, "ES256", old), (S.NEXT, "ES256", upcoming)])
    write_keystore(
        tmp_path,
        [(S.REVOKED, "ES256", old), (S.ACTIVE, "ES256", upcoming), (S.NEXT, "ES256", fresh)],
    )
    _unreadable(tmp_path / f"{kid_of(fresh)}.pem")
    assert keyring.reload() is False
    assert keyring.degraded
    assert keyring.signing_key()[1].kid == kid_of(upcoming)
    assert _jwks_kids(keyring) == [kid_of(upcoming)]
    # The operator fixes the file: the next reload (the retry loop) clears the failure.
    (tmp_path / f"{kid_of(fresh)}.pem").rmdir()
    write_keystore(
        tmp_path,
        [(S.REVOKED, "ES256", old), (S.ACTIVE, "ES256", upcoming), (S.NEXT, "ES256", fresh)],
    )
    assert keyring.reload() is True
    assert keyring.degraded is None
    assert _jwks_kids(keyring) == [kid_of(upcoming), kid_of(fresh)]
