"""Input limits (issue 7 item 2) over real gRPC and HTTP: every limit is configurable, and a
request over it gets INVALID_ARGUMENT / invalid_request (HTTP 400) naming the limit's key,
before any token is parsed. The gRPC message cap is enforced by grpc itself."""

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from argon2 import PasswordHasher
from google.protobuf import struct_pb2
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.config import ClientConfig
from sekisho.constants import GRANT_TYPE_TOKEN_EXCHANGE
from sekisho.devidp import DevIdentityProvider
from sekisho.rpc import admission_gate, structs
from sekisho.service import Service, start_service
from sekisho.signing.filestore import FileKeyStore

from tests.grpc_errors import error_info
from tests.integration.conftest import dev_idp, stack_settings  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

CRM_AS = "https://crm-as.example.com"
CRM_MCP = "https://crm.example.com/mcp"
SECRET = "limits-test-secret"
TOKEN_BYTES = 2048
LIMITS = {
    "max_scopes": 3,
    "max_scope_length": 20,
    "max_resources": 2,
    "max_value_length": 100,
    "max_context_depth": 3,
    "max_context_keys": 5,
    "max_context_bytes": 200,
    "grpc_max_message_bytes": 16384,
}


@dataclass
class Limited:
    service: Service
    idp: DevIdentityProvider

    def user_token(self) -> str:
        return self.idp.token({"sub": "alice", "aud": "agent-app", "groups": ["sales"]}, ttl=600)


@pytest.fixture
async def limited(tmp_path: Path, dev_idp: DevIdentityProvider) -> AsyncIterator[Limited]:  # noqa: F811
    keys = tmp_path / "keys"
    FileKeyStore(keys).init("ES256", 1_800_000_000)
    client = ClientConfig(id="gateway", secret_hash=PasswordHasher().hash(SECRET))
    settings = stack_settings(
        dev_idp.issuer,
        keys,
        token_endpoint={"clients": (client,)},
        limits=LIMITS,
        trust={"max_token_bytes": TOKEN_BYTES},
    )
    service = await start_service(settings)
    yield Limited(service, dev_idp)
    await service.stop(0.5)


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"nested": value}
    return value


OVERSIZED_TOKEN = "eyJhbGciOiJFUzI1NiJ9." + "A" * TOKEN_BYTES + ".sig"
# (case id, request fields, the limit's key the refusal must name)
FIELD_CASES = [
    ("subject-token-bytes", {"subject_token": OVERSIZED_TOKEN}, "trust.max_token_bytes"),
    ("scope-count", {"scope": ["a", "b", "c", "d"]}, "limits.max_scopes"),
    ("scope-length", {"scope": ["s" * 21]}, "limits.max_scope_length"),
    (
        "resource-count",
        {"resource": [CRM_MCP, "https://a.example/1", "https://a.example/2"]},
        "limits.max_resources",
    ),
    ("resource-length", {"resource": ["https://a.example/" + "r" * 90]}, "limits.max_value_length"),
    ("audience-length", {"audience": "https://a.example/" + "a" * 90}, "limits.max_value_length"),
]
CONTEXT_CASES = [
    ("context-depth", _deep(4), "limits.max_context_depth"),
    ("context-keys", {f"k{i}": i for i in range(6)}, "limits.max_context_keys"),
    ("context-bytes", {"tool": "x" * 200}, "limits.max_context_bytes"),
]


async def _grpc(limited: Limited, **fields: Any) -> None:
    request: dict[str, Any] = {"subject_token": limited.user_token(), "audience": CRM_AS}
    context = fields.pop("context", None)
    request.update(fields)
    message = pb.ExchangeTokenRequest(**request)
    if context is not None:
        struct = struct_pb2.Struct()
        struct.update(context)
        message.context.CopyFrom(struct)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{limited.service.grpc.port}") as channel:
        await pb_grpc.TokenExchangeServiceStub(channel).ExchangeToken(message, timeout=30)


async def test_a_request_within_every_limit_is_exchanged(limited: Limited) -> None:
    await _grpc(
        limited,
        scope=["crm.read"],
        resource=[CRM_MCP],
        context={"tool": "search", "session": {"id": "abc"}},
    )


@pytest.mark.parametrize(
    ("fields", "key"),
    [pytest.param(f, k, id=i) for i, f, k in FIELD_CASES]
    + [pytest.param({"context": c}, k, id=i) for i, c, k in CONTEXT_CASES],
)
async def test_grpc_over_a_limit_is_invalid_argument_naming_it(
    limited: Limited, fields: dict[str, Any], key: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _grpc(limited, **fields)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(raised.value).reason == "invalid_request"
    assert key in (raised.value.details() or "")
    assert "AAAA" not in (raised.value.details() or "")  # never echoes the token


async def test_grpc_message_over_the_cap_is_refused_by_grpc(limited: Limited) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _grpc(limited, context={"blob": "x" * 20000})
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_request_longer_than_any_valid_one_is_refused_before_it_is_decoded(
    limited: Limited, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team, session 12: decoding alone cost 3-5 ms for 240 KB of one-letter scopes (under
    the default 256 KiB message cap) before validation refused their count; a message longer
    than the largest request the limits accept (6,439 bytes here) is refused undecoded."""
    decoded: list[object] = []
    decode = admission_gate._decoded

    def counted(request: object, deserialize: Any) -> Any:
        decoded.append(request)
        return decode(request, deserialize)

    monkeypatch.setattr(admission_gate, "_decoded", counted)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _grpc(limited, scope=["a"] * 3000)  # ~12 KB: under grpc's 16 KiB cap
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(raised.value).reason == "invalid_request"
    assert "larger than any the [limits] allow (6439 bytes)" in (raised.value.details() or "")
    assert decoded == []
    await _grpc(limited, scope=["crm.read"])  # and a request within the limits is decoded
    assert len(decoded) == 1


class _ValuesWalked:
    """Counts the Struct values the gRPC transport converts (its Python walk is the cost)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        walk = structs._Walk.value

        def counted(walker: Any, message: Any) -> Any:
            self.count += 1
            return walk(walker, message)

        monkeypatch.setattr(structs._Walk, "value", counted)


async def test_an_oversize_context_is_refused_before_it_is_converted(
    limited: Limited, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 300 booleans: 1.2 KB on the wire, over 3 x the 200 bytes of JSON allowed, under the
    # largest request the limits accept (6,439 bytes, refused undecoded past that). Before,
    # json_format converted every value (60,000 in a 240 KB message took 67 ms of event-loop
    # CPU), then the JSON limit refused it, all ahead of the caller's rate limit.
    walked = _ValuesWalked(monkeypatch)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _grpc(limited, context={"flags": [True] * 300})
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "limits.max_context_bytes" in (raised.value.details() or "")
    assert walked.count == 0


async def test_a_context_within_the_wire_bound_is_walked_no_further_than_the_json_bound_allows(
    limited: Limited, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 140 booleans: 576 wire bytes, within the wire bound (3 x 200), but JSON of 140 values takes
    # at least 280 bytes: refused once the walk passes 100 values (max_context_bytes // 2), not
    # after converting all of them (red team, session 11: a context just under the wire bound
    # cost 10-13 ms of event-loop CPU at the default limits).
    walked = _ValuesWalked(monkeypatch)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _grpc(limited, context={"flags": [True] * 140})
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "limits.max_context_bytes" in (raised.value.details() or "")
    assert walked.count == LIMITS["max_context_bytes"] // 2 + 1


async def test_a_context_within_the_limit_is_never_refused_for_its_wire_size(
    limited: Limited, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The encoding that takes the most wire bytes per JSON byte: a list of numbers (11 per `0.0,`).
    context = {"l": [0.0] * 48}
    struct = struct_pb2.Struct()
    struct.update(context)
    json_bytes = len(json.dumps(context, separators=(",", ":")))
    assert json_bytes <= LIMITS["max_context_bytes"] < struct.ByteSize()
    assert struct.ByteSize() > 2.6 * json_bytes
    walked = _ValuesWalked(monkeypatch)
    await _grpc(limited, scope=["crm.read"], resource=[CRM_MCP], context=context)
    assert walked.count == 49  # the list and its 48 numbers: converted, then exchanged


def _form(limited: Limited, fields: dict[str, Any]) -> list[tuple[str, str]]:
    values: dict[str, Any] = {
        "grant_type": GRANT_TYPE_TOKEN_EXCHANGE,
        "subject_token": limited.user_token(),
        "audience": CRM_AS,
    }
    values.update(fields)
    form = [(k, v) for k, v in values.items() if k not in ("scope", "resource")]
    if "scope" in values:
        form.append(("scope", " ".join(values["scope"])))
    form += [("resource", r) for r in values.get("resource", [])]
    return form


@pytest.mark.parametrize(("fields", "key"), [pytest.param(f, k, id=i) for i, f, k in FIELD_CASES])
async def test_http_over_a_limit_is_invalid_request_naming_it(
    limited: Limited, fields: dict[str, Any], key: str
) -> None:
    basic = base64.b64encode(f"gateway:{SECRET}".encode()).decode()
    url = f"http://127.0.0.1:{limited.service.http_port}/oauth2/token"
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url, data=_form(limited, fields), headers={"Authorization": f"Basic {basic}"}
        ) as response,
    ):
        body = await response.json()
    assert (response.status, body["error"]) == (400, "invalid_request")
    assert key in body["error_description"]


async def test_an_http_body_over_the_cap_is_the_contracts_json_error(limited: Limited) -> None:
    """The form is read before the client is known: over the 64 KiB cap aiohttp answered 413 in
    plain text, which an OAuth client cannot read as RFC 6749 §5.2's error. Now the same 413 with
    the JSON body (invalid_request), and the connection closed."""
    basic = base64.b64encode(f"gateway:{SECRET}".encode()).decode()
    url = f"http://127.0.0.1:{limited.service.http_port}/oauth2/token"
    form = {"grant_type": GRANT_TYPE_TOKEN_EXCHANGE, "subject_token": "A" * (70 * 1024)}
    headers = {"Authorization": f"Basic {basic}", "X-Request-Id": "big-body-1"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=form, headers=headers) as response,
    ):
        body = await response.json()
    assert (response.status, body["error"]) == (413, "invalid_request")
    assert body["error_description"] == "the request body exceeds 65536 bytes"
    assert response.headers["Cache-Control"] == "no-store"
    assert "AAAA" not in json.dumps(body)
    # The request id, as on every other refusal of the endpoint (newcomer run, session 17).
    assert body["request_id"] == response.headers["X-Request-Id"] == "big-body-1"
