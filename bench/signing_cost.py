"""Signing cost per token for each keystore backend, measured in one run (informational).

Usage: .venv/bin/python bench/signing_cost.py [--tokens 1000] [--alg ES256]

Backends: file (local key), kms (every token a KMS Sign against moto's standalone server on a
loopback port, started here), kms-wrapped (key unwrapped once through moto, then local).
Each backend is built exactly as `sekisho serve` builds it (sekisho.keystores). For every
token it times:
  sign  = Signer.sign(signing input)            the backend's part
  token = JwsEncoder.encode(claims)             sign + JOSE encoding + self-verification
and prints median and p99 in microseconds over the same fixed count.
"""

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import cryptography
import moto
from cryptography.hazmat.backends.openssl.backend import backend as openssl
from sekisho.clock import SystemClock
from sekisho.config import Settings
from sekisho.keystores import build_key_manager, build_keystore
from sekisho.signing.audit import Actor
from sekisho.signing.jws import JwsEncoder
from sekisho.signing.keyring import Keyring

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests/loopback.py: ports, waits and stops shared with the tests

from tests.loopback import ServerStartError, free_port, http_ok, stop_process, wait_until  # noqa: E402

MOTO_LAUNCHER = REPO / "tests" / "moto_kms_server.py"
CLAIMS = {
    "iss": "https://sekisho.example.com",
    "sub": "alice",
    "aud": "https://crm-as.example.com",
    "client_id": "crm-client",
    "jti": "AAECAwQFBgcICQoLDA0ODw",
    "iat": 1_800_000_000,
    "exp": 1_800_000_300,
    "scope": "crm.read crm.write",
    "resource": "https://crm.example.com/mcp",
}


def _start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(MOTO_LAUNCHER), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        ready = lambda: http_ok(f"{endpoint}/moto-api/")  # noqa: E731
        wait_until(ready, name="moto server", process=process, seconds=30, interval=0.1)
    except ServerStartError:
        process.kill()
        raise
    return process, endpoint


def _settings(backend: str, keys_dir: Path, endpoint: str, alg: str) -> Settings:
    keys: dict[str, object] = {"backend": backend, "dir": str(keys_dir), "algorithm": alg}
    if backend != "file":
        keys.update(kms_endpoint_url=endpoint, kms_region="us-east-1")
    if backend == "kms":
        keys["kms_alias_prefix"] = f"bench/{os.getpid()}"
    if backend == "kms-wrapped":
        kms = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1")
        keys["kms_wrapping_key_id"] = kms.create_key()["KeyMetadata"]["KeyId"]
    return Settings(keys=keys)


def _summary(samples_ns: list[int]) -> tuple[float, float]:
    ordered = sorted(samples_ns)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return statistics.median(ordered) / 1e3, p99 / 1e3


async def _measure(settings: Settings, tokens: int) -> tuple[list[int], list[int]]:
    clock = SystemClock()
    store = build_keystore(settings, clock)
    build_key_manager(settings, store, clock).init(Actor(operator="bench"))
    keyring = Keyring(store)
    keyring.load()
    _, signer = keyring.signing_key()
    encoder = JwsEncoder()
    signing_input = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9"
    for _ in range(50):  # warm-up: connection pool, first-call costs
        await encoder.encode(CLAIMS, signer, "oauth-id-jag+jwt")
    sign_ns, token_ns = [], []
    for _ in range(tokens):
        start = time.perf_counter_ns()
        await signer.sign(signing_input)
        sign_ns.append(time.perf_counter_ns() - start)
        start = time.perf_counter_ns()
        await encoder.encode(CLAIMS, signer, "oauth-id-jag+jwt")
        token_ns.append(time.perf_counter_ns() - start)
    return sign_ns, token_ns


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} cores; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; cryptography {cryptography.__version__} "
        f"({openssl.openssl_version_text()}); moto {moto.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--alg", default="ES256", choices=["ES256", "PS256", "RS256"])
    args = parser.parse_args()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(name, value)
    process, endpoint = _start_moto()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for backend in ("file", "kms", "kms-wrapped"):
                settings = _settings(backend, Path(tmp) / backend, endpoint, args.alg)
                sign_ns, token_ns = asyncio.run(_measure(settings, args.tokens))
                rows.append((backend, *_summary(sign_ns), *_summary(token_ns)))
    finally:
        stop_process(process, timeout=10)
    print(f"machine: {_machine()}")
    print(f"{args.alg}, {args.tokens} tokens per backend, one run\n")
    print("| backend | sign median µs | sign p99 µs | token median µs | token p99 µs |")
    print("|---|---:|---:|---:|---:|")
    for backend, sign_med, sign_p99, token_med, token_p99 in rows:
        print(
            f"| {backend} | {sign_med:.0f} | {sign_p99:.0f} | {token_med:.0f} | {token_p99:.0f} |"
        )


if __name__ == "__main__":
    main()
