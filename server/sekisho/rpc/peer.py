"""The caller's verified client certificate as grpc reports it (mTLS listener)."""

from typing import Any

import grpc

from sekisho.identity.peer import PeerIdentity, identity_from_pem
from sekisho.lru import LruMap

_PEM_CERT = "x509_pem_cert"
DEFAULT_MAX_CERTIFICATES = 1024


class PeerIdentities:
    """The identity in each call's peer certificate, parsed once per certificate.

    grpc hands every call of a connection the peer's certificate as PEM; parsing it is X.509
    work that need not be on each call's path. Keyed by the exact PEM bytes the TLS layer
    verified, bounded (least recently used evicted); refusals are not kept, so they always
    re-raise from a fresh parse.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_CERTIFICATES) -> None:
        self._known: LruMap[bytes, PeerIdentity] = LruMap(max_entries)

    def of(self, context: grpc.aio.ServicerContext[Any, Any]) -> PeerIdentity | None:
        """None without TLS or without a certificate.

        Raises: InvalidClientError when the certificate names no single identity.
        """
        auth = context.auth_context() or {}
        pems = auth.get(_PEM_CERT) or []
        if not pems:
            return None
        pem = pems[0]
        known = self._known.get(pem)
        if known is not None:
            return known
        identity = identity_from_pem(pem)
        self._known.put(pem, identity)
        return identity

    def __len__(self) -> int:
        return len(self._known)
