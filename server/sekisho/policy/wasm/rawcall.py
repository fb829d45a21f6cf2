"""A direct call of an exported i32 function, for the one call per decision (`opa_eval`).

wasmtime-py's `Func.__call__` re-reads the function type and converts every argument through
`Val` on each call: ~60 % of a decision with the default policy. Here the argument and result
arrays are built once and only the i32 fields change. This reaches into wasmtime-py's ctypes
bindings (`_ffi`, `Func._func`, `Storelike._context`), so constraints.txt pins wasmtime exactly
and tests/unit/policy/wasm/ exercise it on every upgrade. Traps and host-call exceptions are
raised exactly as `Func.__call__` raises them.
"""

import ctypes
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime._func import maybe_raise_last_exn


class I32Call:
    """Calls one exported `(i32, ...) -> i32` function of one store, without per-call setup."""

    def __init__(self, store: wasmtime.Store, func: wasmtime.Func) -> None:
        kind = func.type(store)
        count = len(kind.params)
        if len(kind.results) != 1 or any(str(p) != "i32" for p in (*kind.params, *kind.results)):
            raise wasmtime.WasmtimeError("I32Call needs an (i32 ...) -> i32 function")
        self._store = store
        self._func = func._func
        self._params = (ffi.wasmtime_val_t * count)()
        for param in self._params:
            param.kind = ffi.WASMTIME_I32
        self._results = (ffi.wasmtime_val_t * 1)()
        self._count = count

    def __call__(self, *args: int) -> int:
        """Raises: wasmtime.Trap, wasmtime.WasmtimeError, or what a host import raised."""
        params = self._params
        for index, value in enumerate(args):
            params[index].of.i32 = value
        # What wasmtime-py's enter_wasm() does, without a generator context manager per call.
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        error = ffi.wasmtime_func_call(
            self._store._context(),
            ctypes.byref(self._func),
            params,
            self._count,
            self._results,
            1,
            ctypes.byref(trap),
        )
        if trap:
            trap_obj = wasmtime.Trap._from_ptr(trap)
            maybe_raise_last_exn()  # a host import's exception wins over the trap it caused
            raise trap_obj
        if error:
            maybe_raise_last_exn()
            raise wasmtime.WasmtimeError._from_ptr(error)
        result: Any = self._results[0].of.i32
        return int(result)
