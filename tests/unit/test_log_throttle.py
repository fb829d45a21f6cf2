"""log_throttle.LogThrottle: one summary line per interval, carrying the count since the last."""

import pytest
from sekisho.log_throttle import LogThrottle

from tests.fakes.clock import FakeClock


@pytest.mark.parametrize(
    ("gaps", "expected"),
    [
        pytest.param([0.0], [1], id="the-first-occurrence-is-reported-at-once"),
        pytest.param([0.0, 0.0, 9.9], [1, None, None], id="quiet-within-the-interval"),
        pytest.param([0.0, 3.0, 3.0, 4.0], [1, None, None, 3], id="due-at-the-interval"),
        pytest.param([0.0, 25.0], [1, 1], id="an-occurrence-after-a-quiet-spell-counts-alone"),
        pytest.param(
            [0.0, 10.0, 5.0, 4.9, 0.1], [1, 1, None, None, 3], id="the-interval-restarts-at-a-line"
        ),
    ],
)
def test_counts_since_the_last_line(gaps: list[float], expected: list[int | None]) -> None:
    clock = FakeClock()
    throttle = LogThrottle(clock, interval=10.0)
    seen = []
    for gap in gaps:
        clock.advance(gap)
        seen.append(throttle.count())
    assert seen == expected


def test_a_flood_is_one_line_per_interval() -> None:
    clock = FakeClock()
    throttle = LogThrottle(clock, interval=10.0)
    lines = []
    for _ in range(3):
        lines += [n for n in (throttle.count() for _ in range(1000)) if n is not None]
        clock.advance(10.0)
    assert lines == [1, 1000, 1000]
