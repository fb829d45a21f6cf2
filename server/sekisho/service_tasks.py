"""The background loops of a running service: JWKS refresh, key pickup and rotation, policy watch.

Each loop logs and goes on after a failure (reload.py, rotation.py); service.py spawns them.
"""

import asyncio
import logging
from collections.abc import Coroutine

from sekisho.clock import Clock
from sekisho.config import Settings
from sekisho.keystores import build_key_manager
from sekisho.policy.engine import PolicyRuntime
from sekisho.reload import poll_forever, retry_with_backoff, watch_directory
from sekisho.signing.keyring import Keyring
from sekisho.signing.manager import ManagedKeyStore
from sekisho.signing.rotation import AutoRotator, check_interval, rotate_forever
from sekisho.verify.jwks import JwksCache

log = logging.getLogger(__name__)


def key_tasks(
    settings: Settings, store: ManagedKeyStore, keyring: Keyring, clock: Clock
) -> list[Coroutine[None, None, None]]:
    """Pick up keystore changes (watch the folder, or poll KMS) and rotate on schedule."""
    keys = settings.keys
    tasks: list[Coroutine[None, None, None]] = []
    if keys.watch and keys.backend == "kms":
        tasks.append(poll_forever(keyring.refresh, keys.poll_seconds, "keys"))
    elif keys.watch:
        tasks.append(watch_directory(keys.dir, keyring.refresh, "keys"))
    # A failed reload (unreadable key file, KMS Decrypt error) is retried with backoff.
    tasks.append(
        retry_with_backoff(
            keyring.refresh, lambda: keyring.degraded, "keys", max_seconds=keys.retry_max_seconds
        )
    )
    if keys.rotation_period:
        rotator = AutoRotator(build_key_manager(settings, store, clock), keyring.refresh)
        tasks.append(rotate_forever(rotator, check_interval(keys.rotation_period)))
    return tasks


def policy_watch(
    settings: Settings, policy: PolicyRuntime, what: str = "policy"
) -> Coroutine[None, None, None] | None:
    """Reload on changes of the policy folder, or of a bundle file's folder."""
    if settings.policy.watch and settings.policy.reads_folder:
        return watch_directory(settings.policy.path, policy.folder_changed, what)
    if settings.policy.watch and settings.policy.bundle_file is not None:
        bundle_folder = settings.policy.bundle_file.parent
        return watch_directory(bundle_folder, policy.folder_changed, f"{what} bundle")
    return None


async def refresh_forever(cache: JwksCache, interval: float) -> None:
    """Refresh an IdP's JWKS every `interval` seconds (sooner after a failed fetch)."""
    while True:
        try:
            await cache.refresh()
        except Exception:  # a background loop: log and go on
            log.exception("jwks_refresh_crashed")
        await asyncio.sleep(cache.next_refresh_in(interval))
