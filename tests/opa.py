"""A real OPA server for tests: `opa run --server` on a free loopback port, stopped afterwards.

The binary is the one the service finds from the repository (sekisho.policy.toolchain.find_opa):
`[policy] opa_binary` (here SEKISHO_POLICY__OPA_BINARY), else `opa` on PATH (`make test` puts
bin/ first), else bin/opa. Tests that need OPA fail, never skip, when it is missing: CI must run
them.
"""

import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import pytest
from sekisho.errors import ConfigError
from sekisho.policy.toolchain import find_opa

from tests.loopback import ServerStartError, free_port, http_ok, stop_process, wait_until

REPO = Path(__file__).resolve().parent.parent
OPA_BINARY_VARIABLE = "SEKISHO_POLICY__OPA_BINARY"  # [policy] opa_binary, as Settings reads it


def opa_binary() -> Path:
    """The opa a service run from the repository would use (find_opa with the repository as its
    folder). Fails the test when there is none."""
    try:
        return find_opa(os.environ.get(OPA_BINARY_VARIABLE, ""), REPO)
    except ConfigError as exc:
        pytest.fail(f"OPA is required: {exc}")


def with_opa_on_path(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with opa_binary()'s folder first on PATH, as `make test` runs: a `sekisho` started in
    another folder (no bin/ there) finds the same opa whatever PATH pytest was given."""
    return {**env, "PATH": os.pathsep.join([str(opa_binary().parent), env.get("PATH", "")])}


class OpaServer:
    """One `opa run --server` process; restartable on the same port."""

    def __init__(
        self,
        log_path: Path,
        *,
        decision_logs: bool = False,
        load: tuple[Path, ...] = (),
        token: str = "",
        tls: tuple[Path, Path, Path] | None = None,
        bundle: Path | None = None,
    ) -> None:
        """`token`: run with OPA's token authentication and the deploy/ authz policy;
        `tls`: (certificate, key, CA file) to serve https; `bundle`: a bundle folder OPA loads
        as a bundle and reloads when its files change (`--watch --bundle`)."""
        self.port = free_port()
        self.log_path = log_path
        self._decision_logs = decision_logs
        self._load = load
        self._bundle = bundle
        self.token = token
        self._tls = tls
        self._context = ssl.create_default_context(cafile=str(tls[2])) if tls else None
        self._process: subprocess.Popen[bytes] | None = None

    def _auth_args(self) -> tuple[list[str], dict[str, str]]:
        tls: list[str] = []
        if self._tls is not None:
            cert, key, _ = self._tls
            tls = ["--tls-cert-file", str(cert), "--tls-private-key-file", str(key)]
        if not self.token:
            return tls, dict(os.environ)
        authz = self.log_path.parent / "opa-authz.rego"
        authz.write_text(deployed_authz_policy(), encoding="utf-8")
        args = [*tls, "--authentication=token", "--authorization=basic", str(authz)]
        return args, {**os.environ, "SEKISHO_OPA_TOKEN": self.token}

    def request(self, method: str, path: str, body: bytes | None = None) -> object:
        """One API call with the token (when set); the JSON answer, or None for no body."""
        request = urllib.request.Request(f"{self.url}{path}", data=body, method=method)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        # A hang guard, not 5 s: OPA may be compiling a publish (seconds at load ~10).
        with urllib.request.urlopen(request, timeout=30, context=self._context) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> "OpaServer":
        args = [str(opa_binary()), "run", "--server", "--addr", f"127.0.0.1:{self.port}"]
        if self._decision_logs:
            args += ["--set", "decision_logs.console=true"]
        args += [str(path) for path in self._load]
        if self._bundle is not None:
            args += ["--watch", "--bundle", str(self._bundle)]
        auth, env = self._auth_args()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                args + auth, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        self._wait_healthy()
        return self

    def _wait_healthy(self, seconds: float = 60.0) -> None:  # a hang guard, as wait_http's
        assert self._process is not None
        health = f"{self.url}/health"
        try:
            wait_until(
                lambda: http_ok(health, context=self._context),
                name=f"opa on {self.url}",
                process=self._process,
                seconds=seconds,
                interval=0.05,
                detail=lambda: self.log_path.read_text(errors="replace")[-2000:],
            )
        except ServerStartError as error:
            pytest.fail(str(error))

    def kill(self) -> None:
        """SIGKILL, as a crashed sidecar would go."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process, timeout=10)
            self._process = None

    def decision_ids_logged(self) -> set[str]:
        """decision_id of every decision OPA's console decision logger wrote."""
        ids = set()
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("msg") == "Decision Log":
                ids.add(str(entry.get("decision_id")))
        return ids

    def policy_ids(self) -> list[str]:
        body = self.request("GET", "/v1/policies")
        assert isinstance(body, dict)
        return [entry["id"] for entry in body["result"]]

    def data(self, path: str) -> object:
        body = self.request("GET", f"/v1/data/{path}")
        assert isinstance(body, dict)
        return body.get("result")


def deployed_authz_policy() -> str:
    """The system.authz policy deploy/overlays/opa-server gives the OPA sidecar (tested as
    shipped)."""
    import yaml

    patch = REPO / "deploy" / "overlays" / "opa-server" / "configmap-patch.yaml"
    configmap = yaml.safe_load(patch.read_text(encoding="utf-8"))
    return str(configmap["data"]["authz.rego"])
