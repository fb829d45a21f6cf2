"""POST /oauth2/token against a real Sekisho and dev IdP: RFC 8693 over HTTP, client
authentication (client_secret_basic, private_key_jwt), RFC 6749 §5.2 errors."""

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric import ec
from multidict import CIMultiDict
from sekisho.config import ClientConfig
from sekisho.constants import GRANT_TYPE_TOKEN_EXCHANGE, TOKEN_TYPE_ID_JAG
from sekisho.devidp import DevIdentityProvider
from sekisho.service import start_service
from sekisho.signing.filestore import FileKeyStore
from sekisho.verify import InMemoryReplayCache, JwksClient, SekishoTokenVerifier

from tests.integration.conftest import SEKISHO_ISSUER, LiveStack, stack_settings

pytestmark = pytest.mark.integration

CRM_AS = "https://crm-as.example.com"
CRM_MCP = "https://crm.example.com/mcp"
SECRET = "gateway-secret-0123456789"
TOKEN_ENDPOINT = SEKISHO_ISSUER + "/oauth2/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class Endpoint:
    """A running Sekisho with two registered clients, and how to call its token endpoint."""

    def __init__(self, base: str, idp: DevIdentityProvider, key: ec.EllipticCurvePrivateKey):
        self.base = base
        self.idp = idp
        self.key = key

    def user_token(self, **claims: Any) -> str:
        body = {"sub": "alice", "aud": "agent-app", "groups": ["sales"], "tenant": "acme"}
        body.update(claims)
        return self.idp.token(body, ttl=600)

    def form(self, **fields: str) -> dict[str, str]:
        return {
            "grant_type": GRANT_TYPE_TOKEN_EXCHANGE,
            "subject_token": self.user_token(),
            "audience": CRM_AS,
            "resource": CRM_MCP,
            "scope": "crm.read",
            **fields,
        }

    def assertion(self, key: Any = None, kid: str = "agent-key-1", **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": "agent",
            "sub": "agent",
            "aud": TOKEN_ENDPOINT,
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        }
        body.update(claims)
        return jwt.encode(body, key or self.key, algorithm="ES256", headers={"kid": kid})

    async def post(
        self,
        data: Any,
        *,
        basic: tuple[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any], Any]:
        sent = dict(headers or {})
        if basic is not None:
            raw = f"{basic[0]}:{basic[1]}".encode()
            sent["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.base + "/oauth2/token", data=data, headers=sent) as response,
        ):
            return response.status, json.loads(await response.read()), response.headers


def _public_jwks(key: ec.EllipticCurvePrivateKey, kid: str) -> str:
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return json.dumps({"keys": [{**jwk, "kid": kid, "alg": "ES256", "use": "sig"}]})


@pytest.fixture
async def endpoint(tmp_path: Path, dev_idp: DevIdentityProvider) -> AsyncIterator[Endpoint]:
    keys_dir = tmp_path / "keys"
    FileKeyStore(keys_dir).init("ES256", 1_800_000_000)
    agent_key = ec.generate_private_key(ec.SECP256R1())
    clients = (
        ClientConfig(id="gateway", secret_hash=PasswordHasher().hash(SECRET)),
        ClientConfig(id="agent", jwks=_public_jwks(agent_key, "agent-key-1")),
    )
    settings = stack_settings(dev_idp.issuer, keys_dir, token_endpoint={"clients": clients})
    service = await start_service(settings)
    yield Endpoint(f"http://127.0.0.1:{service.http_port}", dev_idp, agent_key)
    await service.stop(0.5)


def _assert_no_store(headers: Any) -> None:
    assert headers["Cache-Control"] == "no-store"
    assert headers["Pragma"] == "no-cache"


async def test_client_secret_basic_exchange_returns_a_verifiable_id_jag(endpoint: Endpoint) -> None:
    status, body, headers = await endpoint.post(endpoint.form(), basic=("gateway", SECRET))
    assert status == 200, body
    _assert_no_store(headers)
    assert body["issued_token_type"] == TOKEN_TYPE_ID_JAG
    assert body["token_type"] == "N_A"
    assert body["scope"] == "crm.read"
    assert 0 < body["expires_in"] <= 300
    verifier = SekishoTokenVerifier(
        issuer=SEKISHO_ISSUER,
        audience=CRM_AS,
        keys=JwksClient(endpoint.base + "/.well-known/jwks.json", clock=time.time),
        resources={CRM_MCP},
        replay_cache=InMemoryReplayCache(),
    )
    token = await verifier.verify(body["access_token"], client_id="agent-app")  # the ID token's aud
    assert token.subject == "alice"
    assert token.claims["act"] == {"sub": "gateway"}  # the authenticated client is the caller


async def test_private_key_jwt_exchange_names_the_client(endpoint: Endpoint) -> None:
    form = endpoint.form(
        client_assertion_type=ASSERTION_TYPE, client_assertion=endpoint.assertion()
    )
    status, body, _ = await endpoint.post(form)
    assert status == 200, body
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["act"] == {
        "sub": "agent"
    }


async def test_issuer_is_an_accepted_assertion_audience(endpoint: Endpoint) -> None:
    assertion = endpoint.assertion(aud=SEKISHO_ISSUER)
    status, body, _ = await endpoint.post(
        endpoint.form(client_assertion_type=ASSERTION_TYPE, client_assertion=assertion)
    )
    assert status == 200, body


@pytest.mark.parametrize(
    ("basic", "extra"),
    [
        pytest.param(None, {}, id="no-credentials"),
        pytest.param(("gateway", "wrong-secret-000000000"), {}, id="wrong-secret"),
        pytest.param(("nobody", SECRET), {}, id="unknown-client"),
        pytest.param(("agent", SECRET), {}, id="client-without-secret"),
        pytest.param(None, {"client_id": "gateway", "client_secret": SECRET}, id="secret-in-body"),
        pytest.param(("gateway", SECRET), {"client_id": "agent"}, id="client-id-disagrees"),
    ],
)
async def test_bad_client_credentials_are_invalid_client(
    endpoint: Endpoint, basic: tuple[str, str] | None, extra: dict[str, str]
) -> None:
    status, body, headers = await endpoint.post(endpoint.form(**extra), basic=basic)
    assert status == 401
    assert body["error"] == "invalid_client"
    assert headers["WWW-Authenticate"].startswith("Basic ")
    _assert_no_store(headers)
    assert SECRET not in json.dumps(body)


async def test_malformed_basic_header_is_invalid_client(endpoint: Endpoint) -> None:
    status, body, _ = await endpoint.post(endpoint.form(), headers={"Authorization": "Basic !!!"})
    assert (status, body["error"]) == (401, "invalid_client")


def _hs256_signed_with_public_jwk(endpoint: Endpoint, now: int) -> str:
    """Algorithm confusion: MAC the assertion with the public key the server holds."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = {"alg": "HS256", "typ": "JWT", "kid": "agent-key-1"}
    claims = {"iss": "agent", "sub": "agent", "aud": TOKEN_ENDPOINT, "exp": now + 60, "jti": "x"}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    secret = _public_jwks(endpoint.key, "agent-key-1").encode()
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def _assertion_cases(endpoint: Endpoint) -> dict[str, str]:
    now = int(time.time())
    other_key = ec.generate_private_key(ec.SECP256R1())
    return {
        "wrong-audience": endpoint.assertion(aud="https://elsewhere.example"),
        "expired": endpoint.assertion(iat=now - 600, exp=now - 300),
        "lives-too-long": endpoint.assertion(exp=now + 3600),
        "foreign-key": endpoint.assertion(key=other_key),
        "unknown-kid": endpoint.assertion(kid="nope"),
        "iss-not-client": endpoint.assertion(iss="gateway"),
        "no-jti": endpoint.assertion(jti=None),
        "hs256-with-public-key": _hs256_signed_with_public_jwk(endpoint, now),
        "alg-none": jwt.encode(
            {"iss": "agent", "sub": "agent", "aud": TOKEN_ENDPOINT, "exp": now + 60, "jti": "y"},
            None,
            algorithm="none",
            headers={"kid": "agent-key-1"},
        ),
        "garbage": "not-a-jwt",
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong-audience",
        "expired",
        "lives-too-long",
        "foreign-key",
        "unknown-kid",
        "iss-not-client",
        "no-jti",
        "hs256-with-public-key",
        "alg-none",
        "garbage",
    ],
)
async def test_bad_client_assertions_are_invalid_client(endpoint: Endpoint, case: str) -> None:
    assertion = _assertion_cases(endpoint)[case]
    form = endpoint.form(client_assertion_type=ASSERTION_TYPE, client_assertion=assertion)
    status, body, _ = await endpoint.post(form)
    assert (status, body["error"]) == (401, "invalid_client")


async def test_replayed_client_assertion_is_refused(endpoint: Endpoint) -> None:
    assertion = endpoint.assertion()
    form = endpoint.form(client_assertion_type=ASSERTION_TYPE, client_assertion=assertion)
    first, _, _ = await endpoint.post(form)
    assert first == 200
    again = endpoint.form(client_assertion_type=ASSERTION_TYPE, client_assertion=assertion)
    status, body, _ = await endpoint.post(again)
    assert (status, body["error"]) == (401, "invalid_client")


async def test_two_authentication_methods_at_once_are_refused(endpoint: Endpoint) -> None:
    form = endpoint.form(
        client_assertion_type=ASSERTION_TYPE, client_assertion=endpoint.assertion()
    )
    status, body, _ = await endpoint.post(form, basic=("gateway", SECRET))
    assert (status, body["error"]) == (400, "invalid_request")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        pytest.param(
            {"grant_type": "client_credentials"}, "unsupported_grant_type", id="wrong-grant"
        ),
        pytest.param({"grant_type": ""}, "invalid_request", id="empty-grant"),
        pytest.param({"subject_token": ""}, "invalid_request", id="no-subject-token"),
        pytest.param({"subject_token": "garbage"}, "invalid_request", id="bad-subject-token"),
        pytest.param({"audience": ""}, "invalid_request", id="no-audience"),
        pytest.param({"subject_token_type": "urn:x"}, "invalid_request", id="bad-token-type"),
        pytest.param({"resource": "not a uri"}, "invalid_request", id="relative-resource"),
        pytest.param(
            {"resource": "https://docs.example.com/mcp"}, "invalid_target", id="foreign-resource"
        ),
        pytest.param({"audience": "https://unknown-as.example"}, "invalid_grant", id="unknown-as"),
    ],
)
async def test_bad_requests_get_rfc6749_errors(
    endpoint: Endpoint, change: dict[str, str], error: str
) -> None:
    status, body, headers = await endpoint.post(endpoint.form(**change), basic=("gateway", SECRET))
    assert (status, body["error"]) == (400, error), body
    _assert_no_store(headers)


async def test_another_grant_is_unsupported_grant_type_without_echoing_it(
    endpoint: Endpoint,
) -> None:
    """RFC 6749 §5.2: a grant the server does not support is `unsupported_grant_type`; the
    contract's reason rides in sekisho_reason, and the value sent is never repeated back."""
    pasted = "eyJhbGciOi-not-a-grant-but-a-pasted-token"
    status, body, headers = await endpoint.post(
        endpoint.form(grant_type=pasted), basic=("gateway", SECRET)
    )
    assert (status, body["error"], body["sekisho_reason"]) == (
        400,
        "unsupported_grant_type",
        "invalid_request",
    )
    assert pasted not in json.dumps(body)
    assert "request_id" in body
    _assert_no_store(headers)


async def test_repeated_parameter_is_invalid_request(endpoint: Endpoint) -> None:
    form = [*endpoint.form().items(), ("audience", CRM_AS)]
    status, body, _ = await endpoint.post(form, basic=("gateway", SECRET))
    assert (status, body["error"]) == (400, "invalid_request")


def _basic_header(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.mark.parametrize(
    "case",
    ["two-basic-credentials", "bearer-then-basic-beside-an-assertion"],
)
async def test_a_repeated_authorization_header_is_invalid_request(
    endpoint: Endpoint, case: str
) -> None:
    # Red team session 20: only the first Authorization header was read. Two Basic credentials
    # authenticated as the first, whatever a proxy reading the last took the client to be; and a
    # Basic credential after another scheme went unseen beside a client assertion, two client
    # authentication methods in one request (RFC 6749 §2.3) served as the assertion's client.
    if case == "two-basic-credentials":
        form = endpoint.form()
        headers = [
            ("Authorization", _basic_header("gateway", SECRET)),
            ("Authorization", _basic_header("agent", "not-its-secret")),
        ]
    else:
        form = endpoint.form(
            client_assertion_type=ASSERTION_TYPE, client_assertion=endpoint.assertion()
        )
        headers = [
            ("Authorization", "Bearer not-a-client-credential"),
            ("Authorization", _basic_header("gateway", SECRET)),
        ]
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            endpoint.base + "/oauth2/token", data=form, headers=CIMultiDict(headers)
        ) as response,
    ):
        status, body = response.status, json.loads(await response.read())
    answered = sorted(body)  # its members' names: a failure's message never shows a token
    assert (status, answered) == (400, ["error", "error_description", "request_id"])
    assert body["error"] == "invalid_request"


async def test_json_body_is_invalid_request(endpoint: Endpoint) -> None:
    status, body, _ = await endpoint.post(
        json.dumps(endpoint.form()),
        basic=("gateway", SECRET),
        headers={"Content-Type": "application/json"},
    )
    assert (status, body["error"]) == (400, "invalid_request")


async def test_policy_denial_is_invalid_grant_with_the_precise_reason(endpoint: Endpoint) -> None:
    form = endpoint.form(audience="https://unknown-as.example")
    status, body, _ = await endpoint.post(form, basic=("gateway", SECRET))
    assert (status, body["error"], body["sekisho_reason"]) == (
        400,
        "invalid_grant",
        "access_denied",
    )


async def test_metadata_advertises_the_token_endpoint(endpoint: Endpoint) -> None:
    url = endpoint.base + "/.well-known/oauth-authorization-server"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        metadata = await response.json()
    assert metadata["token_endpoint"] == TOKEN_ENDPOINT
    assert metadata["grant_types_supported"] == [GRANT_TYPE_TOKEN_EXCHANGE]
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "private_key_jwt",
    }


async def test_without_clients_there_is_no_endpoint_and_no_advertisement(live: LiveStack) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(live.http_base + "/oauth2/token", data={"a": "b"}) as response:
            assert response.status in (404, 405)
        url = live.http_base + "/.well-known/oauth-authorization-server"
        async with session.get(url) as response:
            metadata = await response.json()
    assert "token_endpoint" not in metadata
    assert "grant_types_supported" not in metadata


async def test_other_methods_on_the_token_endpoint_get_405_allow_post_in_json(
    endpoint: Endpoint,
) -> None:
    """RFC 6749 §3.2: the token endpoint takes POST; any other method is told so in the same
    RFC 6749 §5.2 JSON as the endpoint's other refusals (aiohttp's own 405 is plain text), with
    the request id in the body and the header as they carry it: the caller's, else a new one."""
    async with aiohttp.ClientSession() as session:
        for method in ("GET", "PUT", "DELETE"):
            headers = {"X-Request-Id": f"not-post-{method}"}
            url = endpoint.base + "/oauth2/token"
            async with session.request(method, url, headers=headers) as response:
                body = json.loads(await response.read())
                assert (response.status, response.headers["Allow"]) == (405, "POST"), method
                assert body["error"] == "invalid_request", method
                _assert_no_store(response.headers)
                given = headers["X-Request-Id"]
                assert body["request_id"] == response.headers["X-Request-Id"] == given
        async with session.get(endpoint.base + "/oauth2/token") as response:
            body = json.loads(await response.read())
        assert body["request_id"] == response.headers["X-Request-Id"] != ""


async def test_no_answer_names_the_http_library_or_python_version(endpoint: Endpoint) -> None:
    """aiohttp's default `Server: Python/3.x aiohttp/3.x` told any caller which versions (and
    known bugs) to try; every answer of the listener, aiohttp's own 404 included, says only
    `sekisho`."""
    async with aiohttp.ClientSession() as session:
        for method, path in [
            ("GET", "/healthz"),
            ("GET", "/.well-known/jwks.json"),
            ("GET", "/no-such-path"),
            ("GET", "/oauth2/token"),
            ("POST", "/oauth2/token"),
        ]:
            async with session.request(method, endpoint.base + path) as response:
                assert response.headers.getall("Server") == ["sekisho"], (method, path)


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n", id="bad-method"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n", id="bad-header"),
        pytest.param(b"GET / HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n", id="long-header"),
    ],
)
async def test_a_request_aiohttp_cannot_parse_is_answered_as_sekisho_too(
    endpoint: Endpoint, request_bytes: bytes
) -> None:
    """Red team session 18: aiohttp answers a request it cannot parse itself (handle_error),
    outside the application, so the answer named `Server: Python/3.x aiohttp/3.x` to anyone
    sending one malformed line, the first thing a scanner tries."""
    port = int(endpoint.base.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request_bytes)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    finally:
        writer.close()
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith(("HTTP/1.0 4", "HTTP/1.1 4")), lines[0]
    assert [line for line in lines if line.lower().startswith("server:")] == ["Server: sekisho"]


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "us-ascii"])
async def test_a_form_declared_utf8_or_ascii_is_served(endpoint: Endpoint, charset: str) -> None:
    """The charset check refuses only what does not read as UTF-8."""
    body = "&".join(f"{k}={v}" for k, v in endpoint.form().items())
    status, answer, _ = await endpoint.post(
        body,
        basic=("gateway", SECRET),
        headers={"Content-Type": f"application/x-www-form-urlencoded; charset={charset}"},
    )
    assert status == 200, answer
