"""A direct call of an exported i32 function: `opa_eval` once per decision, and the ABI helpers
(`opa_malloc`, `opa_json_parse`, `opa_value_dump`, ...) each host builtin call needs a few of.

wasmtime-py's `Func.__call__` re-reads the function type and converts every argument through
`Val` on each call: ~60 % of a decision with the default policy, and ~25 µs per helper call
(a `sprintf` took six: ~150 µs). Here the function type is checked once, at construction, and
each call goes through `wasmtime_func_call_unchecked` with one prebuilt raw-value array whose
i32 fields are overwritten (~1.5 µs per call). This reaches into wasmtime-py's ctypes bindings
(`_ffi`, `Func._func`, `Storelike._context`), so constraints.txt pins wasmtime exactly and
tests/unit/policy/wasm/ exercise it on every upgrade. Traps and host-call exceptions are raised
exactly as `Func.__call__` raises them.

`RawMemory` gives a linear memory's base address and length as plain integers
(`Memory.data_ptr` casts a typed pointer on every call, ~15 % of a decision's Python time).

`define_i32_import` is the other direction: a host import `(i32 ...) -> i32` called through
`wasmtime_linker_define_func_unchecked` with the raw i32 values, not through wasmtime-py's
generic trampoline (a Val object per argument and type comparisons for the result, ~30 % of a
host builtin call). An exception in the handler is handed over as wasmtime-py hands one over:
the call traps and the exception is re-raised where the guest was entered.

That exception travels in a `HostFailure` shared by one store's imports and entry points, not
in wasmtime-py's process-wide `LAST_EXCEPTION` slot: with several instances evaluating on
several threads (`[policy] pool_size > 1`), the shared slot let one evaluation's trap raise, and
consume, the exception of another (tests/unit/policy/wasm/test_host_failure_attribution.py).
Nothing here uses wasmtime-py's own trampoline, so nothing reads or writes that slot.
"""

import ctypes
from collections.abc import Callable
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

_TRAP_POINTER = ctypes.POINTER(ffi.wasm_trap_t)
_I32 = wasmtime.ValType.i32()
_HOST_FAILED = b"host import failed"


def _memory_function(name: str, restype: Any) -> Any:
    # dll[name] is a new function object: its result type is ours, wasmtime-py's stays as it is.
    function = ffi.dll[name]
    function.restype = restype
    function.argtypes = [
        ctypes.POINTER(ffi.wasmtime_context_t),
        ctypes.POINTER(ffi.wasmtime_memory_t),
    ]
    return function


_MEMORY_DATA = _memory_function("wasmtime_memory_data", ctypes.c_void_p)
_MEMORY_DATA_SIZE = _memory_function("wasmtime_memory_data_size", ctypes.c_size_t)


class HostFailure:
    """The exception a host import raised in the current guest call of one store, until the
    entry point that called into the guest re-raises it. One store is used by one thread at a
    time, so its imports and entry points can share one."""

    __slots__ = ("exception",)

    def __init__(self) -> None:
        self.exception: BaseException | None = None

    def raise_pending(self) -> None:
        """Raise (and clear) the pending exception, if any."""
        exception, self.exception = self.exception, None
        if exception is not None:
            raise exception


class I32Call:
    """Calls one exported `(i32, ...) -> i32` function of one store, without per-call setup.

    Not reentrant for the same function (one argument array); the ABI never re-enters one."""

    def __init__(self, store: wasmtime.Store, func: wasmtime.Func, failure: HostFailure) -> None:
        """`failure`: the one the store's imports were defined with.

        Raises: wasmtime.WasmtimeError when the function is not (i32 ...) -> i32."""
        kind = func.type(store)
        count = len(kind.params)
        if len(kind.results) != 1 or any(str(p) != "i32" for p in (*kind.params, *kind.results)):
            raise wasmtime.WasmtimeError("I32Call needs an (i32 ...) -> i32 function")
        self._store = store
        self._failure = failure
        self._func = func  # keeps the wasmtime_func_t that _func_ref points to alive
        self._func_ref = ctypes.byref(func._func)
        # The unchecked call reads the arguments from and writes the results to one array.
        self._size = max(count, 1)
        self._values = (ffi.wasmtime_val_raw_t * self._size)()
        self._count = count

    def __call__(self, *args: int) -> int:
        """Raises: wasmtime.Trap, wasmtime.WasmtimeError, or what a host import raised."""
        return self._call(self._store._context(), args)

    def within(self, caller: wasmtime.Caller, *args: int) -> int:
        """The same call from inside a host import, in the calling instance's store context."""
        return self._call(caller._context(), args)

    def _call(self, context: Any, args: tuple[int, ...]) -> int:
        if len(args) != self._count:
            raise wasmtime.WasmtimeError(f"expected {self._count} arguments, got {len(args)}")
        values = self._values
        for index, value in enumerate(args):
            values[index].i32 = value
        # What wasmtime-py's enter_wasm() does, without a generator context manager per call.
        trap = _TRAP_POINTER()
        error = ffi.wasmtime_func_call_unchecked(
            context, self._func_ref, values, self._size, ctypes.byref(trap)
        )
        if trap:
            trap_obj = wasmtime.Trap._from_ptr(trap)
            self._failure.raise_pending()  # a host import's exception wins over its trap
            raise trap_obj
        if error:
            self._failure.raise_pending()
            raise wasmtime.WasmtimeError._from_ptr(error)
        result: Any = values[0].i32
        return int(result)


class RawMemory:
    """The base address and byte length of one linear memory. The base moves when the memory
    grows: read it for every access, in the context (store or caller) of that access."""

    def __init__(self, memory: wasmtime.Memory) -> None:
        self._memory = memory  # keeps the wasmtime_memory_t that _ref points to alive
        self._ref = ctypes.byref(memory._memory)

    def base(self, store: wasmtime.Store | wasmtime.Caller) -> int:
        return int(_MEMORY_DATA(store._context(), self._ref) or 0)

    def size(self, store: wasmtime.Store | wasmtime.Caller) -> int:
        return int(_MEMORY_DATA_SIZE(store._context(), self._ref))


def define_i32_import(
    linker: wasmtime.Linker,
    module: str,
    name: str,
    arity: int,
    handler: Callable[..., int | None],
    *,
    failure: HostFailure,
    returns: bool = True,
) -> Any:
    """Define `module.name` as `(i32, ... arity times) -> i32` (`-> ()` without `returns`),
    calling `handler(caller, *args)`. An exception it raises traps the guest and waits in
    `failure` for the entry point (an I32Call with the same `failure`) to re-raise it.

    Returns the C callback: the caller keeps it alive as long as any instance of the linker.
    Raises: wasmtime.WasmtimeError when the linker refuses the definition."""

    def call(_env: Any, raw_caller: Any, values: Any, _count: int) -> int:
        caller = wasmtime.Caller(raw_caller)
        try:
            result = handler(caller, *[values[i].i32 for i in range(arity)])
            if returns:
                values[0].i32 = result
        except BaseException as exc:  # re-raised where the guest was entered (raise_pending)
            failure.exception = exc
            trap = ffi.wasmtime_trap_new(_HOST_FAILED, len(_HOST_FAILED))
            return ctypes.cast(trap, ctypes.c_void_p).value or 0
        finally:
            caller._invalidate()
        return 0

    callback = ffi.wasmtime_func_unchecked_callback_t(call)
    kind = wasmtime.FuncType([_I32] * arity, [_I32] if returns else [])
    module_bytes, name_bytes = module.encode(), name.encode()
    error = ffi.wasmtime_linker_define_func_unchecked(
        linker.ptr(),
        ctypes.create_string_buffer(module_bytes),
        len(module_bytes),
        ctypes.create_string_buffer(name_bytes),
        len(name_bytes),
        kind.ptr(),
        callback,
        None,
        ctypes.CFUNCTYPE(None, ctypes.c_void_p)(),
    )
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    return callback
