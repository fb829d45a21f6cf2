"""A direct call of an exported i32 function: `opa_eval` once per decision, and the ABI helpers
(`opa_malloc`, `opa_json_parse`, `opa_value_dump`, ...) each host builtin call needs a few of.

wasmtime-py's `Func.__call__` re-reads the function type and converts every argument through
`Val` on each call: ~60 % of a decision with the default policy, and ~25 µs per helper call
(a `sprintf` took six: ~150 µs). Here the function type is checked once, at construction, and
each call goes through `wasmtime_func_call_unchecked` with one prebuilt raw-value buffer: the
arguments packed into it by one `struct` call, the result read by another. The C functions
called per evaluation (that call, memory base and length, the epoch deadline) have prototypes
of their own taking plain addresses (`c_void_p`), and the store's context address is read once:
no typed-pointer checks, `byref` objects or wrapper frames per call (~110k → ~65k instructions
of Python and ctypes around one `opa_eval`, bench/results/policy_latency_session7.md). This
reaches into wasmtime-py's ctypes bindings (`_ffi`, `Func._func`, `Memory._memory`,
`Storelike._context`), so constraints.txt pins wasmtime exactly and tests/unit/policy/wasm/
exercise it on every upgrade. Traps and host-call exceptions are raised exactly as
`Func.__call__` raises them.

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
import struct
from collections.abc import Callable
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

_TRAP_POINTER = ctypes.POINTER(ffi.wasm_trap_t)
_ERROR_POINTER = ctypes.POINTER(ffi.wasmtime_error_t)
_I32 = wasmtime.ValType.i32()
_HOST_FAILED = b"host import failed"
_RAW_VALUE_BYTES = ctypes.sizeof(ffi.wasmtime_val_raw_t)


def _raw_function(name: str, restype: Any, *argtypes: Any) -> Any:
    """A C function of the wasmtime library taking plain addresses and integers.

    dll[name] is a new function object: its prototype is ours, wasmtime-py's stays as it is.
    Addresses go in as Python ints (ctypes converts an int for c_void_p without the type checks
    a POINTER argument needs, and without a Python wrapper frame)."""
    function = ffi.dll[name]
    function.restype = restype
    function.argtypes = list(argtypes)
    return function


_VOID_P = ctypes.c_void_p
_MEMORY_DATA = _raw_function("wasmtime_memory_data", _VOID_P, _VOID_P, _VOID_P)
_MEMORY_DATA_SIZE = _raw_function("wasmtime_memory_data_size", ctypes.c_size_t, _VOID_P, _VOID_P)
_CALL_UNCHECKED = _raw_function(
    "wasmtime_func_call_unchecked", _VOID_P, _VOID_P, _VOID_P, _VOID_P, ctypes.c_size_t, _VOID_P
)
_SET_EPOCH_DEADLINE = _raw_function(
    "wasmtime_context_set_epoch_deadline", None, _VOID_P, ctypes.c_uint64
)


# A context for the functions above: an address (int), or the wasmtime_context_t pointer
# object wasmtime-py hands out (a c_void_p argument takes either without converting it here).
Context = Any


def context_address(store: wasmtime.Store) -> int:
    """The address of a store's context: the same for the store's lifetime (a caller's context
    is valid only during its host call, so it is passed as wasmtime-py's pointer instead)."""
    return int(ctypes.cast(store._context(), _VOID_P).value or 0)


def set_epoch_deadline(context: Context, ticks: int) -> None:
    """Store.set_epoch_deadline for a context."""
    _SET_EPOCH_DEADLINE(context, ticks)


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

    Not reentrant for the same function (one argument array, one trap slot); the ABI never
    re-enters one."""

    def __init__(self, store: wasmtime.Store, func: wasmtime.Func, failure: HostFailure) -> None:
        """`failure`: the one the store's imports were defined with.

        Raises: wasmtime.WasmtimeError when the function is not (i32 ...) -> i32."""
        kind = func.type(store)
        count = len(kind.params)
        if len(kind.results) != 1 or any(str(p) != "i32" for p in (*kind.params, *kind.results)):
            raise wasmtime.WasmtimeError("I32Call needs an (i32 ...) -> i32 function")
        self._store = store  # keeps the store, and so the context address, alive
        self._context = context_address(store)
        self._failure = failure
        self._func = func  # keeps the wasmtime_func_t at _func_address alive
        self._func_address = ctypes.addressof(func._func)
        # The unchecked call reads the arguments from and writes the results to one array of
        # wasmtime_val_raw_t; an i32 is the first 4 bytes (little-endian) of its slot. All
        # arguments are packed by one struct call, and the result read (signed, as
        # wasmtime_val_raw_t.i32 reads it) by another.
        self._size = max(count, 1)
        self._buffer = bytearray(_RAW_VALUE_BYTES * self._size)
        self._array = (ctypes.c_char * len(self._buffer)).from_buffer(self._buffer)
        self._array_address = ctypes.addressof(self._array)
        slot = f"I{_RAW_VALUE_BYTES - 4}x"
        self._pack = struct.Struct("<" + slot * count).pack_into
        self._unpack = struct.Struct("<i").unpack_from
        self._trap = _VOID_P()
        self._trap_address = ctypes.addressof(self._trap)
        self._count = count

    def __call__(self, *args: int) -> int:
        """Raises: wasmtime.Trap, wasmtime.WasmtimeError, or what a host import raised."""
        return self._call(self._context, args)

    def within(self, caller: wasmtime.Caller, *args: int) -> int:
        """The same call from inside a host import, in the calling instance's store context."""
        return self._call(caller._context(), args)

    def _call(self, context: Context, args: tuple[int, ...]) -> int:
        if len(args) != self._count:
            raise wasmtime.WasmtimeError(f"expected {self._count} arguments, got {len(args)}")
        try:
            self._pack(self._buffer, 0, *args)
        except struct.error:  # a negative i32 (a result read back signed): its bit pattern
            self._pack(self._buffer, 0, *(value & 0xFFFFFFFF for value in args))
        trap = self._trap
        trap.value = None
        # What wasmtime-py's enter_wasm() does, without a generator context manager per call.
        error = _CALL_UNCHECKED(
            context, self._func_address, self._array_address, self._size, self._trap_address
        )
        if trap.value:
            trap_obj = wasmtime.Trap._from_ptr(ctypes.cast(trap.value, _TRAP_POINTER))
            self._failure.raise_pending()  # a host import's exception wins over its trap
            raise trap_obj
        if error:
            self._failure.raise_pending()
            raise wasmtime.WasmtimeError._from_ptr(ctypes.cast(error, _ERROR_POINTER))
        result: int = self._unpack(self._buffer)[0]
        return result


class RawMemory:
    """The base address and byte length of one linear memory. The base moves when the memory
    grows: read it for every access, in the context (store or caller) of that access."""

    def __init__(self, memory: wasmtime.Memory) -> None:
        self._memory = memory  # keeps the wasmtime_memory_t at _address alive
        self._address = ctypes.addressof(memory._memory)

    def base(self, store: wasmtime.Store | wasmtime.Caller) -> int:
        return self.base_at(store._context())

    def size(self, store: wasmtime.Store | wasmtime.Caller) -> int:
        return self.size_at(store._context())

    def base_at(self, context: Context) -> int:
        """base() in a context."""
        return int(_MEMORY_DATA(context, self._address) or 0)

    def size_at(self, context: Context) -> int:
        """size() in a context."""
        return int(_MEMORY_DATA_SIZE(context, self._address))


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
