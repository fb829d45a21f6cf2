"""The gRPC peer certificate is parsed once per certificate, never cached when refused."""

from pathlib import Path
from typing import Any

import pytest
from sekisho.errors import InvalidClientError
from sekisho.rpc.peer import PeerIdentities

from tests.pki import build_pki


class Context:
    def __init__(self, pem: bytes | None) -> None:
        self._auth = {"x509_pem_cert": [pem]} if pem else {}

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth


def test_each_certificate_is_parsed_once_and_the_cache_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = build_pki(tmp_path)
    parsed: list[bytes] = []
    import sekisho.rpc.peer as peer_module

    real = peer_module.identity_from_pem

    def counting(pem: bytes) -> Any:
        parsed.append(pem)
        return real(pem)

    monkeypatch.setattr(peer_module, "identity_from_pem", counting)
    peers = PeerIdentities(max_entries=1)
    first = peers.of(Context(pki.gateway.cert))  # type: ignore[arg-type]
    again = peers.of(Context(pki.gateway.cert))  # type: ignore[arg-type]
    assert first == again and first is not None
    assert len(parsed) == 1
    peers.of(Context(pki.stranger.cert))  # type: ignore[arg-type]
    assert len(peers) == 1  # bounded: the gateway's entry was evicted
    peers.of(Context(pki.gateway.cert))  # type: ignore[arg-type]
    assert len(parsed) == 3


def test_no_certificate_is_no_identity() -> None:
    assert PeerIdentities().of(Context(None)) is None  # type: ignore[arg-type]


def test_an_unreadable_certificate_is_refused_every_time() -> None:
    peers = PeerIdentities()
    for _ in range(2):
        with pytest.raises(InvalidClientError):
            peers.of(
                Context(b"-----BEGIN CERTIFICATE-----\nnot a cert\n-----END CERTIFICATE-----\n")
            )  # type: ignore[arg-type]
    assert len(peers) == 0
