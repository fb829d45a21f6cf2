"""The prebuilt JSON encoders write exactly what the json module's encoders they replace write:
the policy input and data (`encode_json`: compact, UTF-8) and a minted token's claims
(signing.jws: compact, ASCII-escaped), refusals included."""

import json
from typing import Any

import pytest
from sekisho.policy.wasm.policy import encode_json
from sekisho.signing.jws import _json as claims_json


class _Text(str):
    """A str subclass: encoded as its string value by both."""


VALUES: list[Any] = [
    "plain",
    'quote " backslash \\ NUL \x00 LS \u2028 é 山',
    {"nested": [1, {"deeper": (2.5, "ü")}], "empty": {}, "list": []},
    {7: "int key", True: "bool key", None: "null key", 2.5: "float key"},
    {"numbers": [0, -0.0, 1.0, 1e300, 1e-7, 10**40, -(10**40)]},
    {"non-finite": [float("nan"), float("inf"), float("-inf")]},
    {"literals": [True, False, None]},
    {"subclass": _Text("value"), _Text("key"): 1},
    [],
    42,
]


@pytest.mark.parametrize("value", VALUES, ids=[str(n) for n in range(len(VALUES))])
def test_encoders_write_what_the_json_module_writes(value: Any) -> None:
    policy = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode(value).encode()
    assert encode_json(value) == policy
    if isinstance(value, dict):
        claims = json.dumps(value, separators=(",", ":")).encode()
        assert claims_json(value) == claims


@pytest.mark.parametrize(
    "value",
    [{"a": object()}, {"a": {1, 2}}, {(1,): 2}],
    ids=["object", "set", "tuple-key"],
)
def test_encoders_refuse_what_the_json_module_refuses(value: Any) -> None:
    with pytest.raises(TypeError) as expected:
        json.dumps(value, separators=(",", ":"))
    with pytest.raises(TypeError) as policy:
        encode_json(value)
    with pytest.raises(TypeError) as claims:
        claims_json(value)
    assert str(policy.value) == str(claims.value) == str(expected.value)
