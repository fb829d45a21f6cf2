"""The JWKS endpoint's Cache-Control (http/app.py): the configured max-age while every key loaded,
a short one while the keyring is degraded, so a partial, empty or last-good set is not kept by
HTTP caches and downstreams for the whole max-age after the keystore recovers."""

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sekisho.http.app import DEGRADED_JWKS_MAX_AGE_SECONDS, JWKS_PATH, create_http_app
from sekisho.signing.filestore import KEYRING_FILE, FileKeyStore
from sekisho.signing.keyring import Keyring
from sekisho.signing.keys import KeyState
from sekisho.signing.material import PrivateKey, generate_private_key

from tests.unit.signing.keystores import kid_of, write_keystore

ISSUER = "https://sekisho.test"
S = KeyState


def _retiring_pem_unreadable(directory: Path, retiring: PrivateKey) -> None:
    # Tests run as root, which reads any mode: a folder in the file's place fails like EACCES.
    pem = directory / f"{kid_of(retiring)}.pem"
    pem.unlink()
    pem.mkdir()


def _keyring_json_corrupt(directory: Path, _: PrivateKey) -> None:
    (directory / KEYRING_FILE).write_text("{truncated", encoding="utf-8")


async def _cache_control(
    client: TestClient[web.Request, web.Application],
) -> tuple[str, list[str]]:
    response = await client.get(JWKS_PATH)
    assert response.status == 200
    kids = [jwk["kid"] for jwk in json.loads(await response.read())["keys"]]
    return response.headers["Cache-Control"], kids


@pytest.mark.parametrize(
    "damage",
    [
        # Ready (the active key signs), publishing a set without the retiring key: tokens it
        # signed were refused downstream for up to 300 s after the file was fixed.
        pytest.param(_retiring_pem_unreadable, id="retiring-key-unreadable"),
        # Key states unknown: nothing is published.
        pytest.param(_keyring_json_corrupt, id="key-states-unknown"),
    ],
)
async def test_a_jwks_served_during_a_failed_key_reload_is_cacheable_only_briefly(
    tmp_path: Path, damage: Callable[[Path, PrivateKey], None]
) -> None:
    # Red team session 15 (left then): the set served while the keyring is degraded kept the
    # usual `public, max-age=300`, so an HTTP cache or a downstream held it for 5 minutes after
    # the keystore recovered.
    active, retiring = generate_private_key("ES256"), generate_private_key("ES256")
    entries = [(S.ACTIVE, "ES256", active), (S.RETIRING, "ES256", retiring)]
    write_keystore(tmp_path, entries)
    keyring = Keyring(FileKeyStore(tmp_path))
    keyring.load()
    app = create_http_app(
        issuer=ISSUER, keyring=keyring, ready=lambda: True, jwks_max_age_seconds=300
    )
    async with TestClient(TestServer(app)) as client:
        assert await _cache_control(client) == (
            "public, max-age=300",
            [kid_of(active), kid_of(retiring)],
        )
        damage(tmp_path, retiring)
        assert keyring.reload() is False
        cache_control, kids = await _cache_control(client)
        assert kid_of(retiring) not in kids
        assert cache_control == f"public, max-age={DEGRADED_JWKS_MAX_AGE_SECONDS}"
        shutil.rmtree(tmp_path)  # the operator puts the keystore right
        write_keystore(tmp_path, entries)
        assert keyring.reload() is True
        assert await _cache_control(client) == (
            "public, max-age=300",
            [kid_of(active), kid_of(retiring)],
        )


async def test_a_shorter_configured_max_age_is_kept_while_degraded(tmp_path: Path) -> None:
    active = generate_private_key("ES256")
    write_keystore(tmp_path, [(S.ACTIVE, "ES256", active)])
    keyring = Keyring(FileKeyStore(tmp_path))
    keyring.load()
    app = create_http_app(
        issuer=ISSUER, keyring=keyring, ready=lambda: True, jwks_max_age_seconds=0
    )
    _keyring_json_corrupt(tmp_path, active)
    assert keyring.reload() is False
    async with TestClient(TestServer(app)) as client:
        assert (await _cache_control(client))[0] == "public, max-age=0"
