"""The caller's identity from its verified client certificate, the same for every transport.

SPIFFE X.509-SVID §2: the SPIFFE ID is the certificate's one `spiffe://` URI SAN; an SVID with
more than one is invalid, so such a certificate is refused rather than guessed at. A certificate
without one is known by its subject common name (exactly one CN; several would be ambiguous).
A CN that spells a SPIFFE ID is refused: it would be known as the workload that SPIFFE ID names,
which only a URI SAN may claim, so a CA that lets a requester choose its CN but not its URI SANs
(a Vault PKI role, a CA issuing both SVIDs and CN certificates) would hand out that identity
(red team session 15). The TLS layer has already verified the chain against `server.client_ca_file`.
"""

from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from sekisho.errors import InvalidClientError

SPIFFE_SCHEME = "spiffe://"


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """Who the client certificate says the caller is: `id` is the SPIFFE ID, else the CN."""

    id: str
    spiffe_id: str = ""


def identity_from_der(der: bytes) -> PeerIdentity:
    """Raises: InvalidClientError for an unparsable certificate or an ambiguous identity."""
    return _identity(x509.load_der_x509_certificate, der)


def identity_from_pem(pem: bytes) -> PeerIdentity:
    """Raises: InvalidClientError for an unparsable certificate or an ambiguous identity."""
    return _identity(x509.load_pem_x509_certificate, pem)


def _identity(load: Callable[[bytes], x509.Certificate], data: bytes) -> PeerIdentity:
    try:
        certificate = load(data)
    except ValueError as exc:
        raise InvalidClientError("client certificate is unreadable") from exc
    return identity_of(certificate)


def identity_of(certificate: x509.Certificate) -> PeerIdentity:
    """Raises: InvalidClientError when the certificate names no single identity."""
    spiffe_ids = [uri for uri in _uri_sans(certificate) if _spells_spiffe_id(uri)]
    if len(spiffe_ids) > 1:
        raise InvalidClientError(
            "client certificate carries more than one SPIFFE ID",
            log_detail=f"{len(spiffe_ids)} spiffe URI SANs",
        )
    if spiffe_ids:
        return PeerIdentity(id=spiffe_ids[0], spiffe_id=spiffe_ids[0])
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or not str(names[0].value):
        raise InvalidClientError("client certificate names no SPIFFE ID and no single common name")
    common_name = str(names[0].value)
    if _spells_spiffe_id(common_name):
        raise InvalidClientError(
            "client certificate's common name spells a SPIFFE ID, which only a URI SAN may carry",
            log_detail=f"CN {common_name!r} without a SPIFFE URI SAN",
        )
    return PeerIdentity(id=common_name)


def _spells_spiffe_id(text: str) -> bool:
    return text.lower().startswith(SPIFFE_SCHEME)


def _uri_sans(certificate: x509.Certificate) -> list[str]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(uri) for uri in extension.value.get_values_for_type(x509.UniformResourceIdentifier)]
