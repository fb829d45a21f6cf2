"""`make soak`: SOAK_SECONDS (default 600) of ExchangeToken at 50 % of the server's all-miss
maximum, on the production configuration (caches on), with more distinct tokens than the subject
cache holds, so both caches stay full and keep evicting. Reports errors, latency, and each
worker's RSS over time; the target is no errors and RSS growth < 10 % from the first sample
after warm-up to the last. Results: bench/results/soak.{md,json}.

    .venv/bin/python bench/soak.py [--seconds 600] [--workers 1]
"""

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import machine
from loadgen import EXCHANGE, Run, run_ghz
from stack import (
    Idp,
    Server,
    Settings,
    exchange_messages,
    policy_folder,
    start_server,
    workload,
    write_config,
)

RESULTS = Path(__file__).resolve().parent / "results"
TOKENS_PER_USER = 4  # 4,000 tokens x 3 audiences: more than the 10,000-entry caches hold
SAMPLE_SECONDS = 10


def _sampler(server: Server, stop: threading.Event, samples: list[dict[str, Any]]) -> None:
    started = time.monotonic()
    while not stop.wait(SAMPLE_SECONDS):
        rss = [round(b / 2**20, 1) for b in server.rss_bytes()]
        samples.append({"t": round(time.monotonic() - started), "rss_mib": rss})


def soak(root: Path, seconds: float, workers: int) -> dict[str, Any]:
    idp = Idp()
    try:
        load = workload()
        messages = exchange_messages(idp, load, tokens_per_user=TOKENS_PER_USER)
        policy_folder(root, load)
        cpus = ("0", "1") if workers == 1 and len(os.sched_getaffinity(0)) >= 2 else ("", "")
        probe_config = write_config(root, idp, Settings(workers=workers, caches=False))
        server = start_server(root, probe_config, cpus[0])
        try:
            run_ghz("probe warm-up", server, EXCHANGE, messages, seconds=3, cpus=cpus[1])
            probe = run_ghz("probe", server, EXCHANGE, messages, seconds=8, cpus=cpus[1])
        finally:
            server.stop()
        rate = max(1.0, probe.throughput / 2)
        config = write_config(root, idp, Settings(workers=workers))
        server = start_server(root, config, cpus[0])
        samples: list[dict[str, Any]] = []
        try:
            # One full pass at the soak rate first: both caches are full (and evicting) before
            # the RSS baseline is taken, so growth means a leak, not a cache filling up.
            warm = run_ghz(
                "warm-up",
                server,
                EXCHANGE,
                messages,
                total=len(messages),
                rps=rate,
                concurrency=64,
                cpus=cpus[1],
            )
            baseline = [round(b / 2**20, 1) for b in server.rss_bytes()]
            stop = threading.Event()
            sampler = threading.Thread(target=_sampler, args=(server, stop, samples))
            sampler.start()
            try:
                run = run_ghz(
                    "soak",
                    server,
                    EXCHANGE,
                    messages,
                    total=int(rate * seconds),
                    rps=rate,
                    concurrency=64,
                    cpus=cpus[1],
                )
            finally:
                stop.set()
                sampler.join()
            final = [round(b / 2**20, 1) for b in server.rss_bytes()]
        finally:
            server.stop()
    finally:
        idp.close()
    return _result(
        probe,
        warm,
        run,
        rate=rate,
        baseline=baseline,
        final=final,
        samples=samples,
        workers=workers,
        seconds=seconds,
    )


def _result(
    probe: Run,
    warm: Run,
    run: Run,
    *,
    rate: float,
    baseline: list[float],
    final: list[float],
    samples: list[dict[str, Any]],
    workers: int,
    seconds: float,
) -> dict[str, Any]:
    growth = [round(100 * (f - b) / b, 1) for b, f in zip(baseline, final, strict=False) if b]
    return {
        "workers": workers,
        "seconds": seconds,
        "all_miss_max_rps": probe.throughput,
        "offered_rps": round(rate, 1),
        "warm_up": warm.as_dict(),
        "soak": run.as_dict(),
        "rss_mib_after_warm_up": baseline,
        "rss_mib_at_end": final,
        "rss_growth_percent": growth,
        "rss_samples": samples,
        "passed": run.errors == 0 and all(g < 10 for g in growth),
        "machine": machine.describe(),
    }


def markdown(result: dict[str, Any]) -> str:
    run = result["soak"]
    lines = [
        "# Soak (`make soak`)",
        "",
        f"{result['seconds']:.0f} s of ExchangeToken at {result['offered_rps']:,.0f}/s "
        f"(50 % of the all-miss maximum, {result['all_miss_max_rps']:,.0f}/s, measured first "
        f"with caches off), open loop (`ghz --async --rps`), workers = {result['workers']}, "
        "caches on (defaults) with 12,000 distinct (token, audience) requests round-robin: more "
        "than the 10,000-entry caches hold, so both stay full and evict throughout.",
        "",
        "| | value |",
        "|---|---:|",
        f"| requests | {run['requests']:,} |",
        f"| errors | {run['errors']} |",
        f"| achieved/s | {run['throughput']:,.1f} |",
        f"| p50 / p99 / p99.9 ms | {run['p50_ms']:.2f} / {run['p99_ms']:.2f} / "
        f"{run['p999_ms']:.2f} |",
        f"| server CPU µs per request | {run['cpu_us_per_request']:,.0f} |",
        f"| RSS MiB per worker after warm-up | {result['rss_mib_after_warm_up']} |",
        f"| RSS MiB per worker at the end | {result['rss_mib_at_end']} |",
        f"| RSS growth % (target < 10) | {result['rss_growth_percent']} |",
        f"| **passed** | **{result['passed']}** |",
        "",
        "RSS every 10 s (MiB per worker): "
        + ", ".join(f"{s['t']}s {s['rss_mib']}" for s in result["rss_samples"]),
        "",
        "## Machine",
        "",
        *(f"- {name}: {value}" for name, value in result["machine"].items()),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", "600"))
    )
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "1")))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sekisho-soak-") as tmp:
        result = soak(Path(tmp), args.seconds, args.workers)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "soak.md").write_text(markdown(result))
    print(markdown(result))
    if not result["passed"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
