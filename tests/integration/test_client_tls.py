"""sekisho.client ChannelOptions over real TLS and mTLS (a TokenExchangeService stand-in with a
test CA; Sekisho's own mTLS listeners are tested in tests/security/test_caller_auth.py)."""

import datetime
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho.client import (
    ChannelOptions,
    ExchangeUnavailableError,
    RetryPolicy,
    TokenExchangeClient,
)

pytestmark = pytest.mark.integration

NO_RETRY = RetryPolicy(max_attempts=1)
# The deadline of a call that must succeed: only a hang guard (with the SDK's 2 s default, a
# fresh connection's TLS handshake and first call on a loaded host could run out of it).
HANG_GUARD = 30.0


@dataclass
class Pem:
    key: bytes
    cert: bytes


def _issue(
    name: str, issuer: tuple[ec.EllipticCurvePrivateKey, x509.Name] | None, *, ca: bool = False
) -> tuple[Pem, ec.EllipticCurvePrivateKey, x509.Name]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer, issuer_name = issuer if issuer else (key, subject)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    cert = builder.sign(signer, hashes.SHA256())
    pem = Pem(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert.public_bytes(serialization.Encoding.PEM),
    )
    return pem, key, subject


@dataclass
class Pki:
    ca: Pem
    server: Pem
    client: Pem


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca, ca_key, ca_name = _issue("test-ca", None, ca=True)
    server, _, _ = _issue("sekisho", (ca_key, ca_name))
    client, _, _ = _issue("agent", (ca_key, ca_name))
    return Pki(ca, server, client)


def _exchange(request: bytes, context: grpc.ServicerContext) -> bytes:
    return pb.ExchangeTokenResponse(
        access_token="minted", token_type="Bearer", expires_in=60, audience="aud"
    ).SerializeToString()


async def _tls_server(pki: Pki, *, require_client_cert: bool) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "sekisho.v1.TokenExchangeService",
        {"ExchangeToken": grpc.unary_unary_rpc_method_handler(_exchange)},
    )
    server.add_generic_rpc_handlers((handler,))
    credentials = grpc.ssl_server_credentials(
        [(pki.server.key, pki.server.cert)],
        root_certificates=pki.ca.cert,
        require_client_auth=require_client_cert,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    return server, port


@pytest.fixture
async def mtls_port(pki: Pki) -> AsyncIterator[int]:
    server, port = await _tls_server(pki, require_client_cert=True)
    yield port
    await server.stop(0)


@pytest.fixture
async def tls_port(pki: Pki) -> AsyncIterator[int]:
    server, port = await _tls_server(pki, require_client_cert=False)
    yield port
    await server.stop(0)


async def test_tls_with_the_right_ca(pki: Pki, tls_port: int) -> None:
    options = ChannelOptions(root_certificates=pki.ca.cert)
    async with TokenExchangeClient(
        f"localhost:{tls_port}", channel_options=options, timeout_seconds=HANG_GUARD
    ) as client:
        token = await client.exchange("user", "aud")
    assert token.access_token == "minted"


async def test_tls_refuses_an_unknown_server_certificate(pki: Pki, tls_port: int) -> None:
    other_ca, _, _ = _issue("other-ca", None, ca=True)
    options = ChannelOptions(root_certificates=other_ca.cert)
    async with TokenExchangeClient(
        f"localhost:{tls_port}", channel_options=options, retry=NO_RETRY
    ) as client:
        with pytest.raises(ExchangeUnavailableError):
            await client.exchange("user", "aud", deadline_seconds=2)


async def test_mtls_presents_the_client_certificate(pki: Pki, mtls_port: int) -> None:
    options = ChannelOptions(
        root_certificates=pki.ca.cert,
        private_key=pki.client.key,
        certificate_chain=pki.client.cert,
    )
    async with TokenExchangeClient(
        f"localhost:{mtls_port}", channel_options=options, timeout_seconds=HANG_GUARD
    ) as client:
        assert (await client.exchange("user", "aud")).access_token == "minted"


async def test_mtls_server_refuses_a_client_without_certificate(pki: Pki, mtls_port: int) -> None:
    options = ChannelOptions(root_certificates=pki.ca.cert)
    async with TokenExchangeClient(
        f"localhost:{mtls_port}", channel_options=options, retry=NO_RETRY
    ) as client:
        with pytest.raises(ExchangeUnavailableError):
            await client.exchange("user", "aud", deadline_seconds=2)
