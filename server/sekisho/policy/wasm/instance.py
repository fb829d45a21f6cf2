"""One instantiated policy module and OPA's Wasm ABI (OPA docs, "WebAssembly": ABI 1.2+).

Per evaluation: the input JSON (encoded once by the caller) is written at the data heap pointer
and `opa_eval` is called once with the entrypoint, the data parsed at load time, and the heap
pointer after the input. `opa_eval` resets the heap to that pointer itself, so an instance never
grows across evaluations and nothing is allocated from Python per call. The data document is
parsed into the instance once, at load.

Bounds: linear memory is capped (`max_pages`; growing past it traps), and every evaluation runs
under an epoch deadline (runtime.py). A trap, a timeout, or an unusable result raises
WasmEvaluationError; the engine turns that into a deny.
"""

import ctypes
import json
from collections.abc import Mapping
from typing import Any

import wasmtime

from sekisho.policy.wasm.builtins import regotext
from sekisho.policy.wasm.builtins.registry import BuiltinError, HostBuiltin
from sekisho.policy.wasm.rawcall import (
    Context,
    HostFailure,
    I32Call,
    RawMemory,
    context_address,
    define_i32_import,
    set_epoch_deadline,
)
from sekisho.policy.wasm.runtime import NO_DEADLINE_TICKS

PAGE_BYTES = 65536
_MIB = 1024 * 1024
# Room for evaluation beyond the input, ensured before each call so small policies never grow.
_EVAL_HEADROOM = 4 * PAGE_BYTES
_MAX_BUILTIN_ARITY = 4
_ABI_FUNCTIONS = (
    "opa_eval",
    "opa_heap_ptr_get",
    "opa_malloc",
    "opa_json_parse",
    "opa_json_dump",
    "opa_value_dump",
    "builtins",
    "entrypoints",
)


class WasmEvaluationError(Exception):
    """The module trapped, ran out of time or memory, or returned something unusable."""


class _CapReachedError(WasmEvaluationError):
    """Linear memory would have to grow past the cap."""


class DataTooLargeError(WasmEvaluationError):
    """The data document, parsed, does not fit an instance's memory cap."""

    def __init__(self, size: int, limit_bytes: int) -> None:
        super().__init__(
            f"the data document ({size} bytes of JSON) does not fit the embedded engine's "
            f"memory once parsed: [policy] memory_limit_mb = {limit_bytes / _MIB:g} per "
            "instance; raise it or make the data smaller"
        )


class PolicyInstance:
    """A Store, its capped Memory and the instantiated module. One thread at a time."""

    def __init__(
        self,
        engine: wasmtime.Engine,
        module: wasmtime.Module,
        max_pages: int,
        builtins: dict[int, HostBuiltin] | None = None,
    ) -> None:
        """Raises: wasmtime.WasmtimeError or wasmtime.Trap when the module cannot start."""
        self._builtins = builtins or {}
        self._memo: dict[int, int] = {}  # per-evaluation builtin results: id → value address
        self._store = wasmtime.Store(engine)
        self._context = context_address(self._store)  # stable while the store lives
        self._store.set_epoch_deadline(NO_DEADLINE_TICKS)
        self._max_pages = max_pages
        self._store.set_limits(memory_size=max_pages * PAGE_BYTES)
        initial = min(_memory_minimum(module), max_pages)
        self._memory = wasmtime.Memory(
            self._store, wasmtime.MemoryType(wasmtime.Limits(initial, max_pages))
        )
        self._raw_memory = RawMemory(self._memory)
        self._failure = HostFailure()  # this store's host-import exception, not a global slot
        linker = wasmtime.Linker(engine)
        linker.define(self._store, "env", "memory", self._memory)
        self._define_imports(linker)
        exports = linker.instantiate(self._store, module).exports(self._store)
        self._abi = {
            name: _i32_export(self._store, exports, name, self._failure) for name in _ABI_FUNCTIONS
        }
        self._eval = self._abi["opa_eval"]
        self._data_addr = 0
        self._capacity = 0
        self._heap_base = self._call("opa_heap_ptr_get")

    def _call(self, name: str, *args: int, caller: wasmtime.Caller | None = None) -> int:
        function = self._abi[name]
        return function(*args) if caller is None else function.within(caller, *args)

    def _define_imports(self, linker: wasmtime.Linker) -> None:
        # The C callbacks live as long as this instance (and its store).
        failure = self._failure
        self._callbacks = [
            define_i32_import(
                linker, "env", "opa_abort", 1, self._abort, failure=failure, returns=False
            ),
            define_i32_import(
                linker, "env", "opa_println", 1, _ignore, failure=failure, returns=False
            ),
        ]
        self._callbacks += [
            define_i32_import(
                linker, "env", f"opa_builtin{arity}", 2 + arity, self._dispatch, failure=failure
            )
            for arity in range(_MAX_BUILTIN_ARITY + 1)
        ]

    def metadata(self) -> tuple[dict[str, int], dict[str, int]]:
        """(builtins the module needs by name → id, entrypoints by name → id).

        Raises: WasmEvaluationError; wasmtime.Trap or wasmtime.WasmtimeError."""
        try:
            builtins, entrypoints = (
                self._dump_json(self._call(f)) for f in ("builtins", "entrypoints")
            )
        except (_HostCallError, ValueError, RecursionError) as exc:
            # An opa_abort (a host call) or output that is not JSON or nests deeper than it
            # decodes: before, these escaped the compile untyped, so a polled bundle failed as
            # `poll_failed` (a bug, with a traceback), not as `rejected`.
            raise WasmEvaluationError(f"the module's metadata does not read: {exc}") from exc
        if not isinstance(builtins, dict) or not isinstance(entrypoints, dict):
            raise WasmEvaluationError("the module's builtins/entrypoints are not objects")
        return builtins, entrypoints

    def memory_bytes(self) -> int:
        return int(self._memory.data_len(self._store))

    def load_data(self, data: bytes) -> None:
        """Parse the data document into the instance once.

        Raises: WasmEvaluationError (DataTooLargeError when it does not fit the memory cap)."""
        try:
            self._reserve(self._heap_base + len(data) * 4 + _EVAL_HEADROOM)
            raw = self._call("opa_malloc", len(data))
            self._write(self._store, raw, data)
            self._data_addr = self._call("opa_json_parse", raw, len(data))
        except (WasmEvaluationError, wasmtime.Trap, wasmtime.WasmtimeError, _HostCallError) as exc:
            # A parse that runs out of the capped memory aborts in opa_malloc (a host call, not
            # a trap): before, that escaped the loader untyped (red team session 13).
            if isinstance(exc, _CapReachedError) or "opa_malloc" in str(exc):
                raise DataTooLargeError(len(data), self._max_pages * PAGE_BYTES) from exc
            raise WasmEvaluationError(f"the data document does not load: {exc}") from exc
        if self._data_addr == 0:
            raise WasmEvaluationError("the data document is not valid JSON for OPA")
        self._heap_base = self._call("opa_heap_ptr_get")

    def evaluate(self, entrypoint: int, document: bytes, deadline_ticks: int) -> bytes:
        """The result set of one evaluation as Rego text (`opa_value_dump`).

        Raises: WasmEvaluationError."""
        base = self._heap_base
        size = len(document)
        end = base + size
        context = self._context
        try:
            if end + _EVAL_HEADROOM > self._capacity:
                self._reserve(end + _EVAL_HEADROOM)
            ctypes.memmove(self._raw_memory.base_at(context) + base, document, size)
            if self._memo:
                self._memo.clear()
            # Relative to the epoch now; nothing else runs in this store until the next
            # evaluation sets it again, so it is not reset afterwards.
            set_epoch_deadline(context, deadline_ticks)
            # Format 1 ("value"): Rego text, so sets stay sets and can be ordered as OPA does.
            addr = self._eval(0, entrypoint, self._data_addr, base, size, end, 1)
        except wasmtime.Trap as exc:
            timed_out = exc.trap_code == wasmtime.TrapCode.INTERRUPT
            raise WasmEvaluationError("evaluation timed out" if timed_out else str(exc)) from exc
        except (wasmtime.WasmtimeError, _HostCallError) as exc:
            raise WasmEvaluationError(str(exc)) from exc
        return self._read_cstring_at(context, addr)

    def _reserve(self, size: int) -> None:
        # Memory never shrinks, so a size seen once is a lower bound: ask wasmtime only beyond it.
        if size <= self._capacity:
            return
        pages = self._memory.size(self._store)
        missing = -(-size // PAGE_BYTES) - pages
        if missing > 0:
            try:
                self._memory.grow(self._store, missing)
            except wasmtime.WasmtimeError as exc:
                raise _CapReachedError(f"memory cap reached ({size} bytes needed)") from exc
            pages += missing
        self._capacity = pages * PAGE_BYTES

    def _write(self, store: wasmtime.Store | wasmtime.Caller, addr: int, data: bytes) -> None:
        if addr <= 0 or addr + len(data) > self._raw_memory.size(store):
            raise WasmEvaluationError(f"allocation at {addr} is outside memory")
        ctypes.memmove(self._raw_memory.base(store) + addr, data, len(data))

    def _read_cstring(self, store: wasmtime.Store | wasmtime.Caller, addr: int) -> bytes:
        return self._read_cstring_at(store._context(), addr)

    def _read_cstring_at(self, context: Context, addr: int) -> bytes:
        # The base moves when memory grows: read it (and the length) for every access.
        end = self._raw_memory.size_at(context)
        if addr <= 0 or addr >= end:
            raise WasmEvaluationError(f"result address {addr} is outside memory")
        chunk, origin = 1024, self._raw_memory.base_at(context)
        parts: list[bytes] = []
        while addr < end:
            data = ctypes.string_at(origin + addr, min(chunk, end - addr))
            nul = data.find(0)
            if nul >= 0:
                if not parts:
                    return data[:nul]
                parts.append(data[:nul])
                return b"".join(parts)
            parts.append(data)
            addr += len(data)
            chunk *= 4
        raise WasmEvaluationError("result string is not terminated")

    def _dump_json(self, value_addr: int, caller: wasmtime.Caller | None = None) -> Any:
        address = self._call("opa_json_dump", value_addr, caller=caller)
        text = self._read_cstring(caller or self._store, address)
        return json.loads(text)

    def _abort(self, caller: Any, addr: int) -> None:
        message = self._read_cstring(caller, addr).decode("utf-8", "replace")[:500]
        raise _HostCallError(f"opa_abort: {message}")

    def _dispatch(self, caller: wasmtime.Caller, builtin_id: int, _ctx: int, *args: int) -> int:
        builtin = self._builtins.get(builtin_id)
        if builtin is None:
            raise _HostCallError(f"no host builtin with id {builtin_id}")
        if builtin.per_evaluation and builtin_id in self._memo:
            return self._memo[builtin_id]
        try:
            result = builtin.call(
                *(self._operand(caller, addr, builtin.rego_text) for addr in args)
            )
            encoded = _encode_result(result)
        except BuiltinError:
            return 0  # as OPA without strict builtin errors: the expression is undefined
        except Exception as exc:  # a host boundary: whatever failed, the evaluation traps
            raise _HostCallError(f"{builtin.name}: {exc}") from exc
        raw = self._call("opa_malloc", len(encoded), caller=caller)
        self._write(caller, raw, encoded)
        value = self._call("opa_json_parse", raw, len(encoded), caller=caller)
        if builtin.per_evaluation:
            self._memo[builtin_id] = value
        return value

    def _operand(self, caller: wasmtime.Caller, addr: int, rego_text: bool) -> Any:
        """The JSON value at `addr`, or with `rego_text` its Rego value (regotext.parse): one
        dump either way."""
        if not rego_text:
            return self._dump_json(addr, caller)
        text = self._read_cstring(caller, self._call("opa_value_dump", addr, caller=caller))
        return regotext.parse(text.decode())


class _HostCallError(Exception):
    """A host import refused to continue: the evaluation traps."""


def _encode_result(result: Any) -> bytes:
    """JSON for the module; a regotext.Number keeps its exact text (decimals JSON floats lose)."""
    if isinstance(result, regotext.Number):
        return result.text.encode()
    return json.dumps(result, ensure_ascii=False, allow_nan=False).encode()


def _ignore(_caller: Any, _addr: int) -> None:
    """opa_println: `print` output is not part of a decision."""


def _i32_export(
    store: wasmtime.Store, exports: Mapping[str, Any], name: str, failure: HostFailure
) -> I32Call:
    """Raises: wasmtime.WasmtimeError when the module lacks the ABI function."""
    function = exports.get(name)
    if not isinstance(function, wasmtime.Func):
        raise wasmtime.WasmtimeError(f"{name} is not an exported function")
    return I32Call(store, function, failure)


def _memory_minimum(module: wasmtime.Module) -> int:
    for imported in module.imports:
        if imported.module == "env" and imported.name == "memory":
            kind = imported.type
            if isinstance(kind, wasmtime.MemoryType):
                return max(2, int(kind.limits.min))
    return 2
