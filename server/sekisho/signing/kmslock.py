"""A cross-host lock for the `kms` keystore: alias `alias/<prefix>/lock`, with a lease.

KMS has no locks, but CreateAlias is an atomic create-if-absent, so whoever creates the alias
holds the lock. The holder writes its lease expiry as the tag `sekisho:lock` on the key the alias
points to, and removes both when done. A contender that finds an expired lease (a crashed
holder), or a lock alias that stayed without a lease for a whole lease period, deletes the alias
and tries again. Two contenders breaking the same stale lock at once could both proceed; a state
change of an existing key is a CreateAlias that fails if another process made the same change
first, so it is refused rather than applied twice (at worst one extra `next` key is created).
"""

import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator

from sekisho.clock import Clock
from sekisho.errors import KeyStoreError
from sekisho.signing.filestore import KeyStoreLockedError
from sekisho.signing.kms_client import KmsAliasExistsError, KmsClient, KmsError

log = logging.getLogger(__name__)

TAG = "sekisho:"
LEASE_TAG = TAG + "lock"
LOCK_LEASE_SECONDS = 60


class KmsAliasLock:
    """One lock alias; `held` is a context manager."""

    def __init__(
        self,
        client: KmsClient,
        name: str,
        clock: Clock,
        rng: random.Random,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # The lease expiry is wall time (`clock`, shared with other hosts through the tag); the
        # wait and the "alias without a lease" timer are this process's own (`monotonic`).
        self._client = client
        self._name = name
        self._clock = clock
        self._rng = rng
        self._monotonic = monotonic
        self._sleep = sleep

    @contextlib.contextmanager
    def held(self, target_key_id: str, wait_seconds: float) -> Iterator[None]:
        """Raises: KeyStoreLockedError after wait_seconds, KeyStoreError when KMS fails."""
        try:
            self._acquire(target_key_id, wait_seconds)
        except KmsError as exc:
            raise KeyStoreError(f"cannot take the KMS keystore lock: {exc}") from exc
        try:
            yield
        finally:
            self._release(target_key_id)

    def _acquire(self, target: str, wait_seconds: float) -> None:
        deadline = self._monotonic() + wait_seconds
        untagged_since: float | None = None
        while not self._try_create(target):
            holder = next(
                (a.key_id for a in self._client.list_aliases() if a.name == self._name), None
            )
            if holder is None:
                continue  # released in the meantime
            until = self._lease(holder)
            if until is None:  # taken a moment ago (tag not written yet), or the taker crashed
                untagged_since = untagged_since or self._monotonic()
            expired = until is not None and until < self._clock.now()
            stuck = (
                untagged_since is not None
                and self._monotonic() - untagged_since > LOCK_LEASE_SECONDS
            )
            if expired or stuck:
                log.warning(
                    "keystore_lock_broken", extra={"alias": self._name, "lease_until": until}
                )
                with contextlib.suppress(KmsError):
                    self._client.delete_alias(self._name)
                continue
            if self._monotonic() >= deadline:
                raise KeyStoreLockedError(
                    f"the keys under {self._name.rsplit('/', 1)[0]}/ are locked by another "
                    f"sekisho process (lease until {until}); try again later"
                )
            self._sleep(0.1 + self._rng.uniform(0, 0.1))

    def _try_create(self, target: str) -> bool:
        try:
            self._client.create_alias(self._name, target)
        except KmsAliasExistsError:
            return False
        expires = int(self._clock.now()) + LOCK_LEASE_SECONDS
        self._client.tag(target, {LEASE_TAG: f"{uuid.uuid4().hex}:{expires}"})
        return True

    def _lease(self, key_id: str) -> int | None:
        value = self._client.list_tags(key_id).get(LEASE_TAG, "")
        _, _, until = value.partition(":")
        return int(until) if until.isdigit() else None

    def _release(self, target: str) -> None:
        try:
            self._client.untag(target, [LEASE_TAG])
            self._client.delete_alias(self._name)
        except KmsError:
            log.exception("keystore_lock_release_failed", extra={"alias": self._name})
