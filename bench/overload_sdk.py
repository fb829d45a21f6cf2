"""The open-loop and fairness runs of bench/overload.py again, with callers that use
sekisho.client (default retries and client-side adaptive throttling), as real agents do:
bench/sdk_load.py, pinned to the load generators' core."""

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from stack import Server

SDK_LOAD = Path(__file__).resolve().parent / "sdk_load.py"
DEADLINE = 1.0
WARMUP = 1.0  # the probe runs alone first: its unloaded latency
TAIL = 3.0  # and after the load: recovery


def start(
    server: Server,
    messages: list[dict[str, Any]],
    callers: list[dict[str, Any]],
    cpus: str,
    options: dict[str, Any] | None = None,
) -> tuple[subprocess.Popen[bytes], tempfile.TemporaryDirectory[str]]:
    """One bench/sdk_load.py process running `callers` (each its own client and connection);
    `options`: more SPEC fields (bench/sdk_load.py), e.g. {"early_refusal": False}."""
    tmp = tempfile.TemporaryDirectory(prefix="sekisho-sdk-")
    spec = Path(tmp.name) / "spec.json"
    fields = {"deadline": DEADLINE, "messages": messages, "callers": callers, **(options or {})}
    spec.write_text(json.dumps(fields))
    command = ["taskset", "-c", cpus, sys.executable, str(SDK_LOAD), server.grpc_target]
    return subprocess.Popen([*command, str(spec)], stdout=subprocess.PIPE), tmp


def collect(
    running: tuple[subprocess.Popen[bytes], tempfile.TemporaryDirectory[str]],
) -> dict[str, dict[str, Any]]:
    """Each caller's attempts ([start, latency ms, outcome]) and generator lateness, by name."""
    process, tmp = running
    out, _ = process.communicate(timeout=300)
    tmp.cleanup()
    if process.returncode:
        raise SystemExit(f"sdk_load.py exited {process.returncode}")
    return {caller["name"]: caller for caller in json.loads(out)}


def run(
    server: Server,
    messages: list[dict[str, Any]],
    callers: list[dict[str, Any]],
    cpus: str,
    options: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    return collect(start(server, messages, callers, cpus, options))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else 0.0


def _outcomes(attempts: list[Any]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for _, _, outcome in attempts:
        kinds[outcome] = kinds.get(outcome, 0) + 1
    return kinds


def summary(caller: dict[str, Any], rate: float = 0.0) -> dict[str, Any]:
    attempts = caller["attempts"]
    kinds = _outcomes(attempts)
    ok = [ms for _, ms, outcome in attempts if outcome == "ok"]
    answered = ("ok", "DEADLINE_EXCEEDED", "stuck")  # stuck: no latency (bench/sdk_load.py)
    refused = [ms for _, ms, outcome in attempts if outcome not in answered]
    seconds = max(1e-9, caller["sent_over_s"])
    first = min((start for start, _, _ in attempts), default=0.0)
    answers = [start + ms / 1e3 for start, ms, outcome in attempts if outcome == "ok"]
    result = {
        "calls": len(attempts),
        "rpcs": caller["rpcs"],
        "by_outcome": kinds,
        "goodput_per_s": round(len(ok) / seconds, 1),
        "ok_p50_ms": _pct(ok, 0.5),
        "ok_p99_ms": _pct(ok, 0.99),
        "refused_p99_ms": _pct(refused, 0.99),
        "generator_lateness_p99_ms": caller["start_lateness_p99_ms"],
        # From the first call to the first token: over the deadline, the connection's first
        # calls went unanswered (bench/results/sdk_slots.md: a start stall, either variant).
        "first_ok_ms": round((min(answers) - first) * 1e3, 1) if answers else None,
    }
    if rate:
        result["goodput_of_R"] = round(len(ok) / seconds / rate, 3)
    return result


def open_loop(
    server: Server,
    messages: list[dict[str, Any]],
    rate: float,
    factor: float,
    *,
    cpus: str,
    seconds: float,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`factor` x R through one SDK client, a probe SDK client at 0.1 R through and after it."""
    probe_rate = max(1.0, 0.1 * rate)
    callers = [
        {"name": "probe", "rate": probe_rate, "seconds": WARMUP + seconds + TAIL},
        {"name": "load", "rate": factor * rate, "seconds": seconds, "delay": WARMUP},
    ]
    runs = run(server, messages, callers, cpus, options)
    load, probe = runs["load"], runs["probe"]
    load_start = min(start for start, _, _ in load["attempts"])
    load_end = max(start for start, _, _ in load["attempts"])
    unloaded = _pct(
        [ms for start, ms, o in probe["attempts"] if start < load_start and o == "ok"], 0.99
    )
    bad = [
        start + ms / 1e3
        for start, ms, outcome in probe["attempts"]
        if outcome != "ok" or ms > 3 * max(unloaded, 1.0)
    ]
    result = summary(load, rate)
    result["probe"] = summary(probe)
    result["recovered_after_s"] = round(max(0.0, max(bad, default=load_end) - load_end), 2)
    return result


def abusive_and_polite(
    server: Server, messages: list[dict[str, Any]], rate: float, *, cpus: str, seconds: float
) -> dict[str, Any]:
    polite_rate = max(1.0, 0.05 * rate)
    alone = run(
        server, messages, [{"name": "alone", "rate": polite_rate, "seconds": seconds}], cpus
    )["alone"]
    callers = [{"name": f"polite{n}", "rate": polite_rate, "seconds": seconds} for n in range(10)]
    # Separate processes, as separate agents are: the flood's client work must not delay the
    # polite callers' own event loop (it did when they shared one: p99 measured the generator).
    polite_run = start(server, messages, callers, cpus)
    abusive = run(server, messages, [{"name": "abusive", "rate": 5 * rate, "seconds": seconds}],
                  cpus)  # fmt: skip
    runs = {**collect(polite_run), **abusive}
    polite = [a for name, c in runs.items() if name != "abusive" for a in c["attempts"]]
    ok = [ms for _, ms, outcome in polite if outcome == "ok"]
    alone_p99 = summary(alone)["ok_p99_ms"]
    return {
        "polite_unloaded": summary(alone),
        "polite_success": round(len(ok) / max(1, len(polite)), 4),
        "polite_p99_ms": _pct(ok, 0.99),
        "polite_p99_vs_unloaded": round(_pct(ok, 0.99) / max(0.01, alone_p99), 2),
        "polite_outcomes": _outcomes(polite),
        "abusive": summary(runs["abusive"], rate),
    }
