"""String, encoding and digest builtins the Wasm target leaves to the host (topdown/strings.go,
encoding.go, crypto.go, glob.go), with OPA's (Go's) semantics."""

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from typing import Any

from sekisho.policy.wasm.builtins.registry import BuiltinError, HostBuiltin
from sekisho.policy.wasm.builtins.regotext import RegoObject, RegoSet

_UNRESERVED = re.compile(r"[A-Za-z0-9\-_.~]")
_GLOB_SPECIAL = frozenset("*?\\[]{}")
_HMAC = {"md5": hashlib.md5, "sha1": hashlib.sha1, "sha256": hashlib.sha256}
_HMAC["sha512"] = hashlib.sha512
_MAX_QUERY_PARAMS = 10_000


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise BuiltinError("operand must be a string")
    return value


def _strings(value: Any) -> list[str]:
    """A string, or an array/set (a JSON array here) of strings."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise BuiltinError("operand must be a string or an array or set of strings")


def _any_affix(match: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    def any_match(search: Any, base: Any) -> bool:
        strings, bases = _strings(search), _strings(base)
        return any(match(s, b) for s in strings for b in bases)

    return any_match


def _count(search: Any, substring: Any) -> int:
    # Go strings.Count: non-overlapping; "" counts runes + 1, as str.count counts code points + 1.
    return _text(search).count(_text(substring))


def go_string(data: bytes) -> str:
    """Bytes as a Go string reaches JSON: each byte that is not valid UTF-8 becomes U+FFFD."""
    out, index = [], 0
    while index < len(data):
        try:
            out.append(data[index:].decode("utf-8"))
            break
        except UnicodeDecodeError as exc:
            out.append(data[index : index + exc.start].decode("utf-8") + "\ufffd")
            index += exc.start + 1
    return "".join(out)


def _hex_decode(value: Any) -> str:
    try:
        return go_string(bytes.fromhex(_strict_hex(_text(value))))
    except ValueError as exc:
        raise BuiltinError(f"hex.decode: {exc}") from exc


def _strict_hex(text: str) -> str:
    # bytes.fromhex skips whitespace; Go's hex.DecodeString does not.
    if len(text) % 2 or not all(c in "0123456789abcdefABCDEF" for c in text):
        raise ValueError("invalid hex")
    return text


def _url_encode(value: Any) -> str:
    """url.QueryEscape: unreserved bytes kept, space as '+', the rest %XX."""
    out = []
    for byte in _text(value).encode():
        char = chr(byte)
        if byte < 0x80 and _UNRESERVED.match(char):
            out.append(char)
        elif char == " ":
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


class NonStringKeyError(Exception):
    """urlquery.encode_object got an object with a non-string key: OPA prints such a key as
    JSON (and may merge keys that print alike); not reproduced, the call traps."""


def _url_encode_object(value: Any) -> str:
    """builtinURLQueryEncodeObject: url.Values.Encode() of an object whose values are strings,
    arrays or sets of strings (sets in OPA's sorted order; an empty array adds nothing); keys
    sorted, every key and value url.QueryEscape'd. Operands as Rego values (rego_text)."""
    if not isinstance(value, RegoObject):
        raise BuiltinError("urlquery.encode_object: operand must be an object")
    pairs: list[tuple[str, str]] = []
    for key, item in value.items:
        if not isinstance(key, str):
            raise NonStringKeyError("urlquery.encode_object: a non-string key")
        pairs += [(key, v) for v in _query_values(item)]
    pairs.sort(key=lambda pair: pair[0])  # stable: a key's values stay in order
    return "&".join(f"{_url_encode(key)}={_url_encode(v)}" for key, v in pairs)


def _query_values(item: Any) -> list[str]:
    values = [item] if isinstance(item, str) else item
    if isinstance(item, RegoSet):
        values = list(item.items)
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise BuiltinError("urlquery.encode_object: values must be strings or their arrays")
    return sorted(values) if isinstance(item, RegoSet) else values  # a set: Go's string order


def _url_decode(value: Any) -> str:
    """url.QueryUnescape: '+' is a space; a '%' must start two hex digits."""
    return go_string(_query_unescape(_text(value)))


def _query_unescape(text: str) -> bytes:
    """Raises: BuiltinError (a '%' without two hex digits)."""
    data, out, index = text.encode(), bytearray(), 0
    while index < len(data):
        byte = data[index]
        if byte == ord("%"):
            digits = data[index + 1 : index + 3].decode("ascii", "replace")
            if len(digits) != 2 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise BuiltinError("urlquery: invalid URL escape")
            out.append(int(digits, 16))
            index += 3
            continue
        out.append(0x20 if byte == ord("+") else byte)
        index += 1
    return bytes(out)


class NonUtf8KeyError(Exception):
    """urlquery.decode_object decoded a key that is not UTF-8: OPA keeps the bytes (two such
    keys stay apart even where both print as U+FFFD); not reproduced, the call traps."""


def _url_decode_object(value: Any) -> dict[str, list[str]]:
    """builtinURLQueryDecodeObject: Go's url.ParseQuery. Pairs split at '&', each at its first
    '='; empty pairs skipped; a pair with ';' or a bad escape makes the call undefined (Go
    reports the error after parsing the rest); more than 10,000 pairs are refused (Go 1.26's
    urlmaxqueryparams default). Values keep their order; bytes that are not UTF-8 in a value
    become U+FFFD, as urlquery.decode."""
    query = _text(value)
    if query.count("&") + 1 > _MAX_QUERY_PARAMS:
        raise BuiltinError("urlquery.decode_object: number of URL query parameters exceeded")
    decoded: dict[str, list[str]] = {}
    errors, non_utf8_key = [], False
    for pair in query.split("&"):
        if ";" in pair:
            errors.append("invalid semicolon separator in query")
            continue
        key, _, item = pair.partition("=")
        try:
            raw_key, raw_value = _query_unescape(key), _query_unescape(item)
        except BuiltinError as exc:
            errors.append(str(exc))
            continue
        try:
            text_key = raw_key.decode("utf-8")
        except UnicodeDecodeError:
            non_utf8_key = True
            continue
        if pair:
            decoded.setdefault(text_key, []).append(go_string(raw_value))
    if errors:  # Go parses every pair, then reports the first error: the call is undefined
        raise BuiltinError(f"urlquery.decode_object: {errors[0]}")
    if non_utf8_key:
        raise NonUtf8KeyError("urlquery.decode_object: a key is not UTF-8")
    return decoded


def _digest(factory: Callable[[], Any]) -> Callable[[Any], str]:
    def digest(value: Any) -> str:
        hashed = factory()
        hashed.update(_text(value).encode())
        return str(hashed.hexdigest())

    return digest


def _hmac(name: str) -> Callable[[Any, Any], str]:
    def mac(message: Any, key: Any) -> str:
        return hmac.new(_text(key).encode(), _text(message).encode(), _HMAC[name]).hexdigest()

    return mac


def _quote_meta(value: Any) -> str:
    return "".join("\\" + c if c in _GLOB_SPECIAL else c for c in _text(value))


BUILTINS = (
    HostBuiltin("strings.any_prefix_match", _any_affix(str.startswith)),
    HostBuiltin("strings.any_suffix_match", _any_affix(str.endswith)),
    HostBuiltin("strings.count", _count),
    HostBuiltin("hex.encode", lambda v: _text(v).encode().hex()),
    HostBuiltin("hex.decode", _hex_decode),
    HostBuiltin(
        "base64url.encode_no_pad",
        lambda v: base64.urlsafe_b64encode(_text(v).encode()).rstrip(b"=").decode(),
    ),
    HostBuiltin("urlquery.encode", _url_encode),
    HostBuiltin("urlquery.decode", _url_decode),
    HostBuiltin("urlquery.encode_object", _url_encode_object, rego_text=True),
    HostBuiltin("urlquery.decode_object", _url_decode_object),
    HostBuiltin("crypto.md5", _digest(hashlib.md5)),
    HostBuiltin("crypto.sha1", _digest(hashlib.sha1)),
    HostBuiltin("crypto.sha256", _digest(hashlib.sha256)),
    *(HostBuiltin(f"crypto.hmac.{name}", _hmac(name)) for name in _HMAC),
    HostBuiltin(
        "crypto.hmac.equal", lambda a, b: hmac.compare_digest(_text(a).encode(), _text(b).encode())
    ),
    HostBuiltin("glob.quote_meta", _quote_meta),
)
