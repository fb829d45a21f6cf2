"""Pseudonymising a decision record before it is written (docs/operations.md#decision-log).

Configured input fields are hashed (HMAC-SHA256 with a secret key, or SHA-256 of a secret salt
and the value) or erased. A hashed value is also replaced wherever else it occurs in the record,
as a whole string or inside one: the default policy copies `subject.email` into the decision's
claims and the token's claims sit in `subject.claims`, so hashing one path alone would leave the
address in the file. Equal values hash equally, so one user's decisions still correlate, and a
policy that only compares a field for equality decides the same on the hashed record (replay).
Empty strings stay empty: a policy that tests for presence must not see a hash of nothing.
"""

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sekisho.errors import ConfigError
from sekisho.policy.options import DecisionLogConfig

# Shorter values are not swept out of other strings (they would mangle unrelated text).
MIN_SWEPT_LENGTH = 4
# A hashed value: its method, ':', and the digest's first 128 bits in hex (FieldHasher).
_DIGEST_HEX_DIGITS = 32
_PSEUDONYM = re.compile(rf"(?:hmac|salted):[0-9a-f]{{{_DIGEST_HEX_DIGITS}}}")


class FieldHasher:
    """Keyed (HMAC-SHA256) or salted (SHA-256) hash of a value, 128 bits in hex with a prefix
    naming the method."""

    def __init__(self, method: str, secret: bytes) -> None:
        self._method = method
        self._secret = secret

    def __call__(self, value: str) -> str:
        data = value.encode()
        if self._method == "hmac":
            digest = hmac.new(self._secret, data, hashlib.sha256).hexdigest()
        else:
            digest = hashlib.sha256(self._secret + data).hexdigest()
        return f"{self._method}:{digest[:_DIGEST_HEX_DIGITS]}"


def is_pseudonym(value: str) -> bool:
    """Whether `value` is what a FieldHasher makes of a value (`hmac:…` or `salted:…`)."""
    return _PSEUDONYM.fullmatch(value) is not None


def build_hasher(config: DecisionLogConfig) -> FieldHasher:
    """The hasher [decision_log] names.

    Raises: ConfigError when the method's secret is unset (an empty hash_key_file would read
    the current folder), too short, or the key file is unreadable.
    """
    missing = config.missing_secret()
    if missing is not None:
        name, why = missing
        raise ConfigError(f"config key 'decision_log.{name}': {why}")
    if config.hash_method == "salted":
        return FieldHasher("salted", config.hash_salt.encode())
    try:
        key = Path(config.hash_key_file).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(
            f"config key 'decision_log.hash_key_file': cannot read {config.hash_key_file}: "
            f"{exc.strerror}"
        ) from exc
    if len(key) < 16:
        raise ConfigError("config key 'decision_log.hash_key_file': the key needs 16+ bytes")
    return FieldHasher("hmac", key)


@dataclass(frozen=True, slots=True)
class Redacted:
    """A redacted input and result, with the JSON pointers that were masked and erased (OPA's
    decision log fields of the same names)."""

    input: Any
    result: Any
    masked: list[str]
    erased: list[str]


class Redactor:
    """Applies [decision_log] hash_fields and erase_fields to a record; never mutates it."""

    def __init__(
        self,
        hasher: FieldHasher | None,
        hash_fields: tuple[str, ...],
        erase_fields: tuple[str, ...],
    ) -> None:
        self._hasher = hasher
        self._hash = [tuple(path.split(".")) for path in hash_fields] if hasher else []
        self._erase = [tuple(path.split(".")) for path in erase_fields]
        self._paths = _tree(set(self._hash), set(self._erase))

    def redact(self, document: Any, result: Any) -> Redacted:
        """Raises nothing: paths absent from the document are skipped."""
        replacements: dict[str, str] = {}
        masked = [_pointer(p) for p in self._hash if self._collect(document, p, replacements)]
        erased = [_pointer(p) for p in self._erase if _lookup(document, p) is not _ABSENT]
        if not replacements and not erased:
            return Redacted(document, result, masked, erased)
        sweeper = _Sweeper(replacements, self._paths)
        return Redacted(
            sweeper.rebuild(document, ()), sweeper.rebuild(result, ("",)), masked, erased
        )

    def _collect(self, document: Any, path: tuple[str, ...], into: dict[str, str]) -> bool:
        assert self._hasher is not None
        value = _lookup(document, path)
        if value is _ABSENT:
            return False
        values = value if isinstance(value, list) else [value]
        for item in values:
            text = _text(item)
            if text:
                into[text] = self._hasher(text)
        return True


_ABSENT = object()


def _lookup(document: Any, path: tuple[str, ...]) -> Any:
    value = document
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return _ABSENT
        value = value[part]
    return value


def _pointer(path: tuple[str, ...]) -> str:
    escaped = (part.replace("~", "~0").replace("/", "~1") for part in path)
    return "/input/" + "/".join(escaped)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


class _Node:
    """One level of the hashed and erased paths: what each key below leads to."""

    __slots__ = ("children", "erased", "hashed")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.hashed = False
        self.erased = False


def _tree(hashed: set[tuple[str, ...]], erase: set[tuple[str, ...]]) -> _Node:
    root = _Node()
    for paths, mark in ((hashed, "hashed"), (erase, "erased")):
        for path in paths:
            node = root
            for part in path:
                node = node.children.setdefault(part, _Node())
            setattr(node, mark, True)
    return root


class _Sweeper:
    """Copies a JSON value, dropping erased paths, hashing hashed paths, and replacing hashed
    strings wherever else they occur (also inside longer strings, longest first so an address
    is replaced before a part of it).

    The paths are a tree walked alongside the value; below a key no path continues through,
    the copy only replaces strings (`_plain`), without tracking where it is. An erased path is
    dropped before a hashed one is hashed (a path both erased and hashed is erased)."""

    def __init__(self, replacements: dict[str, str], paths: _Node) -> None:
        """`paths`: the hashed and erased paths (`_tree`)."""
        self._whole = replacements
        self._inside = sorted(
            (raw for raw in replacements if len(raw) >= MIN_SWEPT_LENGTH), key=len, reverse=True
        )
        self._root = paths

    def rebuild(self, value: Any, path: tuple[str, ...]) -> Any:
        """`value` found at `path` (() for the input document), swept."""
        node: _Node | None = self._root
        for part in path:
            node = node.children.get(part) if node is not None else None
        return self._walk(value, node)

    def _walk(self, value: Any, node: _Node | None) -> Any:
        if node is None:
            return self._plain(value)
        if node.hashed:
            return self._masked(value)
        if isinstance(value, dict):
            children, copy = node.children, {}
            for key, item in value.items():
                child = children.get(key)
                if child is None:
                    copy[key] = self._plain(item)
                elif not child.erased:
                    copy[key] = self._walk(item, child)
            return copy
        if isinstance(value, list):
            return [self._walk(item, node) for item in value]
        if isinstance(value, str):
            return self._string(value)
        return value

    def _plain(self, value: Any) -> Any:
        kind = type(value)
        if kind is str:
            return self._string(value)
        if kind is dict:
            return {key: self._plain(item) for key, item in value.items()}
        if kind is list:
            return [self._plain(item) for item in value]
        if isinstance(value, dict | list | str):  # a subclass: as the exact types
            return self._walk(value, _Node())
        return value

    def _masked(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._masked(item) for item in value]
        return self._whole.get(_text(value), value)

    def _string(self, text: str) -> str:
        hashed = self._whole.get(text)
        if hashed is not None:
            return hashed
        for raw in self._inside:
            if raw in text:
                text = text.replace(raw, self._whole[raw])
        return text
