"""rpc/structs.py: the gRPC `context` Struct as JSON, exactly as json_format.MessageToDict gives it
(the policy must see what it saw before, value for value and type for type), walked no further
than a context within limits.max_context_bytes could hold."""

import json
import math
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from sekisho.errors import InvalidRequestError
from sekisho.rpc.structs import TooManyValuesError, struct_to_dict
from sekisho.validation import RequestLimits, max_context_values

from tests.bounds import request_limits

SCALARS = (
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.text(max_size=8)
)
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=30,
)
OBJECTS = st.dictionaries(st.text(max_size=6), VALUES, max_size=5)


def _struct(value: dict[str, Any]) -> Any:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def _count(value: Any) -> int:
    if isinstance(value, dict):
        return sum(1 + _count(v) for v in value.values())
    if isinstance(value, list):
        return sum(1 + _count(v) for v in value)
    return 0


@settings(max_examples=400, deadline=None)
@given(OBJECTS)
def test_the_walk_gives_what_json_format_gives(value: dict[str, Any]) -> None:
    struct = _struct(value)
    expected = json_format.MessageToDict(struct)
    got = struct_to_dict(struct, 10_000)
    assert got == expected
    # Same types too (a float is a float, never an int), and the same key order.
    assert json.dumps(got) == json.dumps(expected)


def test_an_unset_value_and_null_are_none_as_json_format_reads_them() -> None:
    struct = struct_pb2.Struct()
    struct.fields["unset"].Clear()
    struct.fields["null"].null_value = struct_pb2.NULL_VALUE
    assert (
        struct_to_dict(struct, 10)
        == json_format.MessageToDict(struct)
        == {
            "unset": None,
            "null": None,
        }
    )


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_a_number_that_is_not_json_is_refused(number: float) -> None:
    struct = _struct({"deep": [{"n": number}]})
    with pytest.raises(ValueError, match="Fail to serialize"):
        json_format.MessageToDict(struct)  # what the walk replaces refused them too
    with pytest.raises(InvalidRequestError, match="finite"):
        struct_to_dict(struct, 100)


def test_the_walk_stops_past_its_budget() -> None:
    struct = _struct({"a": [True] * 1000})
    with pytest.raises(TooManyValuesError):
        struct_to_dict(struct, 100)
    assert struct_to_dict(_struct({"a": [True] * 99}), 100)["a"] == [True] * 99  # 100 values


@settings(max_examples=400, deadline=None)
@given(OBJECTS)
def test_no_context_within_the_json_bound_is_over_the_value_budget(value: dict[str, Any]) -> None:
    size = len(json.dumps(value, separators=(",", ":")).encode())
    limits: RequestLimits = request_limits(max_context_bytes=max(64, size))
    assert _count(value) <= max_context_values(limits)
    struct_to_dict(_struct(value), max_context_values(limits))  # never TooManyValuesError
