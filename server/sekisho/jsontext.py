"""JSON text encoders made once, for the hot paths that encode per call (the policy input, the
minted claims, the log line).

`json.dumps` with any option constructs a JSONEncoder per call, and `JSONEncoder.encode` a C
encoder per call (its iterencode); these are that C encoder, made once with the given options.
Output is json.dumps's to the byte: members in insertion order, NaN and Infinity as JSONEncoder
writes them. Without JSONEncoder's circular-reference check: every value encoded here is parsed
JSON or built from it, or rebuilt by the scrubber, so none can contain itself (the C encoder's
recursion guard would still stop one), and a shared marker table would outlive a failed encoding.
"""

import json
from _json import encode_basestring, encode_basestring_ascii, make_encoder
from collections.abc import Callable
from typing import Any


def json_encoder(
    *,
    separators: tuple[str, str] = (",", ":"),
    ensure_ascii: bool = True,
    default: Callable[[Any], Any] | None = None,
) -> Callable[[Any], str]:
    """`json.dumps(value, separators=…, ensure_ascii=…, default=…)` as one function (no
    `default`: TypeError for what JSON cannot hold, as json.dumps)."""
    item, key = separators
    default = default or json.JSONEncoder().default
    escape = encode_basestring_ascii if ensure_ascii else encode_basestring
    chunks = make_encoder(None, default, escape, None, key, item, False, False, True)

    def encode(value: Any) -> str:
        return "".join(chunks(value, 0))

    return encode
