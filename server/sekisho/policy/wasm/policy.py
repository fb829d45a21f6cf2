"""A loaded policy: the compiled module, its bound host builtins and a pool of instances that
each hold the data document, parsed once.

Nothing here is compiled or instantiated per evaluation. The pool holds as many instances as
evaluations may run at once in this process (`[policy] pool_size`); an evaluation checks one
out and returns it.
"""

import json
import queue
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import wasmtime

from sekisho.clock import Clock
from sekisho.errors import PolicyLoadError
from sekisho.jsontext import json_encoder
from sekisho.policy.wasm.builtins import regotext
from sekisho.policy.wasm.builtins.catalog import host_builtins
from sekisho.policy.wasm.builtins.registry import HostBuiltin, UnsupportedBuiltinError, bind
from sekisho.policy.wasm.instance import PAGE_BYTES, PolicyInstance, WasmEvaluationError
from sekisho.policy.wasm.runtime import WasmRuntime

_CHECKOUT_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class WasmLimits:
    """How long one evaluation may run, how much memory an instance may use, how many; built by
    factory.wasm_limits (defaults: config.PolicyConfig)."""

    eval_timeout_seconds: float
    memory_limit_bytes: int
    pool_size: int

    @property
    def max_pages(self) -> int:
        return max(2, self.memory_limit_bytes // PAGE_BYTES)


@dataclass(frozen=True, slots=True)
class CompiledModule:
    """A compiled module whose builtins are all provided and whose entrypoint exists."""

    module: wasmtime.Module
    entrypoint: int
    builtins: dict[int, HostBuiltin]
    wasm: bytes


def compile_module(
    runtime: WasmRuntime, wasm: bytes, entrypoint: str, limits: WasmLimits, clock: Clock
) -> CompiledModule:
    """Compile and inspect a policy.wasm; `clock` is what time.now_ns() reads.

    Raises: PolicyLoadError (naming missing builtins).
    """
    try:
        module = runtime.compile(wasm)
        needed, entrypoints = PolicyInstance(runtime.engine, module, limits.max_pages).metadata()
    except (wasmtime.WasmtimeError, wasmtime.Trap, WasmEvaluationError, KeyError) as exc:
        raise PolicyLoadError(f"policy.wasm does not load: {exc}") from exc
    if entrypoint not in entrypoints:
        raise PolicyLoadError(
            f"policy.wasm has no entrypoint {entrypoint} (has {sorted(entrypoints)})"
        )
    try:
        table = bind(needed, host_builtins(clock))
    except UnsupportedBuiltinError as exc:
        raise PolicyLoadError(str(exc)) from exc
    return CompiledModule(module, int(entrypoints[entrypoint]), table, wasm)


class LoadedPolicy:
    """A compiled module and a pool of instances holding one data document."""

    def __init__(
        self, runtime: WasmRuntime, compiled: CompiledModule, data: bytes, limits: WasmLimits
    ) -> None:
        """Raises: PolicyLoadError when the instances cannot start or the data does not load."""
        self.runtime = runtime
        self.compiled = compiled
        self.data = data
        self.revision = ""  # a bundle's manifest revision, for logs
        self._limits = limits
        self._ticks = runtime.deadline_ticks(limits.eval_timeout_seconds)
        self._instances = [self._instance() for _ in range(limits.pool_size)]
        self._pool: queue.SimpleQueue[PolicyInstance] = queue.SimpleQueue()
        for instance in self._instances:
            self._pool.put(instance)

    def _instance(self) -> PolicyInstance:
        try:
            instance = PolicyInstance(
                self.runtime.engine,
                self.compiled.module,
                self._limits.max_pages,
                self.compiled.builtins,
            )
            instance.load_data(self.data)
        except (wasmtime.WasmtimeError, wasmtime.Trap, WasmEvaluationError) as exc:
            raise PolicyLoadError(f"policy instance does not start: {exc}") from exc
        return instance

    def memory_bytes(self) -> int:
        """The largest linear memory among the instances (bounded by the memory limit)."""
        return max(instance.memory_bytes() for instance in self._instances)

    def with_data(self, data: bytes) -> "LoadedPolicy":
        """The same module with another data document. Raises: PolicyLoadError."""
        return LoadedPolicy(self.runtime, self.compiled, data, self._limits)

    def evaluate(self, document: bytes) -> Any:
        """The entrypoint's value for an encoded input, or None when undefined.

        Raises: WasmEvaluationError on a trap, timeout or malformed result.
        """
        try:
            instance = self._pool.get(timeout=_CHECKOUT_TIMEOUT_SECONDS)
        except queue.Empty as exc:
            raise WasmEvaluationError("no policy instance free") from exc
        try:
            text = instance.evaluate(self.compiled.entrypoint, document, self._ticks)
        except WasmEvaluationError:
            instance = self._replacement(instance)
            raise
        finally:
            self._pool.put(instance)
        return result_value(text)

    def _replacement(self, failed: PolicyInstance) -> PolicyInstance:
        """A fresh instance for one whose evaluation failed. A trap (a host builtin failing
        closed, a timeout) unwinds the module's frames without restoring its shadow-stack
        pointer, a global the module does not export: each trapped evaluation leaks that
        stack, and after about 4,000 the instance faults on every evaluation, so every
        decision is a deny until the policy reloads (session 10)."""
        try:
            fresh = self._instance()
        except PolicyLoadError:
            return failed  # it started with this data once; keep it rather than lose a slot
        self._instances[self._instances.index(failed)] = fresh
        return fresh


_RESULT_PREFIX = b'{{"result": '
# The C scanner json.loads runs: (value, end index) of the JSON value at an index.
_SCAN_JSON: Callable[[str, int], tuple[Any, int]]
_SCAN_JSON = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def result_value(text: bytes) -> Any:
    """The value in `opa_eval`'s result set: `set()` (undefined) or `{{"result": value}}`.

    The value's text is JSON unless it holds a set (or a non-string key): then it is parsed and
    converted as OPA converts values to JSON, sets becoming arrays in OPA's sort order (the module
    itself prints sets in hash order).

    Raises: WasmEvaluationError for anything else.
    """
    if text == b"set()":
        return None
    if text.startswith(_RESULT_PREFIX) and text.endswith(b"}}"):
        try:
            # json.loads without its copies and checks: one JSON value between the prefix and
            # the closing braces, nothing before or after it (whitespace included).
            decoded = text.decode()
            value, stop = _SCAN_JSON(decoded, len(_RESULT_PREFIX))
            if stop == len(decoded) - 2:
                return value
        except (ValueError, StopIteration):
            pass  # a set somewhere in the value: the slow path below
    try:
        results = regotext.parse(text.decode())
    except (regotext.RegoTextError, UnicodeDecodeError) as exc:
        raise WasmEvaluationError(f"result is not a Rego value: {exc}") from exc
    if not isinstance(results, regotext.RegoSet) or len(results.items) != 1:
        raise WasmEvaluationError("result set has an unexpected shape")
    (binding,) = results.items
    if not isinstance(binding, regotext.RegoObject) or [k for k, _ in binding.items] != ["result"]:
        raise WasmEvaluationError("result set has an unexpected shape")
    return regotext.to_json(binding.items[0][1])


# Compact, UTF-8 text, built once (jsontext.py): every value encoded here is parsed JSON or
# built from it (inputs, docs/architecture.md §5; data documents; corpus cases).
_ENCODE = json_encoder(ensure_ascii=False)


def encode_json(value: Any) -> bytes:
    """One compact JSON encoding, shared by inputs and data documents."""
    return _ENCODE(value).encode()
