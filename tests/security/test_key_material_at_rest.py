"""Issue 19, class 4: key material at rest is what the operator configured.

Through the `sekisho` CLI (the code path `serve` shares for loading): with passphrase
encryption on, a planted unencrypted key marked active is refused; a malformed keyring.json
(values out of range or of the wrong type) exits 2 with one `sekisho:` line, never a
traceback; the private key files of retired and revoked keys are deleted unless retention is
configured to keep them.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sekisho.cli import main
from sekisho.signing.codec import PemCodec
from sekisho.signing.filestore import KEYRING_FILE, FileKeyStore
from sekisho.signing.material import (
    generate_private_key,
    private_key_to_pem,
    public_jwk,
    thumbprint,
)

pytestmark = pytest.mark.security

T0 = 1_790_000_000
PASSPHRASE = "correct horse battery staple"


def _config(tmp_path: Path, **keys: str) -> str:
    lines = [f'{name} = "{value}"' for name, value in keys.items()]
    config = tmp_path / "sekisho.toml"
    config.write_text('[keys]\ndir = "keys"\n' + "\n".join(lines) + "\n", encoding="utf-8")
    return str(config)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_planted_unencrypted_active_key_is_refused_when_encryption_is_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEKISHO_KEY_PASSPHRASE", PASSPHRASE)
    keys = tmp_path / "keys"
    FileKeyStore(keys, PemCodec(PASSPHRASE.encode(), "SEKISHO_KEY_PASSPHRASE")).init("ES256", T0)
    planted = generate_private_key("ES256")
    kid = thumbprint(public_jwk(planted.public_key()))
    (keys / f"{kid}.pem").write_bytes(private_key_to_pem(planted))
    (keys / f"{kid}.pem").chmod(0o600)  # tight: refused for being unencrypted, not for its mode
    body = json.loads((keys / KEYRING_FILE).read_text())
    for key in body["keys"]:
        key["state"] = "retiring" if key["state"] == "active" else key["state"]
    body["keys"].append(
        {"kid": kid, "alg": "ES256", "state": "active", "created_at": T0, "activated_at": T0}
    )
    (keys / KEYRING_FILE).write_text(json.dumps(body))
    config = _config(tmp_path, passphrase_env="SEKISHO_KEY_PASSPHRASE")
    code, out, err = _run(capsys, "keys", "jwks", "--config", config)
    assert code == 2
    assert "is not encrypted but keys.passphrase_env is set" in err
    assert kid not in out


def _set(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(body: dict[str, Any]) -> None:
        body["keys"][0][field] = value

    return edit


MALFORMED = {
    "created-far-future": _set("created_at", 10**20),
    "activated-negative": _set("activated_at", -1),
    "retire-after-float": _set("retire_after", 1e300),
    "created-string": _set("created_at", "yesterday"),
    "created-null": _set("created_at", None),
    "state-unknown": _set("state", "compromised"),
    "alg-number": _set("alg", 256),
    "kid-path": _set("kid", "../../etc/passwd"),
    "kid-object": _set("kid", {"a": 1}),
    "keys-object": lambda body: body.update(keys={"kid": "x"}),
    "key-not-object": lambda body: body.update(keys=[42]),
    "version-string": lambda body: body.update(version="1"),
    "not-an-object": lambda body: body.clear(),
}
# Raw keyring.json texts json.dumps could not even produce.
MALFORMED_TEXT = {"deeply-nested": '{"version": 1, "keys": ' + "[" * 100_000 + "]" * 100_000 + "}"}


@pytest.mark.parametrize("command", ["list", "jwks", "rotate"])
@pytest.mark.parametrize("damage", [*MALFORMED, *MALFORMED_TEXT])
def test_malformed_keyring_values_exit_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, damage: str
) -> None:
    keys = tmp_path / "keys"
    FileKeyStore(keys).init("ES256", T0)
    body = json.loads((keys / KEYRING_FILE).read_text())
    if damage in MALFORMED_TEXT:
        (keys / KEYRING_FILE).write_text(MALFORMED_TEXT[damage])
    else:
        MALFORMED[damage](body)
        (keys / KEYRING_FILE).write_text(json.dumps(body if body else []))
    code, _, err = _run(capsys, "keys", command, "--config", _config(tmp_path))
    assert code == 2, err
    assert err.startswith("sekisho: ")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("retention", "kept"), [pytest.param("delete", False, id="delete"), ("keep", True)]
)
def test_revoked_and_retired_private_keys_are_deleted_unless_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], retention: str, kept: bool
) -> None:
    config = _config(tmp_path, private_key_retention=retention)
    assert _run(capsys, "keys", "init", "--config", config)[0] == 0
    keys = tmp_path / "keys"
    active = next(k["kid"] for k in json.loads((keys / KEYRING_FILE).read_text())["keys"])
    revoke = ["keys", "revoke", "--reason", "test", "--config", config, "--", active]
    assert _run(capsys, *revoke)[0] == 0
    assert (keys / f"{active}.pem").exists() is kept
    states = {k["kid"]: k["state"] for k in json.loads((keys / KEYRING_FILE).read_text())["keys"]}
    published = [kid for kid, state in states.items() if state in ("active", "next")]
    assert all((keys / f"{kid}.pem").exists() for kid in published)
