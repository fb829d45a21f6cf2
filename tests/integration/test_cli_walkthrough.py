"""The README walkthrough as real processes: keys init, dev IdP, serve, token, exchange, SIGTERM."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import POLICIES
from tests.loopback import free_port, http_ok, wait_until
from tests.opa import with_opa_on_path

pytestmark = pytest.mark.integration

SEKISHO = [sys.executable, "-m", "sekisho"]


def wait_http(url: str, seconds: float = 60.0) -> None:
    """Return once GET `url` answers 200. Raises: ServerStartError after `seconds` (a hang
    guard: a `sekisho serve` start took 2-4 s here with other sessions' load, and 15 s was
    only ~4 of those at load ~10)."""
    wait_until(lambda: http_ok(url), name=url, seconds=seconds, interval=0.1)


def _write_config(tmp_path: Path, idp_port: int, grpc_port: int, http_port: int) -> Path:
    config = tmp_path / "sekisho.toml"
    config.write_text(
        f"""
[server]
grpc_listen = "127.0.0.1:{grpc_port}"
http_listen = "127.0.0.1:{http_port}"
issuer = "http://127.0.0.1:{http_port}"
shutdown_grace_seconds = 2.0

[[trust.issuers]]
issuer = "http://127.0.0.1:{idp_port}"
discovery_url = "http://127.0.0.1:{idp_port}/.well-known/openid-configuration"
audiences = ["sekisho-dev"]

[policy]
path = "{POLICIES}"

[keys]
dir = "keys"
"""
    )
    return config


def test_readme_walkthrough_and_graceful_sigterm(tmp_path: Path) -> None:
    idp_port, grpc_port, http_port = free_port(), free_port(), free_port()
    config = str(_write_config(tmp_path, idp_port, grpc_port, http_port))
    env = with_opa_on_path({**os.environ, "PYTHONUNBUFFERED": "1"})
    run = {"cwd": tmp_path, "env": env, "capture_output": True, "text": True, "timeout": 60}
    init = subprocess.run([*SEKISHO, "keys", "init", "--config", config], check=True, **run)
    assert init.stdout.count("created") == 2
    idp_args = ["--listen", f"127.0.0.1:{idp_port}", "--dir", str(tmp_path / "idp")]
    idp = subprocess.Popen([*SEKISHO, "dev-idp", "serve", *idp_args], cwd=tmp_path, env=env)
    server = subprocess.Popen(
        [*SEKISHO, "serve", "--config", config],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{idp_port}/.well-known/openid-configuration")
        wait_http(f"http://127.0.0.1:{http_port}/readyz")
        token = subprocess.run(
            [*SEKISHO, "dev-idp", "token", *idp_args, "--sub", "alice", "--groups", "sales"],
            check=True,
            **run,
        ).stdout.strip()
        exchange = subprocess.run(
            [
                *SEKISHO,
                "exchange",
                "--config",
                config,
                "--subject-token",
                "-",
                "--audience",
                "https://crm-as.example.com",
                "--scope",
                "crm.read",
                # A hang guard, not the default 5 s: a fresh process's first call to a service
                # started seconds ago, on a loaded host (single-RPC guards of 5 s: 7d77b28).
                "--timeout",
                "30",
            ],
            input=token,
            check=True,
            **run,
        )
        report = json.loads(exchange.stdout)
        assert report["verified_with_jwks"] is True
        assert report["header"]["typ"] == "oauth-id-jag+jwt"
        assert report["claims"]["scope"] == "crm.read"
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)  # a hang guard: it drains in ~2 s
        assert server.returncode == 0
        lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
        events = [line["event"] for line in lines]
        assert events[-2:] == ["service_stopping", "service_stopped"]
        exchanged = next(line for line in lines if line["event"] == "token_exchanged")
        assert exchanged["request_id"]  # every request's log lines carry its request id
        assert token not in stderr  # the subject token never reaches the logs
    finally:
        for process in (server, idp):
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
