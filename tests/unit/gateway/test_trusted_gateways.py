"""[gateway] trusted_gateways: every listed id must be a registered caller, refused when the
settings load (so by every `sekisho` command) and again at start (service_listeners.gateway_trust)
for settings copied without validation; trusting the source principal of any caller is said at
start (red team session 20: agents reach the gateway's grpc_listen)."""

import io
import logging
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sekisho.cli import main
from sekisho.config import Settings, load_settings
from sekisho.errors import ConfigError
from sekisho.service_listeners import gateway_trust

WARNING = "gateway_source_principal_from_any_caller"


# A gRPC listener that requires client certificates (the files are read at start, not at load):
# without one every caller is anonymous and no trusted gateway could ever Check.
MTLS = {
    "issuer": "https://127.0.0.1:8080",
    "tls_cert_file": "tls/server.pem",
    "tls_key_file": "tls/server-key.pem",
    "client_ca_file": "tls/ca.pem",
}


def settings(server: dict[str, Any] | None = None, **gateway: Any) -> Settings:
    return Settings(
        server=MTLS if server is None else server,
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


UNREGISTERED = r"gateway\.trusted_gateways.*'envoy-gw'"
CONFIG = """
[server]
issuer = "https://127.0.0.1:8080"
tls_cert_file = "tls/server.pem"
tls_key_file = "tls/server-key.pem"
client_ca_file = "tls/ca.pem"

[gateway]
trust_source_principal = true
trusted_gateways = ["envoy-gateway", "envoy-gw"]

[[callers]]
id = "envoy-gateway"
"""


def test_an_unregistered_trusted_gateway_is_refused_at_load_naming_the_key_and_id(
    tmp_path: Path,
) -> None:
    # A typo would refuse every Check; an id no [[callers]] entry has can never authenticate.
    path = tmp_path / "sekisho.toml"
    path.write_text(CONFIG)
    with pytest.raises(ConfigError, match=UNREGISTERED) as refused:
        load_settings(path)
    assert str(refused.value).count("'envoy-gateway'") == 1  # listed as registered only


def test_the_refusal_lists_the_registered_caller_ids(tmp_path: Path) -> None:
    # The operator must know what to write: the ids [[callers]] has, or that it has none.
    path = tmp_path / "sekisho.toml"
    path.write_text(CONFIG)
    with pytest.raises(ConfigError, match=r"\(registered: 'envoy-gateway'\)$"):
        load_settings(path)
    path.write_text(CONFIG.partition("[[callers]]")[0])
    with pytest.raises(ConfigError, match=r"\(none is registered: add a \[\[callers\]\] entry"):
        load_settings(path)


def test_settings_refuse_an_unregistered_trusted_gateway() -> None:
    with pytest.raises(ValidationError, match=UNREGISTERED):
        settings(trust_source_principal=True, trusted_gateways=["envoy-gw"])


def test_a_command_that_only_loads_settings_refuses_an_unregistered_trusted_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `sekisho clients hash-secret` reads the config and nothing else: it took this one.
    path = tmp_path / "sekisho.toml"
    path.write_text(CONFIG)
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-enough-client-secret\n"))
    assert main(["clients", "hash-secret", "--config", str(path)]) == 2
    assert "gateway.trusted_gateways" in capsys.readouterr().err


IGNORED = (
    r"gateway\.trusted_gateways'?: does nothing while gateway\.trust_source_principal is false"
)


def test_trusted_gateways_without_trusting_the_source_principal_is_refused_at_load(
    tmp_path: Path,
) -> None:
    # Without trust_source_principal the list restricts nothing: every registered caller's Check
    # is served as itself, while the operator who set it believes only the gateway's are.
    path = tmp_path / "sekisho.toml"
    path.write_text(CONFIG.replace("envoy-gw", "envoy-gateway").replace("= true", "= false"))
    with pytest.raises(
        ConfigError, match=f"config key '{IGNORED}.*set trust_source_principal = true"
    ):
        load_settings(path)


ANONYMOUS = r"gateway\.trusted_gateways'?: every Check would be refused: the gRPC listener asks"


@pytest.mark.parametrize(
    ("server", "why"),
    [
        pytest.param({}, "loopback listeners without server.client_ca_file", id="loopback-no-ca"),
        pytest.param(
            {**MTLS, "require_client_auth": False},
            r"server\.require_client_auth = false",
            id="client-auth-off",
        ),
    ],
)
def test_trusted_gateways_on_a_listener_without_client_certificates_are_refused_at_load(
    server: dict[str, Any], why: str
) -> None:
    # Every caller is anonymous (""), no [[callers]] id: every Check would be refused 403.
    with pytest.raises(ValidationError, match=f"{ANONYMOUS}.*{why}.*client_ca_file"):
        settings(server, trust_source_principal=True, trusted_gateways=["envoy-gateway"])
    assert settings(server, trust_source_principal=True).gateway.trusted_gateways == ()


@pytest.mark.parametrize(
    ("update", "problem"),
    [
        pytest.param({"trusted_gateways": ("envoy-gw",)}, UNREGISTERED, id="unregistered"),
        pytest.param({"trust_source_principal": False}, IGNORED, id="principal-not-trusted"),
    ],
)
def test_the_start_refuses_trusted_gateways_copied_past_validation(
    update: dict[str, Any], problem: str
) -> None:
    valid = settings(trust_source_principal=True, trusted_gateways=["envoy-gateway"])
    gateway = valid.gateway.model_copy(update=update)
    with pytest.raises(ConfigError, match=problem):
        gateway_trust(valid.model_copy(update={"gateway": gateway}))


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
