"""A real OPA server for tests: `opa run --server` on a free loopback port, stopped afterwards.

The binary is `opa` on PATH (`make test` puts ./bin first) or ./bin/opa. Tests that need OPA
fail, never skip, when it is missing: CI must run them.
"""

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def opa_binary() -> Path:
    found = shutil.which("opa")
    if found:
        return Path(found)
    local = REPO / "bin" / "opa"
    if not local.is_file():
        pytest.fail(f"OPA is required: no opa on PATH and no {local} (run `make setup`)")
    return local


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OpaServer:
    """One `opa run --server` process; restartable on the same port."""

    def __init__(
        self, log_path: Path, *, decision_logs: bool = False, load: tuple[Path, ...] = ()
    ) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._decision_logs = decision_logs
        self._load = load
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "OpaServer":
        args = [str(opa_binary()), "run", "--server", "--addr", f"127.0.0.1:{self.port}"]
        if self._decision_logs:
            args += ["--set", "decision_logs.console=true"]
        args += [str(path) for path in self._load]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self._wait_healthy()
        return self

    def _wait_healthy(self, seconds: float = 15.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                pytest.fail(f"opa exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        pytest.fail(f"opa did not become healthy on {self.url}")

    def kill(self) -> None:
        """SIGKILL, as a crashed sidecar would go."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
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
        with urllib.request.urlopen(f"{self.url}/v1/policies", timeout=5) as response:
            return [entry["id"] for entry in json.load(response)["result"]]

    def data(self, path: str) -> object:
        with urllib.request.urlopen(f"{self.url}/v1/data/{path}", timeout=5) as response:
            return json.load(response).get("result")
