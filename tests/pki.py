"""A throwaway PKI for mTLS tests: two CAs, a server certificate for 127.0.0.1/localhost and
client certificates with a SPIFFE URI SAN, a CN only, or an ambiguous pair of SPIFFE IDs."""

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

AGENT_SPIFFE_ID = "spiffe://example.org/agent-runtime"
GATEWAY_CN = "mcp-gateway"
STRANGER_SPIFFE_ID = "spiffe://example.org/stranger"


@dataclass(frozen=True)
class Pem:
    """A certificate, its key, and the files they were written to."""

    cert: bytes
    key: bytes
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class Authority:
    key: ec.EllipticCurvePrivateKey
    name: x509.Name
    pem: Pem


def _pem_pair(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[bytes, bytes]:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _write(folder: Path, stem: str, cert: bytes, key: bytes) -> Pem:
    folder.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = folder / f"{stem}.pem", folder / f"{stem}-key.pem"
    cert_file.write_bytes(cert)
    key_file.write_bytes(key)
    return Pem(cert, key, cert_file, key_file)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
    )


def authority(folder: Path, name: str) -> Authority:
    """A self-signed CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        _builder(subject, subject, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Authority(key, subject, _write(folder, name, *_pem_pair(key, cert)))


def leaf(
    folder: Path,
    ca: Authority,
    stem: str,
    *,
    common_name: str,
    uris: tuple[str, ...] = (),
    server: bool = False,
) -> Pem:
    """An end-entity certificate signed by `ca`."""
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    subject = x509.Name(attributes)
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri) for uri in uris]
    if server:
        names += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(subject, ca.name, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return _write(folder, stem, *_pem_pair(key, builder.sign(ca.key, hashes.SHA256())))


@dataclass(frozen=True)
class Pki:
    """Everything the mTLS tests present or trust."""

    ca: Authority
    other_ca: Authority
    server: Pem
    agent: Pem  # SPIFFE ID, registered
    gateway: Pem  # CN only, registered
    stranger: Pem  # SPIFFE ID, valid chain, not registered
    two_spiffe_ids: Pem  # two SPIFFE URI SANs: invalid SVID
    foreign: Pem  # the agent's SPIFFE ID, but signed by another CA


def build_pki(folder: Path) -> Pki:
    ca = authority(folder, "clients-ca")
    other = authority(folder, "other-ca")
    return Pki(
        ca=ca,
        other_ca=other,
        server=leaf(folder, ca, "server", common_name="sekisho", server=True),
        agent=leaf(folder, ca, "agent", common_name="agent", uris=(AGENT_SPIFFE_ID,)),
        gateway=leaf(folder, ca, "gateway", common_name=GATEWAY_CN),
        stranger=leaf(folder, ca, "stranger", common_name="x", uris=(STRANGER_SPIFFE_ID,)),
        two_spiffe_ids=leaf(
            folder,
            ca,
            "two",
            common_name="two",
            uris=(AGENT_SPIFFE_ID, "spiffe://example.org/other"),
        ),
        foreign=leaf(folder, other, "foreign", common_name="agent", uris=(AGENT_SPIFFE_ID,)),
    )
