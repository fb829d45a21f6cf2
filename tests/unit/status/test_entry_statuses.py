"""What a served list says for each entry: INVALID is final and wins over SUSPENDED, SUSPENDED
reads 0x02 in a list of 2 or more bits, and a 1-bit list (no room for 0x02, draft §4.1) serves a
suspended entry as INVALID rather than VALID (fail closed)."""

import pytest
from sekisho.status.bitlist import INVALID, SUSPENDED, VALID, pack, status_at
from sekisho.status.listtoken import entry_statuses
from sekisho.status.models import ListSnapshot

SNAPSHOT = ListSnapshot(7, 16, invalid=frozenset({1, 3}), suspended=frozenset({2, 3}))


@pytest.mark.parametrize(
    ("bits", "expected"),
    [
        pytest.param(2, [VALID, INVALID, SUSPENDED, INVALID, VALID], id="2-bits"),
        pytest.param(8, [VALID, INVALID, SUSPENDED, INVALID, VALID], id="8-bits"),
        pytest.param(1, [VALID, INVALID, INVALID, INVALID, VALID], id="1-bit-fails-closed"),
    ],
)
def test_each_entry_reads_its_status(bits: int, expected: list[int]) -> None:
    array = pack(SNAPSHOT.size, bits, entry_statuses(SNAPSHOT, bits))
    assert [status_at(array, bits, idx) for idx in range(5)] == expected
