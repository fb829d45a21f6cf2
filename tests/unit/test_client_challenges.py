"""sekisho.client reads every WWW-Authenticate challenge (RFC 9110 §11.6.1) when it decides
whether a downstream refused the token itself (RFC 6750 §3.1 invalid_token): only the first
header's first characters were read, so a Bearer challenge after another scheme was missed, and
"invalid_token" anywhere in it (a realm, a description) was taken for the error (red team)."""

import httpx
import pytest
from sekisho.client.challenges import Challenge, parse_challenges
from sekisho.client.outbound import _token_refused

INVALID = 'Bearer error="invalid_token"'


@pytest.mark.parametrize(
    ("status", "headers", "refused"),
    [
        pytest.param(401, [INVALID], True, id="bearer-invalid-token"),
        pytest.param(
            401, ['Bearer realm="api", error="invalid_token", error_description="expired"'],
            True, id="among-other-params",
        ),
        pytest.param(401, ['Basic realm="x"', INVALID], True, id="second-header"),
        pytest.param(
            401, ['DPoP algs="ES256 PS256", ' + INVALID], True, id="second-challenge-of-a-header"
        ),
        pytest.param(401, ["Negotiate abc==, Bearer error=invalid_token"], True, id="token68-then"),
        pytest.param(401, ['bearer ERROR = "invalid_token"'], True, id="case-and-bws"),
        pytest.param(401, ['Bearer error="invalid_\\token"'], True, id="quoted-pair"),
        pytest.param(
            401, ['Bearer error="insufficient_scope", error_description="not invalid_token"'],
            False, id="insufficient-scope-mentioning-it",
        ),
        pytest.param(401, ['Bearer realm="invalid_token"'], False, id="a-realm-named-so"),
        pytest.param(401, ['Basic error="invalid_token"'], False, id="another-scheme"),
        pytest.param(401, ['DPoP error="invalid_token", Bearer'], False, id="dpop-error-only"),
        pytest.param(401, ['Bearer error="invalid_token'], False, id="unterminated"),
        pytest.param(401, [], False, id="no-challenge"),
        pytest.param(403, [INVALID], False, id="not-a-401"),
    ],
)  # fmt: skip
def test_only_a_bearer_challenge_naming_invalid_token_is_a_refused_token(
    status: int, headers: list[str], refused: bool
) -> None:
    response = httpx.Response(status, headers=[("WWW-Authenticate", h) for h in headers])
    assert _token_refused(response) is refused


def test_the_rfc_9110_example_reads_as_two_challenges() -> None:
    value = 'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"'
    assert parse_challenges([value]) == [
        Challenge("newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}),
        Challenge("basic", {"realm": "simple"}),
    ]


def test_a_malformed_header_keeps_what_came_before_and_spoils_no_other_header() -> None:
    assert parse_challenges(['Basic realm="x", ="y"', INVALID]) == [
        Challenge("basic", {"realm": "x"}),
        Challenge("bearer", {"error": "invalid_token"}),
    ]
