"""[server] workers, [metrics], [tracing] and token_endpoint.replay_cache_url: the settings that
make several worker processes safe (fixed ports, a shared client-assertion replay cache)."""

import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sekisho.config import load_settings
from sekisho.errors import ConfigError
from sekisho.signing.material import public_jwk

BASE = """
[server]
issuer = "https://sekisho.example.com"
grpc_listen = "127.0.0.1:50051"
http_listen = "127.0.0.1:8080"
workers = {workers}
"""
SECRET_CLIENT = """
[[token_endpoint.clients]]
id = "agent"
secret_hash = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI"
"""
_JWK = public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()) | {"kid": "k1"}
CLIENT = SECRET_CLIENT + f"jwks = {json.dumps(json.dumps({'keys': [_JWK]}))}\n"  # private_key_jwt


@pytest.fixture(autouse=True)
def _no_sekisho_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SEKISHO_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("workers", [0, 1, 4])
def test_workers_accepted_with_fixed_ports(tmp_path: Path, workers: int) -> None:
    settings = load_settings(_write(tmp_path, BASE.format(workers=workers)))
    assert settings.server.workers == workers
    expected = workers or len(os.sched_getaffinity(0))
    assert settings.server.worker_count == expected


@pytest.mark.parametrize(("key", "port"), [("grpc_listen", ":50051"), ("http_listen", ":8080")])
def test_several_workers_need_fixed_ports(tmp_path: Path, key: str, port: str) -> None:
    text = BASE.format(workers=2).replace(port, ":0")
    with pytest.raises(ConfigError, match=rf"server\.{key} needs a fixed port"):
        load_settings(_write(tmp_path, text))


def test_one_worker_may_bind_port_zero(tmp_path: Path) -> None:
    text = BASE.format(workers=1).replace(":50051", ":0").replace(":8080", ":0")
    assert load_settings(_write(tmp_path, text)).server.grpc_listen == "127.0.0.1:0"


@pytest.mark.parametrize("workers", [0, 2])
def test_several_workers_with_clients_need_a_shared_replay_cache(
    tmp_path: Path, workers: int
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(_write(tmp_path, BASE.format(workers=workers) + CLIENT))
    message = str(raised.value)
    assert "token_endpoint.replay_cache_url" in message
    assert "server.workers" in message


def test_several_workers_with_secret_only_clients_need_no_replay_cache(tmp_path: Path) -> None:
    # client_secret_basic sends no assertion: nothing a shared replay cache would guard.
    settings = load_settings(_write(tmp_path, BASE.format(workers=2) + SECRET_CLIENT))
    assert settings.token_endpoint.replay_cache_url == ""


def test_several_workers_with_clients_and_redis_load(tmp_path: Path) -> None:
    text = BASE.format(workers=2) + CLIENT.replace(
        "[[token_endpoint.clients]]",
        '[token_endpoint]\nreplay_cache_url = "redis://127.0.0.1:6379/0"\n\n[[token_endpoint.clients]]',
    )
    settings = load_settings(_write(tmp_path, text))
    assert settings.token_endpoint.replay_cache_url == "redis://127.0.0.1:6379/0"


def test_replay_cache_url_must_be_redis(tmp_path: Path) -> None:
    text = BASE.format(workers=1) + '[token_endpoint]\nreplay_cache_url = "http://127.0.0.1:1"\n'
    with pytest.raises(ConfigError, match=r"token_endpoint\.replay_cache_url"):
        load_settings(_write(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        pytest.param("[metrics]\nmax_audiences = 0\n", "metrics.max_audiences", id="max-audiences"),
        pytest.param("[metrics]\nenable = true\n", "metrics.enable", id="metrics-unknown-key"),
        pytest.param("[tracing]\nsample_ratio = 2\n", "tracing.sample_ratio", id="sample-ratio"),
    ],
)
def test_observability_errors_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(_write(tmp_path, BASE.format(workers=1) + text))


def test_observability_defaults(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, BASE.format(workers=1)))
    assert settings.metrics.enabled is True
    assert settings.tracing.enabled is False


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sekisho.toml"
    path.write_text(text, encoding="utf-8")
    return path
