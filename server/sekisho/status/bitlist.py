"""The Status List byte array of draft-ietf-oauth-status-list §4.1.

Each token owns `bits` bits at index `idx`; index 0 is the least significant bit(s) of byte 0. The
array is compressed with DEFLATE in the ZLIB format (RFC 1950) and carried base64url without
padding in the `lst` member.
"""

import base64
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

VALID = 0x00
INVALID = 0x01
SUSPENDED = 0x02
ALLOWED_BITS = (1, 2, 4, 8)


class StatusListFormatError(ValueError):
    """A `status_list` object that does not follow §4.1."""


def pack(size: int, bits: int, statuses: Iterable[tuple[int, int]]) -> bytes:
    """The uncompressed array of `size` entries, all VALID except the (idx, status) given."""
    if bits not in ALLOWED_BITS:
        raise StatusListFormatError(f"bits must be one of {ALLOWED_BITS}")
    array = bytearray((size * bits + 7) // 8)
    for idx, status in statuses:
        if not 0 <= idx < size or not 0 <= status < (1 << bits):
            raise StatusListFormatError(f"entry {idx}={status} does not fit the list")
        position = idx * bits
        array[position // 8] |= status << (position % 8)
    return bytes(array)


def status_at(array: bytes, bits: int, idx: int) -> int:
    """The status value of `idx` in an uncompressed array."""
    position = idx * bits
    if idx < 0 or position // 8 >= len(array):
        raise StatusListFormatError(f"index {idx} is outside the list")
    return (array[position // 8] >> (position % 8)) & ((1 << bits) - 1)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class StatusList:
    """A decoded `status_list` claim value."""

    bits: int
    array: bytes

    def to_claim(self) -> dict[str, object]:
        """`{"bits": …, "lst": …}` with the array compressed at the highest level (§4.1)."""
        return {"bits": self.bits, "lst": _b64url(zlib.compress(self.array, 9))}

    def status(self, idx: int) -> int:
        return status_at(self.array, self.bits, idx)


def from_claim(claim: object, *, max_bytes: int = 16 * 1024 * 1024) -> StatusList:
    """Parse a `status_list` claim value. Raises: StatusListFormatError."""
    if not isinstance(claim, dict):
        raise StatusListFormatError("status_list must be an object")
    bits, lst = claim.get("bits"), claim.get("lst")
    if bits not in ALLOWED_BITS or isinstance(bits, bool) or not isinstance(lst, str):
        raise StatusListFormatError("status_list needs bits in (1, 2, 4, 8) and a string lst")
    try:
        padded = lst + "=" * (-len(lst) % 4)
        compressed = base64.b64decode(padded, altchars=b"-_", validate=True)
        inflater = zlib.decompressobj()
        array = inflater.decompress(compressed, max_bytes)  # bounded: no zip bomb
    except (ValueError, zlib.error) as exc:
        raise StatusListFormatError("lst is not base64url ZLIB data") from exc
    if inflater.unconsumed_tail:
        raise StatusListFormatError("lst inflates beyond the size limit")
    if not inflater.eof:
        raise StatusListFormatError("lst is a truncated ZLIB stream")
    return StatusList(bits=int(bits), array=array)


# Per byte, the lowest bit of each entry: `bits` 1, 2, 4, 8.
_LOW_BITS = {1: 0xFF, 2: 0x55, 4: 0x11, 8: 0x01}


def _invalid_mask(status_list: StatusList) -> int:
    """An integer with bit `idx * bits` set for each INVALID (0x01) entry: the array read as
    one little-endian integer (index 0 is the least significant bit(s) of byte 0)."""
    whole = int.from_bytes(status_list.array, "little")
    low = int.from_bytes(bytes([_LOW_BITS[status_list.bits]]) * len(status_list.array), "little")
    others = 0
    for shift in range(1, status_list.bits):
        others |= (whole >> shift) & low
    return whole & low & ~others


def drops_invalid(before: StatusList, after: StatusList) -> bool:
    """Whether `after` reads VALID or SUSPENDED some entry `before` reads INVALID: INVALID is
    final, so such an `after` was built from an older view of the store, whatever its `iat`
    says. Lists of different `bits` cannot be compared entry by entry: True (the caller keeps
    what it has)."""
    if before.bits != after.bits:
        return True
    return bool(_invalid_mask(before) & ~_invalid_mask(after))


def invalid_count(status_list: StatusList) -> int:
    """How many entries read INVALID. Each list is built from a view of one store, in which
    INVALID is final, so of two copies of one list the one with fewer was built from an older
    view (what a verifier that no longer holds the other can still compare)."""
    return _invalid_mask(status_list).bit_count()
