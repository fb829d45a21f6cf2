"""A real Keycloak (the `org.keycloak:keycloak-quarkus-dist` zip from Maven Central) on loopback.

Installed by `python -m tests.keycloak install` (`make keycloak`, part of `make test`) into a cache
folder reused across runs and clones ($KEYCLOAK_DIST_CACHE, default ~/.cache/sekisho), checked against
Maven Central's SHA-1; started (the image built once at install: H2 in memory) on a free loopback port by the
session-scoped `keycloak` fixture (tests/integration/test_keycloak.py), one per test session.
Realms, clients, groups and users are provisioned through the admin REST API.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.loopback import free_port, http_ok, stop_process, wait_until

VERSION = "26.5.6"
MAVEN = "https://repo1.maven.org/maven2/org/keycloak/keycloak-quarkus-dist"
ADMIN_USER, ADMIN_PASSWORD = "admin", "admin-password"
STARTUP_SECONDS = 240  # first start on a busy 2-core machine measured 128 s; later ones are faster
# Keycloak 26 runs on Java 17 or 21 (https://www.keycloak.org/server/installation). Temurin 25
# (JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64) passes test_keycloak.py too but started slower
# here (64 s vs 48 s, README "Development"), so it is not picked unless JAVA_HOME names it.
JAVA_HOMES = ("/usr/lib/jvm/java-21-openjdk-amd64", "/usr/lib/jvm/java-17-openjdk-amd64")


def cache_dir() -> Path:
    return Path(os.environ.get("KEYCLOAK_DIST_CACHE", Path.home() / ".cache" / "sekisho"))


def home() -> Path:
    """Where the unpacked distribution lives (bin/kc.sh inside)."""
    return cache_dir() / f"keycloak-{VERSION}"


def _log(message: str) -> None:
    print(f"keycloak: {message}", file=sys.stderr, flush=True)


def install() -> Path:
    """Download (once), verify and unpack the distribution; return its folder."""
    target = home()
    if (target / "bin" / "kc.sh").exists():
        return target
    cache_dir().mkdir(parents=True, exist_ok=True)
    archive = cache_dir() / f"keycloak-quarkus-dist-{VERSION}.zip"
    url = f"{MAVEN}/{VERSION}/keycloak-quarkus-dist-{VERSION}.zip"
    if not archive.exists():
        _log(f"downloading {url} (about 165 MB, once)")
        started = time.monotonic()
        partial = archive.with_suffix(".part")
        urllib.request.urlretrieve(url, partial)  # Maven Central over https
        partial.rename(archive)
        _log(f"downloaded in {time.monotonic() - started:.0f} s")
    with urllib.request.urlopen(f"{url}.sha1", timeout=30) as response:
        expected = response.read().decode().split()[0]
    if hashlib.sha1(archive.read_bytes()).hexdigest() != expected:  # noqa: S324 (Maven's checksum)
        archive.unlink()
        raise RuntimeError(f"{archive.name} does not match Maven Central's SHA-1: deleted")
    with tempfile.TemporaryDirectory(dir=cache_dir()) as scratch:
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(scratch)
        unpacked = Path(scratch) / f"keycloak-{VERSION}"
        for script in (unpacked / "bin").glob("*.sh"):
            script.chmod(0o755)
        _build(unpacked)
        unpacked.rename(target)
    _log(f"installed in {target}")
    return target


def _build(kc_home: Path) -> None:
    # Keycloak's "build" step (Quarkus augmentation) takes a minute or two on a busy machine; done
    # once here, every start is `start --optimized` and skips it.
    _log("building the server image (H2 in memory), once")
    started = time.monotonic()
    subprocess.run(
        [str(kc_home / "bin" / "kc.sh"), "build", "--db=dev-mem"],
        env={**os.environ, "JAVA_HOME": java_home()},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    _log(f"built in {time.monotonic() - started:.0f} s")


def java_home() -> str:
    """$JAVA_HOME if set, else the first supported JDK present."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    for candidate in JAVA_HOMES:
        if Path(candidate, "bin", "java").exists():
            return candidate
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("no Java 17 or 21 found for Keycloak: install a JDK or set JAVA_HOME")
    return str(Path(java).resolve().parents[1])


@dataclass
class Keycloak:
    """A running Keycloak and an admin REST client for it."""

    base: str
    process: "subprocess.Popen[bytes]"
    log: Path

    def issuer(self, realm: str) -> str:
        return f"{self.base}/realms/{realm}"

    def stop(self) -> None:
        stop_process(self.process, timeout=30)

    def request(
        self, method: str, path: str, body: Any = None, *, form: dict[str, str] | None = None
    ) -> Any:
        """One admin (or token) request; JSON in, JSON out."""
        headers: dict[str, str] = {}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            headers["Authorization"] = f"Bearer {self._admin_token()}"
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base + path, data, headers, method=method)
        with urllib.request.urlopen(request, timeout=60) as response:  # loopback only
            raw = response.read()
        return json.loads(raw) if raw else None

    def _admin_token(self) -> str:
        tokens = self.request(
            "POST",
            "/realms/master/protocol/openid-connect/token",
            form={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": ADMIN_USER,
                "password": ADMIN_PASSWORD,
            },
        )
        return str(tokens["access_token"])

    def password_grant(
        self, realm: str, client_id: str, secret: str, username: str, password: str
    ) -> dict[str, Any]:
        """Tokens for a user (Resource Owner Password Credentials, enabled per client in tests)."""
        result: dict[str, Any] = self.request(
            "POST",
            f"/realms/{realm}/protocol/openid-connect/token",
            form={
                "grant_type": "password",
                "client_id": client_id,
                "client_secret": secret,
                "username": username,
                "password": password,
                "scope": "openid",
            },
        )
        return result


def start(workdir: Path) -> Keycloak:
    """Start Keycloak in dev mode on a free loopback port; wait until it serves the master realm."""
    kc_home = install()
    port = free_port()
    log = workdir / "keycloak.log"
    env = {
        **os.environ,
        "JAVA_HOME": java_home(),
        "KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USER,
        "KC_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        # C1 only: a test Keycloak lives for minutes; measured 78 s vs 109 s to serve (noisy box).
        "JAVA_OPTS_APPEND": f"{os.environ.get('JAVA_OPTS_APPEND', '')} -XX:TieredStopAtLevel=1",
    }
    # The image built by install() (H2 in memory, so every session starts from an empty
    # database): plain HTTP on loopback, no hostname checks, nothing persisted.
    # setpriv --pdeathsig: if the test session dies without its finalizers (SIGKILL, a CI
    # timeout), kc.sh gets SIGTERM and forwards it to Java, so no Keycloak outlives its session.
    guard = ["setpriv", "--pdeathsig", "TERM"] if shutil.which("setpriv") else []
    command = [
        *guard,
        str(kc_home / "bin" / "kc.sh"),
        "start",
        "--optimized",
        "--http-enabled=true",
        "--http-host=127.0.0.1",
        f"--http-port={port}",
        "--hostname-strict=false",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Keycloak(base=f"http://127.0.0.1:{port}", process=process, log=log)
    try:
        _wait_until_serving(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_until_serving(server: Keycloak) -> None:
    """Raises: ServerStartError (a RuntimeError) ending with the log's tail."""
    started = time.monotonic()
    url = f"{server.base}/realms/master/.well-known/openid-configuration"
    wait_until(
        lambda: http_ok(url, timeout=2),
        name=f"Keycloak (log: {server.log})",
        process=server.process,
        seconds=STARTUP_SECONDS,
        interval=0.5,
        detail=lambda: "\n" + server.log.read_text(errors="replace")[-3000:],
    )
    _log(f"serving on {server.base} after {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        raise SystemExit("usage: python -m tests.keycloak install")
    install()
