"""TLS material for both listeners, read once at start from [server] tls_* files.

The HTTP listener requests a client certificate whenever `client_ca_file` is set and verifies any
certificate presented against it (a certificate from another CA fails the handshake); whether one
is *required* is decided per endpoint, because downstream servers fetch the JWKS without one.
The gRPC listener (grpc core offers no "optional" mode) requires one when client auth is required
and does not ask for one otherwise.
"""

import ssl
from dataclasses import dataclass
from pathlib import Path

from sekisho.config import ServerConfig
from sekisho.errors import ConfigError


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """PEM bytes of the server's chain and key, the client CA bundle, and the file paths."""

    cert_file: Path
    key_file: Path
    certificate_chain: bytes
    private_key: bytes
    client_ca: bytes | None
    require_client_auth: bool


def _read(path: Path, key: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config key 'server.{key}': cannot read {path}: {exc.strerror}") from exc


def load_tls_material(server: ServerConfig) -> TlsMaterial | None:
    """None when TLS is off. Raises: ConfigError naming the unreadable file's key."""
    if server.tls_cert_file is None or server.tls_key_file is None:
        return None
    ca = server.client_ca_file
    return TlsMaterial(
        cert_file=server.tls_cert_file,
        key_file=server.tls_key_file,
        certificate_chain=_read(server.tls_cert_file, "tls_cert_file"),
        private_key=_read(server.tls_key_file, "tls_key_file"),
        client_ca=_read(ca, "client_ca_file") if ca is not None else None,
        require_client_auth=server.client_auth_required,
    )


def http_ssl_context(material: TlsMaterial) -> ssl.SSLContext:
    """Server context for aiohttp: TLS 1.2+, client certificates verified when offered.

    Raises: ConfigError when the certificate, key or CA bundle does not load.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(material.cert_file, material.key_file)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"config keys 'server.tls_cert_file'/'server.tls_key_file': {exc}"
        ) from exc
    if material.client_ca is not None:
        try:
            context.load_verify_locations(cadata=material.client_ca.decode())
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigError(f"config key 'server.client_ca_file': {exc}") from exc
        context.verify_mode = ssl.CERT_OPTIONAL
    return context
