"""How long `make run` takes to be ready when setup is done: from starting `make run` to the gRPC
listener answering grpc.health.v1.Health (SERVING), the HTTP listener answering /healthz and the
dev IdP answering its discovery document (each time is printed; "ready" is the last of the three).

Each run happens in a private network namespace (`unshare -rn`: its own loopback, no root) so the
fixed ports of config/example.toml never collide with anything else on the machine, and is stopped
with SIGTERM to make. Checkouts are measured interleaved, run by run (side by side):

    .venv/bin/python bench/first_start.py [--runs 5] [--cold] [LABEL=DIR ...]

Each DIR must have setup done (.venv and bin/, e.g. symlinks to this checkout's, with a stamp no
older than pyproject.toml); its server/ goes first on PYTHONPATH so the shared .venv runs that
checkout's code. Without LABEL=DIR the checkout this script is in is measured. --cold deletes the
compiled-policy cache (var/policy-cache) before each run, as on the very first start. One start
per checkout before the measured ones is not counted: it writes the keys, the bytecode of a fresh
clone (PYTHONDONTWRITEBYTECODE is dropped, as on a user's machine) and the policy cache.
"""

import argparse
import http.client
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
INNER = "SEKISHO_FIRST_START_NETNS"
POLL_SECONDS = 0.01
GIVE_UP_SECONDS = 60.0


def _http_ok(port: int, path: str) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=0.2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _grpc_serving() -> bool:
    # A channel per attempt: one channel would retry a refused port with reconnect backoff
    # (1 s, 1.6 s, ...), measuring grpc's backoff instead of the service.
    with grpc.insecure_channel("127.0.0.1:50051") as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=0.2
            )
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return children


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _service_cpu(make_pid: int) -> dict[str, float]:
    """CPU seconds the service and the dev IdP used until now (robust to a busy machine)."""
    cpu: dict[str, float] = {}
    for pid in _children(make_pid):
        if b"serve" in Path(f"/proc/{pid}/cmdline").read_bytes():
            cpu["service_cpu"] = _cpu_seconds(pid)
            for child in _children(pid):
                if b"dev-idp" in Path(f"/proc/{child}/cmdline").read_bytes():
                    cpu["idp_cpu"] = _cpu_seconds(child)
    return cpu


def _one_start(checkout: Path, cold: bool) -> dict[str, float]:
    """Seconds from `make run` to each endpoint answering, then SIGTERM to make."""
    if cold:
        shutil.rmtree(checkout / "var" / "policy-cache", ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(checkout / "server")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    (checkout / "var").mkdir(exist_ok=True)
    log = (checkout / "var" / "first_start.log").open("wb")
    checks = {
        "grpc": _grpc_serving,
        "http": lambda: _http_ok(8080, "/healthz"),
        "idp": lambda: _http_ok(9400, "/.well-known/openid-configuration"),
    }
    start = time.perf_counter()
    make = subprocess.Popen(["make", "run"], cwd=checkout, env=env, stdout=log, stderr=log)
    times: dict[str, float] = {}
    while len(times) < len(checks) and time.perf_counter() - start < GIVE_UP_SECONDS:
        for name, check in checks.items():
            if name not in times and check():
                times[name] = time.perf_counter() - start
        time.sleep(POLL_SECONDS)
    times.update(_service_cpu(make.pid))
    make.send_signal(signal.SIGTERM)
    make.wait(timeout=30)
    log.close()
    if not all(name in times for name in checks):
        raise SystemExit(
            f"{checkout}: not ready after {GIVE_UP_SECONDS} s; see var/first_start.log"
        )
    times["ready"] = max(times[name] for name in checks)
    return times


def _measure(checkouts: dict[str, Path], runs: int, cold: bool) -> None:
    results: dict[str, list[dict[str, float]]] = {label: [] for label in checkouts}
    for checkout in checkouts.values():
        _one_start(checkout, cold=False)  # warm-up, not counted
    for _ in range(runs):
        for label, checkout in checkouts.items():
            results[label].append(_one_start(checkout, cold))
    cache = "cold (deleted before each run)" if cold else "warm"
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"`make run` to ready, setup done, {cache} policy cache, {runs} runs, load {load}\n")
    print(
        "| checkout | ready median | ready runs (s) | gRPC Health | HTTP /healthz | dev IdP"
        " | service CPU | dev IdP CPU |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, samples in results.items():
        keys = ("grpc", "http", "idp", "service_cpu", "idp_cpu")
        med = {k: statistics.median(s.get(k, float("nan")) for s in samples) for k in keys}
        ready = [s["ready"] for s in samples]
        runs_text = " ".join(f"{r:.2f}" for r in ready)
        print(
            f"| {label} | **{statistics.median(ready):.2f} s** | {runs_text} | {med['grpc']:.2f} |"
            f" {med['http']:.2f} | {med['idp']:.2f} | {med['service_cpu']:.2f} s |"
            f" {med['idp_cpu']:.2f} s |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="starts per checkout (default 5)")
    parser.add_argument("--cold", action="store_true", help="delete var/policy-cache before each")
    parser.add_argument("checkouts", nargs="*", help="LABEL=DIR (default: this checkout)")
    args = parser.parse_args()
    if os.environ.get(INNER) != "1":
        env = {**os.environ, INNER: "1"}
        command = ["unshare", "-rn", sys.executable, __file__, *sys.argv[1:]]
        raise SystemExit(subprocess.run(command, env=env, check=False).returncode)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    pairs = [item.split("=", 1) for item in args.checkouts] or [["this checkout", str(REPO)]]
    _measure({label: Path(d).resolve() for label, d in pairs}, args.runs, args.cold)


if __name__ == "__main__":
    main()
