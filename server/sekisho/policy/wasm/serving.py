"""What both embedded sources (the policy folder, an OPA bundle) share: the policy being served,
swapped whole, and the fail-closed decision over it."""

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sekisho.errors import PolicyLoadError, TemporarilyUnavailableError
from sekisho.identifiers import random_uuid
from sekisho.models import Decision
from sekisho.policy.decision import InvalidDecisionError, parse_decision
from sekisho.policy.selftest import check_self_test, self_test_input
from sekisho.policy.wasm.instance import WasmEvaluationError
from sekisho.policy.wasm.policy import LoadedPolicy, WasmLimits, encode_json
from sekisho.policy.wasm.runtime import WasmRuntime

log = logging.getLogger(__name__)


def self_test(policy: LoadedPolicy) -> None:
    """The sample input must yield a well-typed deny. Raises: PolicyLoadError."""
    try:
        raw = policy.evaluate(encode_json(self_test_input()))
    except WasmEvaluationError as exc:
        raise PolicyLoadError(f"policy self-test failed to evaluate: {exc}") from exc
    check_self_test(raw)


class WasmServing:
    """The loaded policy (None until the first good load) and decisions over it."""

    def __init__(self, limits: WasmLimits, runtime: WasmRuntime | None) -> None:
        """`runtime`: a shared wasmtime engine (closed by its owner); by default one of its own."""
        self._limits = limits
        self._owns_runtime = runtime is None
        self._runtime = runtime or WasmRuntime()
        self._policy: LoadedPolicy | None = None
        self._executor: ThreadPoolExecutor | None = None
        if limits.pool_size > 1:
            self._executor = ThreadPoolExecutor(limits.pool_size, "sekisho-policy")

    @property
    def ready(self) -> bool:
        return self._policy is not None

    @property
    def policy(self) -> LoadedPolicy:
        """The policy being served. Raises: PolicyLoadError when none is loaded."""
        if self._policy is None:
            raise PolicyLoadError("no policy loaded")
        return self._policy

    async def close(self) -> None:
        """Stop the evaluation threads and (if owned) the epoch thread."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        if self._owns_runtime:
            self._runtime.close()

    def evaluate_raw(self, document: dict[str, Any]) -> Any:
        """The entrypoint's value for `document` (None when undefined).

        Raises: PolicyLoadError when no policy is loaded; WasmEvaluationError on failure.
        """
        return self.policy.evaluate(encode_json(document))

    async def decide(self, document: dict[str, Any]) -> Decision:
        return await self._decide(lambda: encode_json(document))

    async def decide_encoded(self, encoded: bytes) -> Decision:
        """decide() for an input already encoded as JSON (by the decision cache, for its key)."""
        return await self._decide(lambda: encoded)

    async def _decide(self, encode: Callable[[], bytes]) -> Decision:
        policy = self._policy
        if policy is None:
            raise TemporarilyUnavailableError(
                "the policy engine is not ready", log_detail="no policy loaded"
            )
        decision_id = random_uuid()
        try:
            encoded = encode()
            if self._executor is None:
                raw = policy.evaluate(encoded)
            else:
                loop = asyncio.get_running_loop()
                raw = await loop.run_in_executor(self._executor, policy.evaluate, encoded)
            return parse_decision(raw, decision_id)
        except (InvalidDecisionError, WasmEvaluationError, ValueError) as exc:
            log.error(
                "policy_decision_invalid", extra={"decision_id": decision_id, "error": str(exc)}
            )
            return Decision(allow=False, reason="invalid policy decision", decision_id=decision_id)
