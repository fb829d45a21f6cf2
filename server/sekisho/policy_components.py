"""The embedded engine as `[policy]` configures it (service and CLI build it the same way): a
builder beside components.py, so the policy package takes no config models."""

import ssl
from pathlib import Path

from sekisho.clock import Clock
from sekisho.config import PolicyConfig
from sekisho.errors import ConfigError
from sekisho.loops import LoopFailures
from sekisho.policy.engine import PolicyRuntime
from sekisho.policy.load_events import LIVE_LOAD_EVENTS, LoadEvents
from sekisho.policy.toolchain import find_opa
from sekisho.policy.wasm.bundles import BundlePolicyEngine, Polling
from sekisho.policy.wasm.compile_cache import CompileCache
from sekisho.policy.wasm.compiler import compile_folder
from sekisho.policy.wasm.download import BundleDownloader
from sekisho.policy.wasm.engine import Compiler, WasmPolicyEngine
from sekisho.policy.wasm.policy import WasmLimits
from sekisho.policy.wasm.signing import BundleVerifier


def wasm_limits(policy: PolicyConfig) -> WasmLimits:
    return WasmLimits(
        eval_timeout_seconds=policy.eval_timeout_seconds,
        memory_limit_bytes=policy.memory_limit_mb * 1024 * 1024,
        pool_size=policy.pool_size,
    )


def bundle_polling(policy: PolicyConfig) -> Polling:
    """How often a bundle server is polled (`bundle_poll_min_seconds` … `_max_seconds`)."""
    return Polling(policy.bundle_poll_min_seconds, policy.bundle_poll_max_seconds)


def embedded_engine(
    policy: PolicyConfig,
    cwd: Path,
    clock: Clock,
    failures: LoopFailures,
    events: LoadEvents = LIVE_LOAD_EVENTS,
) -> PolicyRuntime:
    """A bundle engine when a bundle is configured, else the folder compiled by opa (its loads
    logged as `events`).

    Not yet started. Raises: ConfigError when no opa binary is found (folder) or bundle_ca_file
    is not a readable PEM CA file (bundle); PolicyLoadError when the verification key cannot be
    read (bundle).
    """
    if policy.uses_bundle:
        return bundle_engine(policy, clock, failures, events)
    return folder_engine(policy, cwd, clock, events)


def folder_engine(
    policy: PolicyConfig, cwd: Path, clock: Clock, events: LoadEvents = LIVE_LOAD_EVENTS
) -> WasmPolicyEngine:
    """`clock` is what the policy's time.now_ns() reads; `events` what its loads are logged as.
    Raises: ConfigError when no opa binary is found or the compile cache is in the folder."""
    opa = find_opa(policy.opa_binary, cwd)
    return WasmPolicyEngine(
        policy.path,
        policy.query,
        opa,
        wasm_limits(policy),
        compile_timeout=policy.compile_timeout_seconds,
        compiler=_compiler(policy),
        clock=clock,
        events=events,
    )


def _compiler(policy: PolicyConfig) -> Compiler:
    cache = policy.compile_cache_dir
    if cache is None:
        return compile_folder
    if cache.resolve().is_relative_to(policy.path.resolve()):
        # Each entry written there would change the folder: a new key, and for the watcher an
        # edit to reload, which writes another entry, and so on.
        raise ConfigError(
            f"config key 'policy.compile_cache_dir': {cache} is inside the policy folder"
            f" {policy.path}; put it outside (e.g. var/policy-cache)"
        )
    return CompileCache(cache)


def bundle_engine(
    policy: PolicyConfig,
    clock: Clock,
    failures: LoopFailures,
    events: LoadEvents = LIVE_LOAD_EVENTS,
) -> BundlePolicyEngine:
    """`clock` times the bundle status (activated, polled) and is what the policy's
    time.now_ns() reads; `failures` counts the poller's failures; `events` are what its loads
    are logged as. Raises: PolicyLoadError when the verification key cannot be read;
    ConfigError when bundle_ca_file is not a readable PEM CA file."""
    verifier = None
    if policy.bundle_verification_key is not None:
        verifier = BundleVerifier.from_file(
            policy.bundle_verification_key,
            policy.bundle_verification_alg,
            policy.bundle_verification_scope,
        )
    downloader = None
    if policy.bundle_url:
        downloader = BundleDownloader(
            policy.bundle_url,
            policy.bundle_timeout_seconds,
            ssl_context=bundle_ssl_context(policy.bundle_ca_file),
        )
    return BundlePolicyEngine(
        policy.query,
        wasm_limits(policy),
        file=policy.bundle_file,
        downloader=downloader,
        polling=bundle_polling(policy),
        verifier=verifier,
        clock=clock,
        failures=failures,
        events=events,
    )


def bundle_ssl_context(ca_file: Path | None) -> ssl.SSLContext | None:
    """Trust only `ca_file` for the bundle server (hostname checked); None = the system store.

    Raises: ConfigError when the file is missing or holds no usable CA certificate.
    """
    if ca_file is None:
        return None
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"config key 'policy.bundle_ca_file': {ca_file}: {exc}") from exc
