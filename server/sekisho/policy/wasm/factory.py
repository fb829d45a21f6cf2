"""The embedded engine as `[policy]` configures it (service and CLI build it the same way)."""

from pathlib import Path

from sekisho.config import PolicyConfig
from sekisho.policy.toolchain import find_opa
from sekisho.policy.wasm.engine import WasmPolicyEngine
from sekisho.policy.wasm.policy import WasmLimits


def wasm_limits(policy: PolicyConfig) -> WasmLimits:
    return WasmLimits(
        eval_timeout_seconds=policy.eval_timeout_seconds,
        memory_limit_bytes=policy.memory_limit_mb * 1024 * 1024,
        pool_size=policy.pool_size,
    )


def embedded_engine(policy: PolicyConfig, cwd: Path) -> WasmPolicyEngine:
    """Not yet loaded. Raises: ConfigError when no opa binary is found."""
    opa = find_opa(policy.opa_binary, cwd)
    return WasmPolicyEngine(
        policy.path,
        policy.query,
        opa,
        wasm_limits(policy),
        compile_timeout=policy.compile_timeout_seconds,
    )
