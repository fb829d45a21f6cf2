"""Issue 15 item 5: no unhandled exception on any input, at every entry point.

The service (and its dev IdP) run on an event loop in a background thread, so hypothesis can drive
synchronous clients against the real listeners: POST /oauth2/token, gRPC ExchangeToken and
ext_authz Check. Properties: only the contract's errors come back, never server_error/INTERNAL.
Then one test per input class found by the red team, and the catch-all at each entry point
(server_error / INTERNAL without detail, one audit line) with a bug injected.
"""

import asyncio
import base64
import json
import logging
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web
from argon2 import PasswordHasher
from envoy.service.auth.v3 import attribute_context_pb2 as attrs
from envoy.service.auth.v3 import external_auth_pb2 as ext_authz_pb
from envoy.service.auth.v3 import external_auth_pb2_grpc as ext_authz_grpc
from google.protobuf import struct_pb2
from google.rpc import code_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.config import ClientConfig
from sekisho.devidp import DevIdentityProvider, create_app
from sekisho.service import Service, start_service
from sekisho.signing.filestore import FileKeyStore

from tests.integration.conftest import stack_settings

pytestmark = [pytest.mark.security, pytest.mark.timeout(300)]

CRM_AS = "https://crm-as.example.com"
SECRET = "entry-point-secret"
GATEWAY = {"routes": [{"path_prefix": "/crm", "audience": CRM_AS, "scopes": ["crm.read"]}]}
BOUNDED = settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
CONTRACT_HTTP_ERRORS = {
    "invalid_request", "invalid_client", "invalid_target", "invalid_scope", "invalid_grant",
    "insufficient_user_authentication", "temporarily_unavailable", "slow_down",
    "unsupported_grant_type",  # RFC 6749 §5.2, for a grant_type other than token exchange
}  # fmt: skip
CONTRACT_GRPC_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}  # fmt: skip


@dataclass
class Stack:
    loop: asyncio.AbstractEventLoop
    service: Service
    idp: DevIdentityProvider

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.service.http_port}/oauth2/token"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.service.grpc.port}"

    def user_token(self) -> str:
        claims = {"sub": "alice", "aud": "agent-app", "groups": ["sales"], "tenant": "acme"}
        return self.idp.token(claims, ttl=600)


async def _start(root: Path) -> tuple[Service, DevIdentityProvider, web.AppRunner]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    idp = DevIdentityProvider.open(root / "idp", f"http://127.0.0.1:{sock.getsockname()[1]}")
    runner = web.AppRunner(create_app(idp), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    keys = root / "keys"
    FileKeyStore(keys).init("ES256", 1_800_000_000)
    client = ClientConfig(id="gateway", secret_hash=PasswordHasher().hash(SECRET))
    # The property tests send hundreds of client-secret checks from one peer: lift the attempt
    # budget ([client_auth]) so later tests see the refusal under test, not slow_down.
    budget = {"rate_per_second": 10_000, "burst": 10_000}
    budget |= {"rate_per_second_per_peer": 10_000, "burst_per_peer": 10_000}
    # Each of them is a new connection (urllib): lift the new-connection rates ([http]) too.
    connections = {"new_connections_per_second": 10_000, "new_connections_burst": 10_000}
    connections |= {
        "new_connections_per_second_per_peer": 10_000,
        "new_connections_burst_per_peer": 10_000,
    }
    settings_ = stack_settings(
        idp.issuer,
        keys,
        token_endpoint={"clients": (client,)},
        gateway=GATEWAY,
        client_auth=budget,
        http=connections,
    )
    return await start_service(settings_), idp, runner


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    root = tmp_path_factory.mktemp("entry-points")
    service, idp, runner = asyncio.run_coroutine_threadsafe(_start(root), loop).result(60)
    yield Stack(loop, service, idp)
    asyncio.run_coroutine_threadsafe(service.stop(0.2), loop).result(30)
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def _post(stack: Stack, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(stack.token_url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _basic() -> str:
    return "Basic " + base64.b64encode(f"gateway:{SECRET}".encode()).decode()


def _form(fields: list[tuple[str, str]]) -> str:
    return "&".join(f"{urllib.parse.quote_plus(k)}={urllib.parse.quote_plus(v)}" for k, v in fields)


# --- properties -------------------------------------------------------------------------------

FIELD_NAMES = st.sampled_from(
    ["grant_type", "subject_token", "subject_token_type", "requested_token_type", "audience",
     "resource", "scope", "actor_token", "actor_token_type", "client_id", "client_assertion",
     "client_assertion_type", "client_secret", "x"]
)  # fmt: skip
CHARSETS = st.sampled_from(["", "utf-8", "UTF-16", "utf-16le", "latin-1", "x-unknown", "utf-32"])
# Header values as urllib sends them (latin-1), without CR/LF (which it refuses to send) and
# DEL (aiohttp's parser answers that 400 itself: test_unauthenticated_cost.py).
HEADER_VALUES = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=40,
)
CONTENT_TYPES = st.sampled_from(
    ["application/x-www-form-urlencoded", "text/plain", "application/json", "multipart/form-data"]
)


@BOUNDED
@given(
    fields=st.lists(st.tuples(FIELD_NAMES, st.text(max_size=40)), max_size=8),
    content_type=CONTENT_TYPES,
    charset=CHARSETS,
    # Any header bytes (latin-1 on the wire), not only fixed values: `Basic é` was a 500 until
    # red team session 11 found it by hand.
    authorization=st.sampled_from(["basic", "none", "garbage"])
    | HEADER_VALUES.map(lambda text: "Basic " + text)
    | HEADER_VALUES,
    request_id=HEADER_VALUES,
    exchange=st.booleans(),
)
def test_any_form_gets_only_contract_errors(
    stack: Stack,
    *,
    fields: list[tuple[str, str]],
    content_type: str,
    charset: str,
    authorization: str,
    request_id: str,
    exchange: bool,
) -> None:
    if exchange:  # a well-formed start, so random fields reach deeper stages
        fields = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("subject_token", stack.user_token()),
            ("audience", CRM_AS),
            *fields,
        ]
    text = _form(fields)
    try:
        body = text.encode(charset or "utf-8")
    except (LookupError, UnicodeEncodeError):
        body = text.encode()
    headers = {"Content-Type": content_type + (f"; charset={charset}" if charset else "")}
    if authorization == "basic":
        headers["Authorization"] = _basic()
    elif authorization == "garbage":
        headers["Authorization"] = "Basic %%%"
    elif authorization != "none":
        headers["Authorization"] = authorization
    if request_id:
        headers["X-Request-Id"] = request_id
    status, answer = _post(stack, body, headers)
    assert status != 500, answer
    assert status == 200 or answer["error"] in CONTRACT_HTTP_ERRORS


JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)
METADATA_VALUES = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E))


@BOUNDED
@given(
    subject=st.sampled_from(["valid", "garbage"]),
    garbage=st.text(max_size=60),
    audience=st.text(max_size=40) | st.just(CRM_AS),
    resources=st.lists(st.text(max_size=30), max_size=3),
    scopes=st.lists(st.text(max_size=20), max_size=3),
    types=st.tuples(st.text(max_size=20), st.text(max_size=20), st.text(max_size=20)),
    context=st.dictionaries(st.text(max_size=10), JSON, max_size=4),
    lifetime=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    request_id=METADATA_VALUES,
)
def test_any_exchange_message_gets_only_contract_errors(
    stack: Stack,
    *,
    subject: str,
    garbage: str,
    audience: str,
    resources: list[str],
    scopes: list[str],
    types: tuple[str, str, str],
    context: dict[str, Any],
    lifetime: int,
    request_id: str,
) -> None:
    struct = struct_pb2.Struct()
    struct.update(context)
    message = pb.ExchangeTokenRequest(
        subject_token=stack.user_token() if subject == "valid" else garbage,
        subject_token_type=types[0], requested_token_type=types[1], actor_token_type=types[2],
        audience=audience, resource=resources, scope=scopes, context=struct,
        requested_lifetime_seconds=lifetime,
    )  # fmt: skip
    with grpc.insecure_channel(stack.grpc_target) as channel:
        stub = pb_grpc.TokenExchangeServiceStub(channel)
        code = _code_of(stub, message, request_id)
    assert code is None or code in CONTRACT_GRPC_CODES, code


def _code_of(stub: Any, message: Any, request_id: str) -> grpc.StatusCode | None:
    try:
        stub.ExchangeToken(message, timeout=10, metadata=(("x-request-id", request_id),))
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return]
    return None


def _check(headers: dict[str, str], path: str, host: str, method: str, principal: str) -> Any:
    http = attrs.AttributeContext.HttpRequest(method=method, path=path, host=host, headers=headers)
    return ext_authz_pb.CheckRequest(
        attributes=attrs.AttributeContext(
            source=attrs.AttributeContext.Peer(principal=principal),
            request=attrs.AttributeContext.Request(http=http),
        )
    )


@BOUNDED
@given(
    headers=st.dictionaries(st.text(max_size=15), st.text(max_size=40), max_size=5),
    bearer=st.sampled_from(["valid", "garbage", "none"]),
    path=st.text(max_size=30) | st.sampled_from(["/crm", "/crm/mcp", "/crm/../x"]),
    host=st.text(max_size=20),
    method=st.text(max_size=8),
    principal=st.text(max_size=20),
)
def test_any_check_request_gets_an_answer_never_a_crash(
    stack: Stack,
    *,
    headers: dict[str, str],
    bearer: str,
    path: str,
    host: str,
    method: str,
    principal: str,
) -> None:
    if bearer != "none":
        token = stack.user_token() if bearer == "valid" else "x.y.z"
        headers = {**headers, "authorization": f"Bearer {token}", "x-mcp-tool": path}
    with grpc.insecure_channel(stack.grpc_target) as channel:
        reply = ext_authz_grpc.AuthorizationStub(channel).Check(
            _check(headers, path, host, method, principal), timeout=10
        )
    assert reply.status.code in (code_pb2.OK, code_pb2.PERMISSION_DENIED)
    if reply.status.code != code_pb2.OK:
        assert reply.denied_response.status.code != 500


# --- the red team's input classes ---------------------------------------------------------------


@pytest.mark.parametrize("charset", ["utf-16", "UTF-16LE", "x-made-up", "utf-32"])
def test_form_in_an_unknown_or_utf16_charset_is_invalid_request_and_audited(
    stack: Stack, charset: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sekisho.audit")
    text = _form([("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange")])
    try:
        body = text.encode(charset)
    except LookupError:
        body = text.encode()
    headers = {
        "Content-Type": f"application/x-www-form-urlencoded; charset={charset}",
        "Authorization": _basic(),
    }
    status, answer = _post(stack, body, headers)
    # Refused for its charset, not for what aiohttp made of it: a UTF-16 or UTF-32 form parsed
    # without an error, into a grant_type of CJK and U+FFFD characters (session 17).
    assert (status, answer["error"]) == (400, "invalid_request")
    assert answer["error_description"] == "the form must be UTF-8 encoded"
    assert any(r.getMessage() == "token_rejected" for r in caplog.records)


@pytest.mark.parametrize("charset", ["", "utf-8", "us-ascii"])
def test_form_bytes_that_are_not_utf8_are_invalid_request(stack: Stack, charset: str) -> None:
    """Past the charset check, post() decodes in a charset that names a codec (so never a
    LookupError): what it still refuses is bytes that are not UTF-8 (UnicodeDecodeError)."""
    content_type = "application/x-www-form-urlencoded" + (f"; charset={charset}" if charset else "")
    headers = {"Content-Type": content_type, "Authorization": _basic()}
    status, answer = _post(stack, b"grant_type=\xff\xfe", headers)
    assert (status, answer["error"]) == (400, "invalid_request")
    assert answer["error_description"] == "the form must be UTF-8 encoded"


def test_a_form_of_more_fields_than_aiohttp_parses_is_refused_in_json_and_audited(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Red team session 18: aiohttp parses at most 1,000 form fields and refuses more by
    raising its own 413, which the token endpoint passed through: plain text, not the RFC 6749
    §5.2 JSON, without the request id, and no audit line. 1,001 empty fields are 1,001 bytes,
    well within the body bound."""
    caplog.set_level(logging.INFO, logger="sekisho.audit")
    body = b"&" * 1000 + b"grant_type=urn:ietf:params:oauth:grant-type:token-exchange"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": _basic(),
        "X-Request-Id": "too-many-fields",
    }
    status, answer = _post(stack, body, headers)
    assert (status, answer["error"]) == (413, "invalid_request"), answer
    assert answer["request_id"] == "too-many-fields"
    assert any(r.getMessage() == "token_rejected" for r in caplog.records)


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param("\u00e9", id="latin-1-byte"),  # 0xE9 on the wire: not UTF-8
        pytest.param("\u00c3\u00a9", id="utf-8-e-acute"),  # the UTF-8 bytes of é
        pytest.param("Z2F0ZXdheTp4\u00c3\u00a9", id="base64-then-non-ascii"),
    ],
)
def test_basic_credentials_that_are_not_ascii_are_invalid_client(
    stack: Stack, credentials: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Red team session 11: base64.b64decode refuses a non-ASCII str with a plain ValueError
    # (not binascii.Error), which escaped as a 500 server_error: unauthenticated, one ERROR
    # traceback per request.
    caplog.set_level(logging.INFO, logger="sekisho.audit")
    text = _form([("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange")])
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": "Basic " + credentials,  # sent as latin-1 bytes by urllib
    }
    status, answer = _post(stack, text.encode(), headers)
    assert (status, answer["error"]) == (401, "invalid_client")
    assert any(r.getMessage() == "token_rejected" for r in caplog.records)


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_number_in_grpc_context_is_invalid_argument(stack: Stack, number: float) -> None:
    struct = struct_pb2.Struct()
    struct.update({"score": number})
    message = pb.ExchangeTokenRequest(
        subject_token=stack.user_token(), audience=CRM_AS, context=struct
    )
    with grpc.insecure_channel(stack.grpc_target) as channel, pytest.raises(grpc.RpcError) as err:
        pb_grpc.TokenExchangeServiceStub(channel).ExchangeToken(message, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# --- the catch-all at each entry point ------------------------------------------------------------


@pytest.fixture
def bug(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request building raises a RuntimeError: a bug the entry points must contain."""

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr("sekisho.exchange.build_request", broken)


def _audited_server_error(caplog: pytest.LogCaptureFixture) -> bool:
    return any(
        r.getMessage() == "token_rejected" and getattr(r, "reason", "") == "server_error"
        for r in caplog.records
    )


@pytest.mark.usefixtures("bug")
def test_http_bug_is_server_error_without_detail_and_audited(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sekisho.audit")
    form = _form(
        [("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
         ("subject_token", stack.user_token()), ("audience", CRM_AS)]
    )  # fmt: skip
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": _basic()}
    status, answer = _post(stack, form.encode(), headers)
    assert (status, answer["error"]) == (500, "server_error")
    assert "secret" not in json.dumps(answer)
    assert _audited_server_error(caplog)


@pytest.mark.usefixtures("bug")
def test_grpc_bug_is_internal_without_detail_and_audited(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sekisho.audit")
    message = pb.ExchangeTokenRequest(subject_token=stack.user_token(), audience=CRM_AS)
    with grpc.insecure_channel(stack.grpc_target) as channel, pytest.raises(grpc.RpcError) as err:
        pb_grpc.TokenExchangeServiceStub(channel).ExchangeToken(message, timeout=10)
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (err.value.details() or "")
    assert _audited_server_error(caplog)


@pytest.mark.usefixtures("bug")
def test_ext_authz_bug_denies_with_500_and_is_audited(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sekisho.audit")
    headers = {"authorization": f"Bearer {stack.user_token()}"}
    with grpc.insecure_channel(stack.grpc_target) as channel:
        reply = ext_authz_grpc.AuthorizationStub(channel).Check(
            _check(headers, "/crm/mcp", "gw", "POST", ""), timeout=10
        )
    assert reply.status.code == code_pb2.PERMISSION_DENIED
    assert reply.denied_response.status.code == 500
    assert "secret" not in reply.denied_response.body
    assert _audited_server_error(caplog)
