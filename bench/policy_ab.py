"""The embedded engine of two revisions side by side in one run, interleaved: `policy_latency.py
--baseline REV` exports REV's server/ (`git archive`), starts one worker process on it and one
on the working tree, and hands both the same blocks of inputs in ABBA order, so load that comes
and goes on a shared machine lands on both. Each worker times `decide` per input, then each
stage of it (encode, evaluate, parse), then the fastest of REPEAT back-to-back `decide`s of each
input (what the input costs with the scheduler out of the picture: on a loaded machine the
single-shot tail is mostly waiting for a CPU), and reports the decision outcome with every
sample.

Worker mode (started by the driver, PYTHONPATH chooses the revision):

    python policy_ab.py FOLDER      # reads FOLDER/inputs.jsonl, then "START END" lines on stdin
"""

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import IO, Any

BLOCK = 100
REPEAT = 5
PASSES = ("", " stages", f" min of {REPEAT}")
_QUERY = "data.sekisho.exchange.decision"


class Worker:
    """One worker process; `run(start, end)` times inputs[start:end] in it."""

    def __init__(self, label: str, source: Path, folder: Path, opa: str) -> None:
        self.label = label
        env = {**os.environ, "PYTHONPATH": str(source), "SEKISHO_AB_OPA": opa}
        self._process = subprocess.Popen(
            [sys.executable, __file__, str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.loaded_from = self._read()["sekisho"]

    def _read(self) -> Any:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise SystemExit(f"{self.label} worker stopped")
        return json.loads(line)

    def run(self, start: int, end: int, mode: int) -> list[dict[str, Any]]:
        """mode: an index into PASSES."""
        assert self._process.stdin is not None
        self._process.stdin.write(f"{start} {end} {mode}\n")
        self._process.stdin.flush()
        samples: list[dict[str, Any]] = self._read()
        return samples

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=30)


def export_server(repo: Path, revision: str, target: Path) -> Path:
    """REV's server/ tree under target (the importable `sekisho` package's parent)."""
    archive = target / "server.tar"
    with archive.open("wb") as out:
        subprocess.run(
            ["git", "-C", str(repo), "archive", revision, "server"], stdout=out, check=True
        )
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target / "server"


def compare(
    repo: Path, revision: str, root: Path, docs: list[dict[str, Any]], *, warmup: int, tmp: Path
) -> dict[str, list[dict[str, Any]]]:
    """label → one sample per measured input ({"us", "outcome"}, plus stage times)."""
    folder = tmp / "ab"
    folder.mkdir()
    (folder / "inputs.jsonl").write_text("\n".join(json.dumps(d) for d in docs))
    (folder / "root").symlink_to(root)
    opa = os.environ.get("SEKISHO_AB_OPA", "opa")
    workers = [
        Worker(f"before ({revision})", export_server(repo, revision, tmp), folder, opa),
        Worker("after (working tree)", repo / "server", folder, opa),
    ]
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        for worker in workers:
            worker.run(0, warmup, 0)
        for mode, suffix in enumerate(PASSES):
            for index, start in enumerate(range(warmup, len(docs), BLOCK)):
                order = workers if index % 2 == 0 else workers[::-1]
                for worker in order:
                    samples = worker.run(start, min(start + BLOCK, len(docs)), mode)
                    results.setdefault(worker.label + suffix, []).extend(samples)
    finally:
        for worker in workers:
            worker.close()
    return results


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    if not ordered:
        return "-"
    median = statistics.median(ordered)
    p90, p99 = (ordered[int(q * (len(ordered) - 1))] for q in (0.90, 0.99))
    return f"{median:.0f} / {p90:.0f} / {p99:.0f}"


def report(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Median / p90 / p99 µs per revision: `decide`, each stage, each decision outcome."""
    lines = [f"side by side (median / p90 / p99 µs, interleaved blocks of {BLOCK} inputs):"]
    for label, samples in results.items():
        if label.endswith(" stages"):
            stages = " ".join(
                f"{stage} {_percentiles([s[stage] for s in samples])};"
                for stage in ("encode", "evaluate", "parse")
            )
            lines.append(f"  {label:<32} {stages}")
            continue
        lines.append(f"  {label:<32} decide {_percentiles([s['us'] for s in samples])}")
        for outcome in sorted({s["outcome"] for s in samples}):
            subset = [s["us"] for s in samples if s["outcome"] == outcome]
            lines.append(f"    {outcome:<34} n={len(subset):<5} {_percentiles(subset)}")
    return lines


def _serve(folder: Path, stdin: IO[str], stdout: IO[str]) -> None:
    """Worker: load the policy folder with the `sekisho` on PYTHONPATH, then time blocks."""
    import sekisho
    from sekisho.config import PolicyConfig
    from sekisho.policy.decision import parse_decision
    from sekisho.policy.wasm.engine import WasmPolicyEngine

    try:
        from sekisho.policy_components import wasm_limits
    except ImportError:  # a base checkout from before session 11
        from sekisho.policy.wasm.factory import wasm_limits  # type: ignore[no-redef]
    from sekisho.policy.wasm.policy import encode_json

    docs = [json.loads(line) for line in (folder / "inputs.jsonl").read_text().splitlines()]
    opa = Path(os.environ["SEKISHO_AB_OPA"])
    policy = PolicyConfig()
    engine = WasmPolicyEngine(
        (folder / "root").resolve(), _QUERY, opa, wasm_limits(policy),
        compile_timeout=policy.compile_timeout_seconds,
    )  # fmt: skip
    engine.load()
    print(json.dumps({"sekisho": sekisho.__file__}), file=stdout, flush=True)
    ns = time.perf_counter_ns
    loop = asyncio.new_event_loop()
    for line in stdin:
        start, end, mode = (int(part) for part in line.split())
        samples = []
        for doc in docs[start:end]:
            if mode == 2:
                elapsed = []
                for _ in range(REPEAT):
                    t0 = ns()
                    decision = loop.run_until_complete(engine.decide(doc))
                    elapsed.append(ns() - t0)
                times = {"us": min(elapsed)}
            elif mode == 1:
                t0 = ns()
                encoded = encode_json(doc)
                t1 = ns()
                raw = engine.policy.evaluate(encoded)
                t2 = ns()
                decision = parse_decision(raw)
                t3 = ns()
                times = {"encode": t1 - t0, "evaluate": t2 - t1, "parse": t3 - t2, "us": t3 - t0}
            else:
                t0 = ns()
                decision = loop.run_until_complete(engine.decide(doc))
                times = {"us": ns() - t0}
            sample: dict[str, Any] = {k: v / 1000 for k, v in times.items()}
            sample["outcome"] = decision.error or ("allow" if decision.allow else "deny")
            samples.append(sample)
        print(json.dumps(samples), file=stdout, flush=True)
    loop.run_until_complete(engine.close())
    loop.close()


if __name__ == "__main__":
    _serve(Path(sys.argv[1]), sys.stdin, sys.stdout)
