"""Decision log redaction: with hashing configured no raw email is left anywhere in a record
(input, the token's claims, the decision's claims, a reason quoting it); erased fields are gone;
the record says which pointers it masked and erased, as OPA's decision log does."""

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from sekisho.errors import ConfigError
from sekisho.policy.options import DecisionLogConfig
from sekisho.policy.redaction import FieldHasher, Redactor, build_hasher, is_pseudonym

EMAIL = "alice@example.com"
KEY = b"0123456789abcdef-test-key"


def _document() -> dict[str, Any]:
    return {
        "subject": {
            "iss": "https://idp.example.com",
            "sub": "alice",
            "email": EMAIL,
            "groups": ["sales"],
            "claims": {"email": EMAIL, "name": "Alice", "sub": "alice"},
        },
        "request": {"audience": "https://crm-as.example.com", "scopes": []},
        "now": 1_800_000_000,
    }


RESULT = {"allow": True, "claims": {"email": EMAIL}, "reason": f"granted to {EMAIL} today"}


def test_hashing_leaves_no_raw_email_anywhere() -> None:
    hasher = FieldHasher("hmac", KEY)
    document = _document()
    redacted = Redactor(hasher, ("subject.email",), ()).redact(document, RESULT)
    written = json.dumps({"input": redacted.input, "result": redacted.result})
    assert EMAIL not in written
    hashed = "hmac:" + hmac.new(KEY, EMAIL.encode(), hashlib.sha256).hexdigest()[:32]
    assert redacted.input["subject"]["email"] == hashed
    assert redacted.input["subject"]["claims"]["email"] == hashed
    assert redacted.result["claims"]["email"] == hashed
    assert redacted.result["reason"] == f"granted to {hashed} today"
    assert redacted.masked == ["/input/subject/email"]
    assert document == _document(), "the exchange's own input must not be changed"


def test_without_hashing_the_email_is_recorded() -> None:
    # The control for the test above: the same record with no hash_fields keeps the address.
    redacted = Redactor(FieldHasher("hmac", KEY), (), ()).redact(_document(), RESULT)
    assert EMAIL in json.dumps(redacted.input)


def test_salted_and_keyed_hashes_differ_and_are_stable() -> None:
    salted = FieldHasher("salted", b"a-salt-of-16-chars")
    keyed = FieldHasher("hmac", KEY)
    assert salted(EMAIL) == salted(EMAIL) != keyed(EMAIL)
    assert salted(EMAIL).startswith("salted:") and keyed(EMAIL).startswith("hmac:")
    assert salted(EMAIL) != "salted:" + hashlib.sha256(EMAIL.encode()).hexdigest()[:32]


def test_lists_are_hashed_item_by_item_and_empty_strings_stay_empty() -> None:
    document = _document()
    document["subject"]["email"] = ""
    hasher = FieldHasher("hmac", KEY)
    redacted = Redactor(hasher, ("subject.groups", "subject.email"), ()).redact(document, None)
    assert redacted.input["subject"]["groups"] == [hasher("sales")]
    assert redacted.input["subject"]["email"] == ""


def test_erased_fields_are_removed_and_listed() -> None:
    redactor = Redactor(None, (), ("subject.claims", "actor.claims"))
    redacted = redactor.redact(_document(), RESULT)
    assert "claims" not in redacted.input["subject"]
    assert redacted.erased == ["/input/subject/claims"]  # actor is absent: nothing erased


def test_every_string_is_swept_and_erasing_wins_over_hashing() -> None:
    hasher = FieldHasher("hmac", KEY)
    document = {
        "subject": {"email": EMAIL, "phone": "+81 3 1234 5678", "claims": {"mail": EMAIL}},
        "actors": [{"email": EMAIL, "note": f"for {EMAIL}"}],
        "elsewhere": [[{"text": f"cc {EMAIL}"}], EMAIL, 7],
    }
    redactor = Redactor(hasher, ("subject.email", "subject.phone"), ("subject.phone",))
    redacted = redactor.redact(document, None)
    assert redacted.input == {
        "subject": {"email": hasher(EMAIL), "claims": {"mail": hasher(EMAIL)}},  # phone erased
        "actors": [{"email": hasher(EMAIL), "note": f"for {hasher(EMAIL)}"}],
        "elsewhere": [[{"text": f"cc {hasher(EMAIL)}"}], hasher(EMAIL), 7],
    }
    assert redacted.masked == ["/input/subject/email", "/input/subject/phone"]
    assert redacted.erased == ["/input/subject/phone"]


def test_the_hmac_key_comes_from_its_file(tmp_path: Path) -> None:
    key_file = tmp_path / "decision-log.key"
    key_file.write_bytes(KEY + b"\n")
    config = DecisionLogConfig(enabled=True, hash_key_file=str(key_file))
    assert build_hasher(config)(EMAIL) == FieldHasher("hmac", KEY)(EMAIL)
    key_file.write_bytes(b"short")
    with pytest.raises(ConfigError, match="hash_key_file"):
        build_hasher(config)
    with pytest.raises(ConfigError, match="cannot read"):
        build_hasher(DecisionLogConfig(enabled=True, hash_key_file=str(tmp_path / "missing")))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({}, "'decision_log.hash_key_file': is empty", id="hmac, no key file"),
        pytest.param(
            {"hash_method": "salted", "hash_salt": "short"},
            "'decision_log.hash_salt': is too short",
            id="salted, short salt",
        ),
    ],
)
def test_a_hasher_needs_its_secret_even_with_the_log_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], message: str
) -> None:
    # docs/policy-authors.md "Who is hmac:…" builds a hasher from config/example.toml, whose log
    # is off and hash_key_file empty: that read the current folder ("cannot read : Is a
    # directory"), and an empty salt hashed unsalted.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message):
        build_hasher(DecisionLogConfig(**fields))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({}, "hash_key_file: is empty", id="hmac without a key"),
        pytest.param({"hash_method": "salted", "hash_salt": "short"}, "hash_salt", id="weak salt"),
        pytest.param({"hash_fields": ["subject..email"]}, "dotted path", id="bad path"),
    ],
)
def test_hashing_needs_a_secret(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DecisionLogConfig(enabled=True, **fields)


@pytest.mark.parametrize(
    ("value", "hashed"),
    [
        pytest.param(FieldHasher("hmac", KEY)("alice@example.com"), True, id="hmac"),
        pytest.param(FieldHasher("salted", KEY)("alice@example.com"), True, id="salted"),
        pytest.param("alice", False, id="clear"),
        pytest.param("hmac:" + "0" * 31, False, id="too-short"),
        pytest.param("hmac:" + "G" * 32, False, id="not-hex"),
    ],
)
def test_a_hashed_value_is_recognised_by_the_hashers_own_format(value: str, hashed: bool) -> None:
    # policy impact names a user by the sub when only the email is hashed (impact.user_of)
    assert is_pseudonym(value) is hashed
