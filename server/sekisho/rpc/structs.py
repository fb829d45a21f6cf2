"""A gRPC `google.protobuf.Struct` as the JSON object `json_format.MessageToDict` makes of it
(ProtoJSON: numbers as floats, an unset or null value as None), walked with a budget.

json_format walks each value through its generic printer (~2 µs a value on this machine; a 24 KB
Struct of 6,000 booleans, under the wire bound validation.check_context_wire_size allows, took
12.5 ms); this walk reads the oneof directly (~1 µs a value) and stops once the Struct holds more
values than JSON within limits.max_context_bytes could (each takes at least two bytes: the value
and a separator), so what it costs is bounded by the limit rather than by the message size.
"""

import math
from typing import Any

from sekisho.errors import InvalidRequestError


class TooManyValuesError(Exception):
    """The Struct holds more values than its budget."""


def struct_to_dict(struct: Any, max_values: int) -> dict[str, Any]:
    """The Struct's JSON object. Raises: TooManyValuesError (over `max_values` values, counting
    every value at any depth), InvalidRequestError (a NaN or infinite number: not JSON)."""
    walk = _Walk(max_values)
    return {key: walk.value(value) for key, value in struct.fields.items()}


class _Walk:
    __slots__ = ("_left",)

    def __init__(self, max_values: int) -> None:
        self._left = max_values

    def value(self, message: Any) -> Any:
        self._left -= 1
        if self._left < 0:
            raise TooManyValuesError
        kind = message.WhichOneof("kind")
        if kind == "string_value":
            return message.string_value
        if kind == "number_value":
            number = message.number_value
            if not math.isfinite(number):  # json_format refuses them too
                raise InvalidRequestError("context numbers must be finite")
            return number
        if kind == "bool_value":
            return message.bool_value
        if kind == "struct_value":
            return {key: self.value(value) for key, value in message.struct_value.fields.items()}
        if kind == "list_value":
            return [self.value(value) for value in message.list_value.values]
        return None  # null_value, or no value set: json_format's None
