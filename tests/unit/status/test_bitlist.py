"""The Status List byte array (draft-ietf-oauth-status-list §4.1), against the draft's own
examples, and the decoder's defences against hostile lists."""

import base64
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sekisho.status.bitlist import (
    INVALID,
    StatusList,
    StatusListFormatError,
    drops_invalid,
    from_claim,
    pack,
    status_at,
)

# draft §4.1 examples: statuses by index, and the `lst` the draft prints for them.
ONE_BIT = [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1]
TWO_BITS = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3]


@pytest.mark.parametrize(
    ("bits", "statuses", "raw", "lst"),
    [
        pytest.param(1, ONE_BIT, "b9a3", "eNrbuRgAAhcBXQ", id="1-bit"),
        pytest.param(2, TWO_BITS, "c944f9", "eNo76fITAAPfAgc", id="2-bit"),
    ],
)
def test_draft_examples(bits: int, statuses: list[int], raw: str, lst: str) -> None:
    array = pack(len(statuses), bits, [(i, s) for i, s in enumerate(statuses) if s])
    assert array.hex() == raw
    assert StatusList(bits, array).to_claim() == {"bits": bits, "lst": lst}
    decoded = from_claim({"bits": bits, "lst": lst})
    assert [decoded.status(i) for i in range(len(statuses))] == statuses


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_index_zero_is_the_least_significant_bits_of_byte_zero(bits: int) -> None:
    array = pack(16, bits, [(0, INVALID)])
    assert array[0] == 0x01 and not any(array[1:])
    last = pack(16, bits, [(15, INVALID)])
    assert last[-1] == 1 << (8 - bits) % 8 if bits < 8 else last[-1] == 1
    assert status_at(last, bits, 15) == INVALID and status_at(last, bits, 14) == 0


@pytest.mark.parametrize(
    "claim",
    [
        pytest.param([], id="not-an-object"),
        pytest.param({"bits": 3, "lst": "eNrbuRgAAhcBXQ"}, id="bits-3"),
        pytest.param({"bits": True, "lst": "eNrbuRgAAhcBXQ"}, id="bits-bool"),
        pytest.param({"bits": 1, "lst": "!!!"}, id="not-base64url"),
        pytest.param({"bits": 1, "lst": "AAAA"}, id="not-zlib"),
        pytest.param({"bits": 1}, id="no-lst"),
    ],
)
def test_malformed_claims_are_refused(claim: object) -> None:
    with pytest.raises(StatusListFormatError):
        from_claim(claim)


def test_a_zip_bomb_is_refused_at_the_size_limit() -> None:
    bomb = zlib.compress(bytes(10 * 1024 * 1024), 9)  # 10 MiB of zeros in ~10 KB
    lst = base64.urlsafe_b64encode(bomb).rstrip(b"=").decode()
    with pytest.raises(StatusListFormatError, match="size limit"):
        from_claim({"bits": 1, "lst": lst}, max_bytes=1024 * 1024)


def test_an_index_outside_the_list_is_an_error_not_valid() -> None:
    with pytest.raises(StatusListFormatError):
        status_at(pack(8, 1, []), 1, 8)
    with pytest.raises(StatusListFormatError):
        pack(8, 1, [(8, INVALID)])


@st.composite
def _two_lists(draw: st.DrawFn) -> tuple[StatusList, StatusList]:
    bits = draw(st.sampled_from([1, 2, 4, 8]))
    size = draw(st.integers(1, 40))
    values = st.lists(st.integers(0, (1 << bits) - 1), min_size=size, max_size=size)
    before, after = draw(values), draw(values)
    return (
        StatusList(bits, pack(size, bits, enumerate(before))),
        StatusList(bits, pack(size, bits, enumerate(after))),
    )


@given(_two_lists())
def test_drops_invalid_is_an_entry_read_invalid_before_and_not_after(
    lists: tuple[StatusList, StatusList],
) -> None:
    # The status list client's "never backwards" for lists of one second (red team session 12).
    before, after = lists
    size = len(before.array) * 8 // before.bits
    expected = any(before.status(i) == INVALID and after.status(i) != INVALID for i in range(size))
    assert drops_invalid(before, after) is expected


def test_lists_of_different_bits_are_never_taken_as_newer() -> None:
    assert drops_invalid(StatusList(1, pack(8, 1, [])), StatusList(2, pack(8, 2, [])))
