"""Identifiers for requests and policy decisions: RFC 9562 version-4 UUIDs (122 random bits from
os.urandom, as uuid.uuid4 draws them), formatted without building a uuid.UUID object, which costs
more than the id itself (~20k vs ~9k instructions per id; one or two per exchange,
bench/results/hotpath_session6.md); and the one rule by which a caller's request id is taken,
on every transport; and the pseudonym by which audit lines and shadow differences name a user.
Also the `jti` of a minted token, and how to tell whether a jti has its form (`sekisho revoke
token`: a jti that has not is an inbound token's)."""

import base64
import hashlib
import math
import os
import re
import secrets

JTI_BYTES = 16  # 128 bits of randomness: unguessable and collision-free at any realistic rate
# Unpadded base64url of JTI_BYTES bytes: 22 characters. Every Sekisho version has minted these.
_JTI_FORM = re.compile(f"[A-Za-z0-9_-]{{{math.ceil(JTI_BYTES * 4 / 3)}}}")

# The gRPC metadata key and the HTTP header (whose names are case-insensitive) of the request id.
REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_LENGTH = 128


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


def request_id(given: str | None) -> str:
    """The caller's `x-request-id` when it is printable and not empty, cut to 128 characters
    (it goes into log and audit lines); else a new id."""
    if given and given.isprintable():
        return given[:MAX_REQUEST_ID_LENGTH]
    return random_uuid_hex()


def subject_hash(issuer: str, subject: str) -> str:
    """A user's pseudonym in logs (the audit line's and shadow_diff's `sub_hash`): SHA-256 of
    `issuer NUL subject`, first 128 bits in hex."""
    return hashlib.sha256(f"{issuer}\x00{subject}".encode()).hexdigest()[:32]


def random_jti() -> str:
    """A minted token's `jti`: JTI_BYTES random bytes in unpadded base64url."""
    return secrets.token_urlsafe(JTI_BYTES)


def has_minted_jti_form(value: str) -> bool:
    """Whether `value` could be a jti random_jti made: JTI_BYTES bytes in canonical unpadded
    base64url (22 characters, the last one of A, Q, g, w). False means no token Sekisho minted
    carries it: an inbound token's jti (a UUID, Okta's `ID.…`) or a mistyped one."""
    if not _JTI_FORM.fullmatch(value):
        return False
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == value
