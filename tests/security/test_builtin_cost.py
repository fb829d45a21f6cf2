"""Red team, session 4: a host builtin fed a short string must not cost more than the decision's
time limit (`eval_timeout_seconds`, 0.1 s by default). Host code cannot be interrupted by the
Wasm deadline and holds the GIL: `units.parse_bytes("1e-999999")` (nine characters) built
10^999999 exactly, ~0.16 s of CPU per call, so a request carrying a few such values timed out
(a deny where OPA answers 0) and stalled every other decision meanwhile.

Amounts far below one byte (or 10^-10 for units.parse) are 0 whatever their digits; amounts
whose result has more digits than can be written fail the evaluation, as before, without being
computed. Both checked against `opa eval`.
"""

import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from sekisho.policy.wasm.builtins.gofmt import sprintf
from sekisho.policy.wasm.compiler import compile_folder
from sekisho.policy.wasm.instance import WasmEvaluationError
from sekisho.policy.wasm.policy import LoadedPolicy, compile_module, encode_json

from tests.bounds import wasm_limits
from tests.embedded import shared_runtime
from tests.fakes.clock import FakeClock
from tests.opa import opa_binary
from tests.unit.policy.wasm.differential import QUERY, mismatches, module_folder, opa_eval

pytestmark = pytest.mark.security

TINY = ["1e-999999", "-7.5e-999999kib", "0.000e-999999", "1" * 300 + "e-999990eb", "5e-999999k"]
EDGES = ["9e-21ei", "1e-20ei", "9.99e-19ei", "3e-18ei", "-9e-21eb", "0e-999999"]
UNITS_TINY = ["1e-999999", "-1e-999999Ei", "5e-31Ei", "-5e-30Ei", "9e-31", "1e-10", "5e-11m"]
UNITS_TINY += ["0e-999999", "-0.0e999999"]


def _production_policy(root: Path) -> LoadedPolicy:
    """The embedded engine with the default limits (the 0.1 s evaluation deadline)."""
    entrypoint = QUERY.removeprefix("data.").replace(".", "/")
    wasm = compile_folder(opa_binary(), root, entrypoint, 120.0)
    limits = wasm_limits()
    compiled = compile_module(shared_runtime(), wasm, entrypoint, limits, FakeClock())
    return LoadedPolicy(shared_runtime(), compiled, b"{}", limits)


# What evaluating the tiny amounts may allocate in Python: 10^999999 alone is a 415 KB int
# (0.2-0.4 s of GIL-holding CPU to build before the fix), measured by allocation, not by time.
MAX_PEAK_BYTES = 100_000


def _peak_bytes(policy: LoadedPolicy, document: bytes) -> int:
    """The peak of Python allocations while `policy` evaluates `document` (tracemalloc)."""
    tracemalloc.start()
    try:
        policy.evaluate(document)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _both(tmp_path: Path, body: str, values: list[Any]) -> tuple[Any, Any]:
    """(OPA's value, the embedded engine's value) for `values`; the engine builds no huge number
    for any of them (10^999999 was built exactly before)."""
    root = module_folder(tmp_path, body)
    document = {"values": values}
    policy = _production_policy(root)
    assert _peak_bytes(policy, encode_json(document)) < MAX_PEAK_BYTES
    return opa_eval(root, document), policy.evaluate(encode_json(document))


def test_parse_bytes_of_a_tiny_amount_is_zero_within_the_deadline(tmp_path: Path) -> None:
    body = "results := {i: units.parse_bytes(v) | some i, v in input.values}\n"
    values: list[Any] = TINY + EDGES
    expected, actual = _both(tmp_path, body, values)
    assert mismatches(expected, actual, values) == []
    assert [actual[str(i)] for i in range(len(TINY))] == [0] * len(TINY)


def test_units_parse_of_a_tiny_amount_is_zero_within_the_deadline(tmp_path: Path) -> None:
    body = "results := {i: [n, json.marshal(n)] | some i, v in input.values; n := units.parse(v)}\n"
    expected, actual = _both(tmp_path, body, UNITS_TINY)
    assert mismatches(expected, actual, list(UNITS_TINY)) == []


@pytest.mark.parametrize("builtin", ["units.parse_bytes", "units.parse"])
def test_a_huge_amount_fails_the_evaluation_within_the_deadline(
    tmp_path: Path, builtin: str
) -> None:
    body = f"results := {{i: {builtin}(v) | some i, v in input.values}}\n"
    policy = _production_policy(module_folder(tmp_path, body))
    for value in ("1e999999", "-3e999999ki", "1" * 4000 + "e4000"):
        with pytest.raises(WasmEvaluationError, match=builtin.replace(".", r"\.")):
            policy.evaluate(encode_json({"values": [value] * 5}))


# Red team, session 4: sprintf("%999999999s", [x]) built a 1 GB string in host code (5 s, GIL
# held). Go's fmt gives up on a width or precision that grows past 1e6 with digits still to come
# and prints %!(NOVERB) for the rest of the format; so does the host builtin now, without building
# anything (the result's length proves it: no timing).
HUGE_FORMATS = ["%999999999s", "%.999999999d", "%-0999999999.999999999f", "%10000010s"]
HUGE_FORMATS += ["x%" + "9" * 5000 + "s%s%s"]


def test_sprintf_of_a_huge_width_or_precision_builds_nothing(tmp_path: Path) -> None:
    body = 'results := {i: sprintf(f, ["x"]) | some i, f in input.values}\n'
    root = module_folder(tmp_path, body)
    document = encode_json({"values": HUGE_FORMATS})
    actual = _production_policy(root).evaluate(document)
    assert actual == opa_eval(root, {"values": HUGE_FORMATS})
    refused = "%!(NOVERB)%!(EXTRA string=x)"
    assert [actual[str(i)] for i in range(len(HUGE_FORMATS))] == [
        *[refused] * (len(HUGE_FORMATS) - 1),
        "x" + refused,
    ]


def test_sprintf_g_of_a_huge_precision_computes_no_more_digits_than_a_double_has() -> None:
    """%.10000009g is a width Go accepts; a double's exact value has at most 767 significant
    digits, so asking Python for ten million of them (10 MB, 0.3 s) is work without meaning.
    Measured by what it allocates, not by time."""
    tracemalloc.start()
    try:
        text = sprintf("%.10000009g", [0.1])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert text == sprintf("%.60g", [0.1])
    assert peak < 100_000
