"""The service's bounds as the default settings build them, with the changes a test names.

The config models hold every default and the domain objects have none of their own, so tests build
them the way the service does (the same builders, from the default config) instead of repeating
the numbers; config/example.toml documents the same defaults (tests/unit/test_example_config.py).
"""

from dataclasses import replace
from typing import Any

from sekisho.admission import QueuePolicy
from sekisho.attempts import AttemptLimits
from sekisho.config import (
    ClientAuthLimitsConfig,
    LimitsConfig,
    OverloadConfig,
    PolicyConfig,
    Settings,
    TrustConfig,
)
from sekisho.decision_observers import shadow_bounds as shadow_bounds_of
from sekisho.policy.options import ShadowConfig
from sekisho.policy.shadow import ShadowBounds
from sekisho.policy.wasm.bundles import Polling
from sekisho.policy.wasm.policy import WasmLimits
from sekisho.policy_components import bundle_polling as bundle_polling_of
from sekisho.policy_components import wasm_limits as wasm_limits_of
from sekisho.protection import attempt_limits as attempt_limits_of
from sekisho.protection import queue_policy as queue_policy_of
from sekisho.protection import request_limits as request_limits_of
from sekisho.validation import RequestLimits


def _defaults() -> Settings:
    # The sections' defaults, not the environment's: no SEKISHO_* variable can change a test.
    return Settings.model_construct(limits=LimitsConfig(), trust=TrustConfig())


def request_limits(**changes: Any) -> RequestLimits:
    """[limits] and trust.max_token_bytes."""
    return replace(request_limits_of(_defaults()), **changes)


def queue_policy(**changes: Any) -> QueuePolicy:
    """[overload]."""
    return replace(queue_policy_of(OverloadConfig()), **changes)


def attempt_limits(**changes: Any) -> AttemptLimits:
    """[client_auth] (the client-secret gate's bounds)."""
    return replace(attempt_limits_of(ClientAuthLimitsConfig()), **changes)


def shadow_bounds(**changes: Any) -> ShadowBounds:
    """[policy.shadow]."""
    return replace(shadow_bounds_of(ShadowConfig()), **changes)


def wasm_limits(**changes: Any) -> WasmLimits:
    """[policy] eval_timeout_seconds, memory_limit_mb and pool_size."""
    return replace(wasm_limits_of(PolicyConfig()), **changes)


def compile_timeout() -> float:
    """[policy] compile_timeout_seconds: how long `opa build` may take."""
    return PolicyConfig().compile_timeout_seconds


def bundle_polling(**changes: Any) -> Polling:
    """[policy] bundle_poll_min_seconds and bundle_poll_max_seconds."""
    return replace(bundle_polling_of(PolicyConfig()), **changes)


def max_act_depth() -> int:
    """[trust] max_act_depth: how deep an inbound `act` chain may nest."""
    return TrustConfig().max_act_depth


def grpc_max_message_bytes() -> int:
    """[limits] grpc_max_message_bytes."""
    return LimitsConfig().grpc_max_message_bytes
