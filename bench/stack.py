"""What `make bench` and `make soak` run against: IdP fixtures, a generated policy folder, a
`sekisho serve` subprocess, an optional OPA, and /proc readings of the server's processes.

Everything lives in one temporary folder and on free loopback ports; nothing depends on the
caller's shell beyond the repository's .venv and ./bin (the config names ./bin/opa itself, so a
bench started without bin/ on PATH runs as under `make bench`).
"""

import base64
import contextlib
import hashlib
import http.server
import json
import os
import random
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from policy_latency import GROUPS, opa_binary, registry

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests/loopback.py: ports, waits and stops shared with the tests

from tests.loopback import ServerStartError, free_port, http_ok, stop_process, wait_until  # noqa: E402

SEKISHO = REPO / ".venv" / "bin" / "sekisho"
OPA = REPO / "bin" / "opa"
USERS = 1000
DOWNSTREAMS = 1000
AUDIENCES_PER_USER = 3
TOKEN_LIFETIME = 4 * 3600
# `server_toml` under which every call is refused by the caller's token bucket (refusal cost).
REFUSE_ALL = "caller_rate_per_second = 0.001\ncaller_burst = 1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Idp:
    """An RS256 IdP: one RSA-2048 key, its JWKS served on loopback, tokens signed on demand."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.key.public_key().public_numbers()
        self.kid = hashlib.sha256(_b64(numbers.n).encode()).hexdigest()[:16]
        jwk = {"kty": "RSA", "n": _b64(numbers.n), "e": _b64(numbers.e)}
        body = json.dumps({"keys": [jwk | {"kid": self.kid, "alg": "RS256", "use": "sig"}]})
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        handler = _static_handler(body.encode())
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    def token(self, sub: str, groups: list[str], now: int, serial: int) -> str:
        claims = {
            "iss": self.issuer,
            "sub": sub,
            "aud": "agent-app",
            "iat": now,
            "exp": now + TOKEN_LIFETIME,
            "auth_time": now,
            "email": f"{sub}@example.com",
            "groups": groups,
            "jti": f"{sub}-{serial}",
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _static_handler(body: bytes) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    return Handler


@dataclass
class Workload:
    """The registry and, per user, 3 groups and 3 audiences whose grants they hold."""

    data: dict[str, Any]
    users: list[tuple[str, list[str], list[str]]]


def workload(seed: int = 6) -> Workload:
    """1,000 users x 3 groups; each asks for 3 downstreams that grant one of their groups
    something (default scopes, no consent, not tenant-bound), so every exchange is a grant."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    data = registry(DOWNSTREAMS, rng)
    data["sekisho"]["registry"]["decision_cache_seconds"] = 60
    downstreams = data["sekisho"]["registry"]["downstreams"]
    eligible = [
        (audience, set(entry["group_grants"]))
        for n, (audience, entry) in enumerate(downstreams.items())
        if n % 5 != 1 and n % 10 != 7
    ]
    users = []
    while len(users) < USERS:
        groups = rng.sample(GROUPS, 3)
        matching = [aud for aud, granted in eligible if granted & set(groups)]
        if len(matching) >= AUDIENCES_PER_USER:
            users.append((f"user{len(users)}", groups, rng.sample(matching, AUDIENCES_PER_USER)))
    return Workload(data=data, users=users)


def exchange_messages(idp: Idp, load: Workload, tokens_per_user: int = 1) -> list[dict[str, Any]]:
    """ExchangeToken requests (ghz JSON): each user's token(s) x that user's audiences."""
    now = int(time.time())
    messages = []
    for serial in range(tokens_per_user):
        for sub, groups, audiences in load.users:
            token = idp.token(sub, groups, now, serial)
            messages.extend({"subject_token": token, "audience": aud} for aud in audiences)
    return messages


@dataclass
class Settings:
    """One server configuration of the benchmark."""

    workers: int = 1
    engine: str = "embedded"
    caches: bool = True
    metrics: bool = True
    log_level: str = "INFO"
    extra: dict[str, str] = field(default_factory=dict)
    # [overload] enabled: off by default here, so throughput benches measure the pipeline.
    overload: bool = False


def policy_folder(root: Path, load: Workload) -> Path:
    folder = root / "policies"
    if not folder.exists():
        shutil.copytree(REPO / "policies" / "sekisho", folder / "sekisho")
        shutil.copytree(REPO / "policies" / "data", folder / "data")
        (folder / "data" / "registry.json").write_text(json.dumps(load.data))
    return folder


def write_config(
    root: Path, idp: Idp, settings: Settings, opa_url: str = "", *, server_toml: str = ""
) -> Path:
    """root/sekisho.toml on free loopback ports; `server_toml` lines go into [server]."""
    grpc_port, http_port = free_port(), free_port()
    entries = "0" if not settings.caches else "10000"
    # With TLS on the listeners the issuer (served by the HTTP listener) is https: Sekisho
    # refuses an http issuer naming a TLS-only listener.
    scheme = "https" if "tls_cert_file" in server_toml else "http"
    text = f"""
[server]
{server_toml}
grpc_listen = "127.0.0.1:{grpc_port}"
http_listen = "127.0.0.1:{http_port}"
issuer = "{scheme}://127.0.0.1:{http_port}"
workers = {settings.workers}

[[trust.issuers]]
issuer = "{idp.issuer}"
jwks_uri = "{idp.jwks_uri}"
audiences = ["agent-app"]
algorithms = ["RS256"]

[policy]
engine = "{settings.engine}"
path = "policies"
watch = false
# Named, not looked up: the server runs in a temporary folder, so its own fallback (./bin/opa)
# never finds the project's, and PATH has bin/ only under `make bench`.
opa_binary = "{opa_binary()}"
{f'opa_url = "{opa_url}"' if opa_url else ""}

[keys]
backend = "file"
dir = "keys"
algorithm = "ES256"

[cache]
subject_max_entries = {entries}
decision_max_entries = {entries}

[metrics]
enabled = {str(settings.metrics).lower()}
listen = "127.0.0.1:{free_port()}"

[logging]
level = "{settings.log_level}"

[overload]
enabled = {str(settings.overload).lower()}
"""
    path = root / "sekisho.toml"
    path.write_text(text)
    return path


@dataclass
class Server:
    """A running `sekisho serve`."""

    process: subprocess.Popen[bytes]
    grpc_target: str
    http_url: str
    ready_seconds: float

    def pids(self) -> list[int]:
        """The serving process and every descendant (workers)."""
        return _tree(self.process.pid)

    def cpu_seconds(self) -> float:
        return sum(_cpu(pid) for pid in self.pids())

    def rss_bytes(self) -> list[int]:
        """RSS of each process that serves (the workers; the process itself with workers = 1)."""
        pids = self.pids()
        workers = pids[1:] if len(pids) > 1 else pids
        return [_rss(pid) for pid in workers]

    def stop(self) -> None:
        stop_process(self.process, timeout=30)


def start_server(
    root: Path,
    config: Path,
    cpus: str = "",
    tls: ssl.SSLContext | None = None,
    *,
    source: str = "",
    hook: str = "",
) -> Server:
    """`sekisho serve` (pinned to `cpus` with taskset when given); returns once /readyz is 200
    (over https with `tls` when the config's listeners terminate TLS). `source`: a checkout whose
    server/ the child imports (PYTHONPATH; A/B against another revision). `hook`: a script run as
    `python HOOK CONFIG` instead of `sekisho serve` (else $BENCH_SRV, when set).

    Start-to-ready is measured from the exec to the first 200 from /readyz.
    """
    text = config.read_text()
    grpc = text.split('grpc_listen = "', 1)[1].split('"', 1)[0]
    http_base = text.split('http_listen = "', 1)[1].split('"', 1)[0]
    env = dict(os.environ, PYTHONPATH=str(Path(source) / "server")) if source else None
    if not (root / "keys").exists():
        command = [SEKISHO, "keys", "init", "--config", config]
        subprocess.run(command, check=True, cwd=root, env=env)
    command = [str(SEKISHO), "serve", "--config", str(config)]
    hook = hook or os.environ.get("BENCH_SRV", "")
    if hook:
        command = [str(REPO / ".venv/bin/python"), hook, str(config)]
    if cpus:
        command = ["taskset", "-c", cpus, *command]
    log = (root / "server.log").open("ab")
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"{'https' if tls else 'http'}://{http_base}"
    try:
        wait_until(
            lambda: http_ok(f"{url}/readyz", context=tls),
            name="sekisho serve",
            process=process,
            seconds=60,
            interval=0.01,
            detail=lambda: f"see {root / 'server.log'}",
        )
    except ServerStartError as error:
        process.kill()
        raise SystemExit(str(error)) from error
    return Server(process, grpc, url, time.perf_counter() - started)


def serve_variant(
    root: Path,
    idp: Idp,
    name: str,
    settings: Settings,
    *,
    server_toml: str = "",
    more_toml: str = "",
    opa_url: str = "",
    cpus: str = "",
    tls: ssl.SSLContext | None = None,
    source: str = "",
    hook: str = "",
) -> Server:
    """One server of a comparison, in its own folder root/NAME (log, keys) sharing root's policy
    folder (`policy_folder(root, ...)` first): write_config with `server_toml`, `more_toml`
    appended (more tables), then start_server."""
    folder = root / name
    folder.mkdir()
    (folder / "policies").symlink_to(root / "policies")
    config = write_config(folder, idp, settings, opa_url, server_toml=server_toml)
    if more_toml:
        config.write_text(config.read_text() + "\n" + more_toml + "\n")
    return start_server(folder, config, cpus, tls, source=source, hook=hook)


@contextlib.contextmanager
def opa_server(root: Path, cpus: str = "") -> Iterator[str]:
    """`opa run --server` on a free loopback port (decision logs off); yields its URL."""
    port = free_port()
    command = [str(OPA), "run", "--server", "--addr", f"127.0.0.1:{port}"]
    if cpus:
        command = ["taskset", "-c", cpus, *command]
    with (root / "opa.log").open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        ready = lambda: http_ok(f"{url}/health")  # noqa: E731
        wait_until(ready, name="opa", process=process, seconds=20, interval=0.05)
        yield url
    finally:
        stop_process(process, timeout=10)


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                children.setdefault(int(_stat_fields(int(entry.name))[1]), []).append(
                    int(entry.name)
                )
    found, queue = [], [root]
    while queue:
        pid = queue.pop(0)
        found.append(pid)
        queue.extend(sorted(children.get(pid, [])))
    return found


def _cpu(pid: int) -> float:
    try:
        fields = _stat_fields(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except OSError:
        return 0
