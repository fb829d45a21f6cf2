"""The embedded engine for tests: the policy folder compiled by the real opa binary.

Many tests load the same folder; `opa build` runs once per distinct set of module texts.
"""

import functools
from pathlib import Path

from sekisho.policy.source import load_source
from sekisho.policy.wasm.compiler import compile_folder
from sekisho.policy.wasm.engine import WasmPolicyEngine, modules_digest
from sekisho.policy.wasm.policy import WasmLimits
from sekisho.policy.wasm.runtime import WasmRuntime

from tests.bounds import compile_timeout, wasm_limits
from tests.opa import opa_binary


@functools.lru_cache(maxsize=64)
def _compiled(opa: Path, root: Path, entrypoint: str, digest: str) -> bytes:
    return compile_folder(opa, root, entrypoint, 120.0)


def cached_compile(opa: Path, root: Path, entrypoint: str, _timeout: float) -> bytes:
    """compile_folder, memoized on the module texts (a failed build is never cached)."""
    return _compiled(opa, root, entrypoint, modules_digest(load_source(root)))


@functools.cache
def shared_runtime() -> WasmRuntime:
    """One wasmtime engine (and epoch thread) for every test engine of the session."""
    return WasmRuntime(cached_modules=32)


def wasm_engine(
    root: Path, query: str, limits: WasmLimits | None = None, *, cached: bool = True
) -> WasmPolicyEngine:
    """Not yet loaded. `cached`: share compiled policies and the runtime with other tests."""
    if not cached:
        return WasmPolicyEngine(
            root, query, opa_binary(), limits or wasm_limits(), compile_timeout=compile_timeout()
        )
    return WasmPolicyEngine(
        root,
        query,
        opa_binary(),
        limits or wasm_limits(),
        compile_timeout=compile_timeout(),
        compiler=cached_compile,
        runtime=shared_runtime(),
    )


def loaded_engine(root: Path, query: str, limits: WasmLimits | None = None) -> WasmPolicyEngine:
    engine = wasm_engine(root, query, limits)
    engine.load()
    return engine
