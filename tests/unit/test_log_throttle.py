"""log_throttle.LogThrottle: one summary line per interval, carrying the count since the last;
PeerCounts: the peers such a line names, bounded."""

import pytest
from sekisho.log_throttle import MAX_PEERS, OTHER, TOP_PEERS, LogThrottle, PeerCounts

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


def test_peer_counts_name_the_most_refused_and_sum_the_rest() -> None:
    peers = PeerCounts()
    for n in range(TOP_PEERS + 2):
        for _ in range(n + 1):
            peers.add(f"10.0.0.{n}")
    peers.add("")
    top = peers.take()
    assert list(top) == [f"10.0.0.{n}" for n in range(TOP_PEERS + 1, 1, -1)] + [OTHER]
    assert top[OTHER] == 1 + 2 + 1  # 10.0.0.0, 10.0.0.1 and the one with no address
    assert peers.take() == {}  # counted afresh after each line


def test_peer_counts_stay_bounded_under_a_flood_from_many_addresses() -> None:
    peers = PeerCounts()
    for n in range(10_000):
        peers.add(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
    assert len(peers._counts) == MAX_PEERS
    top = peers.take()
    assert sum(top.values()) == 10_000
    assert len(top) == TOP_PEERS + 1  # five addresses, then OTHER


@pytest.mark.parametrize("decoys_first", [True, False], ids=["decoys-first", "flood-first"])
def test_a_flood_is_named_however_many_decoys_came_first(decoys_first: bool) -> None:
    """Red team, session 13b: the places went to the first MAX_PEERS addresses of the interval,
    so one refusal from each of 64 decoy addresses just after a line hid the flood that followed
    under `other` (the line named five decoys with 1 each). Any address refused more than
    1/MAX_PEERS of the interval's refusals is named (Space-Saving)."""
    peers = PeerCounts()
    decoys = [f"10.1.0.{n}" for n in range(MAX_PEERS)]
    flood = ["192.0.2.7"] * 10_000
    for peer in decoys + flood if decoys_first else flood + decoys:
        peers.add(peer)
    top = peers.take()
    assert next(iter(top)) == "192.0.2.7"
    assert 10_000 <= top["192.0.2.7"] <= 10_000 + MAX_PEERS  # an upper bound, off by decoys
    assert sum(top.values()) == 10_000 + MAX_PEERS
