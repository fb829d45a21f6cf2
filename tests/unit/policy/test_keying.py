"""The decision cache's key (sekisho.policy.keying): exactly a function of the whole input the
policy reads, and the bytes the policy evaluates are the bytes the key is a digest of.

Each case is a pair of inputs an attacker could hope the cache confuses: if two of them share a
key, the second caller is served the first caller's decision.
"""

import hashlib
import json
from typing import Any

import pytest
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_JAG, TOKEN_TYPE_ID_TOKEN
from sekisho.models import Caller, ExchangeRequest, VerifiedToken
from sekisho.policy.input import build_input
from sekisho.policy.keying import InputKeys

NOW = 1_700_000_000
STRICT = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def token(subject: str = "alice", **fields: Any) -> VerifiedToken:
    return VerifiedToken(
        issuer="https://idp.example.com",
        subject=subject,
        token_type=TOKEN_TYPE_ID_TOKEN,
        expires_at=NOW + 600,
        **fields,
    )


def request(**fields: Any) -> ExchangeRequest:
    values: dict[str, Any] = {
        "subject_token": "unused",
        "subject_token_type": TOKEN_TYPE_ID_TOKEN,
        "requested_token_type": TOKEN_TYPE_ID_JAG,
        "audience": "https://crm-as.example.com",
    }
    return ExchangeRequest(**(values | fields))


def document_of(
    subject: VerifiedToken | None = None,
    actor: VerifiedToken | None = None,
    now: int = NOW,
    **fields: Any,
) -> dict[str, Any]:
    return build_input(request(**fields), subject or token(), actor, now)


def strictly(value: Any) -> str:
    """JSON text that tells 1, 1.0, "1" and true apart (Python's == does not: True == 1)."""
    return STRICT(value)


def assert_reads_what_is_keyed(keys: InputKeys, document: dict[str, Any]) -> bytes:
    """The evaluated bytes are the whole document, and the key digests them without `now`."""
    keyed = keys.of(document)
    encoded = keyed.encoded()
    assert strictly(json.loads(encoded)) == strictly(document)
    tail = f',"now":{document["now"]}}}'.encode()
    assert encoded.endswith(tail)
    assert hashlib.sha256(encoded[: -len(tail)] + b"}").digest() == keyed.digest
    return keyed.digest


SAME_TOKEN = token("bob", claims={"role": "admin"})

# (first input, second input): must never share a key.
PAIRS = {
    "nul-in-a-claim": (
        {"subject": token(claims={"dept": "sales"})},
        {"subject": token(claims={"dept": "sales\x00admin"})},
    ),
    "nul-in-the-audience": (
        {"audience": "https://crm-as.example.com"},
        {"audience": "https://crm-as.example.com\x00.evil"},
    ),
    "unicode-nfc-vs-nfd": (
        {"subject": token(email="jos\u00e9@example.com")},
        {"subject": token(email="jose\u0301@example.com")},
    ),
    "int-vs-string-in-context": ({"context": {"level": 1}}, {"context": {"level": "1"}}),
    "int-vs-true-in-context": ({"context": {"level": 1}}, {"context": {"level": True}}),
    "int-vs-float-in-context": ({"context": {"level": 1}}, {"context": {"level": 1.0}}),
    "true-vs-string-in-a-claim": (
        {"subject": token(claims={"admin": True})},
        {"subject": token(claims={"admin": "true"})},
    ),
    "null-vs-missing-claim": (
        {"subject": token(claims={"admin": None})},
        {"subject": token(claims={})},
    ),
    "member-text-smuggled-in-a-string": (
        {"audience": "a", "scopes": ("b",)},
        {"audience": 'a","scopes":["b"],"x":"', "scopes": ()},
    ),
    "subject-member-smuggled-in-context": (
        {"context": {}},
        {"context": {"subject": {"sub": "root"}}},
    ),
    "list-order": ({"scopes": ("a", "b")}, {"scopes": ("b", "a")}),
    "lifetime": ({"requested_lifetime_seconds": 0}, {"requested_lifetime_seconds": 1}),
    "subject-token-type": ({}, {"subject_token_type": TOKEN_TYPE_ACCESS_TOKEN}),
    "caller": ({"caller": Caller(id="a")}, {"caller": Caller(id="a", spiffe_id="s")}),
    "no-actor-vs-actor": ({}, {"actor": token("bot")}),
    # One token object as subject here and as actor there: its members differ by role.
    "same-token-object-as-subject-then-actor": (
        {"subject": SAME_TOKEN},
        {"subject": token(), "actor": SAME_TOKEN},
    ),
    "same-token-object-as-actor-then-subject": (
        {"subject": token(), "actor": SAME_TOKEN},
        {"subject": SAME_TOKEN},
    ),
}


@pytest.mark.parametrize(("first", "second"), list(PAIRS.values()), ids=list(PAIRS))
def test_inputs_that_differ_in_anything_the_policy_reads_never_share_a_key(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    keys = InputKeys(100)
    one = document_of(**first)
    two = document_of(**second)
    assert strictly(one) != strictly(two)
    assert assert_reads_what_is_keyed(keys, one) != assert_reads_what_is_keyed(keys, two)
    # Asked again (the token encodings now remembered): the same keys, still apart.
    assert assert_reads_what_is_keyed(keys, one) != assert_reads_what_is_keyed(keys, two)
    # The canonical encoding of a plain document keeps them apart too.
    assert keys.of(dict(one)).digest != keys.of(dict(two)).digest


def test_an_identical_input_has_one_key_whatever_token_object_carries_it() -> None:
    keys = InputKeys(100)
    first = document_of(token(claims={"jti": "t1"}))
    again = document_of(token(claims={"jti": "t1"}), now=NOW + 30)  # re-verified: a new object
    assert keys.of(first).digest == keys.of(again).digest


def test_a_built_document_and_its_plain_copy_share_a_key() -> None:
    """One key function: the remembered token encodings are only a shortcut to it."""
    keys = InputKeys(100)
    document = document_of(token(claims={"jti": "t1"}), actor=token("bot"), context={"a": [1]})
    assert keys.of(document).digest == keys.of(dict(document)).digest
    assert keys.of(document).encoded() == keys.of(dict(document)).encoded()


def test_a_recycled_object_id_never_serves_another_tokens_encoding() -> None:
    """CPython reuses a freed object's id() at once: an encoding remembered by id alone would
    key the next token with the last one's claims."""
    keys = InputKeys(1)
    seen: set[bytes] = set()
    for n in range(200):
        subject = token(claims={"n": n})
        seen.add(assert_reads_what_is_keyed(keys, document_of(subject)))
        del subject  # no cycles: freed here, its id() free for the next token
    assert len(seen) == 200


def test_a_flush_forgets_every_token_encoding() -> None:
    keys = InputKeys(10)
    keys.of(document_of(token(), actor=token("bot")))
    assert len(keys) == 2
    keys.clear()
    assert len(keys) == 0
