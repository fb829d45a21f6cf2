"""Caller identity from a client certificate: SPIFFE ID first, else exactly one CN."""

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sekisho.errors import InvalidClientError
from sekisho.identity.peer import PeerIdentity, identity_from_der, identity_from_pem

from tests.pki import authority, leaf


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return authority(tmp_path_factory.mktemp("pki"), "unit-ca")


@pytest.mark.parametrize(
    ("common_name", "uris", "expected"),
    [
        pytest.param("agent", ("spiffe://td/agent",), PeerIdentity("spiffe://td/agent", "spiffe://td/agent"), id="spiffe-wins-over-cn"),
        pytest.param("gateway", (), PeerIdentity("gateway"), id="cn-without-san"),
        pytest.param("svc", ("https://svc.example.com",), PeerIdentity("svc"), id="non-spiffe-uri-ignored"),
    ],
)  # fmt: skip
def test_identity(
    ca, tmp_path, common_name: str, uris: tuple[str, ...], expected: PeerIdentity
) -> None:  # type: ignore[no-untyped-def]
    pem = leaf(tmp_path, ca, "c", common_name=common_name, uris=uris)
    assert identity_from_pem(pem.cert) == expected
    der = x509.load_pem_x509_certificate(pem.cert).public_bytes(serialization.Encoding.DER)
    assert identity_from_der(der) == expected


def test_two_spiffe_ids_are_refused(ca, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pem = leaf(tmp_path, ca, "c", common_name="x", uris=("spiffe://td/a", "spiffe://td/b"))
    with pytest.raises(InvalidClientError, match="more than one SPIFFE ID"):
        identity_from_pem(pem.cert)


def test_no_cn_and_no_spiffe_id_is_refused(ca, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pem = leaf(tmp_path, ca, "c", common_name="", uris=("https://svc.example.com",))
    with pytest.raises(InvalidClientError, match="no SPIFFE ID and no single common name"):
        identity_from_pem(pem.cert)


@pytest.mark.parametrize("common_name", ["spiffe://td/agent", "SPIFFE://td/agent"])
def test_a_common_name_spelling_a_spiffe_id_is_refused(ca, tmp_path, common_name: str) -> None:  # type: ignore[no-untyped-def]
    pem = leaf(tmp_path, ca, "c", common_name=common_name)
    with pytest.raises(InvalidClientError, match="common name spells a SPIFFE ID"):
        identity_from_pem(pem.cert)
    # With the SPIFFE ID as its URI SAN, the CN is not read.
    pem = leaf(tmp_path, ca, "d", common_name=common_name, uris=("spiffe://td/agent",))
    assert identity_from_pem(pem.cert) == PeerIdentity("spiffe://td/agent", "spiffe://td/agent")


def test_unreadable_certificate_is_refused() -> None:
    with pytest.raises(InvalidClientError, match="unreadable"):
        identity_from_der(b"not a certificate")
