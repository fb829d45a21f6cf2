"""Reading `opa_eval`'s result (format "value"): undefined, plain JSON, sets in OPA's order, and
anything else refused (the engine answers it with a deny)."""

from typing import Any

import pytest
from sekisho.policy.wasm.instance import WasmEvaluationError
from sekisho.policy.wasm.policy import result_value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param(b"set()", None, id="undefined"),
        pytest.param(b'{{"result": {"allow": false}}}', {"allow": False}, id="json-fast-path"),
        pytest.param(
            b'{{"result": {"scopes": {"b.write", "a.read", "c"}, "n": 1.5}}}',
            {"scopes": ["a.read", "b.write", "c"], "n": 1.5},
            id="set-sorted-as-opa",
        ),
        pytest.param(
            b'{{"result": {3, "x", [1], null, false, 2.5, {"k": 1}, set()}}}',
            [None, False, 2.5, 3, "x", [1], {"k": 1}, []],
            id="mixed-set-in-compare-order",
        ),
        pytest.param(b'{{"result": {1: "one"}}}', {"1": "one"}, id="non-string-key"),
        pytest.param(
            '{{"result": {"reason": "é ü \\u00e9"}}}'.encode(),
            {"reason": "é ü é"},
            id="json-fast-path-non-ascii",
        ),
    ],
)
def test_result_values(text: bytes, value: Any) -> None:
    assert result_value(text) == value


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"[]", id="array-not-a-set"),
        pytest.param(b'{{"result": 1}, {"result": 2}}', id="two-bindings"),
        pytest.param(b'{{"result": 1 2}}', id="two-values"),
        pytest.param(b'{{"result": {"a": 1}} }}', id="text-after-the-value"),
        pytest.param(b'{{"other": 1}}', id="wrong-binding"),
        pytest.param(b'{{"result": {"a": }}}', id="truncated"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
    ],
)
def test_anything_else_is_an_evaluation_error(text: bytes) -> None:
    with pytest.raises(WasmEvaluationError):
        result_value(text)
