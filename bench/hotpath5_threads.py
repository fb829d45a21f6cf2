"""Where an RPC's server CPU goes by thread: the event loop's thread (all Python: grpc.aio,
uvloop, the pipeline) against grpc core's own threads (event engine, poller, timers), for echo,
warm and all-miss ExchangeToken under the exchange bench's ghz load (concurrency 32, 4
connections), server on CPU 0 and ghz on CPU 1, workers = 1. Per-thread utime + stime from
/proc/PID/task/*/stat before and after each run.

    PATH=/abs/bin:$PATH .venv/bin/python bench/hotpath5_threads.py [--seconds 3]
"""

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import exchange_throughput as et
import stack
from loadgen import ECHO, EXCHANGE, run_ghz


def _threads(pid: int) -> Counter[str]:
    """CPU seconds per thread role (the main thread, else the thread's name)."""
    out: Counter[str] = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text()
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        rest = fields[fields.rindex(")") + 2 :].split()
        role = "main (event loop)" if int(task.name) == pid else name
        out[role] += (int(rest[11]) + int(rest[12])) / stack.CLK_TCK
    return out


def _handler_cpu(pid: int) -> dict[str, list[float]]:
    """bench/hotpath5_server.py's handler totals (empty unless the server is that wrapper)."""
    path = os.environ.get("HOTPATH_HANDLER_OUT")
    if not path or not os.environ.get("BENCH_SRV"):
        return {}
    os.kill(pid, signal.SIGUSR1)
    time.sleep(0.3)
    return dict(json.loads(Path(path).read_text()))


def measure(server: stack.Server, call: str, messages: list[Any], total: int, cpus: str) -> Any:
    handler_before = _handler_cpu(server.process.pid)
    before = _threads(server.process.pid)
    run = run_ghz("x", server, call, messages, total=total, cpus=cpus)
    after = _threads(server.process.pid)
    handler_after = _handler_cpu(server.process.pid)
    per_call = {k: (after[k] - before.get(k, 0.0)) / run.requests * 1e6 for k in after}
    for name, (calls, cpu) in handler_after.items():
        old_calls, old_cpu = handler_before.get(name, (0, 0.0))
        if calls > old_calls:
            per_call[f"  of which handler {name}"] = (cpu - old_cpu) / (calls - old_calls) * 1e6
    return run, {k: v for k, v in per_call.items() if v > 0.5}


def main(seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="sekisho-thr-") as tmp:
        bench = et.Bench(Path(tmp), 1, seconds)
        results: dict[str, Any] = {}
        try:
            for name, caches in (("warm", True), ("miss", False)):
                server = bench.scenario(name, stack.Settings(workers=1, caches=caches))
                try:
                    if name == "warm":
                        run_ghz("p", server, ECHO, [{}], seconds=1, cpus=bench.load_cpus)
                        results["echo"] = measure(
                            server, ECHO, [{}], int(2500 * seconds), bench.load_cpus
                        )
                        run_ghz(
                            "fill",
                            server,
                            EXCHANGE,
                            bench.messages,
                            total=len(bench.messages),
                            cpus=bench.load_cpus,
                        )
                    else:
                        run_ghz(
                            "p", server, EXCHANGE, bench.messages, seconds=1, cpus=bench.load_cpus
                        )
                    results[name] = measure(
                        server, EXCHANGE, bench.messages, int(900 * seconds), bench.load_cpus
                    )
                finally:
                    server.stop()
        finally:
            bench.idp.close()
    roles = sorted({r for _, per in results.values() for r in per})
    print(f"server CPU us per call by thread (load average {os.getloadavg()[0]:.1f})")
    print(f"{'thread':<22}" + "".join(f"{k:>10}" for k in results))
    for role in roles:
        print(f"{role:<22}" + "".join(f"{results[k][1].get(role, 0):>10.0f}" for k in results))
    totals = {
        k: sum(v for r, v in per.items() if not r.startswith(" "))
        for k, (_, per) in results.items()
    }
    print(f"{'total':<22}" + "".join(f"{totals[k]:>10.0f}" for k in results))
    print(f"{'req/s':<22}" + "".join(f"{results[k][0].throughput:>10.0f}" for k in results))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    main(parser.parse_args().seconds)
