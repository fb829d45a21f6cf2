"""Served CPU per call of each refusal path against grpc.aio's floor on the same server (issue 14,
session 7): grpc.health.v1 Health/Check (a bare echo through the same interceptors and server),
an ExchangeToken refused by the overload screen (admission_gate.py; forced by
bench/refusal_floor_server.py), and one refused by the caller's token bucket (the full front
half: caller authentication, validation, metrics, audit line; `caller_rate_per_second` tiny).
ghz 32 callers on 4 connections, `--calls` per measurement, server on core 0 and ghz on core 1,
caches off, overload on. CPU by thread from /proc (the event loop's thread runs all Python).
Modes alternate within a round; `PYTHONPATH=<other tree>/server` runs another version (A/B).

    PATH=$PWD/bin:$PATH .venv/bin/python bench/refusal_floor.py [--rounds 3] [--calls 6000]
"""

import argparse
import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import stack
from loadgen import ECHO, EXCHANGE, run_ghz
from stack import REFUSE_ALL, Idp, Settings, exchange_messages, policy_folder, workload

SERVER_CPUS, LOAD_CPUS = "0", "1"
FORCED_SCREEN = Path(__file__).resolve().parent / "refusal_floor_server.py"


def _threads(pid: int) -> Counter[str]:
    """CPU seconds of the event loop's thread and of all the others (grpc core's)."""
    out: Counter[str] = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text()
        except OSError:
            continue
        rest = fields[fields.rindex(")") + 2 :].split()
        role = "loop" if int(task.name) == pid else "core"
        out[role] += (int(rest[11]) + int(rest[12])) / stack.CLK_TCK
    return out


def measure(server: stack.Server, call: str, messages: list[Any], calls: int) -> dict[str, Any]:
    run_ghz("warm", server, call, messages, total=500, cpus=LOAD_CPUS)
    before = _threads(server.process.pid)
    run = run_ghz("m", server, call, messages, total=calls, cpus=LOAD_CPUS)
    after = _threads(server.process.pid)
    per_call = {k: round((after[k] - before[k]) / run.requests * 1e6, 1) for k in after}
    per_call["total"] = round(sum(per_call.values()), 1)
    return {"cpu_us": per_call, "errors": run.error_kinds, "calls_per_s": round(run.throughput)}


def _server(root: Path, idp: Idp, name: str, rate: bool) -> stack.Server:
    """rate: every call refused by the caller's token bucket; else by the forced screen."""
    settings = Settings(caches=False, overload=True)
    if rate:
        return stack.serve_variant(
            root, idp, name, settings, server_toml=REFUSE_ALL, cpus=SERVER_CPUS
        )
    return stack.serve_variant(root, idp, name, settings, cpus=SERVER_CPUS, hook=str(FORCED_SCREEN))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--calls", type=int, default=6000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sekisho-floor-") as tmp:
        root = Path(tmp)
        idp, load = Idp(), workload()
        messages = exchange_messages(idp, load)
        policy_folder(root, load)
        for round_ in range(args.rounds):
            out: dict[str, Any] = {"code": os.environ.get("PYTHONPATH", "this tree")}
            out["load"] = round(os.getloadavg()[0], 1)
            for mode, rate in (("screen", False), ("rate", True)):
                server = _server(root, idp, f"{mode}{round_}", rate)
                try:
                    out[f"echo({mode} server)"] = measure(server, ECHO, [{}], args.calls)
                    out[mode] = measure(server, EXCHANGE, messages, args.calls)
                finally:
                    server.stop()
            print(json.dumps(out), flush=True)
        idp.close()


if __name__ == "__main__":
    main()
