"""What the audit line's encoder and the scrubber remember is bounded in memory, whatever callers
send (jsonfields.py, redaction.ScrubFilter): audiences, scopes and resources are the caller's, so
a caller sending many distinct long values — each twice, which is what makes a field remembered
— must not grow a worker by tens of MiB. Measured with tracemalloc: the most memory allocated
while the lines were written (a count of bytes, not a time), each line's values made afresh
inside the measurement, as a server parses them from each request (values made before it would
not be counted even when the encoder keeps them)."""

import gc
import random
import string
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sekisho.logs import _STANDARD_ATTRIBUTES, JsonLineFormatter
from sekisho.redaction import ScrubFilter

pytestmark = pytest.mark.security

BOUND = 6 * 1024 * 1024  # bytes: jsonfields' 2 MiB and the scrubber's ~1.3 MiB, with room
COUNT = 4000  # under 4,096: nothing is dropped to make room for lack of entries
EMOJI = "\U0001f600"  # outside the BMP: a string holding one takes 4 bytes per character


def _stem(draw: random.Random, n: int) -> str:
    return "".join(draw.choice(string.ascii_letters) for _ in range(8)) + f"{n:08d}"


# Distinct values, one set per line pair, at the limits of what may be remembered.
VALUES: dict[str, Callable[[random.Random, int], dict[str, Any]]] = {
    # 16 resources of 248 characters (1,488 as JSON: \u00e9 escapes), a 256-character audience
    "long-latin1": lambda draw, n: {
        "resources": tuple(f"{i:02d}{_stem(draw, n)}".ljust(248, "é") for i in range(16)),
        "audience": _stem(draw, n).ljust(256, "é"),
    },
    # 255 ASCII characters and one emoji: 268 characters of JSON, 1 KiB as a str
    "emoji-audience": lambda draw, n: {"audience": _stem(draw, n).ljust(255, ".") + EMOJI},
    # 16 items of 16 characters, one an emoji: 256 characters, 16 objects of 125 bytes
    "emoji-items": lambda draw, n: {
        "requested_scopes": tuple(f"{i:x}{_stem(draw, n)}"[:15] + EMOJI for i in range(16)),
        "resources": tuple(f"{i:x}{_stem(draw, n)}"[:15] + EMOJI for i in range(16)),
    },
    # the same in ASCII, and a 256-character ASCII audience
    "ascii": lambda draw, n: {
        "audience": _stem(draw, n).ljust(256, "."),
        "requested_scopes": tuple(f"{i:x}{_stem(draw, n)}".ljust(16, ".") for i in range(16)),
        "resources": tuple(f"{i:x}{_stem(draw, n)}".ljust(16, "/") for i in range(16)),
    },
}


def _lines(kind: str, seed: int) -> Iterator[dict[str, Any]]:
    """Each value set twice, made afresh each time (same seed: equal values, new objects)."""
    make = VALUES[kind]
    for n in range(COUNT):
        for _ in range(2):
            yield make(random.Random(seed * 1_000_003 + n), n)  # noqa: S311 (test data)


@pytest.mark.parametrize("kind", list(VALUES))
def test_long_distinct_values_sent_twice_stay_within_a_few_mib(kind: str) -> None:
    formatter = JsonLineFormatter()
    scrubber = ScrubFilter(_STANDARD_ATTRIBUTES)
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for fields in _lines(kind, seed=7):
            line = formatter.format_event(
                1.0e9, "INFO", "sekisho.audit", "token_rejected", fields, scrubber=scrubber
            )
            assert line.startswith('{"time": ')
        gc.collect()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - before < BOUND, f"{(peak - before) / 2**20:.1f} MiB at most, {2 * COUNT} lines"


def _values(seed: int, count: int) -> list[dict[str, Any]]:
    """Long distinct values, as "long-latin1" above."""
    draw = random.Random(seed)  # noqa: S311 (test data, not secrets)
    return [VALUES["long-latin1"](draw, n) for n in range(count)]


class _CountingScrubber(ScrubFilter):
    def __init__(self) -> None:
        super().__init__(_STANDARD_ATTRIBUTES)
        self.calls: list[str] = []

    def scrub_field(self, name: str, value: Any) -> Any:
        self.calls.append(name)
        return super().scrub_field(name, value)


def test_usual_values_are_still_remembered() -> None:
    # The bound must not switch the memory off: from the third line on, a usual audit line's
    # fields are remembered texts, not scrubbed again; the long ones above are, every time.
    formatter = JsonLineFormatter()
    scrubber = _CountingScrubber()
    usual = {
        "resources": ("https://crm.example.com/mcp", "https://crm.example.com/files"),
        "audience": "https://crm-as.example.com",
    }
    for fields, scrubbed_on_third in (
        (usual, []),
        (_values(seed=8, count=1)[0], ["resources", "audience"]),
    ):
        lines = []
        for _ in range(3):
            scrubber.calls.clear()
            lines.append(
                formatter.format_event(
                    1.0e9,
                    "INFO",
                    "sekisho.audit",
                    "token_exchanged",
                    dict(fields),
                    scrubber=scrubber,
                )
            )
        assert lines[0] == lines[1] == lines[2]
        assert scrubber.calls == scrubbed_on_third
