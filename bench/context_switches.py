"""Context switches per served call, by thread: what the event-loop thread loses to grpc's own
threads (the completion-queue poller, the event-engine I/O threads) on one pinned core.

Starts the exchange bench's server (bench/stack.py: workers = 1, pinned to core 0, ghz on
core 1), fills the caches, then for each scenario (echo = grpc.health.v1 Check, warm, miss =
both caches off) reads every thread's voluntary and involuntary context switches and CPU ticks
from /proc before and after `--calls` calls, and prints them per call with the server's CPU
per call. Counts are nearly deterministic where times are not (session 13: the loop thread is
preempted ~7-9 times per call, the poller wakes ~7-8 times per call, whatever the host load).

`--helper-nice N` raises the nice value of every thread but the loop thread (the process's
main thread) to N once the server is ready and again after the fill pass (threads grpc starts
under load inherit their creator's value): the experiment of bench/results/context_switches.md.
Linux only (/proc, per-thread nice). Loopback only; stops itself.

    PATH=$PWD/bin:$PATH .venv/bin/python bench/context_switches.py [--calls 6000]
        [--scenarios echo,warm,miss] [--helper-nice 19]
"""

import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadgen import ECHO, EXCHANGE, run_ghz
from stack import Idp, Server, Settings, exchange_messages, policy_folder, serve_variant, workload

SERVER_CPUS, LOAD_CPUS = "0", "1"


@dataclass(frozen=True)
class ThreadCounts:
    name: str
    voluntary: int
    involuntary: int
    cpu_ticks: int


def thread_counts(pid: int) -> dict[int, ThreadCounts]:
    """Every thread of `pid` now: its name, context switches and CPU ticks (user + system)."""
    counts: dict[int, ThreadCounts] = {}
    for entry in os.listdir(f"/proc/{pid}/task"):
        task = Path(f"/proc/{pid}/task/{entry}")
        try:
            status = dict(
                line.split(":\t", 1)
                for line in (task / "status").read_text().splitlines()
                if ":\t" in line
            )
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            counts[int(entry)] = ThreadCounts(
                name=(task / "comm").read_text().strip(),
                voluntary=int(status["voluntary_ctxt_switches"]),
                involuntary=int(status["nonvoluntary_ctxt_switches"]),
                cpu_ticks=int(fields[11]) + int(fields[12]),
            )
        except FileNotFoundError:  # the thread ended between listdir and read
            continue
    return counts


def renice_helpers(pid: int, nice: int) -> int:
    """Nice value `nice` for every thread of `pid` but its main (event-loop) thread; returns how
    many threads it changed."""
    changed = 0
    for entry in os.listdir(f"/proc/{pid}/task"):
        tid = int(entry)
        if tid == pid:
            continue
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) != nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
                changed += 1
        except ProcessLookupError:
            continue
    return changed


def measure(
    server: Server, scenario: str, messages: list[dict[str, Any]], calls: int
) -> dict[str, Any]:
    """Per-call switches by thread and server CPU over `calls` calls of `scenario`."""
    method, data = (ECHO, [{}]) if scenario == "echo" else (EXCHANGE, messages)
    pid = server.process.pid
    before, cpu = thread_counts(pid), server.cpu_seconds()
    run_ghz(scenario, server, method, data, total=calls, cpus=LOAD_CPUS)
    after, cpu = thread_counts(pid), server.cpu_seconds() - cpu
    threads = []
    for tid, now in sorted(after.items()):
        was = before.get(tid, ThreadCounts(now.name, 0, 0, 0))
        voluntary, involuntary = now.voluntary - was.voluntary, now.involuntary - was.involuntary
        if voluntary or involuntary:
            threads.append(
                {
                    "thread": "loop" if tid == pid else now.name,
                    "voluntary_per_call": round(voluntary / calls, 2),
                    "involuntary_per_call": round(involuntary / calls, 2),
                    "cpu_ticks": now.cpu_ticks - was.cpu_ticks,
                }
            )
    return {
        "scenario": scenario,
        "cpu_us_per_call": round(cpu / calls * 1e6),
        "switches_per_call": round(
            sum(t["voluntary_per_call"] + t["involuntary_per_call"] for t in threads), 2
        ),
        "loop_preempted_per_call": next(
            (t["involuntary_per_call"] for t in threads if t["thread"] == "loop"), 0.0
        ),
        "threads": threads,
    }


def run(scenario: str, calls: int, helper_nice: int | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sekisho-switches-") as tmp:
        root = Path(tmp)
        idp = Idp()
        try:
            load = workload()
            messages = exchange_messages(idp, load)
            policy_folder(root, load)
            settings = Settings(caches=scenario == "warm")
            server = serve_variant(root, idp, scenario, settings, cpus=SERVER_CPUS)
            try:
                if helper_nice is not None:
                    renice_helpers(server.process.pid, helper_nice)
                run_ghz("fill", server, EXCHANGE, messages, total=len(messages), cpus=LOAD_CPUS)
                if helper_nice is not None:
                    renice_helpers(server.process.pid, helper_nice)
                return measure(server, scenario, messages, calls)
            finally:
                server.stop()
        finally:
            idp.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=6000)
    parser.add_argument("--scenarios", default="echo,warm,miss")
    parser.add_argument("--helper-nice", type=int, default=None)
    args = parser.parse_args()
    for scenario in args.scenarios.split(","):
        result = run(scenario, args.calls, args.helper_nice)
        print(
            f"{scenario:5s} helper nice {args.helper_nice if args.helper_nice is not None else 0}:"
            f" server CPU {result['cpu_us_per_call']} us/call,"
            f" {result['switches_per_call']} switches/call,"
            f" loop preempted {result['loop_preempted_per_call']}/call"
        )
        for thread in result["threads"]:
            print(
                f"    {thread['thread']:16s} voluntary {thread['voluntary_per_call']:5.2f}"
                f"  involuntary {thread['involuntary_per_call']:5.2f}"
                f"  cpu ticks {thread['cpu_ticks']}"
            )


if __name__ == "__main__":
    main()
