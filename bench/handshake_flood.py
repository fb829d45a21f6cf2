"""ExchangeToken latency while new connections flood the HTTP listener, which serves TLS (issue 14
item 2: nothing unauthenticated is expensive). Loopback only.

One worker with TLS on both listeners (a P-256 server certificate, no client CA), both caches off
and [overload] at its defaults, pinned to CPU 0; ghz and the flood on CPU 1. For each flood:
ExchangeToken's median over TLS (ghz, one caller, closed loop) without the flood, then during it.
Floods, each from one source address (127.0.0.1) and from 64 (127.0.0.2-65; Linux loopback
answers all of 127/8):

- close: TLS handshake, then close (RST), in a loop (16 at a time);
- idle:  TLS handshake, then hold the connection (never a request);
- raw:   TCP connect, never a ClientHello; held (at most 4,000 per run);
- grpc-close: as close, to the gRPC listener (grpc core's TLS, in its own threads).

Then legitimate clients, 3 s each, under the defaults: a keep-alive client (one connection,
sequential GET /healthz), a pool (64 connections opened at once, 64 concurrent requests), a
client without keep-alive (a new TLS connection per request) at 10 requests/s, and the same flat
out (sequential; beyond [http] new_connections_per_second_per_peer it is refused by design).

Variants alternate round by round: `base` runs the server code of --base-src (a checkout of main
before the change), `new` this checkout's. Takes ~2 min per round and variant.

    .venv/bin/python bench/handshake_flood.py --base-src ../tlsguard-base [--rounds 2]
    .venv/bin/python bench/handshake_flood.py flood HOST PORT MODE PEERS SECONDS   (the flood)
"""

import argparse
import asyncio
import contextlib
import json
import os
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import EXCHANGE, GHZ, write_protoset
from overload import LOAD_CPUS, SERVER_CPUS, summary
from stack import (
    REPO,
    Idp,
    Server,
    Settings,
    exchange_messages,
    policy_folder,
    serve_variant,
    workload,
)

from tests.pki import build_pki

SECONDS = 6.0
SETTLE = 2.0
FLOODS = [(mode, peers) for mode in ("close", "idle", "raw", "grpc-close") for peers in (1, 64)]
HELD_MAX = 4000  # raw / idle: connections one flood run holds at most
CONCURRENCY = 16  # flood threads, each opening one connection at a time


# --- the flood client (a subprocess) -------------------------------------------------------------


def flood(host: str, port: int, mode: str, peers: int, seconds: float) -> dict[str, Any]:
    """Open connections to host:port for `seconds` (CONCURRENCY threads, blocking sockets: the
    cheapest Python client); count what happened to them."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the cheapest client
    sources = ["127.0.0.1"] if peers == 1 else [f"127.0.0.{2 + n}" for n in range(peers)]
    counts: dict[str, int] = {}
    held: list[socket.socket] = []
    lock = threading.Lock()
    until = time.monotonic() + seconds

    def count(what: str) -> None:
        with lock:
            counts[what] = counts.get(what, 0) + 1

    def one(source: str) -> None:
        sock = socket.create_connection((host, port), timeout=10, source_address=(source, 0))
        if mode != "raw":
            try:
                sock = context.wrap_socket(sock)  # the whole handshake
            except BaseException:
                sock.close()
                raise
        count("connected" if mode == "raw" else "handshakes")
        if mode == "close":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # RST: nothing more for the server to read
        else:
            with lock:
                held.append(sock)

    def loop(n: int) -> None:
        while time.monotonic() < until and len(held) < HELD_MAX:
            try:
                one(sources[n % len(sources)])
            except OSError as exc:  # ssl.SSLError and TimeoutError are OSErrors
                count(type(exc).__name__)
        while time.monotonic() < until:  # holding HELD_MAX: wait for the end
            time.sleep(0.1)

    threads = [threading.Thread(target=loop, args=(n,)) for n in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts["held_closed_by_server"] = sum(1 for sock in held if _closed(sock))
    for sock in held:
        sock.close()
    return counts


def _closed(sock: socket.socket) -> bool:
    """Whether the server has closed `sock` (EOF or reset waiting to be read)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except ssl.SSLWantReadError:
        return False
    except BlockingIOError:
        return False
    except OSError:
        return True


# --- the driver ----------------------------------------------------------------------------------


def _server(root: Path, idp: Idp, name: str, pki: Any, source: str) -> Server:
    tls_files = f'tls_cert_file = "{pki.server.cert_file}"\ntls_key_file = "{pki.server.key_file}"'
    tls = ssl.create_default_context(cafile=str(pki.ca.pem.cert_file))
    settings = Settings(caches=False, overload=True)
    return serve_variant(
        root, idp, name, settings, server_toml=tls_files, cpus=SERVER_CPUS, tls=tls, source=source
    )


def _ghz(server: Server, pki: Any, messages: list[dict[str, Any]], total: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sekisho-ghz-") as tmp:
        data, out = Path(tmp) / "data.json", Path(tmp) / "report.json"
        data.write_text(json.dumps(messages))
        command = ["taskset", "-c", LOAD_CPUS, str(GHZ), "--cacert", str(pki.ca.pem.cert_file)]
        command += ["--protoset", str(write_protoset(Path(tmp) / "api.protoset"))]
        command += ["--call", EXCHANGE, "--data-file", str(data), "--total", str(total)]
        command += ["--concurrency", "1", "--connections", "1", "--timeout", "20s"]
        command += ["--format", "json", "--output", str(out)]
        command += ["--disable-template-functions", "--disable-template-data", server.grpc_target]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return summary(json.loads(out.read_text()).get("details") or [])


def _fds(server: Server) -> int:
    with contextlib.suppress(OSError):
        return len(os.listdir(f"/proc/{server.process.pid}/fd"))
    return -1


def _one_flood(
    server: Server, pki: Any, messages: list[dict[str, Any]], mode: str, peers: int
) -> dict[str, Any]:
    quiet = _ghz(server, pki, messages, int(SECONDS * 60))
    listener = server.grpc_target if mode.startswith("grpc-") else server.http_url
    host, port = listener.removeprefix("https://").rsplit(":", 1)
    command = ["taskset", "-c", LOAD_CPUS, "nice", "-n", "19", sys.executable, __file__, "flood"]
    command += [host, port, mode.removeprefix("grpc-"), str(peers), str(SECONDS + 2)]
    cpu, started = server.cpu_seconds(), time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    time.sleep(1.0)
    loud = _ghz(server, pki, messages, int(SECONDS * 60))
    fds = _fds(server)
    out, _ = process.communicate(timeout=120)
    core = (server.cpu_seconds() - cpu) / (time.monotonic() - started)
    time.sleep(SETTLE)
    return {
        "quiet_p50_ms": quiet.get("ok_p50_ms"),
        "flood_p50_ms": loud.get("ok_p50_ms"),
        "ratio": round(loud.get("ok_p50_ms", 0) / max(0.01, quiet.get("ok_p50_ms", 0)), 2),
        "quiet_ok": quiet.get("by_status", {}).get("OK", 0),
        "flood_ok": loud.get("by_status", {}).get("OK", 0),
        "flood_calls": loud.get("calls", 0),
        "server_core_share": round(core, 2),
        "server_fds_during": fds,
        "flood": json.loads(out or b"{}"),
    }


async def _legit(base: str, context: ssl.SSLContext, seconds: float) -> dict[str, Any]:
    """The three legitimate clients of the module docstring; their answers by status."""
    import aiohttp

    results: dict[str, Any] = {}

    async def run(
        name: str, connector: aiohttp.TCPConnector, workers: int, pause: float = 0.0
    ) -> None:
        counts: dict[str, int] = {}
        until = time.monotonic() + seconds
        async with aiohttp.ClientSession(connector=connector) as session:

            async def loop() -> None:
                while time.monotonic() < until:
                    await asyncio.sleep(pause)
                    try:
                        async with session.get(f"{base}/healthz") as response:
                            await response.read()
                            counts[str(response.status)] = counts.get(str(response.status), 0) + 1
                    except (aiohttp.ClientError, OSError) as exc:
                        counts[type(exc).__name__] = counts.get(type(exc).__name__, 0) + 1

            await asyncio.gather(*(loop() for _ in range(workers)))
        results[name] = counts

    await run("keepalive", aiohttp.TCPConnector(ssl=context, limit=1), 1)
    await asyncio.sleep(1)
    await run("pool_64", aiohttp.TCPConnector(ssl=context, limit=64), 64)
    await asyncio.sleep(1)
    await run("no_keepalive_10_per_s", aiohttp.TCPConnector(ssl=context, force_close=True), 1, 0.1)
    await asyncio.sleep(1)
    await run("no_keepalive_flat_out", aiohttp.TCPConnector(ssl=context, force_close=True), 1)
    return results


def _variant(root: Path, idp: Idp, name: str, pki: Any, *, source: str, messages: Any) -> Any:
    server = _server(root, idp, name, pki, source)
    try:
        floods = {f"{mode}/{peers}": _one_flood(server, pki, messages, mode, peers)
                  for mode, peers in FLOODS}  # fmt: skip
        context = ssl.create_default_context(cafile=str(pki.ca.pem.cert_file))
        legit = asyncio.run(_legit(server.http_url, context, 3.0))
        return {"floods": floods, "legit": legit, "log": _log_tail(root / name)}
    finally:
        server.stop()


def _log_tail(folder: Path) -> list[str]:
    lines = (folder / "server.log").read_text(errors="replace").splitlines()
    return [line[:300] for line in lines if "connection" in line or "handshake" in line][-5:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-src", required=True, help="a checkout of main before the change")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    runs: dict[str, list[Any]] = {"base": [], "new": []}
    with tempfile.TemporaryDirectory(prefix="sekisho-tlsflood-") as tmp:
        root = Path(tmp)
        idp, load = Idp(), workload()
        policy_folder(root, load)
        pki = build_pki(root / "pki")
        messages = exchange_messages(idp, load)[:300]
        for n in range(args.rounds):
            order = [("base", args.base_src), ("new", str(REPO))]
            for name, source in order if n % 2 == 0 else order[::-1]:
                print(f"round {n} {name} load {os.getloadavg()[0]:.2f}", file=sys.stderr)
                run = _variant(root, idp, f"{name}{n}", pki, source=source, messages=messages)
                run["load_before"] = round(os.getloadavg()[0], 2)
                runs[name].append(run)
                print(json.dumps({name: run}), file=sys.stderr)
        idp.close()
    report = {"runs": runs, "medians": _medians(runs)}
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text)
    print(json.dumps(report["medians"], indent=1))


def _medians(runs: dict[str, list[Any]]) -> dict[str, Any]:
    medians: dict[str, Any] = {}
    for name, variant in runs.items():
        for key in (f"{mode}/{peers}" for mode, peers in FLOODS):
            rows = [run["floods"][key] for run in variant]
            medians[f"{name} {key}"] = {
                field: statistics.median(row[field] for row in rows)
                for field in ("quiet_p50_ms", "flood_p50_ms", "ratio", "server_core_share")
            }
    return medians


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "flood":
        host, port, mode, peers, seconds = sys.argv[2:7]
        counts = flood(host, int(port), mode, int(peers), float(seconds))
        print(json.dumps(counts))
    else:
        main()
