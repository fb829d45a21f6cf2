"""The keyring: an immutable snapshot of the keystore that signing and JWKS publication read.

A snapshot is built once per keystore change (signer objects, JWKS bytes) and swapped in whole,
so a request never sees half a rotation and never parses key material. `refresh` loads in a
worker thread (a KMS keystore answers over the network) and swaps on the event loop.
"""

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from sekisho.errors import KeyStoreError, TemporarilyUnavailableError
from sekisho.signing.keys import KeyRecord, KeyState
from sekisho.signing.signer import Signer, published_jwk

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KeySet:
    """Keys as loaded at one moment: records, signers of published keys, the JWKS document."""

    records: tuple[KeyRecord, ...]
    signers: Mapping[str, Signer]

    @property
    def active(self) -> tuple[KeyRecord, Signer] | None:
        for record in self.records:
            if record.state is KeyState.ACTIVE and record.kid in self.signers:
                return record, self.signers[record.kid]
        return None

    def jwks(self) -> dict[str, list[dict[str, object]]]:
        """The JWK Set of every published key (next, active, retiring), active first."""
        order = {KeyState.ACTIVE: 0, KeyState.NEXT: 1, KeyState.RETIRING: 2}
        published = sorted((r for r in self.records if r.published), key=lambda r: order[r.state])
        return {"keys": [published_jwk(self.signers[r.kid]) for r in published]}


class KeyStore(Protocol):
    """A keystore backend (file, kms-wrapped or kms) as the running service reads it."""

    def load(self) -> KeySet:
        """Read the keystore. Raises: KeyStoreError when missing or corrupt."""
        ...


class Keyring:
    """Holds the current KeySet, reloads it on change and keeps the last good one on failure."""

    def __init__(self, store: KeyStore) -> None:
        self._store = store
        self._keys: KeySet | None = None
        self._jwks_bytes = b'{"keys":[]}'

    @property
    def loaded(self) -> bool:
        return self._keys is not None

    @property
    def jwks_bytes(self) -> bytes:
        return self._jwks_bytes

    @property
    def records(self) -> tuple[KeyRecord, ...]:
        """Every key of the current KeySet with its state (for metrics: age and state per kid)."""
        return self._keys.records if self._keys is not None else ()

    def load(self) -> None:
        """Load the keystore for the first time. Raises: KeyStoreError (refuse to start)."""
        self._install(self._store.load())

    def reload(self) -> bool:
        """Reload after a change; on failure keep serving the last good keys and log why."""
        try:
            # _install is inside: a keystore left with no active key is a failure too.
            self._install(self._store.load())
        except KeyStoreError as exc:
            log.error("keyring_reload_failed", extra={"error": str(exc)})
            return False
        return True

    async def refresh(self) -> bool:
        """`reload` with the keystore read in a worker thread, so the event loop keeps serving."""
        try:
            keys = await asyncio.to_thread(self._store.load)
            self._install(keys)
        except KeyStoreError as exc:
            log.error("keyring_reload_failed", extra={"error": str(exc)})
            return False
        return True

    def signing_key(self) -> tuple[KeyRecord, Signer]:
        """The active key. Raises: TemporarilyUnavailableError when there is none."""
        active = self._keys.active if self._keys else None
        if active is None:
            raise TemporarilyUnavailableError(
                "no signing key is available", log_detail="keyring has no active key"
            )
        return active

    def published_algorithms(self) -> list[str]:
        """Sorted JWS algorithms of the published keys."""
        if self._keys is None:
            return []
        return sorted({r.alg for r in self._keys.records if r.published})

    def _install(self, keys: KeySet) -> None:
        if keys.active is None:
            raise KeyStoreError("keystore has no active key (run `sekisho keys init`)")
        unchanged = self._keys is not None and self._keys.records == keys.records
        self._keys = keys
        self._jwks_bytes = json.dumps(keys.jwks(), separators=(",", ":")).encode()
        if not unchanged:  # polling (KMS) reloads often; log only what changed
            states = {r.kid: r.state.value for r in keys.records if r.published}
            log.info("keyring_loaded", extra={"keys": states})
