"""PolicyEngine over an OPA server (`[policy] engine = "opa"`).

Fails closed. OPA unreachable or slower than `opa_timeout_seconds` → TemporarilyUnavailableError
(UNAVAILABLE / temporarily_unavailable); an undefined, ill-typed or erroring decision → deny.
Until OPA answers the self-test (selftest.py) the engine is not ready: /readyz is 503 and every
exchange is UNAVAILABLE. A supervisor task re-runs the self-test every
`opa_check_interval_seconds`, over its own connection and with its own time budget (the longer of
the decision timeout and the check interval): an OPA busy answering decisions is slow to answer
the check too, and the check's answer must not be judged by one decision's budget.

A check OPA answers wrongly (the self-test fails, or OPA holds what was not published) makes the
engine not ready at once. A check OPA does not answer at all (down, or slower than the budget) is
a miss: the engine stays ready until MISSED_CHECKS_BEFORE_NOT_READY consecutive misses, because
one slow answer under load is not a dead OPA, and every decision still fails closed on its own
(an unanswered decision is UNAVAILABLE whatever the readiness).

With `manage = true` Sekisho owns OPA's copy of the policy folder: it publishes it at start, on
every change, and again whenever OPA has lost it (a restarted sidecar); an edit OPA rejects is
logged with OPA's compile errors and the last good policy is put back. Each check also compares
what OPA holds with what was published (integrity.py): a foreign or changed module, or edited
data, makes the engine not ready until it is republished (foreign modules deleted). With
`manage = false` OPA loads its own bundle and Sekisho only queries; each check also reads what OPA
records of its bundles (revision and ETag), and a change flushes the caches as a publish does: a
deny-list entry in a new bundle otherwise waited out each cached grant's cache_ttl_seconds, and
the gateway's cached tokens their expiry (red team session 15).
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sekisho.errors import PolicyLoadError, TemporarilyUnavailableError
from sekisho.identifiers import random_uuid
from sekisho.loops import Loop, LoopFailures
from sekisho.models import Decision
from sekisho.policy.decision import InvalidDecisionError, parse_decision
from sekisho.policy.load_events import LIVE_LOAD_EVENTS, LoadEvents
from sekisho.policy.opa.api import (
    OpaAnswer,
    OpaApi,
    OpaEvaluationError,
    OpaRejectedError,
    OpaUnavailableError,
)
from sekisho.policy.opa.gate import PublishGate
from sekisho.policy.opa.integrity import data_digest, data_drift, module_drift, our_packages
from sekisho.policy.opa.publisher import OpaPublisher, policy_roots
from sekisho.policy.selftest import check_self_test, self_test_input
from sekisho.policy.source import PolicySource, load_source, source_fingerprint
from sekisho.policy.wasm.compiler import entrypoint_of

log = logging.getLogger(__name__)
SUPERVISOR = Loop("opa_supervisor", "policy_supervisor_failed", log)

# Consecutive checks OPA did not answer before the engine is not ready (docs/operators.md).
MISSED_CHECKS_BEFORE_NOT_READY = 3
# manage = true: every this many checks (and whenever OPA's digest of the published data moves)
# the data is read back whole, foreign names included (integrity.py).
WHOLE_DATA_COMPARISON_EVERY = 10


class OpaPolicyEngine:
    """Decisions from OPA's REST API; in manage mode, also the publisher of the policy folder."""

    def __init__(
        self,
        api: OpaApi,
        root: Path,
        query: str,
        *,
        manage: bool,
        timeout_seconds: float,
        check_interval_seconds: float,
        failures: LoopFailures,
        events: LoadEvents = LIVE_LOAD_EVENTS,
    ) -> None:
        """`events`: what publishing the folder is logged as (the shadow policy's own names)."""
        self._api = api  # decisions
        # Checks and publishes: background work, bounded by a check interval, not a decision.
        self._supervisor_api = api.with_timeout(max(timeout_seconds, check_interval_seconds))
        self._path = entrypoint_of(query)
        self._publisher = OpaPublisher(self._supervisor_api, self._path)
        self._gate = PublishGate()
        self._root = root
        self._manage = manage
        self._timeout = timeout_seconds
        self._interval = check_interval_seconds
        self._failures = failures
        self._events = events
        self._ready = False
        self._missed = 0  # consecutive checks OPA did not answer
        self._verified_digest = ""  # OPA's digest of the data when it last matched whole
        self._since_whole = 0  # checks since the data was last compared whole
        self._good: PolicySource | None = None
        self._republish = manage  # OPA does not hold the folder yet
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._activated: list[Callable[[], None]] = []
        self._bundles: str | None = None  # manage = false: OPA's bundle record at the last check

    def on_policy_activated(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever a newly published policy is in force (caches flush)."""
        self._activated.append(listener)

    @property
    def ready(self) -> bool:
        return self._ready

    async def start(self) -> None:
        """Publish (manage) or self-test, then supervise. An unreachable OPA only means "not
        ready yet". Raises: PolicyLoadError when the folder is unreadable or OPA rejects it.
        """
        await self._api.open()
        await self._supervisor_api.open()
        try:
            await self._first_contact()
        except BaseException:
            await self._close_apis()
            raise
        self._task = asyncio.create_task(self._supervise())

    async def _first_contact(self) -> None:
        if not self._manage:
            await self.check()
            return
        source = await asyncio.to_thread(load_source, self._root)
        try:
            await self.publish(source)
        except OpaUnavailableError as exc:
            log.warning("opa_unavailable", extra={"url": self._api.url, "error": str(exc)})

    def reload(self) -> bool:
        """The policy folder changed: in manage mode the supervisor publishes it right away."""
        if self._manage:
            self._republish = True
            self._wake.set()
        return True

    async def folder_changed(self) -> bool:
        """reload(); the supervisor task does the publishing, serialised with its checks."""
        return self.reload()

    async def changed_since_load(self) -> bool:
        """manage = true: whether the folder holds another policy than the one last published
        (PolicyRuntime). False with manage = false (OPA loads its own bundles) or before a first
        publish (the supervisor's reads the folder as it is then)."""
        good = self._good
        if not self._manage or good is None:
            return False
        return await asyncio.to_thread(_differs, self._root, good)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close_apis()

    async def _close_apis(self) -> None:
        await self._supervisor_api.close()
        await self._api.close()

    # --- decisions ------------------------------------------------------------------------------

    async def evaluate(self, document: dict[str, Any]) -> OpaAnswer:
        """OPA's answer for `document`, within the timeout (waiting out a publish included).

        Raises: OpaUnavailableError, OpaEvaluationError.
        """
        try:
            async with asyncio.timeout(self._timeout), self._gate.reading():
                return await self._api.query(self._path, document)
        except TimeoutError as exc:
            raise OpaUnavailableError(f"no answer from OPA within {self._timeout} s") from exc

    async def evaluate_raw(self, document: dict[str, Any]) -> Any:
        """The undecoded decision (for the decision corpus). Raises: as evaluate()."""
        return (await self.evaluate(document)).result

    async def decide(self, document: dict[str, Any]) -> Decision:
        if not self._ready:
            raise TemporarilyUnavailableError(
                "the policy engine is not ready", log_detail="OPA has not passed the self-test"
            )
        try:
            answer = await self.evaluate(document)
        except OpaUnavailableError as exc:
            self._wake.set()  # let the supervisor re-check OPA now
            raise TemporarilyUnavailableError(
                "the policy engine is not available", log_detail=str(exc)
            ) from exc
        except OpaEvaluationError as exc:
            return _invalid(str(exc), random_uuid())
        decision_id = answer.decision_id or random_uuid()
        try:
            return parse_decision(answer.result, decision_id)
        except InvalidDecisionError as exc:
            if answer.result is None:
                self._wake.set()  # has OPA lost the policy (restarted)?
            return _invalid(str(exc), decision_id)

    # --- policy lifecycle -----------------------------------------------------------------------

    async def publish(self, source: PolicySource) -> None:
        """Write `source` to OPA and self-test it, with no decision taken meanwhile.

        Raises: PolicyLoadError (OPA rejected it or it failed the self-test; the last good
        policy is back in place), OpaUnavailableError (not ready until a publish succeeds).
        """
        async with self._gate.writing():
            try:
                await self._publisher.publish(source)
                await self._self_test()
            except OpaUnavailableError:
                self._republish = True
                self._set_ready(False, "OPA became unreachable while publishing")
                raise
            except (OpaRejectedError, PolicyLoadError) as exc:
                await self._restore_last_good()
                raise PolicyLoadError(f"OPA did not take the policy: {exc}") from exc
        self._good = source
        self._republish = False
        self._policy_activated()
        self._set_ready(True, "policy published")
        log.info(self._events.loaded, extra={"path": str(self._root), "opa_url": self._api.url})

    async def refresh(self) -> bool:
        """Publish the policy folder as it is now (or, if it does not load and OPA lost the
        policy, the last good one). False, logged, when the folder's policy is not in use."""
        fallback = False
        try:
            source = await asyncio.to_thread(load_source, self._root)
        except PolicyLoadError as exc:
            self._reload_failed(exc)
            if self._good is None or not self._republish:
                return False
            source, fallback = self._good, True
        try:
            await self.publish(source)
        except PolicyLoadError as exc:
            self._reload_failed(exc)
            return False
        except OpaUnavailableError as exc:
            # Retried every check interval; the transition to not ready was logged once.
            log.debug("opa_unavailable", extra={"url": self._api.url, "error": str(exc)})
            return False
        return not fallback

    def _reload_failed(self, exc: PolicyLoadError) -> None:
        log.error(self._events.reload_failed, extra={"path": str(self._root), "error": str(exc)})

    async def check(self) -> bool:
        """Run the self-test (and, manage = true, the comparison) against OPA now; sets `ready`:
        True when it passed, False at once when OPA answered wrongly, False after
        MISSED_CHECKS_BEFORE_NOT_READY consecutive checks OPA did not answer. Returns whether
        this check passed."""
        try:
            async with self._gate.reading():
                await self._self_test()
                await self._compare_with_published()
                await self._follow_bundles()
        except OpaUnavailableError as exc:
            self._missed_check(str(exc))
            return False
        except PolicyLoadError as exc:
            self._set_ready(False, str(exc))
            if self._manage:  # OPA no longer holds what Sekisho published: publish again
                self._republish = True
                self._wake.set()
            return False
        self._missed = 0
        self._set_ready(True, "self-test passed")
        return True

    def _missed_check(self, error: str) -> None:
        self._missed += 1
        extra = {"url": self._api.url, "missed": self._missed, "error": error}
        log.warning("opa_check_missed", extra=extra)
        if self._missed >= MISSED_CHECKS_BEFORE_NOT_READY:
            self._set_ready(False, f"OPA did not answer {self._missed} checks in a row: {error}")

    async def _supervise(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                if self._republish:
                    await self.refresh()
                else:
                    await self.check()
            except Exception:  # a background loop: log, count and go on
                self._failures.failed(SUPERVISOR)

    async def _follow_bundles(self) -> None:
        """manage = false: OPA activates bundles on its own. When its record of them (revision,
        ETag) differs from the last check's, a new policy or data is in force: flush. An OPA
        that does not answer this read (its authz policy refuses `data.system`, a proxy in
        front) is only queried, as before: the self-test alone decides readiness."""
        if self._manage:
            return
        try:
            record = await self._supervisor_api.bundles()
        except (OpaEvaluationError, OpaUnavailableError):
            return
        held = json.dumps(record, sort_keys=True)
        if held == self._bundles:
            return
        if self._bundles is not None:
            log.info("opa_bundle_changed", extra={"url": self._api.url})
            self._policy_activated()
        self._bundles = held
        if unversioned := _unversioned_bundles(record):
            # OPA's record of such a bundle reads the same whatever it holds: its changes are
            # not seen here, and cached grants wait out their cache_ttl_seconds (red team
            # session 15b). Logged when the record changes, not every check.
            log.warning(
                "opa_bundle_unversioned", extra={"url": self._api.url, "bundles": unversioned}
            )

    def _policy_activated(self) -> None:
        for listener in self._activated:
            listener()

    async def _compare_with_published(self) -> None:
        """manage = true: OPA must hold exactly what was published (integrity.py).

        Raises: PolicyLoadError naming the differences (the caller republishes),
        OpaUnavailableError.
        """
        if not self._manage or self._good is None:
            return
        api, good = self._supervisor_api, self._good
        held = await api.policies()
        problems = module_drift(held, good, policy_roots(good, self._path))
        digest = await data_digest(api, good)
        self._since_whole += 1
        stale = not digest or digest != self._verified_digest
        if stale or self._since_whole >= WHOLE_DATA_COMPARISON_EVERY:
            data_problems = await data_drift(api, good, our_packages(held, good))
            if not data_problems:
                self._verified_digest, self._since_whole = digest, 0
            problems += data_problems
        if problems:
            extra = {"url": self._api.url, "problems": problems[:20]}
            log.error("opa_policy_tampered", extra=extra)
            raise PolicyLoadError("OPA holds what Sekisho did not publish: " + "; ".join(problems))

    async def _self_test(self) -> None:
        """Raises: PolicyLoadError, OpaUnavailableError."""
        try:
            answer = await self._supervisor_api.query(self._path, self_test_input())
        except OpaEvaluationError as exc:
            raise PolicyLoadError(f"policy self-test failed to evaluate: {exc}") from exc
        check_self_test(answer.result)

    async def _restore_last_good(self) -> None:
        if self._good is None:  # OPA may hold part of the rejected policy: never use it
            self._set_ready(False, "OPA holds no policy that passed the self-test")
            return
        try:
            await self._publisher.publish(self._good)
            await self._self_test()
        except (OpaUnavailableError, OpaRejectedError, PolicyLoadError) as exc:
            self._republish = True
            self._set_ready(False, f"restoring the last good policy failed: {exc}")

    def _set_ready(self, ready: bool, why: str) -> None:
        if ready != self._ready:
            event = "policy_engine_ready" if ready else "policy_engine_not_ready"
            level = logging.INFO if ready else logging.ERROR
            log.log(level, event, extra={"engine": "opa", "url": self._api.url, "reason": why})
        self._ready = ready


def _differs(root: Path, good: PolicySource) -> bool:
    """Whether the folder at `root` now holds another policy than `good` (blocking)."""
    try:
        return source_fingerprint(load_source(root)) != source_fingerprint(good)
    except PolicyLoadError:
        return True  # published before, unreadable now: the republish logs why


def _invalid(error: str, decision_id: str) -> Decision:
    log.error("policy_decision_invalid", extra={"decision_id": decision_id, "error": error})
    return Decision(allow=False, reason="invalid policy decision", decision_id=decision_id)


def _unversioned_bundles(record: object) -> list[str]:
    """The bundles in OPA's record (`data.system.bundles`) with neither a manifest revision nor
    a download ETag: a folder without a `.manifest` revision, a server that sends no ETag."""
    if not isinstance(record, dict):
        return []
    return sorted(name for name, bundle in record.items() if not _versioned(bundle))


def _versioned(bundle: object) -> bool:
    if not isinstance(bundle, dict):
        return True  # not a bundle record this knows: nothing to say about it
    manifest = bundle.get("manifest")
    revision = manifest.get("revision") if isinstance(manifest, dict) else None
    return bool(bundle.get("etag") or revision)
