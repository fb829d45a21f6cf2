"""The `sekisho` command line: argument handling and refusals that must not be silent."""

from pathlib import Path

import pytest
from sekisho.cli import main
from sekisho.config import load_settings
from sekisho.keystores import build_kms_client
from sekisho.signing.kms_client import Boto3KmsClient


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "sekisho.toml"
    path.write_text(f'[keys]\ndir = "mykeys"\n{extra}')
    return path


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["keys", "init", "--config", "{cfg}"], id="config-last"),
        pytest.param(["keys", "--config", "{cfg}", "init"], id="config-before-subcommand"),
    ],
)
def test_config_is_honoured_wherever_it_appears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    config = _config(tmp_path)
    assert main([a.replace("{cfg}", str(config)) for a in argv]) == 0
    assert (tmp_path / "mykeys" / "keyring.json").exists()
    assert not (tmp_path / "var").exists()  # the default location was not used


def test_kms_backend_without_a_region_names_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    config = _config(tmp_path, 'backend = "kms"\n')
    assert main(["keys", "init", "--config", str(config)]) == 2
    assert "keys.kms_region" in capsys.readouterr().err
    assert not (tmp_path / "mykeys").exists()


@pytest.mark.parametrize(
    ("kms_region", "env", "expected"),
    [
        pytest.param("", {"AWS_REGION": "eu-west-3"}, "eu-west-3", id="AWS_REGION-alone"),
        pytest.param(
            "",
            {"AWS_REGION": "eu-west-3", "AWS_DEFAULT_REGION": "us-east-2"},
            "eu-west-3",
            id="AWS_REGION-over-AWS_DEFAULT_REGION",
        ),
        pytest.param("", {"AWS_DEFAULT_REGION": "us-east-2"}, "us-east-2", id="boto3-default"),
        pytest.param("ap-south-1", {"AWS_REGION": "eu-west-3"}, "ap-south-1", id="kms_region"),
    ],
)
def test_the_kms_region_comes_from_the_setting_then_aws_region(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kms_region: str,
    env: dict[str, str],
    expected: str,
) -> None:
    # botocore alone reads AWS_DEFAULT_REGION only: with just AWS_REGION set (as the docs and
    # the old error message said), `sekisho keys init` refused 'You must specify a region'.
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = _config(tmp_path, f'backend = "kms"\nkms_region = "{kms_region}"\n')
    client = build_kms_client(load_settings(config))
    assert isinstance(client, Boto3KmsClient)
    assert client._kms.meta.region_name == expected


def test_unknown_config_key_is_named_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[server]\ngrpc_listn = "x"\n')
    assert main(["keys", "list", "--config", str(config)]) == 2
    assert "server.grpc_listn" in capsys.readouterr().err
