"""Random identifiers for requests and policy decisions: RFC 9562 version-4 UUIDs (122 random
bits from os.urandom, as uuid.uuid4 draws them), formatted without building a uuid.UUID object,
which costs more than the id itself (~20k vs ~9k instructions per id; one or two per exchange,
bench/results/hotpath_session6.md)."""

import os


def _version_4_hex() -> str:
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4 (RFC 9562 §5.4)
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 9562 variant (10xx)
    return raw.hex()


def random_uuid() -> str:
    """A new version-4 UUID in its hyphenated form: what str(uuid.uuid4()) returns."""
    digits = _version_4_hex()
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def random_uuid_hex() -> str:
    """A new version-4 UUID as 32 hex digits: what uuid.uuid4().hex returns."""
    return _version_4_hex()
