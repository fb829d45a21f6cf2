"""Overload behaviour (issue 7 item 6): what one worker does when offered 2x what it can serve.

1. Saturation: closed loop (32 callers as fast as they can), both caches off so every call
   verifies its RS256 token, evaluates policy and signs, shedding off: the maximum sustainable
   rate R.
2. Overload: open loop at 2R (ghz --rps --async) for ~20 s with the default overload knobs
   (`server.max_in_flight` = 256, `server.max_cpu_fraction` = 0.9): goodput, RESOURCE_EXHAUSTED
   (slow_down) rate, p50/p99 of the accepted calls.
3. The same 2R for ~10 s (run before 2.) with both off (max_in_flight = 1,000,000,
   max_cpu_fraction = 0): the queue-collapse baseline they exist to prevent.
4. Health afterwards: /readyz and one exchange still answer.

Server pinned to one core and ghz to the other (2-core machine). Takes about a minute.
Results: bench/results/overload.md (+ .json).

    .venv/bin/python bench/overload.py [--seconds 20]
"""

import argparse
import json
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

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
SERVER_CPUS, LOAD_CPUS = "0", "1"


def _server(root: Path, idp: Idp, *, bounded: bool) -> Server:
    folder = root / ("bounded" if bounded else "unbounded")
    folder.mkdir()
    (folder / "policies").symlink_to(root / "policies")
    config = write_config(folder, idp, Settings(caches=False))
    limits = "max_in_flight = 256\nmax_cpu_fraction = 0.9"
    if not bounded:
        limits = "max_in_flight = 1000000\nmax_cpu_fraction = 0"
    text = config.read_text().replace("max_in_flight = 4096\nmax_cpu_fraction = 0", limits)
    assert limits in text
    config.write_text(text)
    return start_server(folder, config, cpus=SERVER_CPUS)


def _healthy(server: Server, messages: list[dict[str, Any]]) -> bool:
    with urllib.request.urlopen(f"{server.http_url}/readyz", timeout=5) as response:  # noqa: S310
        ready = response.status == 200
    after = run_ghz(
        "after", server, EXCHANGE, messages[:20], total=20, concurrency=1, connections=1
    )
    return ready and after.errors == 0 and server.process.poll() is None


def _server_reasons(server: Server) -> dict[str, str | int]:
    """token_rejected reasons (and their log detail) in the server's own audit log."""
    reasons: dict[str, str | int] = {}
    log = Path(server.process.args[-1]).parent / "server.log"  # type: ignore[index]
    for line in log.read_text().splitlines():
        if '"token_rejected"' in line:
            record = json.loads(line)
            key = f"{record.get('reason')}: {str(record.get('detail'))[:60]}"
            reasons[key] = int(reasons.get(key, 0)) + 1
    return reasons


def _kinds(run: Run) -> dict[str, int]:
    return dict(run.error_kinds or {})


def _exhausted(run: Run) -> int:
    return sum(
        n for kind, n in _kinds(run).items() if "ResourceExhausted" in kind or "slow" in kind
    )


def _row(label: str, run: Run) -> str:
    accepted, exhausted = run.requests - run.errors, _exhausted(run)
    share = 100 * exhausted / max(1, run.requests)
    return (
        f"| {label} | {run.offered_rps or '-'} | {run.requests} | {accepted} | "
        f"{run.throughput} | {exhausted} ({share:.1f} %) | {run.errors - exhausted} | "
        f"{run.p50_ms} | {run.p99_ms} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sekisho-overload-") as tmp:
        root = Path(tmp)
        idp, load = Idp(), workload()
        messages = exchange_messages(idp, load)
        policy_folder(root, load)
        reasons: dict[str, dict[str, str | int]] = {}
        unbounded = _server(root, idp, bounded=False)
        try:
            saturation = run_ghz(
                "saturation", unbounded, EXCHANGE, messages,
                total=3000, concurrency=32, cpus=LOAD_CPUS,
            )  # fmt: skip
            rate = saturation.throughput
            collapse = run_ghz(
                "2x unbounded", unbounded, EXCHANGE, messages,
                total=int(rate * args.seconds), rps=2 * rate, concurrency=64, cpus=LOAD_CPUS,
            )  # fmt: skip
            unbounded_healthy = _healthy(unbounded, messages)
            reasons["unbounded"] = _server_reasons(unbounded)
        finally:
            unbounded.stop()
        bounded = _server(root, idp, bounded=True)
        try:
            overload = run_ghz(
                "2x bounded", bounded, EXCHANGE, messages, total=int(2 * rate * args.seconds),
                rps=2 * rate, concurrency=64, cpus=LOAD_CPUS,
            )  # fmt: skip
            bounded_healthy = _healthy(bounded, messages)
            reasons["bounded"] = _server_reasons(bounded)
        finally:
            bounded.stop()
        idp.close()
    runs = {"saturation": saturation, "bounded": overload, "unbounded": collapse}
    _write(runs, rate, bounded_healthy, unbounded_healthy, reasons)


def _write(
    runs: dict[str, Run],
    rate: float,
    bounded_ok: bool,
    unbounded_ok: bool,
    reasons: dict[str, dict[str, str | int]],
) -> None:
    RESULTS.mkdir(exist_ok=True)
    payload = {name: run.as_dict() for name, run in runs.items()}
    payload["healthy_after"] = {"bounded": bounded_ok, "unbounded": unbounded_ok}
    payload["server_rejections"] = reasons
    (RESULTS / "overload.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# Overload: one worker offered 2x its maximum sustainable rate",
        "",
        f"Generated by `.venv/bin/python bench/overload.py` on {time.strftime('%Y-%m-%d')}; "
        "server pinned to core 0, ghz to core 1; both caches off (every call verifies an RS256 "
        "token, evaluates policy over a 1,000-downstream registry and signs ES256).",
        "",
        f"Maximum sustainable rate R (closed loop, 32 callers): **{rate} exchanges/s**.",
        "",
        "| run | offered rps | calls | accepted | goodput /s | slow_down (RESOURCE_EXHAUSTED) "
        "| other errors | p50 ms (accepted) | p99 ms (accepted) |",
        "|---|---|---|---|---|---|---|---|---|",
        _row("saturation (closed loop, shedding off)", runs["saturation"]),
        _row("2R, defaults (in-flight 256, CPU 0.9)", runs["bounded"]),
        _row("2R, shedding off", runs["unbounded"]),
        "",
        f"Healthy afterwards (/readyz 200, 20 exchanges OK, process alive): bounded "
        f"{'yes' if bounded_ok else 'NO'}, unbounded {'yes' if unbounded_ok else 'NO'}.",
        "",
        "Client-side error kinds: " + json.dumps({k: _kinds(r) for k, r in runs.items()}),
        "",
        "Server-side token_rejected reasons: " + json.dumps(reasons),
        "",
        "Notes: the machine is shared (2 cores, other jobs running), so absolute rates vary run to "
        "run by 2x; compare rows of one run. A refusal is not free: it still costs grpc's "
        "per-call Python overhead (~1 ms of CPU here against ~4 ms for an exchange), which is why "
        "the bound is on CPU (sheds while the worker is saturated) rather than a fraction of R. "
        "The in-flight count alone (an earlier version of this run) shed nothing: a CPU-bound "
        "worker accepts calls only as its loop frees up, so in-flight exchanges never exceed a "
        "few while the backlog waits inside grpc, and accepted calls then took seconds (p50 5.9 "
        "s, like the shedding-off row).",
        "",
    ]
    (RESULTS / "overload.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
