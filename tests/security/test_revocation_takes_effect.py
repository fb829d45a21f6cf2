"""Issue 19, class 1: a revocation either takes effect or shouts.

Real processes, real permissions. The service runs as root *without* the capabilities that let
root ignore file modes (setpriv drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH: the interpreter
lives under /root, so an unprivileged uid could not even start it); the security team's CLI
runs as another uid, so the key files it writes (0600, owned by that uid) are unreadable to the
service, exactly the incident of the issue. The revoked kid must still leave
signing and the JWKS at once, /readyz and gRPC health must say when no key can sign, the CLI
must exit 1 naming the unreadable files and the replica that did not pick the change up, and
the service must recover by itself (retry with backoff) once the files are fixed.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.harness import POLICIES
from tests.integration.test_cli_walkthrough import wait_http
from tests.loopback import free_port
from tests.opa import with_opa_on_path

pytestmark = pytest.mark.integration

SEKISHO = [sys.executable, "-m", "sekisho"]
REQUEST_GUARD_SECONDS = 10  # each probe's timeout: a hang guard (2 s raised under load ~10)
OPERATOR_UID = 4242
# The service: mode bits apply to it like to any user.
AS_SERVICE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
# The operator: another uid, allowed to read and write anything (to reach the interpreter).
AS_OPERATOR = [
    "setpriv", f"--reuid={OPERATOR_UID}", f"--regid={OPERATOR_UID}", "--clear-groups",
    "--inh-caps=+dac_override,+dac_read_search",
    "--ambient-caps=+dac_override,+dac_read_search", "--",
]  # fmt: skip


def _config(root: Path, idp: int, grpc_port: int, http: int) -> Path:
    config = root / "sekisho.toml"
    config.write_text(
        f"""
[server]
grpc_listen = "127.0.0.1:{grpc_port}"
http_listen = "127.0.0.1:{http}"
issuer = "http://127.0.0.1:{http}"
shutdown_grace_seconds = 1.0

[[trust.issuers]]
issuer = "http://127.0.0.1:{idp}"
discovery_url = "http://127.0.0.1:{idp}/.well-known/openid-configuration"
audiences = ["sekisho-dev"]

[policy]
path = "{POLICIES}"

[keys]
dir = "keys"
retry_max_seconds = 1.0
# `nobody` cannot read the operator's 0600 files either: the CLI must say so.
service_user = "nobody"
replica_urls = ["http://127.0.0.1:{http}"]
# The replica never picks the change up here (it cannot load the new key), so the CLI reports
# what it sees when this runs out: within 3 s a loaded host's service may not have reloaded
# yet ("still publishes", not "does not publish").
pickup_wait_seconds = 10.0
"""
    )
    config.chmod(0o644)
    return config


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_GUARD_SECONDS) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _jwks_kids(http: int) -> set[str]:
    url = f"http://127.0.0.1:{http}/.well-known/jwks.json"
    with urllib.request.urlopen(url, timeout=REQUEST_GUARD_SECONDS) as response:
        return {k["kid"] for k in json.loads(response.read())["keys"]}


def _grpc_serving(port: int) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=REQUEST_GUARD_SECONDS)
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _until(probe: object, seconds: float = 30.0) -> None:
    """Poll `probe` until it holds; `seconds` is a hang guard (a key file event, the retry loop's
    backoff and a health flip in a subprocess take seconds on a loaded host)."""
    deadline = time.monotonic() + seconds
    while not probe():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def _keys(root: Path) -> dict[str, list[str]]:
    body = json.loads((root / "keys" / "keyring.json").read_text())
    states: dict[str, list[str]] = {}
    for key in body["keys"]:
        states.setdefault(key["state"], []).append(key["kid"])
    return states


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to run the service and the CLI as different users",
)
def test_revoke_the_service_cannot_read_is_neither_used_nor_published(tmp_path: Path) -> None:
    world_dir = tmp_path
    idp, grpc_port, http = free_port(), free_port(), free_port()
    config = str(_config(world_dir, idp, grpc_port, http))
    env = with_opa_on_path({**os.environ, "PYTHONUNBUFFERED": "1", "HOME": str(world_dir)})
    run = {"cwd": world_dir, "env": env, "capture_output": True, "text": True, "timeout": 60}
    init = subprocess.run([*SEKISHO, "keys", "init", "--config", config], check=False, **run)
    assert init.stdout.count("created") == 2, init.stderr
    idp_args = ["--listen", f"127.0.0.1:{idp}", "--dir", str(world_dir / "idp")]
    devidp = subprocess.Popen([*SEKISHO, "dev-idp", "serve", *idp_args], cwd=world_dir, env=env)
    server = subprocess.Popen(
        [*AS_SERVICE, *SEKISHO, "serve", "--config", config], cwd=world_dir, env=env
    )

    def token_kid() -> str:
        token = subprocess.run(
            [*SEKISHO, "dev-idp", "token", *idp_args, "--sub", "alice", "--groups", "sales"],
            check=True,
            **run,
        ).stdout.strip()
        exchange = subprocess.run(
            [*SEKISHO, "exchange", "--config", config, "--subject-token", "-",
             "--audience", "https://crm-as.example.com", "--scope", "crm.read",
             "--timeout", "30"],  # a hang guard, not the default 5 s (7d77b28)
            input=token, check=False, **run,
        )  # fmt: skip
        return str(json.loads(exchange.stdout)["header"]["kid"]) if exchange.returncode == 0 else ""

    revoke = [
        *AS_OPERATOR,
        *SEKISHO,
        "keys",
        "revoke",
        "--reason",
        "leaked",
        "--config",
        config,
        "--",
    ]
    try:
        wait_http(f"http://127.0.0.1:{idp}/.well-known/openid-configuration")
        wait_http(f"http://127.0.0.1:{http}/readyz")
        (first,), (second,) = _keys(world_dir)["active"], _keys(world_dir)["next"]
        assert token_kid() == first

        # `second` (readable) signs next; the new next key file is the operator's, 0600.
        done = subprocess.run([*revoke, first], check=False, **run)
        assert done.returncode == 1, done.stderr
        assert "CANNOT read" in done.stderr
        assert "NOT picked up: does not publish" in done.stderr
        _until(lambda: first not in _jwks_kids(http))
        assert token_kid() == second
        assert _status(f"http://127.0.0.1:{http}/readyz") == 200

        # Revoke `second` too: the only key left to sign is one the service cannot read.
        done = subprocess.run([*revoke, second], check=False, **run)
        assert done.returncode == 1, done.stderr
        _until(lambda: _status(f"http://127.0.0.1:{http}/readyz") == 503)
        _until(lambda: not _grpc_serving(grpc_port))
        assert _jwks_kids(http).isdisjoint({first, second})
        assert token_kid() == ""  # UNAVAILABLE, never a token signed by a revoked kid

        # The operator fixes ownership; the retry loop recovers without a file event.
        for path in (world_dir / "keys").iterdir():
            os.chown(path, 0, 0)
        _until(lambda: _status(f"http://127.0.0.1:{http}/readyz") == 200)
        _until(lambda: _grpc_serving(grpc_port))
        (active,) = _keys(world_dir)["active"]
        assert token_kid() == active
        assert _jwks_kids(http).isdisjoint({first, second})
    finally:
        for process in (server, devidp):
            process.terminate()
            process.wait(timeout=15)
