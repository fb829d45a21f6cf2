"""ECDSA signature formats: DER (what KMS returns) → JWS R||S (RFC 7518 §3.4).

KMS returns `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` (RFC 3279 §2.2.3). DER
integers are minimal and signed, so r or s can take 33 bytes (a leading 0x00 before a high bit)
or fewer than 32 (leading zero bytes dropped). JWS wants each left-padded to exactly the curve's
size; copying DER bytes naively breaks on roughly one signature in two.
"""

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from sekisho.errors import KeyStoreError

# Octets of R and of S per JWS algorithm (RFC 7518 §3.4: ES256 uses 32-octet values).
ECDSA_SIZES = {"ES256": 32}


class SignatureFormatError(KeyStoreError):
    """A backend returned something that is not a well-formed ECDSA signature."""


def der_to_jose(der: bytes, size: int) -> bytes:
    """R||S, each exactly `size` octets, from a DER ECDSA-Sig-Value.

    Raises: SignatureFormatError for malformed DER, trailing bytes, or r/s too large.
    """
    try:
        r, s = decode_dss_signature(der)
    except ValueError as exc:
        raise SignatureFormatError("ECDSA signature is not valid DER") from exc
    limit = 1 << (8 * size)
    if not (0 < r < limit and 0 < s < limit):
        raise SignatureFormatError(f"ECDSA r or s does not fit {size} octets")
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")
