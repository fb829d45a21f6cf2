"""The background loops of a running service: JWKS refresh, key pickup and rotation, policy watch.

Each loop logs, counts (loops.py, sekisho_background_failures_total) and goes on after a failure;
service.py spawns them.
"""

import logging
from collections.abc import Coroutine

from sekisho.clock import Clock
from sekisho.config import Settings
from sekisho.keystores import build_key_manager
from sekisho.loops import Loop, LoopFailures
from sekisho.policy.engine import PolicyRuntime, reload_if_changed
from sekisho.reload import PolledFile, poll_file, poll_forever, retry_with_backoff, watch_directory
from sekisho.signing.filestore import KEYRING_FILE, is_scratch_file
from sekisho.signing.keyring import Keyring
from sekisho.signing.manager import ManagedKeyStore
from sekisho.signing.rotation import AutoRotator, check_interval, rotate_forever
from sekisho.verify.jwks import JwksCache

log = logging.getLogger(__name__)
JWKS_REFRESH = Loop("jwks_refresh", "jwks_refresh_crashed", log)


def key_tasks(
    settings: Settings,
    store: ManagedKeyStore,
    keyring: Keyring,
    clock: Clock,
    failures: LoopFailures,
) -> list[Coroutine[None, None, None]]:
    """Pick up keystore changes (watch the folder, or poll KMS) and rotate on schedule."""
    keys = settings.keys
    tasks: list[Coroutine[None, None, None]] = []
    if keys.watch and keys.backend == "kms":
        tasks.append(poll_forever(keyring.refresh, keys.poll_seconds, "keys", failures))
    elif keys.watch:
        # The keyring loaded first thing at start, seconds before this watch begins (policy,
        # the status store and the listeners start in between), and the keyring.json poll below
        # takes its first look now: a `keys revoke` in between was seen by neither, and the
        # revoked key stayed published and signing here. catch_up reads the keys once the watch
        # has begun (unchanged keys install silently).
        tasks.append(
            watch_directory(
                keys.dir, keyring.refresh, "keys", failures, ignore=is_scratch_file, catch_up=True
            )
        )
        # Replicas may share the folder over NFS, where a change another host wrote raises no
        # event here: keyring.json, every change's commit point, is also read every poll_seconds
        # (a replica kept publishing a revoked key until restarted; red team session 15).
        keyring_file = PolledFile(keys.dir / KEYRING_FILE)
        tasks.append(poll_file(keyring_file, keyring.refresh, keys.poll_seconds, "keys", failures))
    # A failed reload (unreadable key file, KMS Decrypt error) is retried with backoff.
    tasks.append(
        retry_with_backoff(
            keyring.refresh,
            lambda: keyring.degraded,
            "keys",
            failures,
            max_seconds=keys.retry_max_seconds,
        )
    )
    if keys.rotation_period:
        rotator = AutoRotator(build_key_manager(settings, store, clock), keyring.refresh)
        tasks.append(rotate_forever(rotator, check_interval(keys.rotation_period), failures))
    return tasks


def policy_watch(
    settings: Settings, policy: PolicyRuntime, failures: LoopFailures, what: str = "policy"
) -> Coroutine[None, None, None] | None:
    """Reload on changes of the policy folder, or of a bundle file's folder. The policy loaded
    seconds before the watch begins (keys, then policy, the status store and the listeners):
    once it has begun, it reloads if the folder changed meanwhile, and only then (catch-up)."""

    def catch_up() -> Coroutine[None, None, bool]:
        return reload_if_changed(policy)

    if not settings.policy.watch:
        return None
    if settings.policy.reads_folder:
        folder = settings.policy.path
    elif settings.policy.bundle_file is not None:
        folder, what = settings.policy.bundle_file.parent, f"{what} bundle"
    else:
        return None
    return watch_directory(folder, policy.folder_changed, what, failures, catch_up=catch_up)


async def refresh_forever(cache: JwksCache, interval: float, failures: LoopFailures) -> None:
    """Refresh an IdP's JWKS every `interval` seconds (sooner after a failed fetch)."""
    await failures.repeat(JWKS_REFRESH, cache.refresh, lambda: cache.next_refresh_in(interval))
