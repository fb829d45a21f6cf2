"""What the audit line's encoder remembers is bounded in memory, whatever callers send
(jsonfields.py): audiences, scopes and resources are the caller's, so a caller sending many
distinct long values — each twice, which is what makes a field remembered — must not grow a
worker by tens of MiB. Measured with tracemalloc: the memory the formatter still holds after
the lines were written (a count of bytes, not a time)."""

import gc
import random
import string
import tracemalloc
from typing import Any

import pytest
from sekisho.logs import _STANDARD_ATTRIBUTES, JsonLineFormatter
from sekisho.redaction import ScrubFilter

pytestmark = pytest.mark.security

BOUND = 8 * 1024 * 1024  # bytes: jsonfields' limits allow ~2 MiB for two such fields


def _values(seed: int, count: int) -> list[dict[str, Any]]:
    """Distinct values at the old per-value limits: 16 resources of 248 characters, each written
    by JSON as 1,488 (\\u00e9 escapes), and a 256-character audience."""
    draw = random.Random(seed)  # noqa: S311 (test data, not secrets)
    fields: list[dict[str, Any]] = []
    for n in range(count):
        stem = "".join(draw.choice(string.ascii_letters) for _ in range(8)) + f"{n:08d}"
        fields.append(
            {
                "resources": tuple(f"{i:02d}{stem}".ljust(248, "é") for i in range(16)),
                "audience": stem.ljust(256, "é"),
            }
        )
    return fields


def test_long_distinct_values_sent_twice_stay_within_a_few_mib() -> None:
    formatter = JsonLineFormatter()
    scrubber = ScrubFilter(_STANDARD_ATTRIBUTES)
    values = _values(seed=7, count=4000)  # under 4,096: nothing is dropped to make room
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for fields in values:
            for _ in range(2):
                line = formatter.format_event(
                    1.0e9,
                    "INFO",
                    "sekisho.audit",
                    "token_exchanged",
                    dict(fields),
                    scrubber=scrubber,
                )
                assert line.startswith('{"time": ')
        del line
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held - before < BOUND, f"{(held - before) / 2**20:.1f} MiB held after 8,000 lines"


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
