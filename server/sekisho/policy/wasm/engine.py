"""`[policy] engine = "embedded"`: the policy folder compiled by OPA to Wasm, evaluated in
process (docs/policy-authors.md, "The embedded engine").

At start and on every change of the folder the modules are compiled (`opa build -t wasm`) in a
worker thread, never on the event loop; a data-only change reuses the compiled module and only
loads the new data. A new policy replaces the old one only after it loaded and passed the
self-test; otherwise the last good policy keeps serving. A trap, a timeout or an ill-typed
result is a deny with an error log, never a grant (serving.py).
"""

import asyncio
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from sekisho.clock import Clock, SystemClock
from sekisho.errors import PolicyLoadError
from sekisho.policy.load_events import LIVE_LOAD_EVENTS, LoadEvents
from sekisho.policy.source import PolicySource, load_source, source_fingerprint
from sekisho.policy.wasm.compiler import compile_folder, entrypoint_of
from sekisho.policy.wasm.policy import (
    CompiledModule,
    LoadedPolicy,
    WasmLimits,
    compile_module,
    encode_json,
)
from sekisho.policy.wasm.runtime import WasmRuntime
from sekisho.policy.wasm.serving import WasmServing, self_test

log = logging.getLogger(__name__)

# (opa binary, policy folder, entrypoint, timeout in seconds) → policy.wasm
Compiler = Callable[[Path, Path, str, float], bytes]


def modules_digest(source: PolicySource) -> str:
    """What decides whether a change needs a recompile: the module texts, not the data."""
    digest = hashlib.sha256()
    for name, text in sorted(source.modules.items()):
        digest.update(f"{len(name)}:{name}{len(text)}:{text}".encode())
    return digest.hexdigest()


class WasmPolicyEngine(WasmServing):
    """PolicyRuntime over a policy folder compiled by OPA to Wasm."""

    def __init__(
        self,
        root: Path,
        query: str,
        opa: Path,
        limits: WasmLimits,
        *,
        compile_timeout: float,
        compiler: Compiler = compile_folder,
        runtime: WasmRuntime | None = None,
        clock: Clock | None = None,
        events: LoadEvents = LIVE_LOAD_EVENTS,
    ) -> None:
        """`runtime`: a shared wasmtime engine (closed by its owner); by default one of its own.
        `clock`: what time.now_ns() reads (the service's, which input.now is taken from).
        `events`: what its loads are logged as (the shadow policy's have their own names)."""
        super().__init__(limits, runtime)
        self._clock = clock or SystemClock()
        self._compiler = compiler
        self._root = root
        self._entrypoint = entrypoint_of(query)
        self._opa = opa
        self._compile_timeout = compile_timeout
        self._digest = ""
        self._fingerprint = ""  # source_fingerprint of the folder in force
        self._events = events

    async def start(self) -> None:
        """Compile, load and self-test the folder. Raises: PolicyLoadError."""
        await asyncio.to_thread(self.load)

    def load(self) -> None:
        """Build the folder's policy and serve it (blocking). Raises: PolicyLoadError."""
        policy, digest, fingerprint = self._build()
        self._policy, self._digest, self._fingerprint = policy, digest, fingerprint
        log.info(
            self._events.loaded, extra={"path": str(self._root), "entrypoint": self._entrypoint}
        )

    def _build(self) -> tuple[LoadedPolicy, str, str]:
        """The folder's policy, self-tested; its modules' digest and its fingerprint."""
        source = load_source(self._root)
        digest = modules_digest(source)
        data = encode_json(source.data)
        current = self._policy
        if current is not None and digest == self._digest:
            policy = current.with_data(data)
        else:
            policy = LoadedPolicy(self._runtime, self._compile(), data, self._limits)
        self_test(policy)
        return policy, digest, source_fingerprint(source)

    def _compile(self) -> CompiledModule:
        wasm = self._compiler(self._opa, self._root, self._entrypoint, self._compile_timeout)
        return compile_module(self._runtime, wasm, self._entrypoint, self._limits, self._clock)

    async def folder_changed(self) -> bool:
        """reload() in a worker thread: `opa build` and instantiation never block the loop, and
        decisions keep coming from the last good policy meanwhile."""
        return await asyncio.to_thread(self.reload)

    async def changed_since_load(self) -> bool:
        """Whether the folder holds another policy than the one in force (PolicyRuntime)."""
        return await asyncio.to_thread(self._changed)

    def _changed(self) -> bool:
        if not self._fingerprint:
            return True  # none loaded (a shadow whose start failed): whatever is there now
        try:
            return source_fingerprint(load_source(self._root)) != self._fingerprint
        except PolicyLoadError:
            return True  # it loaded, and does not now: the reload logs why

    def reload(self) -> bool:
        """Rebuild after a change; keep the last good policy when the new one fails."""
        try:
            self.load()
        except PolicyLoadError as exc:
            extra = {"path": str(self._root), "error": str(exc)}
            log.error(self._events.reload_failed, extra=extra)
            return False
        return True
