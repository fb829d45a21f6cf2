"""Builds the status-list components of one worker from [status_list] (the composition root's
helper, so service.py only plugs them in): allocation, the revocation gate, the served lists and
their background loops. Wiring, kept out of the `status` package so it depends on neither the
HTTP layer nor the config models."""

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from sekisho.clock import Clock
from sekisho.config import Settings, StatusListConfig
from sekisho.http.statuslist import STATUS_LISTS_PATH, StatusListEndpoint
from sekisho.loops import LoopFailures
from sekisho.signing.keyring import Keyring
from sekisho.status.issuer import AllocationPolicy, StatusListIssuer
from sekisho.status.listtoken import ListTiming, StatusListTokens
from sekisho.status.revocations import RevocationGate
from sekisho.status.store import StatusStore, StatusStoreError
from sekisho.status_stores import build_status_store

log = logging.getLogger(__name__)

MIN_STALE_SECONDS = 2.0


@dataclass
class StatusRuntime:
    """One worker's status-list pieces: allocation, revocation gate, served lists."""

    config: StatusListConfig
    store: StatusStore
    issuer: StatusListIssuer
    gate: RevocationGate
    endpoint: StatusListEndpoint

    async def load(self) -> None:
        """Load the revocations in force, before the listeners take calls: until the gate has a
        view, every exchange fails closed (`temporarily_unavailable`), and with several workers
        the kernel hands connections to a worker as soon as it listens. A failure is logged;
        exchanges then fail closed until the refresh loop succeeds."""
        try:
            await self.gate.refresh()
        except StatusStoreError:
            log.exception("revocations_refresh_failed")

    async def launch(self, tasks: list["asyncio.Task[None]"], failures: LoopFailures) -> None:
        """Start the flush and refresh loops into `tasks`, their failures counted by `failures`
        (after `load`). Its owner closes it (`close`)."""
        loops = (
            self.issuer.flush_forever(self.config.flush_interval_seconds, failures),
            self.gate.refresh_forever(self.config.poll_seconds, failures),
        )
        tasks.extend(asyncio.create_task(loop) for loop in loops)

    async def close(self) -> None:
        """Write the last records, then close the store."""
        with contextlib.suppress(StatusStoreError):
            await self.issuer.flush()
        await asyncio.to_thread(self.store.close)


def build_status_runtime(
    settings: Settings, keyring: Keyring, clock: Clock
) -> StatusRuntime | None:
    """The status-list runtime, or None when [status_list] is disabled."""
    config = settings.status_list
    if not config.enabled:
        return None
    store = build_status_store(config)
    base_uri = settings.server.issuer + STATUS_LISTS_PATH
    policy = AllocationPolicy(
        list_size=config.list_size,
        lease_size=config.lease_size,
        lease_seconds=config.lease_seconds,
        max_token_lifetime=settings.tokens.max_lifetime_seconds + settings.trust.leeway_seconds,
    )
    tokens = StatusListTokens(
        store,
        keyring,
        clock,
        issuer=settings.server.issuer,
        base_uri=base_uri,
        bits=config.bits,
        timing=ListTiming(config.ttl_seconds, config.lifetime_seconds),
    )
    return StatusRuntime(
        config=config,
        store=store,
        issuer=StatusListIssuer(store, clock, base_uri=base_uri, policy=policy),
        gate=RevocationGate(
            store, clock, max_stale_seconds=max(MIN_STALE_SECONDS, 4 * config.poll_seconds)
        ),
        endpoint=StatusListEndpoint(tokens, clock),
    )
