"""`[policy] bundle_file` / `bundle_url`: the embedded engine serving an OPA bundle built by
`opa build -t wasm` (or `sekisho policy build`), so a production host needs no opa binary
(docs/operators.md, "Policy bundles").

A file is read at start and whenever its folder changes. A URL is polled the way OPA polls a bundle
service: a random delay in [min, max] seconds between polls, `If-None-Match` with the last ETag
(304 = unchanged; a 304 to a poll without one is a failed poll), and after a failure a retry delay
that doubles from 0.1 s up to the max. A new bundle is verified (when a key is configured),
compiled, loaded and self-tested off the event loop before it replaces the last good one; a bundle
that fails is logged (`policy_bundle_rejected`; a shadow bundle's events have their own names,
LoadEvents) and the last good keeps serving. While the server serves the rejected bundle, a poll
sends its ETag (304: unchanged) and does not load its bytes again (a server without ETags) until
it is due to be checked again (REJECTED_RECHECK); each such poll is a failed one, counted
`rejected` but not logged. A 200 whose body is the bundle in force (a server that sends no ETag,
such as `python -m http.server`, or a new ETag for the same bytes) changes nothing: it is not
loaded again, and the caches are not emptied.
"""

import asyncio
import contextlib
import hashlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from sekisho.backoff import Backoff
from sekisho.clock import Clock, SystemClock
from sekisho.errors import PolicyLoadError
from sekisho.loops import Loop, LoopFailures
from sekisho.policy.load_events import LIVE_LOAD_EVENTS, LoadEvents
from sekisho.policy.wasm.bundle import check_json_values, json_value_limit, read_bundle
from sekisho.policy.wasm.bundle_status import (
    DOWNLOAD_FAILED,
    POLL_FAILED,
    REJECTED,
    BundleStatus,
)
from sekisho.policy.wasm.compiler import entrypoint_of
from sekisho.policy.wasm.download import BundleDownloader, BundleFetchError
from sekisho.policy.wasm.policy import LoadedPolicy, WasmLimits, compile_module, encode_json
from sekisho.policy.wasm.runtime import WasmRuntime
from sekisho.policy.wasm.serving import WasmServing, self_test
from sekisho.policy.wasm.signing import BundleVerifier

log = logging.getLogger(__name__)
FIRST_RETRY_SECONDS = 0.1
# How long a rejected bundle's ETag and digest stand for it: then it is downloaded and checked
# once more, since a load can fail for the host's reasons (a self-test past eval_timeout_seconds
# on a loaded machine, memory the host would not map), and a good bundle refused that way (one
# carrying a deny-list entry, say) must not wait long. 30 s after the first rejection, doubling
# up to 600 s while the same bytes keep failing. OPA downloads it at every poll instead (it
# resets its downloader's ETag after a failed activation: open-policy-agent/opa#2220, #3527).
REJECTED_RECHECK_FIRST_SECONDS = 30.0
REJECTED_RECHECK_MAX_SECONDS = 600.0
REJECTED_RECHECK = Backoff(REJECTED_RECHECK_FIRST_SECONDS, REJECTED_RECHECK_MAX_SECONDS)


@dataclass(frozen=True, slots=True)
class _Rejected:
    """The bundle the server last sent that did not load, until `recheck_at` (clock seconds);
    `rechecks`: how many times the same bytes were loaded and refused again."""

    etag: str
    digest: str
    recheck_at: float
    rechecks: int = 0


@dataclass(frozen=True, slots=True)
class Polling:
    """OPA's bundle polling: min/max delay between polls (seconds; `[policy]
    bundle_poll_min_seconds`, `bundle_poll_max_seconds`)."""

    min_delay: float
    max_delay: float

    def next_delay(self, failures: int, rng: random.Random) -> float:
        if failures == 0:
            return rng.uniform(self.min_delay, self.max_delay)
        return Backoff(FIRST_RETRY_SECONDS, self.max_delay).ceiling(failures - 1)


class BundlePolicyEngine(WasmServing):
    """PolicyRuntime over an OPA Wasm bundle from a file or a bundle server."""

    def __init__(
        self,
        query: str,
        limits: WasmLimits,
        *,
        failures: LoopFailures,
        polling: Polling,
        file: Path | None = None,
        downloader: BundleDownloader | None = None,
        verifier: BundleVerifier | None = None,
        runtime: WasmRuntime | None = None,
        clock: Clock | None = None,
        events: LoadEvents = LIVE_LOAD_EVENTS,
    ) -> None:
        """`events`: what its bundles' loads are logged as (a shadow bundle's have their own
        names: `shadow_policy_bundle_loaded` …)."""
        super().__init__(limits, runtime)
        self._entrypoint = entrypoint_of(query)
        self._file = file
        self._downloader = downloader
        self._polling = polling
        self._verifier = verifier
        self._failures = failures
        self._etag = ""
        self._digest = ""
        self._rejected: _Rejected | None = None
        # Named in every bundle event: which file or server (the live and a [policy.shadow]
        # bundle's engines log under their own names, `events`).
        self._source = str(file) if file is not None else downloader.location if downloader else ""
        self._events = events
        # Its unforeseen failures, counted and logged under the live or the shadow's names.
        self._poll_loop = Loop(events.bundle_poll, events.bundle_poll_failed, log)
        self._poller: asyncio.Task[None] | None = None
        self._rng = random.SystemRandom()
        self._activated: list[Callable[[], None]] = []
        # One load at a time (refresh, folder_changed): see refresh().
        self._loading = asyncio.Lock()
        self._clock = clock or SystemClock()
        self.status = BundleStatus(self._clock)

    def on_policy_activated(self, listener: Callable[[], None]) -> None:
        """Call `listener` (on the event loop) whenever a bundle from the server is in force, so
        the caches flush: the poller activates bundles outside folder_changed, and without this
        a withdrawn grant or a deny-list entry would wait for the cached decisions' TTLs."""
        self._activated.append(listener)

    async def start(self) -> None:
        """A file must load (Raises: PolicyLoadError); a server is polled in the background and
        the engine is not ready until a bundle loaded."""
        if self._file is not None:
            await asyncio.to_thread(self._load_file)
            return
        # A first poll that failed is a failure like any other: retried from 0.1 s, not after a
        # whole poll interval with the replica not ready.
        failures = 0 if await self._poll() else 1
        self._poller = asyncio.create_task(self._poll_forever(failures))

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._downloader is not None:
            await self._downloader.close()
        await super().close()

    async def folder_changed(self) -> bool:
        """The bundle file's folder changed, or SIGHUP: load the file again (poll the server
        now), keeping the last good."""
        if self._file is None:
            return await self.refresh()
        async with self._loading:
            return await self._reload_file()

    async def _reload_file(self) -> bool:
        try:
            await asyncio.to_thread(self._load_file)
        except PolicyLoadError as exc:
            extra = {"source": self._source, "error": str(exc)}
            log.error(self._events.bundle_rejected, extra=extra)
            self.status.failed(REJECTED)
            return False
        return True

    async def changed_since_load(self) -> bool:
        """Whether the bundle file's bytes differ from the bundle in force (PolicyRuntime);
        False for a bundle server (the poller reads it)."""
        if self._file is None:
            return False
        return await asyncio.to_thread(self._file_changed)

    def _file_changed(self) -> bool:
        assert self._file is not None
        try:
            raw = self._file.read_bytes()
        except OSError:
            return True  # it was read at start: the reload logs why it is not now
        return hashlib.sha256(raw).hexdigest() != self._digest

    def _load_file(self) -> None:
        assert self._file is not None  # only called for a file source
        try:
            raw = self._file.read_bytes()
        except OSError as exc:
            raise PolicyLoadError(f"bundle {self._file}: {exc}") from exc
        digest = hashlib.sha256(raw).hexdigest()
        if digest != self._digest:
            self._activate(self.load(raw), digest, version=digest)

    async def refresh(self) -> bool:
        """One poll of the bundle server: True when the served bundle is current.

        One at a time: the poller and a SIGHUP (folder_changed) both poll, each loads in a
        thread, and unserialised the last to finish won: a poll that fetched a bundle slow to
        load put it in force after the newer one a SIGHUP's poll fetched meanwhile had been,
        and the older policy served until the next poll. Serialised, the later poll asks with
        the ETag the earlier one left, so the last applied is the newest served."""
        async with self._loading:
            return await self._refresh()

    async def _refresh(self) -> bool:
        assert self._downloader is not None  # only called for a server source
        rejected = self._standing_rejection()
        asks_rejected = rejected is not None and rejected.etag != ""
        etag = rejected.etag if rejected is not None and asks_rejected else self._etag
        try:
            fetched = await self._downloader.fetch(etag)
        except BundleFetchError as exc:
            extra = {"source": self._source, "error": str(exc)}
            log.warning(self._events.bundle_download_failed, extra=extra)
            self.status.failed(DOWNLOAD_FAILED)
            return False
        if fetched.body is None:  # 304: still the bundle whose ETag was sent
            return self._still_rejected() if asks_rejected else self._current(etag)
        digest = hashlib.sha256(fetched.body).hexdigest()
        if digest == self._digest:  # the bundle in force: reloading it would only flush caches
            return self._current(fetched.etag)
        if rejected is not None and digest == rejected.digest:  # a new ETag, or none, for it
            self._rejected = replace(rejected, etag=fetched.etag)
            return self._still_rejected()
        try:
            policy = await asyncio.to_thread(self.load, fetched.body)
        except PolicyLoadError as exc:
            log.error(
                self._events.bundle_rejected,
                extra={"source": self._source, "error": str(exc), "etag": fetched.etag},
            )
            self._reject(fetched.etag, digest)
            return self._still_rejected()
        self._activate(policy, digest, version=fetched.etag)
        self._current(fetched.etag)
        for listener in self._activated:
            listener()
        return True

    def _standing_rejection(self) -> _Rejected | None:
        """The rejected bundle a poll may still take as refused without loading it again."""
        rejected = self._rejected
        if rejected is not None and self._clock.now() >= rejected.recheck_at:
            return None
        return rejected

    def _reject(self, etag: str, digest: str) -> None:
        """Remember a bundle that did not load; the same bytes again wait longer to be checked."""
        before = self._rejected
        rechecks = before.rechecks + 1 if before is not None and before.digest == digest else 0
        recheck_at = self._clock.now() + REJECTED_RECHECK.ceiling(rechecks)
        self._rejected = _Rejected(etag, digest, recheck_at, rechecks)

    def _current(self, etag: str) -> bool:
        """The server answered with the bundle in force."""
        self._etag, self._rejected = etag, None
        self.status.polled()
        return True

    def _still_rejected(self) -> bool:
        """The server answered with a bundle that did not load: a failed poll, counted as
        `rejected` (so the alert on it holds while the server serves it), logged only when it
        was loaded (when first seen, then at each REJECTED_RECHECK)."""
        self.status.failed(REJECTED)
        return False

    async def _poll_forever(self, failures: int) -> None:
        while True:
            await asyncio.sleep(self._polling.next_delay(failures, self._rng))
            failures = 0 if await self._poll() else failures + 1

    async def _poll(self) -> bool:
        """refresh(), where a failure it did not foresee is one failed poll: the poller is the
        only way a new bundle (a deny-list entry, a withdrawn grant) reaches this replica, so one
        bad bundle or response must not end it (before: a RecursionError from a deeply nested
        JSON file ended the task silently, and the replica kept its policy for good)."""
        try:
            return await self.refresh()
        except Exception:  # a background loop: log, count and go on (the last good serves)
            self._failures.failed(self._poll_loop)
            self.status.failed(POLL_FAILED)
            return False

    def load(self, raw: bytes) -> LoadedPolicy:
        """Verify, compile, load and self-test a bundle (blocking). Raises: PolicyLoadError."""
        contents = read_bundle(raw, check=self._check)
        compiled = compile_module(
            self._runtime, contents.wasm, self._entrypoint, self._limits, self._clock
        )
        policy = LoadedPolicy(self._runtime, compiled, encode_json(contents.data), self._limits)
        self_test(policy)
        policy.revision = str(contents.manifest.get("revision", ""))
        return policy

    def _check(self, files: dict[str, bytes]) -> None:
        """Before any JSON of the bundle is parsed: its bound in values, then its signature, so
        a bundle that does not verify costs no parse of its data (red team session 13)."""
        check_json_values(files, json_value_limit(self._limits.memory_limit_bytes))
        if self._verifier is not None:
            self._verifier.verify(files)

    def _activate(self, policy: LoadedPolicy, digest: str, *, version: str) -> None:
        """`digest`: SHA-256 of the bundle's bytes; `version`: what the log calls it (the
        server's ETag, or the file's digest)."""
        self._policy = policy
        self._digest = digest
        self.status.activated(policy.revision)
        log.info(
            self._events.bundle_loaded,
            extra={
                "source": self._source,
                "revision": policy.revision,
                "version": version,
                "entrypoint": self._entrypoint,
            },
        )
