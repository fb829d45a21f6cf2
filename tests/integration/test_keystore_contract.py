"""One contract, every keystore backend (file, kms, kms-wrapped; KMS = moto's standalone server):
kid stability, alg matches key, signatures verify with the published JWK, lifecycle
transitions as every other replica sees them, and error translation."""

import dataclasses
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from sekisho.errors import KeyStoreError, TemporarilyUnavailableError
from sekisho.signing.audit import Actor
from sekisho.signing.jws import JwsEncoder
from sekisho.signing.keyring import Keyring
from sekisho.signing.keys import KeyState
from sekisho.signing.lifecycle import LifecycleError
from sekisho.signing.material import thumbprint
from sekisho.signing.signer import LocalSigner

from tests.fakes.clock import FakeClock
from tests.integration.backends import BACKENDS, Backend, kms_client, make_backend
from tests.integration.conftest import start_moto

pytestmark = pytest.mark.integration

S = KeyState
T0 = 1_800_000_000
OPS = Actor(operator="contract-test", reason="contract")
TYP = "oauth-id-jag+jwt"
GIVE_UP_SECONDS = 30.0  # a hang guard


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path, aws_env: str) -> Backend:
    return make_backend(request.param, tmp_path, aws_env, FakeClock(T0))


def _keyring(backend: Backend) -> Keyring:
    keyring = Keyring(backend.store())
    keyring.load()
    return keyring


def _loaded_while_kms_is_up(backend: Backend) -> Keyring:
    """A replica's keyring, loaded again until it loads: with a 0.5 s KMS deadline a call moto
    answers late on a loaded host fails the first load (KeyStoreError), though KMS is up."""
    give_up = time.monotonic() + GIVE_UP_SECONDS
    while True:
        try:
            return _keyring(backend)
        except KeyStoreError:
            assert time.monotonic() < give_up, "the keys never loaded with KMS up"


def _jwks(backend: Backend) -> dict[str, dict[str, Any]]:
    """What a freshly started replica publishes, by kid."""
    return {jwk["kid"]: jwk for jwk in json.loads(_keyring(backend).jwks_bytes)["keys"]}


async def _verified(keyring: Keyring, backend: Backend) -> tuple[str, dict[str, Any]]:
    """Mint through the real encoder, verify with nothing but another replica's JWKS."""
    record, signer = keyring.signing_key()
    token = await JwsEncoder().encode({"sub": "alice", "aud": "x"}, signer, TYP)
    header = jwt.get_unverified_header(token)
    jwk = _jwks(backend)[header["kid"]]
    claims = jwt.decode(token, jwt.PyJWK(jwk), algorithms=[jwk["alg"]], audience="x")
    assert header["alg"] == record.alg == jwk["alg"]
    return header["kid"], claims


# --- kid stability ---------------------------------------------------------------------------


async def test_kids_are_stable_thumbprints_across_processes(backend: Backend) -> None:
    created = backend.manager().init(OPS).records
    first, second = _jwks(backend), _jwks(backend)
    assert list(first) == list(second) == [r.kid for r in created]  # active first, then next
    for kid, jwk in first.items():
        assert thumbprint(jwk) == kid
    assert _keyring(backend).jwks_bytes == _keyring(backend).jwks_bytes


# --- alg matches key, signature verifies with the published JWK ------------------------------


@pytest.mark.parametrize("alg", ["ES256", "PS256", "RS256"])
async def test_every_algorithm_signs_what_its_published_jwk_verifies(
    alg: str, tmp_path: Path, aws_env: str, request: pytest.FixtureRequest
) -> None:
    for name in BACKENDS:
        backend = make_backend(name, tmp_path / name, aws_env, FakeClock(T0), algorithm=alg)
        backend.manager().init(OPS)
        keyring = _keyring(backend)
        kid, claims = await _verified(keyring, backend)
        assert claims["sub"] == "alice", name
        jwk = _jwks(backend)[kid]
        assert (jwk["kty"], jwk["use"]) == ("EC" if alg == "ES256" else "RSA", "sig")
        if alg != "ES256":
            assert (
                int.bit_length(int.from_bytes(jwt.utils.base64url_decode(jwk["n"]), "big")) >= 3072
            )


async def test_a_token_signed_by_one_key_does_not_verify_with_another(backend: Backend) -> None:
    backend.manager().init(OPS)
    keyring = _keyring(backend)
    record, signer = keyring.signing_key()
    token = await JwsEncoder().encode({"sub": "alice"}, signer, TYP)
    other = next(jwk for kid, jwk in _jwks(backend).items() if kid != record.kid)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, jwt.PyJWK(other), algorithms=["ES256"])


# --- lifecycle, as every replica sees it -----------------------------------------------------


async def test_full_lifecycle_is_visible_to_another_replica(backend: Backend) -> None:
    manager = backend.manager()
    old, upcoming = (r.kid for r in manager.init(OPS).records)
    replica = _keyring(backend)
    assert replica.signing_key()[0].kid == old

    with pytest.raises(LifecycleError, match="promotion needs 600 s"):
        manager.promote(OPS)
    backend.clock.advance(600)
    manager.promote(OPS)
    assert await replica.refresh()
    assert replica.signing_key()[0].kid == upcoming
    assert (await _verified(replica, backend))[0] == upcoming
    newest = next(r.kid for r in manager.records() if r.state is S.NEXT)
    assert set(_jwks(backend)) == {old, upcoming, newest}  # the retiring key is still published

    with pytest.raises(LifecycleError, match="may still have signed tokens in use"):
        manager.retire(old, OPS)
    backend.clock.advance(630)
    manager.retire(old, OPS)
    assert set(_jwks(backend)) == {upcoming, newest}

    manager.revoke(upcoming, OPS)
    assert await replica.refresh()
    assert upcoming not in _jwks(backend)  # gone from the JWKS at once
    assert upcoming not in json.loads(replica.jwks_bytes)["keys"]
    assert replica.signing_key()[0].kid == newest  # issuance did not stop
    assert (await _verified(replica, backend))[0] == newest
    states = {r.kid: r.state for r in manager.records()}
    assert states == {old: S.RETIRED, upcoming: S.REVOKED, newest: S.ACTIVE, **_next_only(states)}


def _next_only(states: dict[str, KeyState]) -> dict[str, KeyState]:
    nxt = {kid: state for kid, state in states.items() if state is S.NEXT}
    assert len(nxt) == 1
    return nxt


async def test_revoked_key_never_signs_again(backend: Backend) -> None:
    manager = backend.manager()
    old, _ = (r.kid for r in manager.init(OPS).records)
    manager.revoke(old, OPS)
    keyring = _keyring(backend)
    for _ in range(5):
        assert (await _verified(keyring, backend))[0] != old
    assert old not in _jwks(backend)
    assert keyring.signing_key()[1].kid != old
    if backend.name == "kms":
        kms = kms_client(backend.settings.keys.kms_endpoint_url)
        aliases = kms.list_aliases()["Aliases"]
        key_id = next(
            a["TargetKeyId"] for a in aliases if a["AliasName"].endswith(f"/revoked/{old}")
        )
        state = kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"]
        assert state == "Disabled"  # AWS KMS refuses Sign on a disabled key


# --- error translation ---------------------------------------------------------------------


async def test_bad_input_and_missing_keys_are_keystore_errors(backend: Backend) -> None:
    with pytest.raises(KeyStoreError, match="keys init"):
        backend.store().records()
    manager = backend.manager()
    manager.init(OPS)
    with pytest.raises(LifecycleError, match="no key with kid 'unknown'"):
        manager.retire("unknown", OPS)
    with pytest.raises(LifecycleError, match="already holds keys"):
        manager.init(OPS)


@pytest.fixture
def short_lived_moto(
    aws_env: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, "subprocess.Popen[bytes]"]]:
    """A second moto server that a test may kill."""
    endpoint, process = start_moto(tmp_path_factory.mktemp("short-lived-moto") / "moto.log")
    yield endpoint, process
    if process.poll() is None:
        process.kill()
    process.wait()


@pytest.mark.parametrize("name", BACKENDS)
async def test_a_vanished_backend_fails_signing_cleanly_and_never_signs_with_unloadable_keys(
    name: str, tmp_path: Path, short_lived_moto: tuple[str, "subprocess.Popen[bytes]"]
) -> None:
    endpoint, process = short_lived_moto
    backend = make_backend(name, tmp_path, endpoint, FakeClock(T0))
    backend.manager().init(OPS)  # with the patient timeout: moto's first calls can be slow
    # From here on every KMS call gives up after 0.5 s, so the outage below is seen quickly.
    quick = backend.settings.keys.model_copy(update={"kms_timeout_seconds": 0.5})
    backend = dataclasses.replace(
        backend, settings=backend.settings.model_copy(update={"keys": quick})
    )
    keyring = _loaded_while_kms_is_up(backend)
    jwks_before = keyring.jwks_bytes
    if name == "file":
        for path in (tmp_path / "keys").glob("*.pem"):
            path.unlink()
    else:
        process.kill()
        process.wait()
    # A running replica: kms-wrapped keys were opened once and need no KMS call to reload;
    # kms keeps the last good keys while KMS is unreachable (a revoked key is disabled in KMS
    # too); a file key that cannot be loaded any more is not used from memory (issue 19).
    assert await keyring.refresh() is (name == "kms-wrapped")
    with pytest.raises(KeyStoreError):  # a starting replica: a clean error, no botocore exception
        backend.store().load()
    if name == "file":
        assert keyring.jwks_bytes == b'{"keys":[]}'
        with pytest.raises(TemporarilyUnavailableError):
            keyring.signing_key()
        return
    assert keyring.jwks_bytes == jwks_before
    _, signer = keyring.signing_key()
    if name == "kms":
        assert keyring.degraded  # retried with backoff by the service
        with pytest.raises(TemporarilyUnavailableError) as raised:
            await JwsEncoder().encode({"sub": "alice"}, signer, TYP)
        assert raised.value.grpc_code == "UNAVAILABLE"
    else:
        assert isinstance(signer, LocalSigner)  # signing never needed the backend
        await JwsEncoder().encode({"sub": "alice"}, signer, TYP)


def test_kms_wrapped_files_are_ciphertext_bound_to_their_kid(tmp_path: Path, aws_env: str) -> None:
    backend = make_backend("kms-wrapped", tmp_path, aws_env, FakeClock(T0))
    active, upcoming = (r.kid for r in backend.manager().init(OPS).records)
    keys_dir = tmp_path / "keys"
    for kid in (active, upcoming):
        data = (keys_dir / f"{kid}.kms").read_bytes()
        assert b"PRIVATE KEY" not in data and not data.startswith(b"\x30\x82")
    (keys_dir / f"{upcoming}.kms").write_bytes((keys_dir / f"{active}.kms").read_bytes())
    with pytest.raises(KeyStoreError, match=f"cannot unwrap the private key for kid {upcoming}"):
        backend.store().load()


def test_a_closed_port_is_not_a_kms(tmp_path: Path, aws_env: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    backend = make_backend(
        "kms", tmp_path, aws_env, FakeClock(T0), kms_endpoint_url=dead, kms_timeout_seconds=2.0
    )  # the default deadline: a closed port is retried until it, not for 30 s
    with pytest.raises(KeyStoreError, match="cannot list KMS aliases"):
        backend.store().records()
