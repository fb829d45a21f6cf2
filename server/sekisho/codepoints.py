"""One meaning per string: which code points a string the policy compares may hold.

A string that two components read differently is an attack (issue 15 item 1): rego-cpp truncated
`acme\\u0000x` to `acme`, so the policy decided on one tenant and the minted token carried
another. The defence does not depend on any engine: such strings are refused on input.

- `uri_text`: RFC 3986 §2 characters only (unreserved, reserved and `%`), for audiences and
  resources (RFC 8707 §2). No controls, spaces, non-ASCII or quotes.
- `identity_text`: the claims policy compares and the minted token repeats (sub, tenant, groups,
  client id, email, acr, amr, act members): no control (Cc), format (Cf: zero-width and bidi
  marks), separator (Zl, Zp), surrogate (Cs), private-use (Co) or unassigned (Cn) code points,
  and no noncharacters.
- `free_text`: any other string the policy may read (request context, the other claims): no
  control (Cc) or surrogate (Cs) code points — a NUL or a lone surrogate has no single meaning
  across JSON parsers, C strings and UTF-8 encoders — and no bidi, zero-width-space, BOM or
  line/paragraph-separator code points, which make a string display as another.
- `is_scope_token`: RFC 6749 §3.3's scope-token, the one rule by which the server accepts and
  grants scopes and the verify SDK reads a token's `scope` (stdlib only: the SDK imports it).
"""

import re
import unicodedata
from collections.abc import Iterator
from typing import Any

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")

# RFC 3986 §2.1-2.3: pct-encoded, unreserved, gen-delims and sub-delims; nothing else.
_URI_TEXT = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
# C0, DEL, C1, surrogates, ZWSP, LRM/RLM, ALM, bidi embeddings/overrides/isolates, line and
# paragraph separators, BOM. ZWJ/ZWNJ stay (emoji sequences, Indic and Persian text need them).
_FREE_TEXT_FORBIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\u200b\u200e\u200f\u061c\u202a-\u202e"
    "\u2066-\u2069\u2028\u2029\ufeff]"
)
_IDENTITY_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def uri_text(value: str) -> bool:
    """True when `value` is non-empty and holds only characters RFC 3986 allows in a URI."""
    return _URI_TEXT.fullmatch(value) is not None


def free_text(value: str) -> bool:
    """True when `value` holds no control, surrogate, bidi or separator code points."""
    return _FREE_TEXT_FORBIDDEN.search(value) is None


def plain_json_text(text: str) -> bool:
    """True when `text`, a JSON text, holds no escape and only printable code points: then every
    string in the value it encodes is free_text, for its characters stand in `text` as they are,
    and every code point free_text forbids is one str.isprintable refuses (Cc, Cf, Cs, Zl, Zp).
    False says nothing about the strings: check each one."""
    return "\\" not in text and text.isprintable()


def _noncharacter(char: str) -> bool:
    point = ord(char)
    return 0xFDD0 <= point <= 0xFDEF or (point & 0xFFFE) == 0xFFFE


def identity_text(value: str) -> bool:
    """True when `value` holds only visible, assigned, unambiguous code points (and spaces)."""
    if value.isascii():  # the common case, without a per-character table lookup
        return value.isprintable()
    return not any(
        unicodedata.category(char) in _IDENTITY_FORBIDDEN_CATEGORIES or _noncharacter(char)
        for char in value
    )


def strings_in(value: Any) -> Iterator[str]:
    """Every string in a JSON value, object keys included (iterative: no recursion limit)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)


def numbers_in(value: Any) -> Iterator[float]:
    """Every float in a JSON value (iterative)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, float):
            yield item
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)


def is_scope_token(value: str) -> bool:
    """Whether `value` is one RFC 6749 §3.3 scope-token (printable ASCII but SP, `"` and `\\`)."""
    return _SCOPE_TOKEN.fullmatch(value) is not None
