"""Builds the overload and abuse bounds from Settings (issue 14); service.py wires them in.

The config models (config/protection.py, config/limits.py) hold every default; the domain
objects built here have none of their own, so each default is stated once.
"""

from typing import Any

from sekisho.admission import Admission, QueuePolicy
from sekisho.attempts import AttemptGate, AttemptLimits
from sekisho.callers import CallerRegistry, RateLimit
from sekisho.clock import Clock
from sekisho.config import (
    ClientAuthLimitsConfig,
    GrpcLimitsConfig,
    HttpLimitsConfig,
    OverloadConfig,
    Settings,
)
from sekisho.http.guard import ConnectionGuard, ConnectionLimits
from sekisho.validation import MAX_REQUESTED_LIFETIME_SECONDS, RequestLimits


def request_limits(settings: Settings) -> RequestLimits:
    """[limits] and trust.max_token_bytes, for every transport's request validation."""
    limits = settings.limits
    return RequestLimits(
        max_scopes=limits.max_scopes,
        max_resources=limits.max_resources,
        max_value_length=limits.max_value_length,
        max_lifetime_seconds=MAX_REQUESTED_LIFETIME_SECONDS,
        max_scope_length=limits.max_scope_length,
        max_token_bytes=settings.trust.max_token_bytes,
        max_context_depth=limits.max_context_depth,
        max_context_keys=limits.max_context_keys,
        max_context_bytes=limits.max_context_bytes,
    )


def queue_policy(overload: OverloadConfig) -> QueuePolicy:
    """[overload]: the adaptive admission's queue and limit bounds."""
    return QueuePolicy(
        enabled=overload.enabled,
        max_queue_delay=overload.max_queue_delay_seconds,
        max_queue=overload.max_queue,
        max_queue_per_caller=overload.max_queue_per_caller,
        min_concurrency=overload.min_concurrency,
        max_concurrency=overload.max_concurrency,
        latency_tolerance=overload.latency_tolerance,
    )


def build_admission(settings: Settings, callers: CallerRegistry, clock: Clock) -> Admission:
    """[overload] and the per-caller token buckets of this worker."""
    server = settings.server
    default = None
    if server.caller_rate_per_second:
        default = RateLimit(server.caller_rate_per_second, max(1, server.caller_burst))
    return Admission(
        clock,
        policy=queue_policy(settings.overload),
        default_rate=default,
        rates=callers.rates(),
    )


def attempt_limits(limits: ClientAuthLimitsConfig) -> AttemptLimits:
    """[client_auth]: bounds on client-secret checks, before any hashing."""
    return AttemptLimits(
        max_concurrent=limits.max_concurrent,
        max_concurrent_per_peer=limits.max_concurrent_per_peer,
        rate=RateLimit(limits.rate_per_second, limits.burst),
        rate_per_peer=RateLimit(limits.rate_per_second_per_peer, limits.burst_per_peer),
    )


def assertion_limits(limits: ClientAuthLimitsConfig) -> AttemptLimits:
    """[client_auth] assertion_*: bounds on private_key_jwt assertions, before signature work.

    An assertion is checked synchronously and holds no slot (AttemptGate.admit), so only the
    per-second budgets apply; no slot may ever be taken from this gate.
    """
    return AttemptLimits(
        max_concurrent=0,
        max_concurrent_per_peer=0,
        rate=RateLimit(limits.assertion_rate_per_second, limits.assertion_burst),
        rate_per_peer=RateLimit(
            limits.assertion_rate_per_second_per_peer, limits.assertion_burst_per_peer
        ),
    )


def build_attempt_gate(settings: Settings, clock: Clock) -> AttemptGate:
    """[client_auth]: the gate client-secret checks pass before any hashing."""
    return AttemptGate(clock, attempt_limits(settings.client_auth))


def build_assertion_gate(settings: Settings, clock: Clock) -> AttemptGate:
    """[client_auth] assertion_*: the gate private_key_jwt assertions pass."""
    return AttemptGate(clock, assertion_limits(settings.client_auth))


def connection_limits(http: HttpLimitsConfig) -> ConnectionLimits:
    """[http]: header/body timeouts, connection bounds and keep-alive limits."""
    return ConnectionLimits(
        header_timeout=http.header_timeout_seconds,
        body_timeout=http.body_timeout_seconds,
        keepalive_timeout=http.keepalive_timeout_seconds,
        max_requests_per_connection=http.max_requests_per_connection,
        max_connections=http.max_connections,
        max_connections_per_peer=http.max_connections_per_peer,
        new_connections=RateLimit(http.new_connections_per_second, http.new_connections_burst),
        new_connections_per_peer=RateLimit(
            http.new_connections_per_second_per_peer, http.new_connections_burst_per_peer
        ),
        max_handshakes=http.max_handshakes,
        handshake_timeout=http.handshake_timeout_seconds,
    )


def build_connection_guard(settings: Settings, clock: Clock) -> ConnectionGuard:
    """[http]: the guard every connection of an HTTP listener passes."""
    return ConnectionGuard(connection_limits(settings.http), clock)


PENDING_HARD_FACTOR = 4  # [grpc] max_pending_calls: always refused beyond this many times it


def grpc_options(limits: GrpcLimitsConfig) -> list[tuple[str, Any]]:
    """[grpc] as grpc core channel arguments (grpc/include/grpc/impl/channel_arg_names.h)."""
    options: list[tuple[str, Any]] = [
        ("grpc.max_concurrent_streams", limits.max_concurrent_streams),
        # grpc core refuses a new stream (REFUSED_STREAM) while the connection holds more than
        # max_concurrent_streams + this many allocated streams (its overload protection), and a
        # stream stays allocated until the worker has freed the finished call, while the client
        # sends its next call as soon as it has the answer: without headroom, closed-loop
        # callers were refused for that race (256 callers on 4 connections: 40-101 of ~5,700
        # calls; 0 with it, bench/results/acceptors_session14.md). The headroom is as many
        # streams again, still bounded per connection (grpc's own experiment gives 100).
        ("grpc.http2.max_deallocating_streams", limits.max_concurrent_streams),
        ("grpc.keepalive_time_ms", int(limits.keepalive_time_seconds * 1000)),
        ("grpc.keepalive_timeout_ms", int(limits.keepalive_timeout_seconds * 1000)),
        # Keepalive enforcement: pings closer together than this earn a strike; 2 strikes and
        # the client gets GOAWAY ENHANCE_YOUR_CALM ("too_many_pings").
        (
            "grpc.http2.min_ping_interval_without_data_ms",
            int(limits.min_ping_interval_seconds * 1000),
        ),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.server_handshake_timeout_ms", int(limits.handshake_timeout_seconds * 1000)),
    ]
    if limits.max_pending_calls:
        # grpc core's backlog bound (server.cc PendingBacklogProtector): refused with a
        # probability rising from the soft limit to the hard one, always beyond it.
        options.append(("grpc.server.max_pending_requests", limits.max_pending_calls))
        hard = int(PENDING_HARD_FACTOR * limits.max_pending_calls)
        options.append(("grpc.server.max_pending_requests_hard_limit", hard))
    if limits.max_connection_idle_seconds:
        options.append(
            ("grpc.max_connection_idle_ms", int(limits.max_connection_idle_seconds * 1000))
        )
    return options
