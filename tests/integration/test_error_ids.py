"""Answers a caller can act on (issue 18 item 4): every refusal carries the request id, and a
policy outcome its decision id, in the ErrorInfo metadata, matching the audit line; the public
message stays non-revealing (an unknown audience reads like any denial)."""

import grpc
import pytest
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho.errors import AccessDeniedError
from sekisho.http.token import error_response

from tests.grpc_errors import error_info
from tests.integration.conftest import LiveStack

pytestmark = pytest.mark.integration


async def _refusal(
    live: LiveStack, request: pb.ExchangeTokenRequest
) -> tuple[grpc.aio.AioRpcError, dict[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await live.stub.ExchangeToken(request)
    info = error_info(caught.value)
    return caught.value, dict(info.metadata)


async def test_policy_denial_carries_request_and_decision_id(
    live: LiveStack, caplog: pytest.LogCaptureFixture
) -> None:
    token = live.user_token(groups=["engineering"], tenant="globex")
    request = pb.ExchangeTokenRequest(subject_token=token, audience="https://docs-as.example.com")
    with caplog.at_level("INFO", logger="sekisho.audit"):
        error, metadata = await _refusal(live, request)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    trailers = dict(error.trailing_metadata() or ())
    assert metadata["request_id"] == trailers["x-request-id"]
    audited = [r for r in caplog.records if r.getMessage() == "token_rejected"]
    assert audited[-1].__dict__["decision_id"] == metadata["decision_id"]
    assert audited[-1].__dict__["request_id"] == metadata["request_id"]


async def test_unknown_audience_reads_like_a_denial(live: LiveStack) -> None:
    unknown = pb.ExchangeTokenRequest(
        subject_token=live.user_token(), audience="https://nobody.example.com"
    )
    denied = pb.ExchangeTokenRequest(
        subject_token=live.user_token(groups=["engineering"], tenant="globex"),
        audience="https://docs-as.example.com",
    )
    (first, first_meta), (second, second_meta) = [
        await _refusal(live, request) for request in (unknown, denied)
    ]
    assert first.code() == second.code() and first.details() == second.details()
    assert set(first_meta) == set(second_meta) == {"request_id", "decision_id"}


async def test_a_bad_token_carries_the_request_id_only(live: LiveStack) -> None:
    request = pb.ExchangeTokenRequest(
        subject_token="not.a.jwt", audience="https://crm-as.example.com"
    )
    error, metadata = await _refusal(live, request)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert set(metadata) == {"request_id"} and metadata["request_id"]


def test_http_error_body_carries_the_ids() -> None:
    error = AccessDeniedError("the exchange was denied by policy")
    error.metadata.update({"request_id": "r-1", "decision_id": "d-1"})
    body = error_response(error).text
    assert '"request_id": "r-1"' in body and '"decision_id": "d-1"' in body
