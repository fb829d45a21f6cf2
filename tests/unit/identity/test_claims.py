"""Claim rules (sekisho.identity.claims), one table per rule; `now` is always passed in."""

from typing import Any

import pytest
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_TOKEN
from sekisho.errors import InvalidTokenError
from sekisho.identity.claims import (
    MAX_NUMERIC_DATE,
    audiences_of,
    client_id_of,
    numeric_date,
    string_claim,
    string_list_claim,
    validate_audience,
    validate_subject,
    validate_times,
)
from sekisho.identity.issuer_config import IssuerConfig

NOW = 1_800_000_000
LEEWAY = 30
ID = TOKEN_TYPE_ID_TOKEN
AT = TOKEN_TYPE_ACCESS_TOKEN


def issuer(**overrides: Any) -> IssuerConfig:
    fields: dict[str, Any] = {
        "issuer": "https://idp.example.com",
        "jwks_uri": "https://idp.example.com/jwks",
        "audiences": ("agent-app",),
    }
    fields.update(overrides)
    return IssuerConfig(**fields)


# --- numeric_date -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (NOW, NOW),
        (NOW + 0.9, NOW),
        (0, 0),
        (0.0, 0),
        (MAX_NUMERIC_DATE, MAX_NUMERIC_DATE),
    ],
    ids=["int", "float-truncated", "zero", "zero-float", "year-9999"],
)
def test_numeric_date_accepts_json_numbers_in_range(value: float, expected: int) -> None:
    assert numeric_date({"exp": value}, "exp", required=True) == expected


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("1800000000", "not a number"),
        (True, "not a number"),
        (False, "not a number"),
        ([NOW], "not a number"),
        ({"t": NOW}, "not a number"),
        (float("inf"), "not a number"),
        (float("-inf"), "not a number"),
        (float("nan"), "not a number"),
        (-1, "out of range"),
        (-0.5, "out of range"),
        (MAX_NUMERIC_DATE + 1, "out of range"),
        (10**400, "out of range"),  # regression: once raised OverflowError (a 500)
    ],
    ids=["string", "true", "false", "list", "object", "inf", "-inf", "nan", "negative",
         "negative-float", "after-9999", "huge-int"],
)  # fmt: skip
def test_numeric_date_rejects_non_numbers_and_out_of_range(value: object, detail: str) -> None:
    with pytest.raises(InvalidTokenError) as caught:
        numeric_date({"iat": value}, "iat", required=False)
    assert caught.value.log_detail == f"iat is {detail}"


def test_numeric_date_missing_is_none_unless_required() -> None:
    assert numeric_date({}, "nbf", required=False) is None
    assert numeric_date({"nbf": None}, "nbf", required=False) is None
    with pytest.raises(InvalidTokenError, match="invalid") as caught:
        numeric_date({}, "exp", required=True)
    assert caught.value.log_detail == "missing exp"


# --- validate_times ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": NOW + 1},
        {"exp": NOW - LEEWAY + 1},
        {"exp": NOW + 600, "nbf": NOW + LEEWAY},
        {"exp": NOW + 600, "iat": NOW + LEEWAY},
        {"exp": NOW + 600, "nbf": NOW - 600, "iat": NOW - 600},
    ],
    ids=["exp-future", "exp-inside-leeway", "nbf-at-leeway", "iat-at-leeway", "all-past"],
)
def test_validate_times_accepts_within_leeway(claims: dict[str, Any]) -> None:
    assert validate_times(claims, NOW, LEEWAY) == claims["exp"]


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        ({}, "missing exp"),
        ({"exp": NOW - LEEWAY}, "token expired"),
        ({"exp": NOW - LEEWAY - 1}, "token expired"),
        ({"exp": NOW + 600, "nbf": NOW + LEEWAY + 1}, "token not yet valid (nbf)"),
        ({"exp": NOW + 600, "iat": NOW + LEEWAY + 1}, "token issued in the future (iat)"),
        ({"exp": NOW + 600, "nbf": "soon"}, "nbf is not a number"),
    ],
    ids=["no-exp", "exp-at-leeway-edge", "exp-past-leeway", "nbf-past-leeway",
         "iat-past-leeway", "nbf-string"],
)  # fmt: skip
def test_validate_times_rejects_outside_leeway(claims: dict[str, Any], detail: str) -> None:
    with pytest.raises(InvalidTokenError) as caught:
        validate_times(claims, NOW, LEEWAY)
    assert caught.value.log_detail == detail


def test_validate_times_uses_the_given_now_not_the_wall_clock() -> None:
    claims = {"exp": 1000, "iat": 900}
    assert validate_times(claims, 950, 0) == 1000
    with pytest.raises(InvalidTokenError):
        validate_times(claims, 1000, 0)


# --- subject and simple claims ----------------------------------------------------------------


@pytest.mark.parametrize("sub", [None, "", 7, ["alice"]], ids=["missing", "empty", "int", "list"])
def test_validate_subject_rejects_missing_or_non_string(sub: object) -> None:
    with pytest.raises(InvalidTokenError):
        validate_subject({} if sub is None else {"sub": sub})


def test_validate_subject_returns_sub() -> None:
    assert validate_subject({"sub": "alice"}) == "alice"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("g", ("g",)), (["a", 1, "b"], ("a", "b")), ({"a": 1}, ()), (None, ()), (7, ())],
    ids=["lone-string", "mixed-list", "object", "missing", "int"],
)
def test_string_list_claim_keeps_only_strings(value: object, expected: tuple[str, ...]) -> None:
    claims = {} if value is None else {"groups": value}
    assert string_list_claim(claims, "groups") == expected


@pytest.mark.parametrize(("value", "expected"), [("acme", "acme"), (1, ""), (None, "")])
def test_string_claim_ignores_other_types(value: object, expected: str) -> None:
    assert string_claim({"tenant": value}, "tenant") == expected


# --- audiences_of -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aud", "expected"),
    [("a", ("a",)), (["a", "b"], ("a", "b")), ([], ()), (None, ())],
    ids=["string", "array", "empty-array", "missing"],
)
def test_audiences_of_reads_string_or_array(aud: object, expected: tuple[str, ...]) -> None:
    claims = {} if aud is None else {"aud": aud}
    assert audiences_of(claims) == expected


@pytest.mark.parametrize(
    "aud", [7, ["a", 7], {"a": 1}, [["a"]], True], ids=["int", "mixed", "object", "nested", "bool"]
)
def test_audiences_of_rejects_other_shapes(aud: object) -> None:
    with pytest.raises(InvalidTokenError):
        audiences_of({"aud": aud})


# --- client_id_of -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claim_name", "claims", "token_type", "expected"),
    [
        ("client_id", {"client_id": "c1", "azp": "c2", "aud": "c3"}, AT, "c1"),
        ("azp", {"client_id": "c1", "azp": "c2"}, AT, "c2"),
        ("cid", {"cid": "okta-client", "client_id": "c1"}, AT, "okta-client"),
        ("client_id", {"azp": "c2", "aud": "c3"}, AT, ""),
        ("cid", {"aud": "c3"}, AT, ""),
        ("client_id", {"azp": "c2", "aud": "c3"}, ID, "c2"),
        ("client_id", {"aud": "c3"}, ID, "c3"),
        ("client_id", {"aud": ["c3"]}, ID, "c3"),
        ("client_id", {"aud": ["c3", "c4"]}, ID, ""),
        ("client_id", {}, ID, ""),
        ("client_id", {"client_id": "", "aud": "c3"}, ID, "c3"),
        ("client_id", {"client_id": 7}, AT, ""),
        ("azp", {"azp": ["c2"], "aud": "c3"}, ID, "c3"),
    ],
    ids=["client_id", "azp", "okta-cid", "at-no-fallback-to-azp", "at-no-fallback-to-aud",
         "id-falls-back-to-azp", "id-falls-back-to-single-aud", "id-single-aud-array",
         "id-multi-aud-no-client", "id-nothing", "id-empty-claim-falls-back", "non-string",
         "id-non-string-azp-falls-back-to-aud"],
)  # fmt: skip
def test_client_id_of_per_claim_and_token_type(
    claim_name: str, claims: dict[str, Any], token_type: str, expected: str
) -> None:
    config = issuer(client_id_claim=claim_name)
    assert client_id_of(claims, config, token_type) == expected


# --- validate_audience ------------------------------------------------------------------------

AUD_ONLY = {"audiences": ("agent-app",)}
CLIENT_ONLY = {"audiences": (), "client_ids": ("agent-client",)}
BOTH = {"audiences": ("agent-app",), "client_ids": ("agent-client",)}


@pytest.mark.parametrize(
    ("config", "token_type", "aud", "client", "accepted"),
    [
        (AUD_ONLY, ID, "agent-app", "", True),
        (AUD_ONLY, ID, ["x", "agent-app"], "", True),
        (AUD_ONLY, ID, "other", "", False),
        (AUD_ONLY, ID, None, "agent-app", False),
        (BOTH, ID, "agent-app", "agent-client", True),
        (BOTH, ID, "agent-app", "", False),
        (BOTH, ID, "agent-app", "evil", False),
        (BOTH, ID, "other", "agent-client", False),
        (CLIENT_ONLY, ID, "agent-client", "agent-client", False),
        (AUD_ONLY, AT, "agent-app", "", True),
        (AUD_ONLY, AT, None, "", False),
        (AUD_ONLY, AT, None, "agent-app", False),
        (CLIENT_ONLY, AT, None, "agent-client", True),
        (CLIENT_ONLY, AT, None, "", False),
        (CLIENT_ONLY, AT, None, "evil", False),
        (CLIENT_ONLY, AT, "agent-client", "", False),
        (BOTH, AT, None, "agent-client", True),
        (BOTH, AT, "agent-app", "", True),
        (BOTH, AT, "other", "evil", False),
    ],
    ids=["id-aud", "id-aud-any-match", "id-wrong-aud", "id-no-aud", "id-aud-and-client",
         "id-client-missing-never-skipped", "id-wrong-client", "id-client-but-wrong-aud",
         "id-client-only-config-needs-aud", "at-aud", "at-nothing", "at-client-not-in-list",
         "at-client", "at-client-missing-never-skipped", "at-wrong-client",
         "at-aud-is-not-a-client", "at-both-config-client", "at-both-config-aud-only",
         "at-both-config-neither"],
)  # fmt: skip
def test_validate_audience_per_token_type(
    config: dict[str, Any], token_type: str, aud: object, client: str, accepted: bool
) -> None:
    """ID token: aud AND (client when configured). Access token: aud OR client."""
    claims = {} if aud is None else {"aud": aud}
    if accepted:
        validate_audience(claims, issuer(**config), token_type, client)
    else:
        with pytest.raises(InvalidTokenError):
            validate_audience(claims, issuer(**config), token_type, client)
