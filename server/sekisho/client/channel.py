"""How the client reaches Sekisho: plaintext only for loopback development, TLS otherwise, and
mTLS when the caller presents a certificate (Sekisho then knows the caller by its SPIFFE ID)."""

from dataclasses import dataclass
from typing import Any

import grpc


@dataclass(frozen=True, slots=True)
class ChannelOptions:
    """TLS material as PEM bytes; `insecure` is for loopback development only."""

    root_certificates: bytes | None = None
    private_key: bytes | None = None
    certificate_chain: bytes | None = None
    insecure: bool = False
    server_name_override: str = ""


def open_channel(target: str, options: ChannelOptions) -> grpc.aio.Channel:
    """An aio channel to `target` with the options' transport security."""
    channel_args: list[tuple[str, Any]] = []
    if options.server_name_override:
        channel_args.append(("grpc.ssl_target_name_override", options.server_name_override))
    if options.insecure:
        return grpc.aio.insecure_channel(target, options=channel_args)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=options.root_certificates,
        private_key=options.private_key,
        certificate_chain=options.certificate_chain,
    )
    return grpc.aio.secure_channel(target, credentials, options=channel_args)
