"""The audit record (issue 7 item 7): every decision — allow, policy deny, bad token, rate limit,
refusal before the pipeline — is logged exactly once, as one record with the full field set, and
never carries token material."""

import json
import logging
from typing import Any

import aiohttp
import grpc
import pytest
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho.admission import Admission
from sekisho.audit import AUDIT_FIELDS, AuditLog
from sekisho.callers import RateLimit
from sekisho.constants import TOKEN_TYPE_ID_TOKEN
from sekisho.errors import InvalidClientError, ServiceError
from sekisho.exchange import TokenExchanger
from sekisho.identifiers import subject_hash
from sekisho.minting.minter import TokenMinter
from sekisho.models import Caller, ExchangeRequest
from sekisho.validation import ExchangeParams

from tests.bounds import queue_policy, request_limits
from tests.harness import CRM_AUDIENCE, IDP_A, SEKISHO_ISSUER, Harness
from tests.integration.conftest import LiveStack, dev_idp, live  # noqa: F401 (fixtures)
from tests.security.test_limits import Limited, limited  # noqa: F401 (fixture)

CALLER = Caller(id="spiffe://example.org/agent", spiffe_id="spiffe://example.org/agent",
                authenticated_by="mtls")  # fmt: skip


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "sekisho.audit"]


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        name: getattr(record, name) for name in (*AUDIT_FIELDS, "detail") if hasattr(record, name)
    }


def _assert_no_token_material(record: logging.LogRecord, *tokens: str) -> None:
    dumped = json.dumps(_fields(record), default=str)
    for token in tokens:
        for part in token.split("."):
            if len(part) >= 16:  # a header, payload or signature segment
                assert part not in dumped


def _exchanger(harness: Harness, admission: Admission | None = None) -> TokenExchanger:
    minter = TokenMinter(
        harness.keyring, harness.clock, issuer=SEKISHO_ISSUER, max_lifetime_seconds=300
    )
    return TokenExchanger(
        harness.verifier, harness.policy, minter, harness.clock, AuditLog(),
        admission=admission, limits=request_limits(),
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _capture(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sekisho.audit")


async def test_allow_is_one_record_with_every_field(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    token = harness.idp_a.token(harness.clock.now())
    result = await _exchanger(harness).exchange(harness.request(token, caller=CALLER))
    (record,) = _records(caplog)
    fields = _fields(record)
    assert record.getMessage() == "token_exchanged"
    assert set(AUDIT_FIELDS) <= fields.keys()
    assert fields["outcome"] == "allow"
    assert fields["decision_id"] == result.decision_id != ""
    assert (fields["caller"], fields["caller_authenticated_by"]) == (CALLER.id, "mtls")
    assert fields["iss"] == IDP_A
    assert fields["sub_hash"] == subject_hash(IDP_A, "alice")
    assert fields["audience"] == CRM_AUDIENCE
    assert fields["requested_scopes"] == ["crm.read"]
    assert fields["granted_scopes"] == list(result.minted.scopes)
    assert (fields["kid"], fields["jti"]) == (result.minted.kid, result.minted.jti)
    _assert_no_token_material(record, token, result.minted.token)
    assert "alice" not in json.dumps(fields["sub_hash"])


async def test_the_acting_workload_of_an_actor_token_is_on_the_line(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    # Walkthrough session 13: security-team.md's incident step 3 finds what a compromised agent
    # did by its caller id or act.sub, but an agent known by its actor token (the make-run drill)
    # left no trace of itself on the line: caller "" and only the user's sub_hash.
    now = harness.clock.now()
    token = harness.idp_a.token(now, may_act={"sub": "support-agent", "iss": IDP_A})

    def acted_by(sub: str) -> ExchangeRequest:
        actor = harness.idp_a.token(now, sub=sub)
        return harness.request(token, actor_token=actor, actor_token_type=TOKEN_TYPE_ID_TOKEN)

    await _exchanger(harness).exchange(acted_by("support-agent"))
    with pytest.raises(ServiceError):  # an actor the user's token does not name
        await _exchanger(harness).exchange(acted_by("mallory"))
    allowed, refused = _records(caplog)
    assert (allowed.getMessage(), _fields(allowed)["actor"]) == ("token_exchanged", "support-agent")
    assert (refused.getMessage(), _fields(refused)["actor"]) == ("token_rejected", "mallory")
    assert _fields(allowed)["caller"] == ""


def test_both_outcomes_carry_exactly_the_audit_fields_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The record is built as one dict literal (hot path): it must stay in step with AUDIT_FIELDS.
    AuditLog().rejected(None, None, InvalidClientError("no"), "", caller=CALLER)
    (record,) = _records(caplog)
    extra = [k for k in vars(record) if k in (*AUDIT_FIELDS, "detail", "exp")]
    assert extra == [*AUDIT_FIELDS, "detail"]


async def test_policy_deny_is_one_record_with_the_reason(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    token = harness.idp_a.token(harness.clock.now())
    request = harness.request(token, audience="https://unknown-as.example.com", caller=CALLER)
    with pytest.raises(ServiceError) as raised:
        await _exchanger(harness).exchange(request)
    (record,) = _records(caplog)
    fields = _fields(record)
    assert (record.getMessage(), fields["outcome"]) == ("token_rejected", "deny")
    assert fields["reason"] == raised.value.reason
    assert fields["decision_id"] != ""  # policy decided: its id correlates with decision logs
    assert fields["sub_hash"] == subject_hash(IDP_A, "alice")
    assert (fields["granted_scopes"], fields["kid"], fields["jti"]) == ([], "", "")
    _assert_no_token_material(record, token)


async def test_invalid_token_is_one_record_without_subject(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    token = harness.idp_a.token(harness.clock.now(), aud="someone-else")
    with pytest.raises(ServiceError):
        await _exchanger(harness).exchange(harness.request(token, caller=CALLER))
    (record,) = _records(caplog)
    fields = _fields(record)
    assert (fields["outcome"], fields["reason"]) == ("deny", "invalid_request")
    # The wire says invalid_request; the audit line says why (errors.py `code`).
    assert fields["code"] == "audience_mismatch"
    assert (fields["iss"], fields["sub_hash"]) == ("", "")
    _assert_no_token_material(record, token)


async def test_rate_limited_is_one_record(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    admission = Admission(harness.clock, policy=queue_policy(), default_rate=RateLimit(1.0, 1))
    exchanger = _exchanger(harness, admission)
    token = harness.idp_a.token(harness.clock.now())
    await exchanger.exchange(harness.request(token, caller=CALLER))
    with pytest.raises(ServiceError):
        await exchanger.exchange(harness.request(token, caller=CALLER))
    allowed, refused = _records(caplog)
    assert _fields(allowed)["outcome"] == "allow"
    assert (_fields(refused)["outcome"], _fields(refused)["reason"]) == ("deny", "slow_down")
    assert _fields(refused)["caller"] == CALLER.id


class _Call:
    """An ExchangeCall whose caller or parameters fail as a transport's may."""

    def __init__(self, params: ExchangeParams, caller_error: ServiceError | None = None) -> None:
        self._params = params
        self._caller_error = caller_error

    async def caller(self) -> Caller:
        if self._caller_error is not None:
            raise self._caller_error
        return CALLER

    async def params(self) -> ExchangeParams:
        return self._params


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param("caller refused", ("deny", "invalid_client", ""), id="caller-refused"),
        pytest.param("bad params", ("deny", "invalid_request", CALLER.id), id="bad-params"),
        pytest.param("granted", ("allow", "", CALLER.id), id="granted"),
    ],
)
async def test_handle_audits_every_outcome_once(
    harness: Harness,
    caplog: pytest.LogCaptureFixture,
    case: str,
    expected: tuple[str, str, str],
) -> None:
    """The one entry every transport uses: whatever fails, there is exactly one record."""
    token = harness.idp_a.token(harness.clock.now())
    params = ExchangeParams(subject_token=token, audience=CRM_AUDIENCE, scopes=["crm.read"])
    outcome, reason, caller = expected
    if case == "bad params":
        params = ExchangeParams(subject_token=token, audience="")
    refusal = InvalidClientError("caller not registered") if case == "caller refused" else None
    if outcome == "allow":
        await _exchanger(harness).handle(_Call(params, refusal))
    else:
        with pytest.raises(ServiceError):
            await _exchanger(harness).handle(_Call(params, refusal))
    (record,) = _records(caplog)
    fields = _fields(record)
    assert (fields["outcome"], fields["caller"]) == (outcome, caller)
    if outcome == "deny":
        assert fields["reason"] == reason
    _assert_no_token_material(record, token)


@pytest.mark.integration
async def test_refusal_before_the_pipeline_is_one_record_with_the_request_id(
    live: LiveStack,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    request = pb.ExchangeTokenRequest(subject_token=live.user_token(), audience="")
    with pytest.raises(grpc.aio.AioRpcError):
        await live.stub.ExchangeToken(request, metadata=(("x-request-id", "req-audit-1"),))
    (record,) = _records(caplog)
    fields = _fields(record)
    assert (fields["outcome"], fields["reason"]) == ("deny", "invalid_request")
    assert fields["request_id"] == "req-audit-1"
    assert fields["caller_authenticated_by"] == "none"


@pytest.mark.integration
async def test_grpc_allow_carries_the_request_id(
    live: LiveStack,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    request = pb.ExchangeTokenRequest(
        subject_token=live.user_token(), audience=CRM_AUDIENCE, scope=["crm.read"]
    )
    response = await live.stub.ExchangeToken(request, metadata=(("x-request-id", "req-audit-2"),))
    (record,) = _records(caplog)
    fields = _fields(record)
    assert (fields["outcome"], fields["request_id"]) == ("allow", "req-audit-2")
    assert (fields["jti"], fields["decision_id"]) == (response.jti, response.decision_id)


@pytest.mark.integration
async def test_http_refusal_is_one_record_with_the_request_id(
    limited: Limited,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"http://127.0.0.1:{limited.service.http_port}/oauth2/token"
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "audience": CRM_AUDIENCE,
    }
    headers = {"X-Request-Id": "req-audit-http", "Authorization": "Basic bm9ib2R5Ong="}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=form, headers=headers) as response,
    ):
        assert response.status == 401
        assert response.headers["X-Request-Id"] == "req-audit-http"
    (record,) = _records(caplog)
    fields = _fields(record)
    assert (fields["outcome"], fields["reason"], fields["request_id"]) == (
        "deny",
        "invalid_client",
        "req-audit-http",
    )
