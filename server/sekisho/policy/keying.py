"""The decision cache's key for an input document, and the JSON bytes the embedded engine
evaluates on a miss: both from one encoding, so the policy reads exactly the bytes the key is a
digest of, plus `now` (docs/architecture.md §5; cache.py says why `now` is left out).

The key's preimage is a JSON text of the whole document but `now`:

- a document with the contract's members (subject, actor, caller, request, now):
  `{"subject":S,"actor":A,"caller":C,"request":R}`, each member its value's canonical JSON
  (sorted keys, compact). For a document from build_input (an InputDocument) S and A are
  functions of the verified token objects alone, so they are encoded once per token object and
  the SHA-256 state after `{"subject":S` is kept with them: a request for a subject the subject
  cache already holds (the same object) encodes and hashes only the caller and request members.
  An entry holds its token object, so no other object takes its id() while the entry lives;
  entries are bounded (LRU) and dropped at every flush;
- any other document: its canonical JSON without `now`.

A JSON text parses one way only, so two inputs share a key only if (barring a SHA-256
collision) they are the same document but `now`, as JSON: no NUL truncation, no unicode
normalisation, no duplicate or folded keys, and 1, 1.0, "1" and true all encode differently
(nothing here compares values with Python's ==, for which True == 1 == 1.0).
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sekisho.lru import LruMap
from sekisho.models import VerifiedToken
from sekisho.policy.input import InputDocument, actor_member, subject_member

# Built once: json.dumps with options constructs an encoder per call (~2 µs of every decision).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_MEMBERS = frozenset(("subject", "actor", "caller", "request", "now"))
_SUBJECT_OPEN = b'{"subject":'


@dataclass(frozen=True, slots=True)
class KeyedInput:
    """A document's cache key and the parts its encoded bytes are made of."""

    digest: bytes
    head: bytes  # the preimage up to (not including) its closing brace
    has_now: bool
    now: Any

    def encoded(self) -> bytes:
        """The whole document as JSON: the key's preimage with `now` as its last member."""
        if not self.has_now:
            return self.head + b"}"
        now = str(self.now) if type(self.now) is int else _CANONICAL(self.now)
        separator = b"," if len(self.head) > 1 else b""
        return b'%s%s"now":%s}' % (self.head, separator, now.encode())


@dataclass(frozen=True, slots=True)
class _TokenText:
    token: VerifiedToken | None  # held, so no other object takes its id() while it is kept
    text: bytes
    hashed: "hashlib._Hash"  # SHA-256 after _SUBJECT_OPEN + text (used for subjects only)


class InputKeys:
    """Keys and encodings of input documents, remembering the encoding of each token object."""

    def __init__(self, max_entries: int) -> None:
        # Apart: one token object can be a subject and an actor, with different members.
        self._subjects: LruMap[int, _TokenText] = LruMap(max_entries)
        self._actors: LruMap[int, _TokenText] = LruMap(max_entries)

    def __len__(self) -> int:
        return len(self._subjects) + len(self._actors)

    def clear(self) -> None:
        """Forget every token's encoding."""
        self._subjects.clear()
        self._actors.clear()

    def of(self, document: dict[str, Any]) -> KeyedInput:
        """The key and encoding of `document`. Raises: ValueError (TypeError) when a value is
        not JSON (a lone surrogate, a non-JSON type)."""
        if document.keys() != _MEMBERS:
            return canonical_key(document)
        if type(document) is InputDocument:
            subject = _remembered(self._subjects, document.subject_token, subject_member)
            actor_token = document.actor_token
            actor = (
                b"null"
                if actor_token is None
                else _remembered(self._actors, actor_token, actor_member).text
            )
        else:  # the same text, encoded from the members themselves
            subject = _text_of(None, document["subject"])
            actor = _CANONICAL(document["actor"]).encode()
        rest = b',"actor":%s,"caller":%s,"request":%s' % (
            actor,
            _CANONICAL(document["caller"]).encode(),
            _CANONICAL(document["request"]).encode(),
        )
        hashed = subject.hashed.copy()
        hashed.update(rest + b"}")
        head = _SUBJECT_OPEN + subject.text + rest
        return KeyedInput(hashed.digest(), head, True, document["now"])


def _text_of(token: VerifiedToken | None, member: Any) -> _TokenText:
    text = _CANONICAL(member).encode()
    return _TokenText(token, text, hashlib.sha256(_SUBJECT_OPEN + text))


def _remembered(
    entries: LruMap[int, _TokenText],
    token: VerifiedToken,
    member: Callable[[VerifiedToken], dict[str, Any] | None],
) -> _TokenText:
    entry = entries.get(id(token))
    if entry is None or entry.token is not token:
        entry = _text_of(token, member(token))
        entries.put(id(token), entry)
    return entry


def canonical_key(document: dict[str, Any]) -> KeyedInput:
    """Any document: the canonical JSON of everything but `now`."""
    text = _CANONICAL({name: value for name, value in document.items() if name != "now"})
    encoded = text.encode()
    has_now = "now" in document
    return KeyedInput(hashlib.sha256(encoded).digest(), encoded[:-1], has_now, document.get("now"))
