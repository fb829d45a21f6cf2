"""Strict compact-JWS parsing (sekisho.jose): only three base64url parts holding UTF-8 JSON
objects without duplicate members, and a non-empty signature, get past `parse_compact`."""

import base64
import binascii

import pytest
from sekisho.errors import InvalidTokenError
from sekisho.jose import b64url_decode, json_object, parse_compact

from tests.security._tokens import b64url

HEADER = b64url(b'{"alg":"ES256","kid":"k1"}')
CLAIMS = b64url(b'{"sub":"alice","n":[1,{"a":true}]}')
SIGNATURE = b64url(b"\x01\x02\x03")


def test_parse_compact_decodes_the_three_parts() -> None:
    jws = parse_compact(f"{HEADER}.{CLAIMS}.{SIGNATURE}")
    assert jws.header == {"alg": "ES256", "kid": "k1"}
    assert jws.claims == {"sub": "alice", "n": [1, {"a": True}]}
    assert jws.signature == b"\x01\x02\x03"
    assert jws.signing_input == f"{HEADER}.{CLAIMS}".encode("ascii")
    assert jws.claims_text == '{"sub":"alice","n":[1,{"a":true}]}'


@pytest.mark.parametrize(
    "token",
    [
        "",
        HEADER,
        f"{HEADER}.{CLAIMS}",
        f"{HEADER}.{CLAIMS}.{SIGNATURE}.",
        f"{HEADER}.{CLAIMS}.{SIGNATURE}.{SIGNATURE}.{SIGNATURE}",
        f"{HEADER}..{SIGNATURE}",
        f".{CLAIMS}.{SIGNATURE}",
    ],
    ids=["empty", "one-part", "two-parts", "trailing-dot", "jwe-five-parts", "empty-payload",
         "empty-header"],
)  # fmt: skip
def test_parse_compact_rejects_anything_but_three_non_empty_parts(token: str) -> None:
    with pytest.raises(InvalidTokenError):
        parse_compact(token)


@pytest.mark.parametrize("signature", ["", "=="], ids=["empty", "padding-only"])
def test_parse_compact_rejects_an_unsigned_token(signature: str) -> None:
    with pytest.raises(InvalidTokenError):
        parse_compact(f"{HEADER}.{CLAIMS}.{signature}")


@pytest.mark.parametrize(
    "segment",
    [
        HEADER + "=",  # padding is not part of base64url (RFC 7515 §2)
        HEADER.replace("e", "+", 1),  # standard-alphabet characters
        HEADER[:4] + "/" + HEADER[5:],
        HEADER[:4] + " " + HEADER[4:],  # whitespace
        HEADER[:4] + "\n" + HEADER[4:],
        HEADER[:4] + "é" + HEADER[4:],  # non-ASCII
        "A",  # a length of 4n+1 cannot be base64
    ],
    ids=["padding", "plus", "slash", "space", "newline", "non-ascii", "bad-length"],
)
def test_b64url_decode_accepts_only_the_unpadded_url_alphabet(segment: str) -> None:
    with pytest.raises(InvalidTokenError):
        b64url_decode(segment)


def test_b64url_decode_round_trips() -> None:
    data = bytes(range(256))
    assert b64url_decode(b64url(data)) == data


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        b'"a string"',
        b"42",
        b"null",
        b"{",
        b"",
        b'{"sub":"a","sub":"b"}',
        b'{"a":{"x":1,"x":2}}',
        b'{"sub":"\xff"}',
        '{"sub":"alice"}'.encode("utf-16"),
        b"[" * 100_000 + b"]" * 100_000,
        b'\xef\xbb\xbf{"sub":"alice"}',
    ],
    ids=["array", "string", "number", "null", "truncated", "empty", "duplicate-member",
         "nested-duplicate-member", "invalid-utf8", "utf-16", "deep-nesting", "utf-8-bom"],
)  # fmt: skip
def test_json_object_rejects_anything_but_a_utf8_json_object(raw: bytes) -> None:
    with pytest.raises(InvalidTokenError):
        json_object(b64url(raw))


@pytest.mark.parametrize("where", ["header", "claims"])
def test_parse_compact_rejects_duplicate_members_in_either_part(where: str) -> None:
    duplicate = b64url(b'{"alg":"ES256","alg":"none"}')
    header, claims = (duplicate, CLAIMS) if where == "header" else (HEADER, duplicate)
    with pytest.raises(InvalidTokenError):
        parse_compact(f"{header}.{claims}.{SIGNATURE}")


def test_rejection_message_is_generic() -> None:
    """Public messages never echo token contents (docs/architecture.md §3)."""
    claims = b64url(b'{"secret":1,"secret":2}')
    token = f"{HEADER}.{claims}.{SIGNATURE}"
    with pytest.raises(InvalidTokenError) as caught:
        parse_compact(token)
    assert caught.value.public_message == "the subject or actor token is invalid"
    assert "secret" in caught.value.log_detail


@pytest.mark.parametrize("char", ["+", "/", "=", " ", "\n", "é", "*"])
def test_b64url_decode_refuses_foreign_characters_before_decoding(char: str) -> None:
    # The alphabet check itself, not the canonical check behind it, refuses the segment.
    with pytest.raises(InvalidTokenError) as caught:
        b64url_decode(HEADER[:4] + char + HEADER[5:])
    assert caught.value.log_detail == "segment is not base64url"


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _reencodes_to_itself(segment: str) -> bool:
    """The reference: canonical means the decoded bytes encode back to the same text."""
    try:
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except binascii.Error:
        return False
    return base64.urlsafe_b64encode(decoded).rstrip(b"=").decode() == segment


def _decodes(segment: str) -> bool:
    try:
        b64url_decode(segment)
    except InvalidTokenError:
        return False
    return True


@pytest.mark.parametrize("prefix", ["", "QUJD"], ids=["alone", "after-a-group"])
def test_b64url_decode_accepts_exactly_the_spellings_that_reencode_to_themselves(
    prefix: str,
) -> None:
    """RFC 4648 §3.5: the last character's unused bits must be zero. Every 1- and 2-character
    tail, and every last character of a 3-character tail, against the re-encoding reference."""
    tails = [a for a in ALPHABET] + [a + b for a in ALPHABET for b in ALPHABET]
    tails += [a + b + c for a in "Az9_" for b in "Ag-" for c in ALPHABET]
    for tail in tails:
        segment = prefix + tail
        assert _decodes(segment) == _reencodes_to_itself(segment), segment
