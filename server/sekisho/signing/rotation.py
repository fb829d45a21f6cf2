"""Automatic rotation (`[keys] rotation_period`): the service rotates its own keys.

Every replica checks on a timer, but a check runs under the keystore lock and re-reads the keys
inside it, so one replica acts at a time and the others find the work done (a replica that
cannot get the lock at once skips that check). The rules are lifecycle.py's, unforced.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sekisho.errors import KeyStoreError
from sekisho.loops import Loop, LoopFailures
from sekisho.signing.audit import Actor
from sekisho.signing.filestore import KeyStoreLockedError
from sekisho.signing.lifecycle import Transition
from sekisho.signing.manager import KeyManager

log = logging.getLogger(__name__)
KEY_ROTATION = Loop("key_rotation", "key_rotation_crashed", log)

SERVICE_ACTOR = Actor(operator="sekisho-service", reason="keys.rotation_period", source="service")


class AutoRotator:
    """One rotation check at a time; changes are logged and the keyring reloaded at once."""

    def __init__(
        self,
        manager: KeyManager,
        on_change: Callable[[], Awaitable[object]],
        actor: Actor = SERVICE_ACTOR,
    ) -> None:
        self._manager = manager
        self._on_change = on_change
        self._actor = actor

    async def check(self) -> Transition | None:
        """Run auto_rotate in a worker thread (keystore I/O and KMS calls block)."""
        try:
            transition = await asyncio.to_thread(self._manager.auto_rotate, self._actor)
        except KeyStoreLockedError:
            log.info("key_rotation_skipped", extra={"why": "another process holds the lock"})
            return None
        except KeyStoreError as exc:
            log.error("key_rotation_failed", extra={"error": str(exc)})
            return None
        for change in transition.changes:
            log.info(
                "key_rotated",
                extra={
                    "action": change.action.value,
                    "kid": change.kid,
                    "from_state": change.from_state.value if change.from_state else None,
                    "to_state": change.to_state.value,
                },
            )
        if transition.changes:
            await self._on_change()
        return transition


async def rotate_forever(rotator: AutoRotator, interval: float, failures: LoopFailures) -> None:
    """Check every `interval` seconds until cancelled (a check that raises is counted)."""
    await failures.repeat(KEY_ROTATION, rotator.check, lambda: interval)


def check_interval(rotation_period: int) -> float:
    """Often enough to act within 5 % of the period, never more than once a second or less than
    once a minute."""
    return min(60.0, max(1.0, rotation_period / 20))
