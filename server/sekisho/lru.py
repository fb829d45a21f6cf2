"""A bounded map that forgets the least recently used entry first: the one eviction rule every
in-process cache uses (verified subjects, decisions, gateway tokens, peer certificates, the
client SDK's tokens, rate-limit buckets, per-flow budgets).

Not thread-safe; every user runs on one event loop. Standard library only, so the SDKs may use it.
"""

from collections import OrderedDict
from collections.abc import Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LruMap(Generic[K, V]):
    """At most `max_entries` entries; a hit or a put makes an entry the most recent."""

    __slots__ = ("_entries", "max_entries")

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def values(self) -> Iterator[V]:
        """Least recently used first."""
        return iter(self._entries.values())

    def items(self) -> Iterator[tuple[K, V]]:
        """(key, value), least recently used first."""
        return iter(self._entries.items())

    def peek(self, key: K) -> V | None:
        """The entry without touching its recency (to check it before using it)."""
        return self._entries.get(key)

    def get(self, key: K) -> V | None:
        """The entry, now the most recently used; None when absent."""
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        """Store as the most recent entry, evicting the least recent ones beyond the bound."""
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
