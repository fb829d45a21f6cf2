"""`sekisho keys` against the KMS backends (moto's standalone server): the same commands, the
same output, states in KMS aliases or wrapped key files."""

import json
import re
from pathlib import Path

import pytest
from sekisho.cli import main

from tests.integration.backends import kms_client, wrapping_key

pytestmark = pytest.mark.integration


def _config(tmp_path: Path, endpoint: str, backend: str) -> str:
    extra = (
        f'kms_wrapping_key_id = "{wrapping_key(endpoint)}"\n' if backend == "kms-wrapped" else ""
    )
    path = tmp_path / "sekisho.toml"
    path.write_text(
        f'[keys]\nbackend = "{backend}"\ndir = "keys"\nkms_region = "us-east-1"\n'
        f'kms_endpoint_url = "{endpoint}"\nkms_alias_prefix = "cli-{tmp_path.name}"\n{extra}'
    )
    return str(path)


@pytest.mark.parametrize("backend", ["kms", "kms-wrapped"])
def test_init_list_revoke_jwks(
    backend: str, tmp_path: Path, aws_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, aws_env, backend)
    assert main(["keys", "init", "--config", config]) == 0
    assert capsys.readouterr().out.count("created") == 2
    assert main(["keys", "list", "--config", config]) == 0
    listing = capsys.readouterr().out
    (active,) = re.findall(r"^(\S+)\s+ES256\s+active", listing, flags=re.MULTILINE)
    assert main(["keys", "revoke", "--reason", "test", "--config", config, "--", active]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == [
        "promote",
        "revoke",
        "create",
    ]
    assert main(["keys", "jwks", "--config", config]) == 0
    kids = [k["kid"] for k in json.loads(capsys.readouterr().out)["keys"]]
    assert active not in kids and len(kids) == 2
    if backend == "kms":
        names = [a["AliasName"] for a in kms_client(aws_env).list_aliases()["Aliases"]]
        assert f"alias/cli-{tmp_path.name}/revoked/{active}" in names
    else:  # [keys] private_key_retention = "delete": a revoked key's wrapped private key is gone
        assert not (tmp_path / "keys" / f"{active}.kms").exists()
    audit = (tmp_path / "keys" / "audit.log").read_text().splitlines()
    assert [json.loads(line)["action"] for line in audit][-3:] == ["promote", "revoke", "create"]
