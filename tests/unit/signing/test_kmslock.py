"""The KMS keystore lock (signing/kmslock.py) against an in-memory KMS of the calls it makes: a
lease that expired is broken, a lock alias left without a lease for a whole lease period (its
taker crashed between CreateAlias and the tag) is broken, and a live lease is waited for, then
refused. Time is injected (wall clock for leases, monotonic and sleep for waiting): no test waits
the real 60 s."""

import random
from collections.abc import Mapping

import pytest
from sekisho.signing.filestore import KeyStoreLockedError
from sekisho.signing.kms_client import KmsAlias, KmsAliasExistsError
from sekisho.signing.kmslock import LEASE_TAG, LOCK_LEASE_SECONDS, KmsAliasLock

from tests.fakes.clock import FakeClock

NAME = "alias/sekisho/lock"


class MemoryKms:
    """The alias and tag calls of KmsClient, in memory."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}
        self.tags: dict[str, dict[str, str]] = {}

    def list_aliases(self) -> list[KmsAlias]:
        return [KmsAlias(name, key) for name, key in self.aliases.items()]

    def create_alias(self, name: str, key_id: str) -> None:
        if name in self.aliases:
            raise KmsAliasExistsError(
                "CreateAlias", "AlreadyExistsException", name, retryable=False
            )
        self.aliases[name] = key_id

    def delete_alias(self, name: str) -> None:
        self.aliases.pop(name, None)

    def list_tags(self, key_id: str) -> dict[str, str]:
        return dict(self.tags.get(key_id, {}))

    def tag(self, key_id: str, tags: Mapping[str, str]) -> None:
        self.tags.setdefault(key_id, {}).update(tags)

    def untag(self, key_id: str, keys: list[str]) -> None:
        for key in keys:
            self.tags.get(key_id, {}).pop(key, None)


class Waiting:
    """Monotonic time that only moves when the lock sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def _lock(kms: MemoryKms, wall: FakeClock, waiting: Waiting) -> KmsAliasLock:
    return KmsAliasLock(
        kms,  # type: ignore[arg-type]
        NAME,
        wall,
        random.Random(1),  # noqa: S311 - jitter
        monotonic=waiting.monotonic,
        sleep=waiting.sleep,
    )


def test_a_free_lock_is_taken_with_a_lease_and_given_back() -> None:
    kms, wall, waiting = MemoryKms(), FakeClock(1_800_000_000), Waiting()
    with _lock(kms, wall, waiting).held("key-mine", wait_seconds=5):
        assert kms.aliases == {NAME: "key-mine"}
        assert kms.tags["key-mine"][LEASE_TAG].endswith(f":{1_800_000_000 + LOCK_LEASE_SECONDS}")
    assert kms.aliases == {} and LEASE_TAG not in kms.tags["key-mine"]
    assert waiting.slept == 0


def test_an_expired_lease_is_broken_at_once() -> None:
    kms, wall, waiting = MemoryKms(), FakeClock(1_800_000_000), Waiting()
    kms.aliases[NAME] = "key-crashed"
    kms.tags["key-crashed"] = {LEASE_TAG: f"x:{1_800_000_000 - 1}"}
    with _lock(kms, wall, waiting).held("key-mine", wait_seconds=5):
        assert kms.aliases[NAME] == "key-mine"
    assert waiting.slept == 0


def test_a_lock_alias_without_a_lease_for_a_whole_lease_period_is_broken() -> None:
    kms, wall, waiting = MemoryKms(), FakeClock(1_800_000_000), Waiting()
    kms.aliases[NAME] = "key-crashed"  # taken, then the taker died before tagging
    with _lock(kms, wall, waiting).held("key-mine", wait_seconds=LOCK_LEASE_SECONDS * 2):
        assert kms.aliases[NAME] == "key-mine"
    assert LOCK_LEASE_SECONDS < waiting.slept < LOCK_LEASE_SECONDS + 1


def test_a_lock_alias_without_a_lease_is_not_broken_before_the_lease_period() -> None:
    kms, wall, waiting = MemoryKms(), FakeClock(1_800_000_000), Waiting()
    kms.aliases[NAME] = "key-other"  # its taker may be about to tag it
    lock = _lock(kms, wall, waiting)
    with pytest.raises(KeyStoreLockedError), lock.held("key-mine", LOCK_LEASE_SECONDS / 2):
        pass
    assert kms.aliases == {NAME: "key-other"}


def test_a_live_lease_is_waited_for_then_refused() -> None:
    kms, wall, waiting = MemoryKms(), FakeClock(1_800_000_000), Waiting()
    kms.aliases[NAME] = "key-other"
    kms.tags["key-other"] = {LEASE_TAG: f"x:{1_800_000_000 + LOCK_LEASE_SECONDS}"}
    lock = _lock(kms, wall, waiting)
    refused = pytest.raises(KeyStoreLockedError, match="locked by another sekisho process")
    with refused, lock.held("key-mine", wait_seconds=3):
        pass
    assert 3 <= waiting.slept < 3.3 and kms.aliases == {NAME: "key-other"}
