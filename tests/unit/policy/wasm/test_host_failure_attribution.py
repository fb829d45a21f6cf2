"""A host import's exception belongs to the evaluation that raised it. wasmtime-py hands such
exceptions over in one process-wide slot (`wasmtime._func.LAST_EXCEPTION`); with
`[policy] pool_size > 1` evaluations run on several threads at once, and one evaluation's trap
would then raise (and consume) another's exception. Each instance keeps its own."""

import threading
from collections.abc import Iterator

import pytest
import wasmtime
import wasmtime._func
from sekisho.policy.wasm.builtins.registry import HostBuiltin
from sekisho.policy.wasm.instance import PolicyInstance, WasmEvaluationError
from sekisho.policy.wasm.runtime import NO_DEADLINE_TICKS

# opa_eval calls builtin 0 when its entrypoint argument is 0, and traps (unreachable) when it
# is 1: a trap of the module's own, with no host exception behind it.
MODULE = """(module
  (import "env" "memory" (memory 2))
  (import "env" "opa_builtin0" (func $builtin0 (param i32 i32) (result i32)))
  (func (export "opa_heap_ptr_get") (result i32) i32.const 1024)
  (func (export "opa_malloc") (param i32) (result i32) i32.const 2048)
  (func (export "opa_json_parse") (param i32 i32) (result i32) i32.const 0)
  (func (export "opa_json_dump") (param i32) (result i32) i32.const 0)
  (func (export "opa_value_dump") (param i32) (result i32) i32.const 0)
  (func (export "builtins") (result i32) i32.const 0)
  (func (export "entrypoints") (result i32) i32.const 0)
  (func (export "opa_eval") (param i32 i32 i32 i32 i32 i32 i32) (result i32)
    (if (i32.eq (local.get 1) (i32.const 1)) (then unreachable))
    (drop (call $builtin0 (i32.const 0) (i32.const 0)))
    i32.const 4096))"""


class OtherEvaluationError(Exception):
    """Raised by a host import of another evaluation, on another thread."""


@pytest.fixture
def engine() -> wasmtime.Engine:
    return wasmtime.Engine()


@pytest.fixture
def foreign_exception_pending() -> Iterator[OtherEvaluationError]:
    """Another thread's host import has failed and its guest call has not yet picked the
    exception up: the state wasmtime-py's shared slot is in at that moment."""
    foreign = OtherEvaluationError("raised by another evaluation")
    saved = wasmtime._func.LAST_EXCEPTION
    wasmtime._func.LAST_EXCEPTION = foreign  # type: ignore[assignment]
    yield foreign
    wasmtime._func.LAST_EXCEPTION = saved


def instance(engine: wasmtime.Engine, call: object) -> PolicyInstance:
    module = wasmtime.Module(engine, MODULE)
    return PolicyInstance(engine, module, max_pages=16, builtins={0: HostBuiltin("b", call)})  # type: ignore[arg-type]


def test_a_trap_does_not_raise_another_evaluations_exception(
    engine: wasmtime.Engine, foreign_exception_pending: OtherEvaluationError
) -> None:
    policy = instance(engine, lambda: "x")
    with pytest.raises(WasmEvaluationError, match="unreachable"):
        policy.evaluate(1, b"{}", NO_DEADLINE_TICKS)
    # ... and leaves the other evaluation's exception for it to report.
    assert wasmtime._func.LAST_EXCEPTION is foreign_exception_pending


def test_a_failing_builtin_reports_its_own_exception(
    engine: wasmtime.Engine, foreign_exception_pending: OtherEvaluationError
) -> None:
    def failing() -> str:
        raise LookupError("this evaluation's failure")

    with pytest.raises(WasmEvaluationError, match="this evaluation's failure"):
        instance(engine, failing).evaluate(0, b"{}", NO_DEADLINE_TICKS)
    assert wasmtime._func.LAST_EXCEPTION is foreign_exception_pending


def test_concurrent_failing_evaluations_each_report_their_own_failure(
    engine: wasmtime.Engine,
) -> None:
    """Two instances (pool_size = 2) failing in turn on two threads, 300 times each."""
    rounds, wrong = 300, []

    def run(name: str) -> None:
        def failing() -> str:
            raise LookupError(f"failure of {name}")

        policy = instance(engine, failing)
        for _ in range(rounds):
            try:
                policy.evaluate(0, b"{}", NO_DEADLINE_TICKS)
            except WasmEvaluationError as exc:
                if f"failure of {name}" not in str(exc):
                    wrong.append(f"{name}: {exc}")
            except Exception as exc:  # any other outcome is a misattribution
                wrong.append(f"{name}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=run, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
