"""`[policy] engine = "embedded"`: the policy folder compiled by OPA to Wasm, evaluated in
process (docs/policy-authors.md, "The embedded engine").

At start and on every change of the folder the modules are compiled (`opa build -t wasm`) in a
worker thread, never on the event loop; a data-only change reuses the compiled module and only
loads the new data. A new policy replaces the old one only after it loaded and passed the
self-test; otherwise the last good policy keeps serving. A trap, a timeout or an ill-typed
result is a deny with an error log, never a grant.
"""

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sekisho.errors import PolicyLoadError, TemporarilyUnavailableError
from sekisho.models import Decision
from sekisho.policy.decision import InvalidDecisionError, parse_decision
from sekisho.policy.selftest import SELF_TEST_INPUT, check_self_test
from sekisho.policy.source import PolicySource, load_source
from sekisho.policy.wasm.compiler import compile_folder, entrypoint_of
from sekisho.policy.wasm.instance import WasmEvaluationError
from sekisho.policy.wasm.policy import (
    CompiledModule,
    LoadedPolicy,
    WasmLimits,
    compile_module,
    encode_json,
)
from sekisho.policy.wasm.runtime import WasmRuntime

log = logging.getLogger(__name__)

# (opa binary, policy folder, entrypoint, timeout in seconds) → policy.wasm
Compiler = Callable[[Path, Path, str, float], bytes]


def modules_digest(source: PolicySource) -> str:
    """What decides whether a change needs a recompile: the module texts, not the data."""
    digest = hashlib.sha256()
    for name, text in sorted(source.modules.items()):
        digest.update(f"{len(name)}:{name}{len(text)}:{text}".encode())
    return digest.hexdigest()


def self_test(policy: LoadedPolicy) -> None:
    """The sample input must yield a well-typed deny. Raises: PolicyLoadError."""
    try:
        raw = policy.evaluate(encode_json(SELF_TEST_INPUT))
    except WasmEvaluationError as exc:
        raise PolicyLoadError(f"policy self-test failed to evaluate: {exc}") from exc
    check_self_test(raw)


class WasmPolicyEngine:
    """PolicyRuntime over a policy folder compiled by OPA to Wasm."""

    def __init__(
        self,
        root: Path,
        query: str,
        opa: Path,
        limits: WasmLimits,
        *,
        compile_timeout: float = 60.0,
        compiler: Compiler = compile_folder,
        runtime: WasmRuntime | None = None,
    ) -> None:
        """`runtime`: a shared wasmtime engine (closed by its owner); by default one of its own."""
        self._compiler = compiler
        self._root = root
        self._entrypoint = entrypoint_of(query)
        self._opa = opa
        self._limits = limits
        self._compile_timeout = compile_timeout
        self._owns_runtime = runtime is None
        self._runtime = runtime or WasmRuntime()
        self._policy: LoadedPolicy | None = None
        self._digest = ""
        self._executor: ThreadPoolExecutor | None = None
        if limits.pool_size > 1:
            self._executor = ThreadPoolExecutor(limits.pool_size, "sekisho-policy")

    @property
    def ready(self) -> bool:
        return self._policy is not None

    async def start(self) -> None:
        """Compile, load and self-test the folder. Raises: PolicyLoadError."""
        await asyncio.to_thread(self.load)

    async def close(self) -> None:
        """Stop the epoch thread and the evaluation threads."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        if self._owns_runtime:
            self._runtime.close()

    def load(self) -> None:
        """Build the folder's policy and serve it (blocking). Raises: PolicyLoadError."""
        policy, digest = self._build()
        self._policy, self._digest = policy, digest
        log.info("policy_loaded", extra={"path": str(self._root), "entrypoint": self._entrypoint})

    def _build(self) -> tuple[LoadedPolicy, str]:
        source = load_source(self._root)
        digest = modules_digest(source)
        data = encode_json(source.data)
        current = self._policy
        if current is not None and digest == self._digest:
            policy = current.with_data(data)
        else:
            policy = LoadedPolicy(self._runtime, self._compile(), data, self._limits)
        self_test(policy)
        return policy, digest

    def _compile(self) -> CompiledModule:
        wasm = self._compiler(self._opa, self._root, self._entrypoint, self._compile_timeout)
        return compile_module(self._runtime, wasm, self._entrypoint, self._limits)

    async def folder_changed(self) -> bool:
        """reload() in a worker thread: `opa build` and instantiation never block the loop, and
        decisions keep coming from the last good policy meanwhile."""
        return await asyncio.to_thread(self.reload)

    def reload(self) -> bool:
        """Rebuild after a change; keep the last good policy when the new one fails."""
        try:
            self.load()
        except PolicyLoadError as exc:
            log.error("policy_reload_failed", extra={"error": str(exc)})
            return False
        return True

    @property
    def policy(self) -> LoadedPolicy:
        """The policy being served. Raises: PolicyLoadError when none is loaded."""
        if self._policy is None:
            raise PolicyLoadError("no policy loaded")
        return self._policy

    def evaluate_raw(self, document: dict[str, Any]) -> Any:
        """The entrypoint's value for `document` (None when undefined).

        Raises: PolicyLoadError when no policy is loaded; WasmEvaluationError on failure.
        """
        return self.policy.evaluate(encode_json(document))

    async def decide(self, document: dict[str, Any]) -> Decision:
        policy = self._policy
        if policy is None:
            raise TemporarilyUnavailableError(
                "the policy engine is not ready", log_detail="no policy loaded"
            )
        decision_id = str(uuid.uuid4())
        try:
            encoded = encode_json(document)
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
