"""config/example.toml documents every setting with its default and a comment (docs/architecture.md
§2, §6), and loads as is."""

import itertools
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sekisho.config import (
    CallerConfig,
    ClientConfig,
    GatewayRouteConfig,
    IssuerConfig,
    Settings,
    load_settings,
)
from sekisho.policy.options import ShadowConfig

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "example.toml"

# Keys the example may show only as a commented-out line, because setting them together with
# their alternative is an error (exactly one of discovery_url / jwks_uri), or because their
# default is "unset", which TOML cannot write (the [server] TLS files, computed client auth, the
# issuer preset).
COMMENTED_ALTERNATIVES = {
    "trust.issuers": {"jwks_uri", "preset"},
    "server": {"tls_cert_file", "tls_key_file", "client_ca_file", "require_client_auth"},
    "policy": {
        "opa_ca_file",
        "bundle_file",
        "bundle_ca_file",
        "bundle_verification_key",
        "bundle_verification_alg",
    },
    "token_endpoint": {"replay_cache_ca_file"},
    "status_list": {"redis_ca_file"},
}

# Top-level arrays of tables ([[callers]]): shown as `name = []` plus a commented example, like
# the arrays nested in a table (token_endpoint.clients, gateway.routes).
TOP_LEVEL_ARRAYS = {"callers"}

# Arrays of tables default to empty, so the example shows `name = []` and, above it, one table
# commented out (`#   [[name]]` then `#   key = value` lines): every key of the model, loadable.
COMMENTED_TABLES = {
    "callers": CallerConfig,
    "token_endpoint.clients": ClientConfig,
    "gateway.routes": GatewayRouteConfig,
}

# Where the example intentionally differs from the model defaults.
INTENTIONAL = {
    ("policy", "path"): REPO / "policies",  # "../policies": the repo's policies from config/
    ("policy", "compile_cache_dir"): REPO / "var" / "policy-cache",  # `make run` restarts fast
    ("keys", "dir"): REPO / "var" / "keys",
    ("status_list", "enabled"): True,  # the example shows revocation at work (issue 16)
    ("status_list", "path"): REPO / "var" / "status" / "status.db",
    ("decision_log", "path"): REPO / "var" / "decisions.jsonl",
}


@pytest.fixture(autouse=True)
def _no_sekisho_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SEKISHO_"):
            monkeypatch.delenv(name)


def _raw() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))


def _model_sections() -> list[tuple[str, type[BaseModel]]]:
    """Every table of Settings, including the array of [[trust.issuers]] tables."""
    sections: list[tuple[str, type[BaseModel]]] = []
    for name, field in Settings.model_fields.items():
        if name in TOP_LEVEL_ARRAYS:
            continue
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel), name
        sections.append((name, model))
    sections.append(("trust.issuers", IssuerConfig))
    sections.append(("policy.shadow", ShadowConfig))
    return sections


def _table(raw: dict[str, Any], section: str) -> dict[str, Any]:
    if section == "trust.issuers":
        issuers = raw["trust"]["issuers"]
        assert len(issuers) == 1, "the example shows one [[trust.issuers]] table"
        return dict(issuers[0])
    if section == "policy.shadow":
        return dict(raw["policy"]["shadow"])
    return dict(raw[section])


def _commented_keys(header: str) -> set[str]:
    """Keys written as `# key = value` inside the table whose header line is `header`."""
    keys: set[str] = set()
    current = ""
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            current = line.strip()
        elif current == header and (match := re.match(r"^#\s*([a-z_]+)\s*=", line)):
            keys.add(match.group(1))
    return keys


@pytest.mark.parametrize(
    ("section", "model"), [pytest.param(*entry, id=entry[0]) for entry in _model_sections()]
)
def test_example_documents_every_setting(section: str, model: type[BaseModel]) -> None:
    documented = set(_table(_raw(), section))
    alternatives = COMMENTED_ALTERNATIVES.get(section, set())
    if alternatives:
        header = "[[trust.issuers]]" if section == "trust.issuers" else f"[{section}]"
        assert alternatives <= _commented_keys(header)
    missing = set(model.model_fields) - documented - alternatives
    assert not missing, f"config/example.toml does not document [{section}] {sorted(missing)}"


def test_example_has_no_key_the_model_lacks() -> None:
    # load_settings would reject it too; this names the section and key directly.
    raw = _raw()
    for section, model in _model_sections():
        extra = set(_table(raw, section)) - set(model.model_fields)
        if section == "trust":
            extra -= {"issuers"}
        assert not extra, f"[{section}] {sorted(extra)}"
    assert set(raw) == set(Settings.model_fields)


def test_every_key_has_a_comment_above_it() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    undocumented = [
        line
        for previous, line in itertools.pairwise(lines)
        if re.match(r"^[a-z_]+\s*=", line) and not previous.startswith("#")
    ]
    assert not undocumented


def test_example_loads() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.trust.issuers, "the example trusts the dev IdP"


def test_a_client_in_place_of_clients_loads(tmp_path: Path) -> None:
    # The comment says to replace `clients = []` with [[token_endpoint.clients]] tables; keys of
    # [token_endpoint] below that line would become keys of the client (session 14 walkthrough).
    client = '[[token_endpoint.clients]]\nid = "walk"\nsecret_hash = "$argon2id$v=19$m=65536,t=3,p=4$x"\n'
    text = EXAMPLE.read_text(encoding="utf-8").replace("\nclients = []\n", "\n" + client, 1)
    copy = tmp_path / "example.toml"
    copy.write_text(text, encoding="utf-8")
    assert [c.id for c in load_settings(copy).token_endpoint.clients] == ["walk"]


@pytest.mark.parametrize("section", list(Settings.model_fields))
def test_example_values_are_the_defaults(section: str) -> None:
    if section in TOP_LEVEL_ARRAYS:
        assert getattr(load_settings(EXAMPLE), section) == Settings.model_fields[section].default
        return
    loaded: BaseModel = getattr(load_settings(EXAMPLE), section)
    default = type(loaded)()
    for name in type(loaded).model_fields:
        if section == "trust" and name == "issuers":
            continue  # the example trusts the dev IdP; the default trusts nobody
        expected = INTENTIONAL.get((section, name), getattr(default, name))
        assert getattr(loaded, name) == expected, f"{section}.{name}"


def test_example_issuer_uses_the_issuer_defaults() -> None:
    # Only issuer, discovery_url and audiences are the example's own; the rest are defaults.
    (issuer,) = load_settings(EXAMPLE).trust.issuers
    own = {"issuer", "discovery_url", "audiences"}
    required_only = IssuerConfig(
        issuer=issuer.issuer, jwks_uri="https://x.example", audiences=("x",)
    )
    for name in set(IssuerConfig.model_fields) - own - {"jwks_uri"}:
        assert getattr(issuer, name) == getattr(required_only, name), f"trust.issuers.{name}"
    assert issuer.jwks_uri == ""


def _commented_table(name: str) -> dict[str, Any]:
    """The example table commented out under `#   [[name]]`, parsed."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"#   [[{name}]]")
    body = itertools.takewhile(lambda line: re.match(r"^#   [a-z_]+ = ", line), lines[start + 1 :])
    return tomllib.loads("\n".join(line.removeprefix("#   ") for line in body))


@pytest.mark.parametrize(
    ("name", "model"), list(COMMENTED_TABLES.items()), ids=list(COMMENTED_TABLES)
)
def test_commented_example_tables_show_every_key_and_load(
    name: str, model: type[BaseModel]
) -> None:
    table = _commented_table(name)
    assert set(table) == set(model.model_fields), f"[[{name}]]"
    model.model_validate(table)  # a renamed or removed key fails here (extra keys are refused)
