"""The host-call path (rawcall.I32Call from inside a host builtin): many calls per evaluation,
linear memory growing between them, builtin errors undefined as in OPA, and any other failure
of a host builtin a trap, so a deny."""

from pathlib import Path

import pytest
import wasmtime
from sekisho.policy.wasm.builtins.registry import HostBuiltin
from sekisho.policy.wasm.instance import PolicyInstance, WasmEvaluationError
from sekisho.policy.wasm.policy import encode_json
from sekisho.policy.wasm.rawcall import HostFailure, I32Call, define_i32_import
from sekisho.policy.wasm.runtime import NO_DEADLINE_TICKS

from tests.unit.policy.wasm.differential import both, module_folder, wasm_policy


def test_hundreds_of_host_calls_growing_memory_match_opa(tmp_path: Path) -> None:
    # 300 sprintf calls with 3 KB operands: ~1 MB of results, past the 256 KB headroom reserved
    # before the evaluation, so memory grows (and may move) between host calls.
    body = 'results := [sprintf("%d:%s:%v", [i, x, {x: i}]) | some i, x in input.xs]\n'
    document = {"xs": [f"{n:04d}" + "ü" * 1500 for n in range(300)]}
    expected, actual = both(tmp_path, body, document)
    assert len(expected) == 300
    assert actual == expected


def test_builtin_errors_are_undefined_as_in_opa(tmp_path: Path) -> None:
    # sprintf's operands come from the input, so the type errors happen at evaluation time.
    body = "results := {i: sprintf(c.f, c.a) | some i, c in input.cases}\n"
    cases = [
        {"f": "%s", "a": "not an array"},
        {"f": "%d", "a": 7},
        {"f": 5, "a": []},
        {"f": "%v", "a": {"k": 1}},
        {"f": "ok %v", "a": [None]},
    ]
    expected, actual = both(tmp_path, body, {"cases": cases})
    assert expected == {"4": "ok null"}
    assert actual == expected


def test_a_failing_host_builtin_traps_the_evaluation(tmp_path: Path) -> None:
    # %p of an integer beyond int64 is not reproduced (Go prints a memory address:
    # gofmt.UnsupportedFormatError): the evaluation must fail, never answer differently from OPA.
    root = module_folder(tmp_path, 'results := {"r": sprintf(input.f, input.a)}\n')
    policy = wasm_policy(root)
    assert policy.evaluate(encode_json({"f": "%d %d", "a": [1, 2]})) == {"r": "1 2"}
    with pytest.raises(WasmEvaluationError, match="sprintf"):
        policy.evaluate(encode_json({"f": "%p", "a": [2**64]}))
    # The instance is usable after the trap.
    assert policy.evaluate(encode_json({"f": "%d-%d", "a": [1, 2]})) == {"r": "1-2"}


def test_a_direct_call_checks_its_signature_and_arity() -> None:
    engine = wasmtime.Engine()
    module = wasmtime.Module(
        engine,
        """(module
             (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
             (func (export "f64") (param f64) (result f64) local.get 0))""",
    )
    store = wasmtime.Store(engine)
    exports = wasmtime.Instance(store, module, []).exports(store)
    add = exports["add"]
    assert isinstance(add, wasmtime.Func)
    call = I32Call(store, add, HostFailure())
    assert call(2, 40) == 42
    assert call(-5, 3) == -2
    # The same bit pattern unsigned (an address past 2 GiB), and the result read back signed.
    assert call(0xFFFFFFFB, 3) == -2
    assert call(0x7FFFFFFF, 1) == -(2**31)
    with pytest.raises(wasmtime.WasmtimeError, match="expected 2 arguments"):
        call(1)
    other = exports["f64"]
    assert isinstance(other, wasmtime.Func)
    with pytest.raises(wasmtime.WasmtimeError, match="i32"):
        I32Call(store, other, HostFailure())


def test_a_raw_host_import_gets_its_arguments_and_hands_failures_to_the_entry_point() -> None:
    engine = wasmtime.Engine()
    module = wasmtime.Module(
        engine,
        """(module
             (import "env" "host" (func $host (param i32 i32) (result i32)))
             (func (export "run") (param i32) (result i32)
               local.get 0 i32.const 1000 call $host i32.const 1 i32.add))""",
    )
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    seen: list[tuple[int, int]] = []

    def host(caller: wasmtime.Caller, a: int, b: int) -> int:
        assert isinstance(caller, wasmtime.Caller)
        if a < 0:
            raise LookupError("refused")
        seen.append((a, b))
        return a * b

    failure = HostFailure()
    keep = define_i32_import(linker, "env", "host", 2, host, failure=failure)
    run = linker.instantiate(store, module).exports(store)["run"]
    assert isinstance(run, wasmtime.Func)
    call = I32Call(store, run, failure)
    assert call(7) == 7001
    assert seen == [(7, 1000)]
    with pytest.raises(LookupError, match="refused"):
        call(-1)
    assert call(2) == 2001  # the store is usable after the trap
    assert keep is not None


# A module speaking OPA's ABI badly on purpose: its allocator hands out the last two bytes of
# memory, and opa_eval returns its entrypoint argument as the result address.
HOSTILE = """(module
  (import "env" "memory" (memory 2))
  (import "env" "opa_builtin0" (func $builtin0 (param i32 i32) (result i32)))
  (func (export "opa_heap_ptr_get") (result i32) i32.const 1024)
  (func (export "opa_malloc") (param i32) (result i32)
    memory.size i32.const 65536 i32.mul i32.const 2 i32.sub)
  (func (export "opa_json_parse") (param i32 i32) (result i32) i32.const 0)
  (func (export "opa_json_dump") (param i32) (result i32) i32.const 0)
  (func (export "opa_value_dump") (param i32) (result i32) i32.const 0)
  (func (export "builtins") (result i32) i32.const 0)
  (func (export "entrypoints") (result i32) i32.const 0)
  (func (export "opa_eval") (param i32 i32 i32 i32 i32 i32 i32) (result i32)
    (if (i32.eqz (local.get 1))
      (then (drop (call $builtin0 (i32.const 0) (i32.const 0)))))
    local.get 1))"""


def test_a_module_cannot_make_the_host_touch_memory_outside_its_own() -> None:
    engine = wasmtime.Engine(wasmtime.Config())
    module = wasmtime.Module(engine, HOSTILE)
    called: list[str] = []
    builtins = {0: HostBuiltin("x", lambda: called.append("x") or "a long result")}
    instance = PolicyInstance(engine, module, max_pages=16, builtins=builtins)
    # The result does not fit where the module's allocator put it: refused, not written.
    with pytest.raises(WasmEvaluationError, match="outside memory"):
        instance.evaluate(0, b"{}", NO_DEADLINE_TICKS)
    assert called == ["x"]
    # A result address past the end of memory is refused, not read.
    with pytest.raises(WasmEvaluationError, match="outside memory"):
        instance.evaluate(0x7FFFFFF0, b"{}", NO_DEADLINE_TICKS)
    assert instance.evaluate(2048, b"{}", NO_DEADLINE_TICKS) == b""
