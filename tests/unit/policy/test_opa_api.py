"""Small pieces of the OPA REST client: addresses, JSON Pointer tokens, OPA's error text."""

import pytest
from opa_client.errors import PatchDataError, RegoParseError
from sekisho.policy.opa.api import client_address, pointer, rejection_message


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://127.0.0.1:8181", ("127.0.0.1", 8181, False)),
        ("http://localhost", ("localhost", 80, False)),
        ("https://opa.example.com", ("opa.example.com", 443, True)),
        ("https://opa.example.com:9443/", ("opa.example.com", 9443, True)),
        ("http://[::1]:8181", ("[::1]", 8181, False)),
    ],
)
def test_client_address(url: str, address: tuple[str, int, bool]) -> None:
    assert client_address(url) == address


@pytest.mark.parametrize(
    ("key", "token"), [("sekisho", "sekisho"), ("a/b", "a~1b"), ("x~y", "x~0y"), ("~/", "~0~1")]
)
def test_pointer_escapes_per_rfc6901(key: str, token: str) -> None:
    assert pointer(key) == token


def test_rejection_message_names_file_row_and_code() -> None:
    error = RegoParseError(
        "invalid_parameter",
        "error(s) occurred while compiling module(s)",
        errors=[
            {
                "code": "rego_parse_error",
                "message": "unexpected eof token",
                "location": {"file": "sekisho/x.rego", "row": 2, "col": 8},
            }
        ],
    )
    assert rejection_message(error) == "sekisho/x.rego:2: rego_parse_error: unexpected eof token"


def test_rejection_message_without_details_uses_code_and_message() -> None:
    error = PatchDataError("invalid_parameter", "bad patch")
    assert rejection_message(error) == "invalid_parameter: bad patch"
