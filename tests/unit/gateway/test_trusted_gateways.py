"""[gateway] trusted_gateways at start (service_listeners.gateway_trust): every listed id must be
a registered caller, and trusting the source principal of any caller is said (red team session
20: agents reach the gateway's grpc_listen)."""

import logging
from typing import Any

import pytest
from sekisho.config import Settings
from sekisho.errors import ConfigError
from sekisho.service_listeners import gateway_trust

WARNING = "gateway_source_principal_from_any_caller"


def settings(**gateway: Any) -> Settings:
    return Settings(
        gateway=gateway,
        callers=({"id": "envoy-gateway"}, {"id": "spiffe://example.org/agents/hr"}),
    )


def test_the_listed_gateways_are_trusted(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sekisho.service_listeners"):
        trusted = gateway_trust(
            settings(trust_source_principal=True, trusted_gateways=["envoy-gateway"])
        )
    assert trusted == frozenset({"envoy-gateway"})
    assert WARNING not in [record.getMessage() for record in caplog.records]


def test_an_unregistered_trusted_gateway_is_refused_naming_the_key() -> None:
    # A typo would refuse every Check; an id no [[callers]] entry has can never authenticate.
    with pytest.raises(ConfigError, match=r"gateway\.trusted_gateways.*'envoy-gw'"):
        gateway_trust(settings(trust_source_principal=True, trusted_gateways=["envoy-gw"]))


def test_trusting_every_callers_source_principal_is_said_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="sekisho.service_listeners"):
        assert gateway_trust(settings(trust_source_principal=True)) == frozenset()
    assert [record.getMessage() for record in caplog.records] == [WARNING]


def test_nothing_is_said_when_the_source_principal_is_not_trusted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="sekisho.service_listeners"):
        assert gateway_trust(settings()) == frozenset()
    assert caplog.records == []
