"""Go's regexp (RE2 syntax, `regexp.Compile`) on the C++ RE2 engine (google-re2): linear time,
no backtracking, like Go. Python's `re` is a backtracking engine with another syntax and is
never used for policy patterns.

C++ RE2 accepts a few patterns Go's regexp/syntax refuses; those are refused here before RE2
sees them, so an invalid pattern is a BuiltinError (OPA: the call is undefined) as in Go:
- `\\C` (any byte) — Go: "invalid escape sequence";
- capture names other than ASCII letters, digits and `_` — Go: "invalid named capture";
- `\\p{Name}` names: Go 1.25+ looks names up case-insensitively with aliases, RE2 by exact
  name, and the two carry different Unicode tables. The names whose members agree
  (GO_UNICODE_CLASSES) are passed on; `L`, `Lo`, `Han`, `Common`, `S`, `So` and `C`, whose members
  differ, are written out as Go's ranges (GO_CLASS_RANGES); any other name raises
  RegexUnsupportedError, which traps the evaluation (a deny with an error log), never a
  silently different decision.
A pattern whose program exceeds RE2's memory budget also raises RegexUnsupportedError (Go's
bound is larger); a pattern Go refuses for size, RE2 refuses too (same 1,000 repeat limit).

Matches are byte offsets into the UTF-8 text, as Go's are; RE2's `Match` at a start position
keeps the text before it as context, so `^`, `\\b` and `(?m)^` see what Go's doExecute sees.
"""

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

import re2

from sekisho.policy.wasm.builtins.goregexp_names import GO_UNICODE_CLASSES
from sekisho.policy.wasm.builtins.goregexp_tables import GO_CLASS_RANGES
from sekisho.policy.wasm.builtins.registry import BuiltinError

Span = tuple[int, int]
_RE2_MEMORY_BYTES = 8 << 20  # RE2's default budget per compiled pattern
_MAX_RUNE = 0x10FFFF
_ASCII_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


class RegexUnsupportedError(Exception):
    """A pattern Go may accept that this engine cannot evaluate identically: the call traps."""


class GoRegexp:
    """One compiled pattern: leftmost-first search over UTF-8 bytes and its group names."""

    __slots__ = ("_regexp", "group_count", "group_names")

    def __init__(self, pattern: str) -> None:
        """Raises: BuiltinError (Go refuses the pattern), RegexUnsupportedError."""
        translated, names = _translate(pattern)
        options = re2.Options()
        options.log_errors = False
        options.max_mem = _RE2_MEMORY_BYTES
        try:
            # re2._Regexp, not re2.compile: compile keeps a process-wide cache of patterns.
            self._regexp: Any = re2._Regexp(translated, options)
        except re2.error as exc:
            message = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else ""
            if "too large" in message:
                raise RegexUnsupportedError(f"regex: pattern too large for RE2: {message}") from exc
            raise BuiltinError(f"error parsing regexp: {message}") from exc
        self.group_count: int = self._regexp.groups
        if len(names) != self.group_count + 1:  # the scan above missed a group: never guess
            raise RegexUnsupportedError(f"regex: cannot number the groups of {pattern!r}")
        # Names by group number: Go's Expand takes the first group of a name that matched, so
        # duplicate names (Go accepts them) need every number, not RE2's first one.
        self.group_names: tuple[str, ...] = tuple(names)

    def search(self, text: bytes, pos: int) -> list[Span] | None:
        """Spans of the whole match and every group ((-1, -1) when unset), from `pos` on.

        RE2's unanchored search tries every byte offset, Go's every rune: an empty match of
        `\\B` can start inside a multi-byte character in RE2 only. Such a match is skipped and
        the search resumed at the next rune (an earlier rune start would have matched first)."""
        while (found := self._regexp.search(text, pos)) is not None:
            start = found.start()
            if start >= len(text) or text[start] & 0xC0 != 0x80:
                return [found.span(group) for group in range(self.group_count + 1)]
            pos = start + 1
            while pos < len(text) and text[pos] & 0xC0 == 0x80:
                pos += 1
        return None


class RegexCache:
    """Compiled patterns by text, at most `size` of them (least recently used evicted).

    Thread-safe: a loaded policy binds one builtin table, hence one cache, for all the instances
    of its pool (policy.compile_module), and with `[policy] pool_size` > 1 they evaluate on
    several threads at once. Unlocked, a hit could be evicted between `get` and `move_to_end`
    (KeyError), which trapped the evaluation into a spurious deny."""

    def __init__(self, size: int = 100) -> None:
        self._size = size
        self._entries: OrderedDict[str, GoRegexp] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, pattern: str) -> GoRegexp:
        """Raises: BuiltinError, RegexUnsupportedError (neither is cached)."""
        with self._lock:
            entry = self._entries.get(pattern)
            if entry is not None:
                self._entries.move_to_end(pattern)
                return entry
        compiled = GoRegexp(pattern)  # outside the lock: a slow compile holds up no hit
        with self._lock:
            entry = self._entries.setdefault(pattern, compiled)  # another thread's if it won
            self._entries.move_to_end(pattern)
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return entry

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def _translate(pattern: str) -> tuple[str, list[str]]:
    """The pattern for RE2 and the name of each capturing group ("" unnamed): what Go's parser
    refuses but RE2's accepts is refused, and the classes whose tables differ are written out
    as Go's ranges (module docstring)."""
    out, done, names = [], 0, [""]
    for start, end, in_class in _tokens(pattern):
        token = pattern[start:end]
        if token == "\\C":
            raise BuiltinError("error parsing regexp: invalid escape sequence: `\\C`")
        if token == "(":
            names.append("")
        elif token.startswith(("(?P<", "(?<")):
            name = token[token.index("<") + 1 :]
            if not all(c in _ASCII_WORD for c in name):
                raise BuiltinError(f"error parsing regexp: invalid named capture: `{token}>`")
            names.append(name)
        elif token.startswith(("\\p", "\\P")):
            replacement = _class_text(token, in_class)
            if replacement is not None:
                out.append(pattern[done:start] + replacement)
                done = end
    return "".join(out) + pattern[done:], names


def _class_text(token: str, in_class: bool) -> str | None:
    """Go's members of `\\p{Name}` as RE2 class text where the tables differ, None where they
    agree. Raises: RegexUnsupportedError for a name not known to agree."""
    body = token[2:].strip("{}")
    name = body.removeprefix("^")
    negated = (token[1] == "P") != body.startswith("^")
    ranges = GO_CLASS_RANGES.get(name)
    if ranges is None:
        if name not in GO_UNICODE_CLASSES:
            raise RegexUnsupportedError(
                f"regex: Unicode class {token} is not supported by the embedded engine"
            )
        return None
    if in_class:  # no nested class inside a class: the complement as ranges
        return _ranges_text(_complement(ranges) if negated else ranges)
    return ("[^" if negated else "[") + _ranges_text(ranges) + "]"


def _ranges_text(ranges: Iterable[tuple[int, int]]) -> str:
    return "".join(
        f"\\x{{{low:X}}}" if low == high else f"\\x{{{low:X}}}-\\x{{{high:X}}}"
        for low, high in ranges
    )


def _complement(ranges: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    out, low = [], 0
    for start, end in ranges:
        if start > low:
            out.append((low, start - 1))
        low = end + 1
    if low <= _MAX_RUNE:
        out.append((low, _MAX_RUNE))
    return out


def _tokens(pattern: str) -> Iterator[tuple[int, int, bool]]:
    """(start, end, inside a class) of the escapes (`\\x`, `\\p{..}`) and named-group
    openings (`(?P<name`) of a pattern, skipping `\\Q..\\E` literals and the insides of
    `[:name:]` classes. RE2 validates the rest; only patterns RE2 accepts matter, so `\\Q` is
    never inside a class here."""
    i, in_class, n = 0, False, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            escape = pattern[i + 1]
            if escape == "Q" and not in_class:
                end = pattern.find("\\E", i + 2)
                i = n if end < 0 else end + 2
                continue
            end = i + 2
            if escape in "pP" and end < n and pattern[end] == "{":
                close = pattern.find("}", end)
                end = n if close < 0 else close + 1
            elif escape in "pP":
                end = min(n, end + 1)
            yield i, end, in_class
            i = end
        elif in_class:
            if pattern.startswith("[:", i) and (close := pattern.find(":]", i + 2)) >= 0:
                i = close + 2
                continue
            in_class = c != "]"
            i += 1
        elif c == "[":
            in_class = True
            i += 1
            # A `]` (after an optional `^`) right at the start is a literal member.
            i += 1 if pattern.startswith("^", i) else 0
            i += 1 if pattern.startswith("]", i) else 0
        elif c == "(" and not pattern.startswith("(?", i):
            yield i, i + 1, False  # a capturing group
            i += 1
        elif pattern.startswith(("(?P<", "(?<"), i) and not pattern.startswith("(?<=", i):
            close = pattern.find(">", i)
            end = n if close < 0 else close
            yield i, end, False
            i = end
        else:
            i += 1
