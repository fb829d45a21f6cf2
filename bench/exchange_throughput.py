"""`make bench`: ExchangeToken throughput and latency against a real `sekisho serve`.

One run drives, on the same server stack and worker count:
  (a) echo      grpc.health.v1.Health/Check (same listener, interceptors and workers; since
                session 19 its message is read through the admission gate under the gRPC
                message timeout: +31 µs of CPU, ratios ~9 % higher than before for no
                work saved, bench/results/session19_host.md)
  (b) warm      ExchangeToken, 1,000 users x 3 audiences, subject and decision caches warm
  (b') quiet    (b) with [metrics] enabled = false, and also with [logging] level = "WARNING";
                (b), (b') and (b'') run side by side, 12 rounds of 2,000-call bursts in a
                rotating order (--cost-rounds): the costs of metrics and logging are medians
  (c) miss      (b) with both caches disabled ([cache] *_max_entries = 0): every request
                verifies its RS256 token, evaluates policy and signs
  (d) opa       (c) with [policy] engine = "opa" against a local `opa run --server`
then a latency-vs-offered-load curve for (c) (ghz --rps --async at fractions of (c)'s maximum).
Inputs: RS256 IdP tokens for 1,000 users with 3 groups each, a 1,000-entry registry, ES256
signing (file keystore). Results: bench/results/exchange_throughput.{md,json,png}.

    .venv/bin/python bench/exchange_throughput.py [--workers 1] [--seconds 15]
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import machine
import report
from loadgen import ECHO, EXCHANGE, Run, run_ghz
from stack import (
    Idp,
    Settings,
    exchange_messages,
    opa_server,
    policy_folder,
    start_server,
    workload,
    write_config,
)

RESULTS = Path(__file__).resolve().parent / "results"
CURVE = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
COST_BURST_CALLS = 2000  # per scenario and round of observability_rounds (~2 s each)


def _pinning(workers: int) -> tuple[str, str]:
    """(server cpus, load generator cpus): split the cores when one worker leaves one free."""
    cores = sorted(os.sched_getaffinity(0))
    if workers == 1 and len(cores) >= 2:
        return str(cores[0]), ",".join(str(c) for c in cores[1:])
    return "", ""


class Bench:
    def __init__(self, root: Path, workers: int, seconds: float, cost_rounds: int = 12) -> None:
        self.root = root
        self.workers = workers
        self.seconds = seconds
        self.cost_rounds = cost_rounds
        self.rounds: list[dict[str, Run]] = []  # observability_rounds()
        self.server_cpus, self.load_cpus = _pinning(workers)
        self.idp = Idp()
        self.load = workload()
        started = time.perf_counter()
        self.messages = exchange_messages(self.idp, self.load)
        self.token_seconds = time.perf_counter() - started
        policy_folder(root, self.load)
        self.runs: dict[str, Run] = {}
        self.ready: dict[str, float] = {}
        self.curve: list[Run] = []

    def _run(self, name: str, server: Any, call: str, messages: list[Any], **kw: Any) -> Run:
        run = run_ghz(name, server, call, messages, cpus=self.load_cpus, **kw)
        print(
            f"{name:>14}: {run.throughput:8.1f}/s  p50 {run.p50_ms:.2f} ms  "
            f"p99 {run.p99_ms:.2f} ms  cpu {run.cpu_us_per_request:.0f} µs  errors {run.errors}"
        )
        return run

    def scenario(self, key: str, settings: Settings, opa_url: str = "") -> Any:
        config = write_config(self.root, self.idp, settings, opa_url)
        server = start_server(self.root, config, self.server_cpus)
        self.ready[key] = round(server.ready_seconds, 3)
        return server

    def measure(
        self,
        key: str,
        server: Any,
        call: str,
        messages: list[Any],
        *,
        warm: float,
        fill: bool = False,
    ) -> Run:
        """Warm-up (with `fill`: first one pass over every message, so every cache holds it),
        a `warm`-second probe of the rate, then about `self.seconds` of requests at saturation."""
        if fill:
            self._run(f"{key} fill", server, call, messages, total=len(messages))
        probe = self._run(f"{key} warm-up", server, call, messages, seconds=warm)
        total = max(200, int(probe.throughput * self.seconds))
        run = self._run(key, server, call, messages, total=total)
        self.runs[key] = run
        return run

    def exchange(self, key: str, server: Any, warm_seconds: float, fill: bool = False) -> Run:
        return self.measure(key, server, EXCHANGE, self.messages, warm=warm_seconds, fill=fill)

    def all(self) -> None:
        server = self.scenario("warm", Settings(workers=self.workers))
        try:
            self.measure("echo", server, ECHO, [{}], warm=3)
            self.exchange("warm", server, warm_seconds=3, fill=True)
        finally:
            server.stop()
        self.observability_rounds()
        server = self.scenario("miss", Settings(workers=self.workers, caches=False))
        try:
            miss = self.exchange("miss", server, warm_seconds=3)
            for fraction in CURVE:
                rate = max(1.0, fraction * miss.throughput)
                total = int(rate * max(5.0, self.seconds / 2))
                run = self._run(
                    f"{int(fraction * 100)}% of max",
                    server,
                    EXCHANGE,
                    self.messages,
                    total=total,
                    rps=rate,
                    concurrency=64,
                )
                self.curve.append(run)
        finally:
            server.stop()
        self.opa()

    def observability_rounds(self) -> None:
        """(b), (b') and (b'') side by side: three servers run at once (same pinning; an idle
        one costs nothing), each is filled, then `self.cost_rounds` rounds of COST_BURST_CALLS
        calls go to each in a rotating order, so the shared machine's drift hits the three
        within seconds. One run per scenario on servers started one after another moves by more
        than these costs (up to 16 % between paired runs, bench/results/metrics_session8.md),
        so the costs are the medians of each round's own ratios, and the (b') and (b'') rows
        are their median bursts."""
        settings = {
            "warm": Settings(workers=self.workers),
            "warm_no_metrics": Settings(workers=self.workers, metrics=False),
            "warm_quiet": Settings(workers=self.workers, metrics=False, log_level="WARNING"),
        }
        servers = {}
        try:
            for key, each in settings.items():
                root = self.root / f"side-{key}"
                root.mkdir(exist_ok=True)
                (root / "policies").symlink_to(self.root / "policies")
                servers[key] = start_server(
                    root, write_config(root, self.idp, each), self.server_cpus
                )
                if key != "warm":  # (b)'s is its own server's, the one (a) ran on
                    self.ready[key] = round(servers[key].ready_seconds, 3)
            for key, server in servers.items():
                self._run(f"{key} fill", server, EXCHANGE, self.messages, total=len(self.messages))
            keys = list(servers)
            for index in range(self.cost_rounds):
                shift = index % len(keys)
                found = {}
                for key in keys[shift:] + keys[:shift]:
                    found[key] = self._run(
                        f"{key} #{index + 1}",
                        servers[key],
                        EXCHANGE,
                        self.messages,
                        total=COST_BURST_CALLS,
                    )
                self.rounds.append(found)
        finally:
            for server in servers.values():
                server.stop()
        for key in ("warm_no_metrics", "warm_quiet"):
            ordered = sorted((found[key] for found in self.rounds), key=lambda r: r.throughput)
            self.runs[key] = ordered[len(ordered) // 2]

    def cost_percent(self, without: str) -> dict[str, Any]:
        """What turning `without`'s switches back on costs, per round and the median: the share
        of throughput lost, and the CPU µs per request added."""
        shares = [100 * (1 - r["warm"].throughput / r[without].throughput) for r in self.rounds]
        added = [r["warm"].cpu_us_per_request - r[without].cpu_us_per_request for r in self.rounds]
        return {
            "throughput_percent": [round(share, 1) for share in shares],
            "cpu_us": [round(us) for us in added],
            "median_throughput_percent": round(statistics.median(shares), 1),
            "median_cpu_us": round(statistics.median(added)),
        }

    def opa(self) -> Run:
        """(d) alone: `--scenario opa` (e.g. to check the OPA engine stays ready at saturation)."""
        with opa_server(self.root, self.server_cpus) as url:
            opa = Settings(workers=self.workers, caches=False, engine="opa")
            server = self.scenario("opa", opa, url)
            try:
                return self.exchange("opa", server, warm_seconds=3)
            finally:
                server.stop()

    def summary(self) -> dict[str, Any]:
        echo = self.runs["echo"].throughput
        ratio = {k: round(self.runs[k].throughput / echo, 3) for k in ("warm", "miss", "opa")}
        half = next((r for r in self.curve if r.name.startswith("50%")), None)
        metrics_cost = self.cost_percent("warm_no_metrics")
        logging_cost = self.cost_percent("warm_quiet")
        return {
            "workers": self.workers,
            "pinning": {"server": self.server_cpus or "any", "load": self.load_cpus or "any"},
            "seconds_per_run": self.seconds,
            "runs": {k: v.as_dict() for k, v in self.runs.items()},
            "ratios_to_echo": ratio,
            "curve": [r.as_dict() for r in self.curve],
            "at_half_of_miss_max": half.as_dict() if half else None,
            "start_to_ready_seconds": self.ready,
            "metrics_logging_cost_percent": logging_cost["median_throughput_percent"],
            "metrics_cost_percent": metrics_cost["median_throughput_percent"],
            "observability_cost": {
                "rounds": self.cost_rounds,
                "calls_per_burst": COST_BURST_CALLS,
                "metrics": metrics_cost,
                "metrics_and_logging": logging_cost,
            },
            "token_generation_seconds": round(self.token_seconds, 2),
            "machine": machine.describe(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "1")))
    parser.add_argument(
        "--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "15"))
    )
    parser.add_argument(
        "--cost-rounds",
        type=int,
        default=int(os.environ.get("BENCH_COST_ROUNDS", "12")),
        help="alternating rounds of (b), (b'), (b'') for the cost of metrics and logging",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--scenario",
        choices=("all", "opa", "cost"),
        default="all",
        help="opa: only (d), printed and written to exchange_throughput_opa.json; cost: only the "
        "rounds of (b), (b'), (b''), printed and written to exchange_throughput_cost.json",
    )
    args = parser.parse_args()
    if args.scenario == "opa":
        only_opa(args)
        return
    if args.scenario == "cost":
        only_cost(args)
        return
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sekisho-bench-") as tmp:
        bench = Bench(Path(tmp), args.workers, args.seconds, args.cost_rounds)
        try:
            bench.all()
        finally:
            bench.idp.close()
        result = bench.summary()
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "exchange_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    report.plot_curve(result, args.out / "exchange_throughput.png")
    (args.out / "exchange_throughput.md").write_text(report.markdown(result))
    print(f"wrote {args.out}/exchange_throughput.{{md,json,png}} in {result['total_seconds']} s")


def only_cost(args: argparse.Namespace) -> None:
    """The cost of metrics and logging alone (the rounds of `observability_rounds`)."""
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="sekisho-bench-") as tmp:
        bench = Bench(Path(tmp), args.workers, args.seconds, args.cost_rounds)
        try:
            bench.observability_rounds()
        finally:
            bench.idp.close()
    result = {
        "workers": args.workers,
        "calls_per_burst": COST_BURST_CALLS,
        "metrics": bench.cost_percent("warm_no_metrics"),
        "metrics_and_logging": bench.cost_percent("warm_quiet"),
        "rounds": [{key: run.as_dict() for key, run in found.items()} for found in bench.rounds],
        "load_average": {"before": load, "after": os.getloadavg()},
        "machine": machine.describe(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "exchange_throughput_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("metrics", "metrics_and_logging")}, indent=2))


def only_opa(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="sekisho-bench-") as tmp:
        bench = Bench(Path(tmp), args.workers, args.seconds)
        try:
            run = bench.opa()
        finally:
            bench.idp.close()
        log = (Path(tmp) / "server.log").read_text(errors="replace")
    # Why exchanges were refused, from the server's log (ghz only sees UNAVAILABLE).
    reasons = {
        name: log.count(needle)
        for name, needle in (
            ("not_ready_transitions", '"policy_engine_not_ready"'),
            ("refused_not_ready", "OPA has not passed the self-test"),
            ("opa_check_missed", '"opa_check_missed"'),
        )
    }
    result = {"workers": args.workers, "seconds_per_run": args.seconds, "opa": run.as_dict()}
    result["server_log"] = reasons
    result["machine"] = machine.describe()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "exchange_throughput_opa.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"opa": run.as_dict(), "server_log": reasons}, indent=2))


if __name__ == "__main__":
    main()
