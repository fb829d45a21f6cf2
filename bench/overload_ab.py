"""Alternating A/B of bench/overload.py's scenarios for [grpc]/[overload] settings (issue 14).

Each variant is a server (this checkout, or `--base-src`) with extra config appended (TOML);
variants run in turn, `--rounds` times, on a fresh server each, with R fixed (`--rate`) so the
ratios of every run share one denominator. Reports each run and the median per variant, with
the load average at its start. Scenarios: closed 32 and 256 callers (4 connections), open 2R
and 5R (1 s deadlines, 128 connections, with the recovery probe), one abusive caller at 5R
beside ten polite ones at 0.05R; and bursts of 128, 256 and 512 calls started at once (16 per
connection), counting the refused. `--focus` runs open 2R and (c) only, after a closed-loop run
(32 callers) whose goodput is that window's R (`R_here`) and server CPU per OK exchange. Each
open-loop and (c) run also records the refusals Sekisho made, by reason
(`sekisho_admission_shed` from /metrics).

Variants named base* run the server code of `--base-src` (a checkout of main, e.g. `git
worktree add --detach`), the others this checkout's; `--only-abusive` runs (c) alone.

    PATH=$PWD/bin:$PATH .venv/bin/python bench/overload_ab.py --rate 550 --rounds 3 \
        --base-src ../base --out /tmp/ab.json base= 'streams16=[grpc]\nmax_concurrent_streams = 16'
"""

import argparse
import json
import os
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from overload import SETTLE, _server, abusive_and_polite, ghz, open_loop, summary
from stack import REPO, Idp, exchange_messages, policy_folder, workload


def shed_counts(metrics_url: str) -> dict[str, float]:
    """sekisho_admission_shed by reason from /metrics (refusals by Sekisho since start)."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:  # noqa: S310 (http://127…)
        text = response.read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("sekisho_admission_shed{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            counts[reason] = float(line.rsplit(" ", 1)[1])
    return counts


def _metrics_url(config: Path) -> str:
    listen = config.read_text().split("[metrics]", 1)[1].split('listen = "', 1)[1].split('"')[0]
    return f"http://{listen}/metrics"


def _scenario(metrics_url: str, out: dict[str, Any], name: str, run: Any) -> None:
    """Run one scenario into `out[name]`, with the Sekisho refusals by reason it caused."""
    before = shed_counts(metrics_url)
    out[name] = run()
    after = shed_counts(metrics_url)
    out[name]["shed"] = {k: v - before.get(k, 0) for k, v in after.items() if v > before.get(k, 0)}


def run_variant(  # noqa: PLR0917 (a bench script's one call site)
    root: Path,
    idp: Idp,
    messages: list[dict[str, Any]],
    name: str,
    extra: str,
    rate: float,
    seconds: float,
    only_abusive: bool = False,
    focus: bool = False,
) -> dict[str, Any]:
    # Variants named base* run the server code of --base-src (e.g. a worktree of main), the
    # others this checkout's.
    source = os.environ.get("SEKISHO_AB_BASE_SRC", "")
    if not (name.startswith("base") and source):
        source = str(REPO)
    server = _server(root, idp, name, overload=True, extra="\n" + extra + "\n", source=source)
    out: dict[str, Any] = {"load_average": os.getloadavg()[0]}
    metrics = _metrics_url(root / name / "sekisho.toml")
    try:
        if only_abusive:
            _scenario(metrics, out, "abusive",
                      lambda: abusive_and_polite(server, messages, rate, seconds))  # fmt: skip
            return out
        if focus:  # (b) at 2R and (c) only, after a closed-loop run that measures this window's R
            cpu = server.cpu_seconds()
            run = ghz(server, messages, total=int(rate * seconds), concurrency=32, connections=4)
            out["closed_32"] = summary(run, rate)
            out["closed_32"]["cpu_per_ok_ms"] = round(
                (server.cpu_seconds() - cpu) / max(1, out["closed_32"]["by_status"].get("OK", 0))
                * 1e3, 3)  # fmt: skip
            time.sleep(SETTLE)
            _scenario(metrics, out, "open_2R",
                      lambda: open_loop(server, messages, rate, 2, seconds))  # fmt: skip
            time.sleep(SETTLE)
            _scenario(metrics, out, "abusive",
                      lambda: abusive_and_polite(server, messages, rate, seconds))  # fmt: skip
            return out
        for callers in (32, 256):
            run = ghz(server, messages, total=int(rate * seconds), concurrency=callers,
                      connections=4)  # fmt: skip
            out[f"closed_{callers}"] = summary(run, rate)
            time.sleep(SETTLE)
        for burst in BURSTS:
            # A fleet waking at once: `burst` calls started together, 16 per connection (the
            # stream limit), each its caller's only call; the bound grpc core's pending backlog
            # puts on them (session 18).
            run = ghz(server, messages, total=burst, concurrency=burst,
                      connections=max(1, burst // 16))  # fmt: skip
            out[f"burst_{burst}"] = summary(run, rate)
            time.sleep(SETTLE)
        for factor in (2, 5):
            _scenario(metrics, out, f"open_{factor}R",
                      lambda f=factor: open_loop(server, messages, rate, f, seconds))  # fmt: skip
            time.sleep(SETTLE)
        _scenario(metrics, out, "abusive",
                  lambda: abusive_and_polite(server, messages, rate, seconds))  # fmt: skip
    finally:
        server.stop()
    return out


BURSTS = (128, 256, 512)


def key_figures(run: dict[str, Any]) -> dict[str, float]:
    polite = run["abusive"]
    if "open_2R" in run and "open_5R" not in run:
        local_r = run["closed_32"]["goodput_per_s"]
        return {
            "load": round(run["load_average"], 1),
            "R_here": local_r,
            "ok_cpu_ms": run["closed_32"]["cpu_per_ok_ms"],
            "o2_of_R": run["open_2R"]["goodput_of_R"],
            "o2_of_R_here": round(run["open_2R"]["goodput_per_s"] / local_r, 3),
            "o2_ref_p50": run["open_2R"]["refused_p50_ms"],
            "o2_ref_p99": run["open_2R"]["refused_p99_ms"],
            "o2_ok_p99": run["open_2R"]["ok_p99_ms"],
            "o2_timeouts": run["open_2R"]["accepted_past_deadline"],
            "o2_cpu": run["open_2R"]["server_cpu_share"],
            "o2_recov": run["open_2R"]["recovered_after_s"],
            "polite_ok": polite["polite_success"],
            "polite_p99": polite["polite"]["ok_p99_ms"],
            "polite_unl_p99": polite["polite_unloaded"]["ok_p99_ms"],
            "abusive_of_R": polite["abusive"]["goodput_of_R"],
        }
    if "closed_32" not in run:
        return {
            "load": round(run["load_average"], 1),
            "polite_ok": polite["polite_success"],
            "polite_p99": polite["polite"]["ok_p99_ms"],
            "polite_unl_p99": polite["polite_unloaded"]["ok_p99_ms"],
            "abusive_of_R": polite["abusive"]["goodput_of_R"],
        }
    return {
        "load": round(run["load_average"], 1),
        "c32_of_R": run["closed_32"]["goodput_of_R"],
        "c32_refused": run["closed_32"]["calls"] - run["closed_32"]["by_status"].get("OK", 0),
        "c256_of_R": run["closed_256"]["goodput_of_R"],
        "c256_refused": run["closed_256"]["calls"] - run["closed_256"]["by_status"].get("OK", 0),
        **{
            f"b{burst}_refused": run[f"burst_{burst}"]["calls"]
            - run[f"burst_{burst}"]["by_status"].get("OK", 0)
            for burst in BURSTS
            if f"burst_{burst}" in run
        },
        "o2_of_R": run["open_2R"]["goodput_of_R"],
        "o2_ref_p99": run["open_2R"]["refused_p99_ms"],
        "o2_timeouts": run["open_2R"]["accepted_past_deadline"],
        "o2_recov": run["open_2R"]["recovered_after_s"],
        "o5_of_R": run["open_5R"]["goodput_of_R"],
        "o5_ref_p99": run["open_5R"]["refused_p99_ms"],
        "o5_timeouts": run["open_5R"]["accepted_past_deadline"],
        "o5_recov": run["open_5R"]["recovered_after_s"],
        "polite_ok": polite["polite_success"],
        "polite_p99": polite["polite"]["ok_p99_ms"],
        "polite_unl_p99": polite["polite_unloaded"]["ok_p99_ms"],
        "abusive_of_R": polite["abusive"]["goodput_of_R"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=550.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only-abusive", action="store_true", help="only the (c) scenario")
    parser.add_argument("--focus", action="store_true", help="only open 2R and (c)")
    parser.add_argument("--base-src", default="", help="checkout whose server/ base* variants run")
    parser.add_argument("variants", nargs="+", help="name=extra TOML (\\n for newlines)")
    args = parser.parse_args()
    variants = [v.split("=", 1) for v in args.variants]
    os.environ["SEKISHO_AB_BASE_SRC"] = args.base_src
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
    with tempfile.TemporaryDirectory(prefix="sekisho-overload-ab-") as tmp:
        root = Path(tmp)
        idp, load = Idp(), workload()
        messages = exchange_messages(idp, load)
        policy_folder(root, load)
        for round_ in range(args.rounds):
            for name, extra in variants:
                run = run_variant(root, idp, messages, f"{name}-{round_}",
                                  extra.replace("\\n", "\n"), args.rate, args.seconds,
                                  args.only_abusive, args.focus)  # fmt: skip
                results[name].append(run)
                print(name, round_, json.dumps(key_figures(run)), flush=True)
                args.out.write_text(json.dumps(results, indent=1))
                time.sleep(SETTLE)
        idp.close()
    for name, runs in results.items():
        figures = [key_figures(run) for run in runs]
        medians = {k: statistics.median(f[k] for f in figures) for k in figures[0]}
        print("median", name, json.dumps(medians), flush=True)


if __name__ == "__main__":
    main()
