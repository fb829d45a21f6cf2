"""clock.utc_timestamp: the one way a time is written for people (both audit logs, the CLI)."""

import pytest
from sekisho.clock import utc_timestamp


@pytest.mark.parametrize(
    ("epoch", "text"),
    [
        (1_800_000_000, "2027-01-15T08:00:00Z"),
        (1_800_000_000.9, "2027-01-15T08:00:00Z"),  # to the second, never rounded up
        (0, "1970-01-01T00:00:00Z"),
    ],
)
def test_times_are_iso_8601_utc_to_the_second(epoch: float, text: str) -> None:
    assert utc_timestamp(epoch) == text
