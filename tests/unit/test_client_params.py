"""sekisho.client refuses, as its own typed error and without an RPC, a request it cannot send:
a string holding a lone surrogate (red team: a bare UnicodeEncodeError from the cache key's hash
or from protobuf, which no caller catches as an ExchangeError)."""

from typing import Any

import pytest
from sekisho.client import ChannelOptions, InvalidExchangeRequestError, TokenExchangeClient
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_JAG

from tests.loopback import free_port

SECRET = "eyJhbGciOiJFUzI1NiJ9.secret-part"  # stands for a token: never in an error's text
AUDIENCE = "https://crm-as.example.com"


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        pytest.param({"subject_token": SECRET + "\ud800"}, "subject_token", id="subject-cached"),
        pytest.param(
            {"subject_token": "\udfff" + SECRET, "requested_token_type": TOKEN_TYPE_ID_JAG},
            "subject_token",
            id="subject-not-cached",
        ),
        pytest.param({"audience": AUDIENCE + "\ud800"}, "audience", id="audience"),
        pytest.param({"scopes": ["crm.read", "crm\udc80"]}, r"scopes\[1\]", id="scope"),
        pytest.param({"resources": ["https://x\ud83d/mcp"]}, r"resources\[0\]", id="resource"),
        pytest.param({"actor_token": SECRET + "\ud800"}, "actor_token", id="actor-token"),
        pytest.param(
            {"requested_token_type": "urn:\ud800"}, "requested_token_type", id="token-type"
        ),
        pytest.param({"subject_token": None}, "subject_token must be a string", id="not-a-str"),
    ],
)
async def test_a_string_utf8_cannot_encode_is_an_invalid_request_not_a_unicode_error(
    arguments: dict[str, Any], named: str
) -> None:
    call: dict[str, Any] = {
        "subject_token": SECRET,
        "audience": AUDIENCE,
        "requested_token_type": TOKEN_TYPE_ACCESS_TOKEN,  # cached: the key hashes the token
        **arguments,
    }
    subject, audience = call.pop("subject_token"), call.pop("audience")
    # Nothing listens there: the refusal must come before any RPC.
    target = f"127.0.0.1:{free_port()}"
    async with TokenExchangeClient(target, channel_options=ChannelOptions(insecure=True)) as client:
        with pytest.raises(InvalidExchangeRequestError, match=named) as refused:
            await client.exchange(subject, audience, **call)
        assert client.rpc_count == 0
    error = refused.value
    assert (error.reason, error.code) == ("invalid_request", "INVALID_ARGUMENT")
    assert "secret-part" not in str(error)
    # Not chained to the UnicodeEncodeError, whose `object` is the whole token.
    assert error.__cause__ is None and error.__context__ is None
