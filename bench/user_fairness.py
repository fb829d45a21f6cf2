"""Fairness between the users of one caller: a gateway (one mTLS caller id) carries one user's
flood and ten other users' polite traffic; how do the polite users fare?

Every call presents the same client certificate, so the server sees one caller
(`[[callers]] id = spiffe://bench.example/gateway`) on separate connections: the flood (ghz, one
user's three messages, open loop at --rate calls/s, about twice what one worker serves with
every exchange a miss, 1 s deadlines) and the polite users (ghz,
ten other users' messages, 20 calls/s in all, 1 s deadlines), each measured alone first. Both
caches off (every exchange a miss), `[overload]` at its defaults, server pinned to CPU 0 and the
load to CPU 1 as in bench/overload.py. Variants alternate round by round: `base` runs the server
code of `--base-src` (a checkout of main before the change), `new` this checkout's.

    .venv/bin/python bench/user_fairness.py --base-src ../base --rounds 3 [--out FILE]
"""

import argparse
import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from loadgen import EXCHANGE, GHZ, write_protoset
from overload import LOAD_CPUS, SERVER_CPUS, summary
from stack import (
    Idp,
    Settings,
    exchange_messages,
    opa_server,
    policy_folder,
    serve_variant,
    workload,
)

CALLER = "spiffe://bench.example/gateway"
REPO = Path(__file__).resolve().parent.parent
POLITE_RPS = 20
SECONDS = 6.0
SETTLE = 3.0


def _pki(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and the gateway's client certificate."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = {"ca": folder / "ca.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name, san in (
        ("server", x509.IPAddress(ipaddress.ip_address("127.0.0.1"))),
        ("client", x509.UniformResourceIdentifier(CALLER)),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        paths[name] = folder / f"{name}.pem"
        paths[f"{name}_key"] = folder / f"{name}.key"
        paths[name].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{name}_key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return paths


def _server(
    root: Path, idp: Idp, name: str, pki: dict[str, Path], source: str, *, opa_url: str
) -> Any:
    settings = Settings(caches=False, overload=True, engine="opa" if opa_url else "embedded")
    tls_files = (
        f'tls_cert_file = "{pki["server"]}"\ntls_key_file = "{pki["server_key"]}"\n'
        f'client_ca_file = "{pki["ca"]}"'
    )
    tls = ssl.create_default_context(cafile=str(pki["ca"]))
    tls.load_cert_chain(pki["client"], pki["client_key"])
    return serve_variant(
        root,
        idp,
        name,
        settings,
        server_toml=tls_files,
        more_toml=f'[[callers]]\nid = "{CALLER}"',
        opa_url=opa_url,
        cpus=SERVER_CPUS,
        tls=tls,
        source=source,
    )


def _ghz(
    target: str, pki: dict[str, Path], messages: list[dict[str, Any]], *, rps: float, seconds: float
) -> tuple[subprocess.Popen[bytes], Path, tempfile.TemporaryDirectory[str]]:
    tmp = tempfile.TemporaryDirectory(prefix="sekisho-ghz-")
    folder = Path(tmp.name)
    data, out = folder / "data.json", folder / "report.json"
    data.write_text(json.dumps(messages))
    command = ["taskset", "-c", LOAD_CPUS, str(GHZ), "--cacert", str(pki["ca"])]
    command += ["--cert", str(pki["client"]), "--key", str(pki["client_key"])]
    command += ["--protoset", str(write_protoset(folder / "api.protoset")), "--call", EXCHANGE]
    command += ["--data-file", str(data), "--total", str(int(rps * seconds)), "--timeout", "1s"]
    command += ["--rps", str(int(rps)), "--async", "--concurrency", "64", "--connections", "4"]
    command += ["--format", "json", "--output", str(out)]
    command += ["--disable-template-functions", "--disable-template-data", target]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL), out, tmp


def _finish(running: tuple[subprocess.Popen[bytes], Path, tempfile.TemporaryDirectory[str]]) -> Any:
    process, out, tmp = running
    process.wait(timeout=180)
    details = json.loads(out.read_text()).get("details") or []
    tmp.cleanup()
    return details


def _round(server: Any, pki: dict[str, Path], flood: Any, polite: Any, rate: float) -> Any:
    target = server.grpc_target
    alone = _finish(_ghz(target, pki, polite, rps=POLITE_RPS, seconds=SECONDS))
    time.sleep(SETTLE)
    flooding = _ghz(target, pki, flood, rps=rate, seconds=SECONDS + 1)
    time.sleep(0.5)
    loaded = _finish(_ghz(target, pki, polite, rps=POLITE_RPS, seconds=SECONDS))
    flood_details = _finish(flooding)
    ok = [d for d in loaded if not d.get("error")]
    alone_p99 = summary(alone)["ok_p99_ms"]
    return {
        "polite_unloaded": summary(alone),
        "polite": summary(loaded),
        "polite_success": round(len(ok) / max(1, len(loaded)), 4),
        "polite_p99_vs_unloaded": round(summary(loaded)["ok_p99_ms"] / max(0.01, alone_p99), 2),
        "flood": summary(flood_details),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-src", required=True, help="checkout whose server/ `base` runs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=1600.0, help="flood calls per second")
    parser.add_argument("--engine", choices=("embedded", "opa"), default="embedded")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    idp, load = Idp(), workload()
    messages = exchange_messages(idp, load)
    flood, polite = messages[:3], messages[3:33]  # user0's three; users 1-10's
    results: dict[str, list[Any]] = {"base": [], "new": []}
    root = Path(tempfile.mkdtemp(prefix="sekisho-fairness-"))
    try:
        with contextlib.ExitStack() as stack:
            policy_folder(root, load)
            pki = _pki(root)
            # The OPA server on the load's CPU: its decisions are I/O to the worker, whose adaptive
            # limit then grows and whose fair queue (not grpc core) holds the excess.
            opa_url = (
                stack.enter_context(opa_server(root, LOAD_CPUS)) if args.engine == "opa" else ""
            )
            for number in range(args.rounds):
                for variant in ("base", "new") if number % 2 == 0 else ("new", "base"):
                    source = args.base_src if variant == "base" else str(REPO)
                    server = _server(root, idp, f"{variant}{number}", pki, source, opa_url=opa_url)
                    try:
                        outcome = _round(server, pki, flood, polite, args.rate)
                    finally:
                        server.stop()
                    outcome["load_average"] = os.getloadavg()[0]
                    results[variant].append(outcome)
                    print(variant, number, json.dumps({k: outcome[k] for k in (
                        "polite_success", "polite_p99_vs_unloaded")}), flush=True)  # fmt: skip
                    time.sleep(SETTLE)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    medians = {
        variant: {
            key: statistics.median(run[key] for run in runs)
            for key in ("polite_success", "polite_p99_vs_unloaded")
        }
        | {
            "polite_p99_ms": statistics.median(run["polite"]["ok_p99_ms"] for run in runs),
            "polite_unloaded_p99_ms": statistics.median(
                run["polite_unloaded"]["ok_p99_ms"] for run in runs
            ),
            "flood_goodput_per_s": statistics.median(run["flood"]["goodput_per_s"] for run in runs),
        }
        for variant, runs in results.items()
    }
    print(json.dumps(medians, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps({"medians": medians, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
