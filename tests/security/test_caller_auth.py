"""Caller authentication (issue 7 item 1): real TLS handshakes on 127.0.0.1 against both
listeners with a throwaway PKI. Each test fails if its defence is removed: no client
certificate, a certificate from another CA, an unregistered or ambiguous identity are all
refused; a registered caller reaches policy as input.caller with authenticated_by "mtls".
"""

import asyncio
import inspect
import json
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import jwt
import pytest
from envoy.service.auth.v3 import external_auth_pb2 as ext_authz_pb
from envoy.service.auth.v3 import external_auth_pb2_grpc as ext_authz_grpc
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.callers import CallerRegistry, RegisteredCaller
from sekisho.cli import main as cli_main
from sekisho.client import ChannelOptions
from sekisho.client.channel import open_channel
from sekisho.components import build_token_endpoint
from sekisho.config import CallerConfig, Settings
from sekisho.constants import GRANT_TYPE_TOKEN_EXCHANGE
from sekisho.devidp import DevIdentityProvider
from sekisho.errors import ConfigError
from sekisho.gateway.authorizer import Allowed
from sekisho.http.token import TokenEndpoint
from sekisho.rpc.ext_authz import ExtAuthzServicer
from sekisho.rpc.servicer import TokenExchangeServicer
from sekisho.service import Service, start_service
from sekisho.signing.filestore import FileKeyStore
from sekisho.tls import load_tls_material

from tests.grpc_errors import error_info
from tests.integration.conftest import dev_idp, stack_settings  # noqa: F401 (fixture)
from tests.pki import AGENT_SPIFFE_ID, GATEWAY_CN, Pem, Pki, build_pki, leaf

pytestmark = pytest.mark.integration

CRM_AS = "https://crm-as.example.com"
AGENT_CLIENT_AT_CRM = "agent-runtime-crm"
# Echoes input.caller into the minted token, so a test can see exactly what policy saw.
ECHO_POLICY = """package sekisho.exchange

import rego.v1

default decision := {"allow": false}

decision := {"allow": true, "scopes": input.request.scopes, "claims": {"seen_caller": input.caller}} if {
	input.request.audience == "https://crm-as.example.com"
}
"""


@dataclass
class MtlsStack:
    service: Service
    idp: DevIdentityProvider
    pki: Pki

    def user_token(self) -> str:
        claims = {"sub": "alice", "aud": "agent-app", "groups": ["sales"], "client_id": "app"}
        return self.idp.token(claims, ttl=600)

    def channel(self, client: Pem | None, ca: Pem | None = None) -> grpc.aio.Channel:
        options = ChannelOptions(
            root_certificates=(ca or self.pki.ca.pem).cert,
            private_key=client.key if client else None,
            certificate_chain=client.cert if client else None,
            server_name_override="localhost",
        )
        return open_channel(f"127.0.0.1:{self.service.grpc.port}", options)

    def https(self, client: Pem | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.pki.ca.pem.cert.decode())
        if client is not None:
            context.load_cert_chain(client.cert_file, client.key_file)
        return context

    @property
    def http_base(self) -> str:
        return f"https://localhost:{self.service.http_port}"


def mtls_settings(idp: DevIdentityProvider, tmp_path: Path, pki: Pki) -> Settings:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "echo.rego").write_text(ECHO_POLICY)
    keys = tmp_path / "keys"
    FileKeyStore(keys).init("ES256", 1_800_000_000)
    settings = stack_settings(
        idp.issuer,
        keys,
        policies,
        server={
            "tls_cert_file": str(pki.server.cert_file),
            "tls_key_file": str(pki.server.key_file),
            "client_ca_file": str(pki.ca.pem.cert_file),
            "require_client_auth": True,
        },
    )
    callers = (
        CallerConfig(id=AGENT_SPIFFE_ID, client_ids={CRM_AS: AGENT_CLIENT_AT_CRM}),
        CallerConfig(id=GATEWAY_CN),
    )
    return settings.model_copy(update={"callers": callers})


@pytest.fixture
async def stack(tmp_path: Path, dev_idp: DevIdentityProvider) -> AsyncIterator[MtlsStack]:  # noqa: F811
    pki = build_pki(tmp_path / "pki")
    service = await start_service(mtls_settings(dev_idp, tmp_path, pki))
    yield MtlsStack(service, dev_idp, pki)
    await service.stop(0.5)


async def _exchange(stack: MtlsStack, client: Pem | None, ca: Pem | None = None) -> dict:
    async with stack.channel(client, ca) as channel:
        stub = pb_grpc.TokenExchangeServiceStub(channel)
        request = pb.ExchangeTokenRequest(
            subject_token=stack.user_token(), audience=CRM_AS, scope=["crm.read"]
        )
        response = await stub.ExchangeToken(request, timeout=30)
    return jwt.decode(response.access_token, options={"verify_signature": False})


def _reason(error: grpc.aio.AioRpcError) -> str:
    return error_info(error).reason


# --- gRPC --------------------------------------------------------------------------------------


async def test_registered_spiffe_caller_reaches_policy_as_mtls(stack: MtlsStack) -> None:
    claims = await _exchange(stack, stack.pki.agent)
    assert claims["seen_caller"] == {
        "id": AGENT_SPIFFE_ID,
        "spiffe_id": AGENT_SPIFFE_ID,
        "authenticated_by": "mtls",
    }
    assert claims["act"] == {"sub": AGENT_SPIFFE_ID}
    # docs/architecture.md §4: no client id in the decision → the registered caller's at this
    # audience.
    assert claims["client_id"] == AGENT_CLIENT_AT_CRM


async def test_the_exchange_cli_speaks_mtls(
    stack: MtlsStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # `sekisho exchange --cacert --cert --key` smoke-tests an mTLS deployment as a caller.
    target = f"127.0.0.1:{stack.service.grpc.port}"
    argv = ["exchange", "--target", target, "--subject-token", stack.user_token()]
    argv += [
        "--audience",
        CRM_AS,
        "--scope",
        "crm.read",
        "--cacert",
        str(stack.pki.ca.pem.cert_file),
    ]
    argv += ["--tls-server-name", "localhost"]
    client = ["--cert", str(stack.pki.agent.cert_file), "--key", str(stack.pki.agent.key_file)]
    assert await asyncio.to_thread(cli_main, argv + client) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified_with_jwks"] is True
    assert report["claims"]["seen_caller"]["id"] == AGENT_SPIFFE_ID
    assert await asyncio.to_thread(cli_main, argv) == 1  # no client certificate: no handshake
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "UNAVAILABLE"


async def test_registered_cn_caller_is_known_by_its_common_name(stack: MtlsStack) -> None:
    claims = await _exchange(stack, stack.pki.gateway)
    assert claims["seen_caller"] == {"id": GATEWAY_CN, "spiffe_id": "", "authenticated_by": "mtls"}
    assert claims["client_id"] == "app"  # no registered id at this audience → subject's


async def test_concurrent_callers_keep_their_own_certificate_through_the_acceptors(
    stack: MtlsStack,
) -> None:
    """[grpc] acceptors take most concurrent calls from grpc core themselves (rpc/acceptors.py):
    each call still reads its own connection's auth context, never another caller's."""
    acceptors = stack.service.grpc.acceptors
    assert acceptors is not None
    before = acceptors.accepted
    expected = {stack.pki.agent: AGENT_SPIFFE_ID, stack.pki.gateway: GATEWAY_CN}
    async with stack.channel(stack.pki.agent) as agent, stack.channel(stack.pki.gateway) as gw:
        stubs = {stack.pki.agent: agent, stack.pki.gateway: gw}

        async def seen(client: Pem) -> tuple[Pem, str]:
            request = pb.ExchangeTokenRequest(
                subject_token=stack.user_token(), audience=CRM_AS, scope=["crm.read"]
            )
            response = await pb_grpc.TokenExchangeServiceStub(stubs[client]).ExchangeToken(
                request, timeout=10
            )
            claims = jwt.decode(response.access_token, options={"verify_signature": False})
            return client, claims["seen_caller"]["id"]

        clients = [stack.pki.agent, stack.pki.gateway] * 24
        outcomes = await asyncio.gather(*(seen(client) for client in clients))
    assert all(caller == expected[client] for client, caller in outcomes)
    assert acceptors.accepted - before >= len(clients) // 2


async def test_no_client_certificate_fails_the_handshake(stack: MtlsStack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _exchange(stack, None)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_certificate_from_another_ca_fails_the_handshake(stack: MtlsStack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _exchange(stack, stack.pki.foreign)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("who", ["stranger", "two_spiffe_ids"])
async def test_unregistered_or_ambiguous_identity_is_invalid_client(
    stack: MtlsStack, who: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _exchange(stack, getattr(stack.pki, who))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _reason(raised.value) == "invalid_client"


# --- HTTP --------------------------------------------------------------------------------------


async def _post_token(
    stack: MtlsStack, client: Pem | None, form_extra: dict[str, str] | None = None, **headers: str
) -> tuple[int, dict]:
    form = {
        "grant_type": GRANT_TYPE_TOKEN_EXCHANGE,
        "subject_token": stack.user_token(),
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
        "audience": CRM_AS,
        "scope": "crm.read",
        **(form_extra or {}),
    }
    url = f"{stack.http_base}/oauth2/token"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=form, ssl=stack.https(client), headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_http_registered_caller_gets_a_token_with_its_identity(stack: MtlsStack) -> None:
    status, body = await _post_token(stack, stack.pki.agent)
    assert status == 200, body
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["seen_caller"]["authenticated_by"] == "mtls"
    assert claims["client_id"] == AGENT_CLIENT_AT_CRM


@pytest.mark.parametrize(
    ("client_id", "expected"),
    [(AGENT_SPIFFE_ID, 200), ("spiffe://mesh/other-agent", 401), ("", 401)],
    ids=["the-certificates", "another-clients", "empty"],
)
async def test_http_client_id_beside_a_certificate_must_name_its_client(
    stack: MtlsStack, client_id: str, expected: int
) -> None:
    # Red team session 20: with mTLS a client_id naming another client was ignored, so the
    # form said one client and the certificate another (RFC 8705 §2: it names the client the
    # certificate authenticates).
    status, body = await _post_token(stack, stack.pki.agent, {"client_id": client_id})
    assert status == expected, body
    if expected == 401:
        assert body["error"] == "invalid_client"


async def test_http_without_certificate_is_invalid_client(stack: MtlsStack) -> None:
    status, body = await _post_token(stack, None)
    assert (status, body["error"]) == (401, "invalid_client")


async def test_a_common_name_spelling_a_spiffe_id_is_not_that_caller(
    stack: MtlsStack, tmp_path: Path
) -> None:
    """A SPIFFE ID is a certificate's URI SAN only (X.509-SVID §2); the CN is the fallback
    identity of certificates without one. A certificate from the trusted CA whose CN spells a
    registered caller's SPIFFE ID (and that has no URI SAN) was that caller: a CA that lets a
    requester choose its CN but controls URI SANs (a Vault PKI role, a CA issuing both SVIDs
    and CN certificates) handed out the agent's identity (red team session 15)."""
    impostor = leaf(tmp_path, stack.pki.ca, "impostor", common_name=AGENT_SPIFFE_ID)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _exchange(stack, impostor)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _reason(raised.value) == "invalid_client"
    status, body = await _post_token(stack, impostor)
    assert (status, body["error"]) == (401, "invalid_client")


async def test_http_unregistered_certificate_is_invalid_client(stack: MtlsStack) -> None:
    status, body = await _post_token(stack, stack.pki.stranger)
    assert (status, body["error"]) == (401, "invalid_client")


async def test_http_certificate_plus_basic_credentials_is_refused(stack: MtlsStack) -> None:
    # RFC 6749 §2.3: a client MUST NOT use more than one authentication method per request.
    status, body = await _post_token(stack, stack.pki.agent, Authorization="Basic YTpi")
    assert (status, body["error"]) == (400, "invalid_request")


async def test_http_certificate_from_another_ca_fails_the_handshake(stack: MtlsStack) -> None:
    with pytest.raises(aiohttp.ClientError):
        await _post_token(stack, stack.pki.foreign)


async def test_jwks_stays_public_without_a_client_certificate(stack: MtlsStack) -> None:
    # Downstream servers fetch keys without a certificate; only token exchange needs one.
    url = f"{stack.http_base}/.well-known/jwks.json"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, ssl=stack.https(None)) as response,
    ):
        assert response.status == 200
        assert json.loads(await response.read())["keys"]


async def test_plain_http_to_the_tls_listener_gets_nothing(stack: MtlsStack) -> None:
    url = f"http://127.0.0.1:{stack.service.http_port}/.well-known/jwks.json"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.get(url) as response:
                await response.read()


# --- secure defaults (config) ------------------------------------------------------------------


def _server(**server: object) -> Settings:
    return Settings(server={"issuer": "https://sekisho.example.com", **server})


def test_loopback_defaults_need_no_tls() -> None:
    assert _server().server.client_auth_required is False


def test_non_loopback_listener_without_tls_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"server\.tls_cert_file"):
        _server(grpc_listen="0.0.0.0:50051")


def test_non_loopback_listener_requires_client_auth_by_default(tmp_path: Path) -> None:
    tls = {"tls_cert_file": "s.pem", "tls_key_file": "k.pem", "http_listen": "10.0.0.5:8443"}
    with pytest.raises(
        ValueError, match=r"server\.require_client_auth needs server\.client_ca_file"
    ):
        _server(**tls)
    settings = _server(**tls, client_ca_file="ca.pem")
    assert settings.server.client_auth_required is True


def test_a_client_ca_on_loopback_requires_client_auth_by_default() -> None:
    # Walkthrough session 13: client_ca_file + [[callers]] on loopback, require_client_auth
    # unset: the gRPC listener asked for no certificate, so the agent that presented its own
    # (sekisho exchange --cert) was audited caller "" / authenticated_by none, minted no act,
    # and `sekisho revoke caller <its SPIFFE ID>` could not cut it off.
    tls = {"tls_cert_file": "s.pem", "tls_key_file": "k.pem", "client_ca_file": "ca.pem"}
    assert _server(**tls).server.client_auth_required is True
    assert _server(**tls, require_client_auth=False).server.client_auth_required is False
    assert _server().server.client_auth_required is False  # loopback dev without certificates


def test_mesh_opt_out_needs_both_keys_spelled_out() -> None:
    with pytest.raises(ValueError, match="require_client_auth = false"):
        _server(grpc_listen="0.0.0.0:50051", insecure_plaintext=True)
    settings = _server(
        grpc_listen="0.0.0.0:50051", insecure_plaintext=True, require_client_auth=False
    )
    assert settings.server.client_auth_required is False


_TLS = {"tls_cert_file": "s.pem", "tls_key_file": "k.pem"}


@pytest.mark.parametrize(
    ("issuer", "http_listen"),
    [
        ("http://127.0.0.1:8080", "127.0.0.1:8080"),  # config/example.toml's, TLS added
        ("http://localhost:8443", "127.0.0.1:8443"),
        ("http://[::1]:8080", "[::1]:8080"),
    ],
    ids=["example-issuer", "localhost", "ipv6"],
)
def test_an_http_issuer_on_the_tls_listener_refuses_to_start(issuer: str, http_listen: str) -> None:
    """Newcomer run (session 18): TLS added to config/example.toml on loopback, issuer left at
    http://127.0.0.1:8080: the service started, and every token's iss, the metadata's jwks_uri
    and the status list uris named a plaintext URL the TLS-only listener could not answer."""
    with pytest.raises(ValueError, match=r"server\.issuer .* is http.*https://"):
        _server(**_TLS, issuer=issuer, http_listen=http_listen)


@pytest.mark.parametrize(
    ("issuer", "http_listen", "tls"),
    [
        ("https://127.0.0.1:8080", "127.0.0.1:8080", True),
        ("http://127.0.0.1:9000", "127.0.0.1:8080", True),  # a loopback proxy on another port
        ("http://127.0.0.1:8080", "127.0.0.1:8080", False),  # make run: plaintext on loopback
    ],
    ids=["https-issuer", "another-port", "no-tls"],
)
def test_an_issuer_the_listener_can_serve_is_accepted(
    issuer: str, http_listen: str, tls: bool
) -> None:
    server = _server(**(_TLS if tls else {}), issuer=issuer, http_listen=http_listen).server
    assert server.issuer == issuer


def test_unreadable_tls_file_names_the_key(tmp_path: Path) -> None:
    server = _server(tls_cert_file=str(tmp_path / "missing.pem"), tls_key_file="k.pem").server
    with pytest.raises(ConfigError, match=r"server\.tls_cert_file"):
        load_tls_material(server)


# --- Envoy ext_authz over mTLS: the gateway is the caller and must be registered ----------------


class RecordingAuthorizer:
    def __init__(self) -> None:
        self.callers: list[object] = []

    async def authorize(self, request: object) -> object:
        self.callers.append(request.caller)  # type: ignore[attr-defined]
        return Allowed({"authorization": "Bearer minted"})


class PeerContext:
    """The part of grpc's ServicerContext the Check handler reads: the peer's certificate."""

    def __init__(self, pem: bytes | None) -> None:
        self._auth = {"x509_pem_cert": [pem]} if pem else {}

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth

    def time_remaining(self) -> float | None:
        return None

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"


@pytest.mark.parametrize(
    ("who", "trusted_principal", "expected"),
    [
        pytest.param("gateway", False, (GATEWAY_CN, "mtls"), id="registered-gateway-is-the-caller"),
        pytest.param("gateway", True, ("spiffe://mesh/client", "none"), id="trusted-principal-wins"),
        pytest.param("stranger", False, None, id="unregistered-gateway-denied"),
    ],
)  # fmt: skip
async def test_ext_authz_caller_is_the_registered_mtls_gateway(
    tmp_path: Path, who: str, trusted_principal: bool, expected: tuple[str, str] | None
) -> None:
    pki = build_pki(tmp_path)
    authorizer = RecordingAuthorizer()
    refusals: list[tuple[str, str]] = []
    servicer = ExtAuthzServicer(
        authorizer,  # type: ignore[arg-type]
        trust_source_principal=trusted_principal,
        trusted_gateways=frozenset(),
        callers=CallerRegistry([RegisteredCaller(GATEWAY_CN)], require_client_auth=True),
        check_revoked=None,
        audit_refusal=lambda error, caller: refusals.append((error.reason, caller.id)),
        crashed=lambda exc, caller: pytest.fail(f"crashed: {exc!r}"),
    )
    check = ext_authz_pb.CheckRequest()
    check.attributes.source.principal = "spiffe://mesh/client"
    response = await servicer.Check(check, PeerContext(getattr(pki, who).cert))  # type: ignore[arg-type]
    if expected is None:
        assert response.denied_response.status.code == 403
        assert authorizer.callers == []
        assert refusals == [("invalid_client", "")]  # the refusal is audited once
        return
    assert refusals == []
    assert response.HasField("ok_response")
    (caller,) = authorizer.callers
    assert (caller.id, caller.authenticated_by) == expected  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        pytest.param("gateway", ("spiffe://mesh/client", "none"), id="trusted-gateway-names-it"),
        pytest.param("agent", None, id="registered-agent-refused"),
    ],
)
async def test_only_trusted_gateways_may_name_the_source_principal(
    tmp_path: Path, who: str, expected: tuple[str, str] | None
) -> None:
    """Red team session 20: agents and the gateway share grpc_listen, so with
    trust_source_principal any registered agent could send a Check naming any principal (another
    agent's SPIFFE ID) and be exchanged as that workload. With [gateway] trusted_gateways only
    the listed callers' Checks name the caller; any other caller's Check is refused, audited."""
    pki = build_pki(tmp_path)
    authorizer = RecordingAuthorizer()
    refusals: list[tuple[str, str, str]] = []
    servicer = ExtAuthzServicer(
        authorizer,  # type: ignore[arg-type]
        trust_source_principal=True,
        trusted_gateways=frozenset({GATEWAY_CN}),
        callers=CallerRegistry(
            [RegisteredCaller(GATEWAY_CN), RegisteredCaller(AGENT_SPIFFE_ID)],
            require_client_auth=True,
        ),
        check_revoked=None,
        audit_refusal=lambda error, caller: refusals.append(
            (error.reason, caller.id, error.log_detail)
        ),
        crashed=lambda exc, caller: pytest.fail(f"crashed: {exc!r}"),
    )
    check = ext_authz_pb.CheckRequest()
    check.attributes.source.principal = "spiffe://mesh/client"
    response = await servicer.Check(check, PeerContext(getattr(pki, who).cert))  # type: ignore[arg-type]
    if expected is None:
        assert response.denied_response.status.code == 403
        assert authorizer.callers == []
        ((reason, caller_id, detail),) = refusals  # audited once, naming the agent and the key
        assert (reason, caller_id) == ("invalid_client", AGENT_SPIFFE_ID)
        assert "trusted_gateways" in detail
        return
    assert refusals == []
    assert response.HasField("ok_response")
    (caller,) = authorizer.callers
    assert (caller.id, caller.authenticated_by) == expected  # type: ignore[attr-defined]


async def test_the_service_refuses_an_agents_check_naming_a_principal(
    tmp_path: Path,
    dev_idp: DevIdentityProvider,  # noqa: F811
) -> None:
    """The same through the service over mTLS: the composition hands trusted_gateways to Check
    (an agent's Check is refused as a caller, the gateway's reaches the route table)."""
    pki = build_pki(tmp_path / "pki")
    settings = mtls_settings(dev_idp, tmp_path, pki)
    gateway = settings.gateway.model_copy(
        update={"trust_source_principal": True, "trusted_gateways": (GATEWAY_CN,)}
    )
    service = await start_service(settings.model_copy(update={"gateway": gateway}))
    stack = MtlsStack(service, dev_idp, pki)
    check = ext_authz_pb.CheckRequest()
    check.attributes.source.principal = "spiffe://mesh/client"
    bodies = {}
    try:
        for who in (pki.agent, pki.gateway):
            async with stack.channel(who) as channel:
                stub = ext_authz_grpc.AuthorizationStub(channel)
                response = await stub.Check(check, timeout=10)
            assert response.denied_response.status.code == 403
            bodies[who.cert_file.name] = response.denied_response.body
    finally:
        await service.stop(0.5)
    assert bodies == {
        pki.agent.cert_file.name: "caller not allowed",
        pki.gateway.cert_file.name: "no route for this request",  # past the caller check
    }


async def test_the_service_refuses_an_unregistered_trusted_gateway_at_start(
    tmp_path: Path,
    dev_idp: DevIdentityProvider,  # noqa: F811
) -> None:
    settings = mtls_settings(dev_idp, tmp_path, build_pki(tmp_path / "pki"))
    gateway = settings.gateway.model_copy(
        update={"trust_source_principal": True, "trusted_gateways": ("envoy-gw",)}
    )
    with pytest.raises(ConfigError, match=r"gateway\.trusted_gateways"):
        await start_service(settings.model_copy(update={"gateway": gateway}))


async def test_metadata_advertises_tls_client_auth(stack: MtlsStack) -> None:
    # RFC 8414 / RFC 8705 §2.1.1: mTLS callers only, so neither secret nor key methods are offered.
    url = f"{stack.http_base}/.well-known/oauth-authorization-server"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, ssl=stack.https(None)) as response,
    ):
        metadata = await response.json()
    assert metadata["token_endpoint_auth_methods_supported"] == ["tls_client_auth"]


@pytest.mark.parametrize(
    ("adapter", "parameter"),
    [
        (ExtAuthzServicer.__init__, "callers"),
        (ExtAuthzServicer.__init__, "audit_refusal"),
        (ExtAuthzServicer.__init__, "crashed"),
        (TokenExchangeServicer.__init__, "callers"),
        (TokenEndpoint.__init__, "callers"),
        (build_token_endpoint, "callers"),
    ],
    ids=[
        "ext_authz-callers",
        "ext_authz-audit",
        "ext_authz-crashed",
        "grpc-callers",
        "http-callers",
        "http-builder",
    ],
)
def test_no_transport_defaults_to_no_client_authentication_or_no_audit(
    adapter: Callable[..., object], parameter: str
) -> None:
    """A default of "no [[callers]]" (or of no audit line) would fail open, silently, in any
    composition that forgot to pass the real one: each must be given."""
    assert inspect.signature(adapter).parameters[parameter].default is inspect.Parameter.empty
