"""The caller's verified client certificate as grpc reports it (mTLS listener)."""

from typing import Any

import grpc

from sekisho.identity.peer import PeerIdentity, identity_from_pem

_PEM_CERT = "x509_pem_cert"


def peer_identity(context: grpc.aio.ServicerContext[Any, Any]) -> PeerIdentity | None:
    """The identity in the peer's certificate; None without TLS or without a certificate.

    Raises: InvalidClientError when the certificate names no single identity.
    """
    auth = context.auth_context() or {}
    pems = auth.get(_PEM_CERT) or []
    if not pems:
        return None
    return identity_from_pem(pems[0])
