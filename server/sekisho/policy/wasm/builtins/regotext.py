"""Rego values as OPA's Go code prints them (`ast.Value.String()`), from the text the Wasm
module dumps (`opa_value_dump`: JSON plus set literals). The module prints sets in hash order;
Go prints sets sorted by `ast.Compare` and objects with sorted keys, so the text is parsed and
printed again."""

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_SCAN = json.decoder.scanstring  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Number:
    text: str


@dataclass(frozen=True, slots=True)
class RegoSet:
    items: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class RegoObject:
    items: tuple[tuple[Any, Any], ...]


class RegoTextError(ValueError):
    """The text is not a Rego value as opa_value_dump writes it."""


def parse(text: str) -> Any:
    """Raises: RegoTextError."""
    value, end = _value(text, _skip(text, 0))
    if _skip(text, end) != len(text):
        raise RegoTextError("trailing text after a value")
    return value


def render(value: Any) -> str:  # noqa: PLR0911 - one return per Rego type
    """Go's String() of a parsed value."""
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, Number):
        return value.text
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, RegoObject):
        pairs = sorted(value.items, key=lambda kv: order_key(kv[0]))
        return "{" + ", ".join(f"{render(k)}: {render(v)}" for k, v in pairs) + "}"
    if not value.items:
        return "set()"
    return "{" + ", ".join(render(v) for v in sorted(value.items, key=order_key)) + "}"


def to_json(value: Any) -> Any:
    """The JSON value OPA gives for a parsed value: sets as arrays in ast.Compare order."""
    if isinstance(value, Number):
        return json.loads(value.text)
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, RegoObject):
        return {k if isinstance(k, str) else render(k): to_json(v) for k, v in value.items}
    if isinstance(value, RegoSet):
        return [to_json(v) for v in sorted(value.items, key=order_key)]
    return value


def order_key(value: Any) -> tuple[Any, ...]:  # noqa: PLR0911 - one return per Rego type
    """ast.Compare's order: null < boolean < number < string < array < object < set."""
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, Number):
        return (2, Decimal(value.text))
    if isinstance(value, str):
        return (3, value.encode())
    if isinstance(value, list):
        return (4, [order_key(v) for v in value])
    if isinstance(value, RegoObject):
        return (5, sorted((order_key(k), order_key(v)) for k, v in value.items))
    return (6, sorted(order_key(v) for v in value.items))


def go_quote(text: str, quote: str = '"') -> str:
    """strconv.Quote (strconv.QuoteRune with quote="'")."""
    out = [quote]
    for char in text:
        code = ord(char)
        if char in (quote, "\\"):
            out.append("\\" + char)
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char.isprintable() or char == " ":
            out.append(char)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append(quote)
    return "".join(out)


_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\n\r":
        at += 1
    return at


def _value(text: str, at: int) -> tuple[Any, int]:
    char = text[at : at + 1]
    if char == '"':
        return _SCAN(text, at + 1)  # type: ignore[no-any-return]
    if char == "[":
        items, end = _sequence(text, at + 1, "]")
        return [v for v, _ in items], end
    if char == "{":
        return _braced(text, at + 1)
    for word, value in (("set()", RegoSet(())), ("true", True), ("false", False), ("null", None)):
        if text.startswith(word, at):
            return value, at + len(word)
    match = _NUMBER.match(text, at)
    if match is None:
        raise RegoTextError(f"unexpected text at {at}")
    return Number(match.group()), match.end()


def _sequence(text: str, at: int, close: str) -> tuple[list[tuple[Any, Any]], int]:
    """Elements up to `close`; an element may be `key: value` (objects)."""
    items: list[tuple[Any, Any]] = []
    at = _skip(text, at)
    if text[at : at + 1] == close:
        return items, at + 1
    while True:
        key, at = _value(text, _skip(text, at))
        at = _skip(text, at)
        value = None
        if text[at : at + 1] == ":":
            value, at = _value(text, _skip(text, at + 1))
            items.append((key, value))
            at = _skip(text, at)
        else:
            items.append((key, _NO_VALUE))
        if text[at : at + 1] == close:
            return items, at + 1
        if text[at : at + 1] != ",":
            raise RegoTextError(f"expected ',' at {at}")
        at += 1


_NO_VALUE = object()


def _braced(text: str, at: int) -> tuple[Any, int]:
    items, end = _sequence(text, at, "}")
    if all(v is _NO_VALUE for _, v in items) and items:
        return RegoSet(tuple(k for k, _ in items)), end
    if any(v is _NO_VALUE for _, v in items):
        raise RegoTextError("an object entry without a value")
    return RegoObject(tuple(items)), end
