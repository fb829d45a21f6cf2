"""Runs inside a separate venv with `opa-py-wasm` (it pins wasmtime 46.x; Sekisho uses 50.x):
evaluates the policy.wasm, data and inputs that bench/policy_latency.py wrote, one at a time,
and prints {"samples_us": [...], "results": [...]} as JSON.

    VENV/bin/python bench/opa_py_wasm_probe.py DIR WARMUP
"""

import json
import sys
import time
from pathlib import Path

from opapywasm import UNDEFINED, OpaWasmPolicy, PolicyConfig


def main() -> None:
    folder, warmup = Path(sys.argv[1]), int(sys.argv[2])
    policy = OpaWasmPolicy.from_wasm_file(folder / "policy.wasm", PolicyConfig(pool_size=1))
    policy.set_data(json.loads((folder / "data.json").read_text()))
    docs = [json.loads(line) for line in (folder / "inputs.jsonl").read_text().splitlines()]
    entrypoint = "sekisho/exchange/decision"
    for doc in docs[:warmup]:
        policy.evaluate(doc, entrypoint)
    samples, results = [], []
    for doc in docs[warmup:]:
        started = time.perf_counter_ns()
        value = policy.evaluate(doc, entrypoint)
        samples.append((time.perf_counter_ns() - started) / 1000)
        results.append(None if value is UNDEFINED else value)
    policy.close()
    print(json.dumps({"samples_us": samples, "results": results}))


if __name__ == "__main__":
    main()
