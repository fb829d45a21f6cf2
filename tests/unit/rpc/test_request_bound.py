"""The largest ExchangeTokenRequest validation can accept (rpc/servicer.largest_request_bytes):
the gRPC admission gate refuses a longer message without decoding it, so the bound must never be
below a valid request's size — and should not be far above it, or it bounds nothing."""

from pathlib import Path

import pytest
from google.protobuf import struct_pb2
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho.config import LimitsConfig, Settings, TrustConfig
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_JAG
from sekisho.errors import ConfigError
from sekisho.models import Caller
from sekisho.protection import request_limits
from sekisho.rpc.servicer import largest_request_bytes, params_of
from sekisho.service_listeners import exchange_request_bound
from sekisho.validation import RequestLimits, build_request

DEFAULTS = LimitsConfig()
SMALL = LimitsConfig(
    max_scopes=3,
    max_scope_length=20,
    max_resources=2,
    max_value_length=100,
    max_context_bytes=200,
    max_context_keys=5,
    grpc_max_message_bytes=16384,
)


def _limits(config: LimitsConfig, token_bytes: int) -> RequestLimits:
    """What the service builds from these settings (protection.request_limits)."""
    return request_limits(Settings(limits=config, trust={"max_token_bytes": token_bytes}))


def _uri(n: int, length: int) -> str:
    head = f"https://r{n}.example/"
    return head + "p" * (length - len(head))


def _largest_valid(limits: RequestLimits) -> pb.ExchangeTokenRequest:
    """Every field at its limit, and still a request validation accepts."""
    token = "t" * limits.max_token_bytes
    context = struct_pb2.Struct()
    # {"c":"…"} as compact JSON: the string may take max_context_bytes - 8
    context.update({"c": "v" * (limits.max_context_bytes - 8)})
    return pb.ExchangeTokenRequest(
        subject_token=token,
        subject_token_type=TOKEN_TYPE_ACCESS_TOKEN,
        requested_token_type=TOKEN_TYPE_ID_JAG,
        audience=_uri(0, limits.max_value_length),
        resource=[_uri(n + 1, limits.max_value_length) for n in range(limits.max_resources)],
        scope=[f"{n}".rjust(limits.max_scope_length, "s") for n in range(limits.max_scopes)],
        actor_token=token,
        actor_token_type=TOKEN_TYPE_ACCESS_TOKEN,
        context=context,
        requested_lifetime_seconds=limits.max_lifetime_seconds,
    )


@pytest.mark.parametrize(
    ("config", "token_bytes"),
    [(DEFAULTS, TrustConfig().max_token_bytes), (SMALL, 2048)],
    ids=["defaults", "small"],
)
def test_the_largest_valid_request_fits_and_the_bound_is_close_to_it(
    config: LimitsConfig, token_bytes: int
) -> None:
    limits = _limits(config, token_bytes)
    message = _largest_valid(limits)
    build_request(params_of(message, limits), Caller(), limits)  # valid: nothing raised
    bound = largest_request_bytes(limits)
    assert message.ByteSize() <= bound
    # The slack: the context's wire allowance (a JSON string takes about as many bytes on the
    # wire as in JSON, a list of numbers up to 3 x), the token-type fields' allowance and room for
    # fields a newer client adds.
    allowance = 2 * limits.max_context_bytes + 3 * limits.max_value_length + 1024 + 64
    assert bound - message.ByteSize() <= allowance


def test_the_default_bound_is_well_below_the_grpc_message_cap() -> None:
    """What makes the gate worth having: grpc reads up to grpc_max_message_bytes (256 KiB by
    default, for ext_authz's CheckRequest too); an exchange request cannot be valid past ~96 KB."""
    limits = _limits(DEFAULTS, TrustConfig().max_token_bytes)
    assert largest_request_bytes(limits) < DEFAULTS.grpc_max_message_bytes / 2


def test_the_docs_state_the_default_bound() -> None:
    """operators.md, security.md and config/example.toml quote the default bound: they must say
    what the code computes."""
    bound = f"{largest_request_bytes(_limits(DEFAULTS, TrustConfig().max_token_bytes)):,}"
    root = Path(__file__).resolve().parents[3]
    for doc in ("docs/operators.md", "docs/security.md", "config/example.toml"):
        assert f"{bound} bytes" in (root / doc).read_text(), doc


@pytest.mark.parametrize(
    ("trust", "limits"),
    [
        # The load-time rule's own edge: 2 x 131072 = the default cap, accepted by Settings, yet
        # the two tokens at their limit and an audience take 262,270 bytes.
        ({"max_token_bytes": 131072}, {}),
        ({}, {"max_context_bytes": 80000}),  # a context of numbers: ~2.75 wire bytes per byte
    ],
    ids=["tokens", "context"],
)
def test_a_grpc_cap_below_the_largest_valid_request_is_refused_at_start(
    trust: dict[str, int], limits: dict[str, int]
) -> None:
    """Red team session 12, second pass: grpc core refuses a message over grpc_max_message_bytes
    RESOURCE_EXHAUSTED before Sekisho reads it, so a cap below a valid request's size refused
    valid requests with grpc's code instead of the contract's answer."""
    settings = _settings(trust, limits)
    bound = largest_request_bytes(request_limits(settings))
    assert bound > settings.limits.grpc_max_message_bytes
    with pytest.raises(ConfigError, match=r"limits\.grpc_max_message_bytes.*at least"):
        exchange_request_bound(settings)
    if trust:  # a valid request longer than the cap (nothing raised by validation)
        request_limit = request_limits(settings)
        token = "t" * settings.trust.max_token_bytes
        message = pb.ExchangeTokenRequest(
            subject_token=token,
            subject_token_type=TOKEN_TYPE_ACCESS_TOKEN,
            actor_token=token,
            actor_token_type=TOKEN_TYPE_ACCESS_TOKEN,
            audience="https://as.example.com",
        )
        build_request(params_of(message, request_limit), Caller(), request_limit)
        assert message.ByteSize() > settings.limits.grpc_max_message_bytes


def test_the_default_cap_holds_the_largest_valid_request() -> None:
    settings = _settings({}, {})
    assert exchange_request_bound(settings) == largest_request_bytes(request_limits(settings))


def _settings(trust: dict[str, int], limits: dict[str, int]) -> Settings:
    return Settings(
        server={"issuer": "https://sekisho.example.com"},
        trust={
            "issuers": [
                {
                    "issuer": "https://idp.example.com",
                    "jwks_uri": "https://idp.example.com/jwks",
                    "audiences": ["a"],
                }
            ],
            **trust,
        },
        limits=limits,
    )
