"""The keyring: an immutable snapshot of the keystore that signing and JWKS publication read.

A snapshot is built once per keystore change (signer objects, JWKS bytes) and swapped in whole,
so a request never sees half a rotation and never parses key material. `refresh` loads in a
worker thread (a KMS keystore answers over the network) and swaps on the event loop.

A reload that cannot load every key still applies the key *states* (docs/security.md, class
"revocation takes effect or shouts"): the store returns the new records with the keys that did
load (KeyLoadError.partial), so a revoked or retired kid is never signed with nor published
again, even when a file the CLI wrote next to it is unreadable to the service, and a key that
cannot be loaded now is not used from memory either. When the records themselves cannot be read
the states are unknown: nothing signs and nothing is published (unless they are only
unreachable for now: KeyStatesUnreachableError). A keyring without an active
signer is not ready; `degraded` tells the retry loop to try again.
"""

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from sekisho.errors import KeyStoreError, TemporarilyUnavailableError
from sekisho.signing.keys import KeyRecord, KeyState
from sekisho.signing.signer import Signer, published_jwk

log = logging.getLogger(__name__)

_EMPTY_JWKS = b'{"keys":[]}'


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
        published = [r for r in self.records if r.published and r.kid in self.signers]
        published.sort(key=lambda r: order[r.state])
        return {"keys": [published_jwk(self.signers[r.kid]) for r in published]}


NO_KEYS = KeySet(records=(), signers={})


class KeyLoadError(KeyStoreError):
    """Some published keys could not be loaded; `partial` holds the records and the rest."""

    def __init__(self, message: str, partial: KeySet) -> None:
        super().__init__(message)
        self.partial = partial


class KeyStatesUnreachableError(KeyStoreError):
    """The key states could not be fetched for now (KMS throttled or unreachable).

    The last good keys stay while the retry loop asks again: with backend kms a revoked key is
    also disabled in KMS, so it cannot sign whatever a replica still believes.
    """


def collect(records: tuple[KeyRecord, ...], open_key: Callable[[KeyRecord], Signer]) -> KeySet:
    """A signer per published record. Raises: KeyLoadError naming each key that failed."""
    signers: dict[str, Signer] = {}
    problems: list[str] = []
    for record in records:
        if record.published:
            try:
                signers[record.kid] = open_key(record)
            except KeyStoreError as exc:
                problems.append(str(exc))
    keys = KeySet(records=records, signers=signers)
    if problems:
        raise KeyLoadError("; ".join(problems), keys)
    return keys


class KeyStore(Protocol):
    """A keystore backend (file, kms-wrapped or kms) as the running service reads it."""

    def load(self) -> KeySet:
        """Read the keystore. Raises: KeyStoreError when missing or corrupt."""
        ...


class Keyring:
    """Holds the current KeySet; a failed reload still applies the new states and shouts."""

    def __init__(self, store: KeyStore) -> None:
        self._store = store
        self._keys: KeySet | None = None
        self._jwks_bytes = _EMPTY_JWKS
        self._published: frozenset[str] = frozenset()
        self._problem: str | None = None
        # One refresh at a time: they come from the folder watch, the keyring.json poll, the
        # failed-reload retry, automatic rotation and SIGHUP, and unserialised the last to
        # finish won, not the last to read: a reload that read the keys before `keys revoke`
        # put the revoked key back after the one that saw it (red team session 16).
        self._refreshing = asyncio.Lock()

    @property
    def loaded(self) -> bool:
        """True while an active key can sign (the keyring's part of readiness)."""
        return self._keys is not None and self._keys.active is not None

    @property
    def degraded(self) -> str | None:
        """Why the last reload failed (retry it), or None when every key loaded."""
        return self._problem

    @property
    def jwks_bytes(self) -> bytes:
        return self._jwks_bytes

    @property
    def records(self) -> tuple[KeyRecord, ...]:
        """Every key of the current KeySet with its state (for metrics: age and state per kid)."""
        return self._keys.records if self._keys is not None else ()

    def load(self) -> None:
        """Load the keystore for the first time. Raises: KeyStoreError (refuse to start)."""
        keys = self._store.load()
        if keys.active is None:
            raise KeyStoreError("keystore has no active key (run `sekisho keys init`)")
        self._install(keys, None)

    def reload(self) -> bool:
        """Reload after a change; on failure apply what the records still say and log why."""
        return self._install(*self._read())

    async def refresh(self) -> bool:
        """`reload` with the keystore read in a worker thread, so the event loop keeps serving;
        after the refresh in progress, if any, so the last to read installs last."""
        async with self._refreshing:
            keys, problem = await asyncio.to_thread(self._read)
            return self._install(keys, problem)

    def publishes(self, kid: str) -> bool:
        """Whether `kid` is in the JWKS now: a token it signed still verifies downstream (a
        revoked kid is gone at once; a retired one once its tokens have expired)."""
        return kid in self._published

    def signing_key(self) -> tuple[KeyRecord, Signer]:
        """The active key. Raises: TemporarilyUnavailableError when there is none."""
        active = self._keys.active if self._keys else None
        if active is None:
            raise TemporarilyUnavailableError(
                "no signing key is available",
                log_detail=f"keyring has no active key: {self._problem or 'none configured'}",
            )
        return active

    def published_algorithms(self) -> list[str]:
        """Sorted JWS algorithms of the published keys: those of the JWKS (a key that did not
        load is not published, and its algorithm is not advertised)."""
        if self._keys is None:
            return []
        keys = self._keys
        return sorted({r.alg for r in keys.records if r.published and r.kid in keys.signers})

    def _read(self) -> tuple[KeySet, str | None]:
        try:
            return self._store.load(), None
        except KeyLoadError as exc:  # states known: the keys that loaded, under the new states
            return exc.partial, str(exc)
        except KeyStatesUnreachableError as exc:
            return self._keys or NO_KEYS, f"key states unreachable, last good keys kept: {exc}"
        except KeyStoreError as exc:
            return NO_KEYS, f"key states unknown, nothing signs or is published: {exc}"

    def _install(self, keys: KeySet, problem: str | None) -> bool:
        if problem is None and keys.active is None:
            problem = "keystore has no active key"
        unchanged = (
            self._keys is not None
            and self._keys.records == keys.records
            and self._keys.signers.keys() == keys.signers.keys()
        )
        self._keys = keys
        self._jwks_bytes = json.dumps(keys.jwks(), separators=(",", ":")).encode()
        self._published = frozenset(
            r.kid for r in keys.records if r.published and r.kid in keys.signers
        )
        published = {r.kid: r.state.value for r in keys.records if r.kid in keys.signers}
        if problem is not None:
            self._problem = problem
            log.error(
                "keyring_reload_failed",
                extra={"error": problem, "signing": keys.active is not None, "keys": published},
            )
            return False
        if not unchanged or self._problem is not None:  # polling (KMS) reloads often
            log.info("keyring_loaded", extra={"keys": published})
        self._problem = None
        return True
