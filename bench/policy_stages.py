"""What one embedded policy decision is made of, stage by stage, for the checkout on PYTHONPATH:
the bench's registry and inputs (bench/policy_latency.py, 1,000 downstreams, same seed), each
stage run over every input on its own (its inputs prepared beforehand), timed per input (wall
median / p99 µs), and optionally counted by callgrind (deterministic Ir per input):

    PYTHONPATH=CHECKOUT/server PATH=bin:$PATH .venv/bin/python bench/policy_stages.py \\
        [--inputs 2000] [--rounds 5]
    PYTHONPATH=CHECKOUT/server PATH=bin:$PATH valgrind --tool=callgrind \\
        --toggle-collect=functools_reduce --dump-after=functools_reduce \\
        --callgrind-out-file=/tmp/stages.%p .venv/bin/python bench/policy_stages.py --callgrind
    (dump N = stage N in the order printed; Ir per input = dump total / inputs)

Stages: `encode` (encode_json of the document, as `decide` does it), `evaluate`
(LoadedPolicy.evaluate of the encoded input: checkout, input write, epoch deadline, `opa_eval`,
result read and result_value), `decision` (parse_decision), `id` (the decision id), `decide`
(the whole WasmPolicyEngine.decide as the service awaits it, driven without an event loop).
Inside `evaluate`, callgrind's inclusive cost of the module's `opa_eval` (with `--perfmap`,
wasmtime writes /tmp/perf-PID.map naming the JIT code's addresses) splits the module's own work
(input parse, evaluation, result dump) from the Python and ctypes around it. `--opt-level`,
`--no-epoch` and `--config k=v,...` build the engine's wasmtime.Config differently, to measure
those settings (not what the service runs).
"""

import argparse
import functools
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import policy_latency
import wasmtime
from sekisho.config import PolicyConfig
from sekisho.identifiers import random_uuid
from sekisho.policy.decision import parse_decision
from sekisho.policy.wasm.engine import WasmPolicyEngine
from sekisho.policy.wasm.policy import encode_json
from sekisho.policy.wasm.runtime import WasmRuntime
from sekisho.policy_components import wasm_limits

Stage = Callable[[int], Any]  # one input's work, by input index


def _under_marker(run: Callable[[], None]) -> None:
    """Run inside functools.reduce so `--toggle-collect=functools_reduce` counts only `run`."""
    functools.reduce(lambda _a, _b: run(), [0, 1])


def _run(coroutine: Any) -> Any:
    """Run a coroutine that never suspends (decide with pool_size 1) to its end, without an
    event loop's own cost in the measurement."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("decide suspended")


def stages(engine: WasmPolicyEngine, docs: list[dict[str, Any]]) -> dict[str, Stage]:
    """Each stage over prepared inputs, through functions both revisions of an A/B share."""
    policy = engine.policy
    encoded = [encode_json(doc) for doc in docs]
    values = [policy.evaluate(e) for e in encoded]
    return {
        "encode": lambda i: encode_json(docs[i]),
        "evaluate": lambda i: policy.evaluate(encoded[i]),
        "decision": lambda i: parse_decision(values[i], "id"),
        "id": lambda i: random_uuid(),
        "decide": lambda i: _run(engine.decide(docs[i])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated stages")
    parser.add_argument("--opt-level", default="", help="wasmtime cranelift_opt_level")
    parser.add_argument("--no-epoch", action="store_true", help="epoch_interruption off")
    parser.add_argument("--config", default="", help="other wasmtime.Config settings: k=v,...")
    parser.add_argument(
        "--perfmap", action="store_true", help="wasmtime writes /tmp/perf-PID.map (JIT names)"
    )
    args = parser.parse_args()
    rng = random.Random(20261123)  # noqa: S311 - the bench's inputs
    data = policy_latency.registry(1000, rng)
    docs = [policy_latency.document(rng, data) for _ in range(args.inputs)]
    with tempfile.TemporaryDirectory() as tmp:
        root = policy_latency.policy_folder(Path(tmp) / "policies", data)
        policy = PolicyConfig()
        runtime = WasmRuntime()
        if args.perfmap or args.opt_level or args.no_epoch or args.config:
            config = wasmtime.Config()
            config.epoch_interruption = not args.no_epoch
            if args.perfmap:
                config.profiler = "perfmap"
            if args.opt_level:
                config.cranelift_opt_level = args.opt_level
            for setting in filter(None, args.config.split(",")):
                key, value = setting.split("=")
                setattr(config, key, int(value) if value.isdigit() else value == "true")
            runtime.engine = wasmtime.Engine(config)
        engine = WasmPolicyEngine(
            root, policy_latency.QUERY, Path(policy_latency.opa_binary()), wasm_limits(policy),
            compile_timeout=policy.compile_timeout_seconds, runtime=runtime,
        )  # fmt: skip
        engine.load()
    work = stages(engine, docs)
    if args.only:
        work = {name: work[name] for name in args.only.split(",")}
    indices = range(len(docs))
    for stage in work.values():  # warm every path once
        for i in indices:
            stage(i)
    if args.callgrind:
        for name, stage in work.items():
            _under_marker(lambda stage=stage: [stage(i) for i in indices] and None)
            print(f"under the marker: {name} ({len(docs)} inputs)", flush=True)
        return
    ns = time.perf_counter_ns
    print(f"{'stage':<12}{'median µs':>11}{'p99 µs':>9}   ({len(docs)} inputs x {args.rounds})")
    for name, stage in work.items():
        samples = []
        for _ in range(args.rounds):
            for i in indices:
                t0 = ns()
                stage(i)
                samples.append((ns() - t0) / 1000)
        samples.sort()
        p99 = samples[int(0.99 * (len(samples) - 1))]
        print(f"{name:<12}{statistics.median(samples):>11.1f}{p99:>9.1f}", flush=True)
    print("load average:", " ".join(f"{x:.2f}" for x in __import__("os").getloadavg()))
    sys.exit(0)


if __name__ == "__main__":
    main()
