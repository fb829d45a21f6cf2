"""load_settings (docs/architecture.md §6): every error names the offending key; env overrides;
http only on loopback; asymmetric algorithms only; paths relative to the config file."""

import json
import os
from pathlib import Path

import pytest
from sekisho.config import Settings, load_settings
from sekisho.errors import ConfigError

SERVER = """
[server]
issuer = "https://sekisho.example.com"
"""
ISSUER_LINES = """
issuer = "https://idp.example.com"
jwks_uri = "https://idp.example.com/jwks"
audiences = ["agent-app"]
"""


@pytest.fixture(autouse=True)
def _no_sekisho_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A SEKISHO_* variable in the developer's shell must not change what these tests see.
    for name in list(os.environ):
        if name.startswith("SEKISHO_"):
            monkeypatch.delenv(name)


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sekisho.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _issuer(**changes: str) -> str:
    """A [[trust.issuers]] table: ISSUER_LINES with lines replaced, added ("k = v") or dropped ("")."""
    lines = {line.split(" = ")[0]: line for line in ISSUER_LINES.strip().splitlines()}
    for key, value in changes.items():
        if value:
            lines[key] = f"{key} = {value}"
        else:
            lines.pop(key)
    return "\n[[trust.issuers]]\n" + "\n".join(lines.values()) + "\n"


def _load(tmp_path: Path, text: str) -> Settings:
    return load_settings(_config(tmp_path, text))


# --- errors: (config text, environment, key the message must name, what it must say) -------------

ERROR_CASES = [
    pytest.param(SERVER + 'grpc_listn = "127.0.0.1:1"\n', {}, "server.grpc_listn", "Extra inputs", id="unknown-server-key"),
    pytest.param(SERVER + "[tokenz]\nmax_lifetime_seconds = 60\n", {}, "tokenz", "Extra inputs", id="unknown-section"),
    pytest.param(SERVER + _issuer(audience='["x"]'), {}, "trust.issuers.0.audience", "Extra inputs", id="unknown-issuer-key"),
    pytest.param(SERVER + 'grpc_listn = "127.0.0.1:1"\n', {}, "server.grpc_listn", "did you mean 'grpc_listen'?", id="unknown-key-names-the-close-one"),
    pytest.param(SERVER + _issuer(audience='["x"]'), {}, "trust.issuers.0.audience", "did you mean 'audiences'?", id="unknown-issuer-key-names-the-close-one"),
    pytest.param(
        SERVER + '[token_endpoint]\n[[token_endpoint.clients]]\nid = "a"\nsecret_hash = "$argon2id$x"\nreplay_cache_url = ""\n',
        {}, "token_endpoint.clients.0.replay_cache_url",
        "a [token_endpoint] key written below a [[token_endpoint.clients]] header, which makes it part of that entry: move it above",
        id="table-key-below-an-array-of-tables-header",
    ),
    pytest.param(SERVER + "[tokenz]\nmax_lifetime_seconds = 60\n", {}, "tokenz", "did you mean 'tokens'?", id="unknown-section-names-the-close-one"),
    pytest.param(SERVER + "[frobnicate]\nx = 1\n", {}, "frobnicate", "config/example.toml lists every key", id="unknown-section-points-at-the-example"),
    pytest.param('[server]\nissuer = "http://sekisho.example.com"\n', {}, "server.issuer", "https", id="server-issuer-http"),
    pytest.param('[server]\nissuer = "https://sekisho.example.com/"\n', {}, "server.issuer", "must not end with '/'", id="server-issuer-trailing-slash"),
    pytest.param('[server]\nissuer = "sekisho.example.com"\n', {}, "server.issuer", "https", id="server-issuer-not-a-url"),
    pytest.param(SERVER + _issuer(issuer='"http://idp.example.com"'), {}, "trust.issuers.0.issuer", "https", id="idp-issuer-http"),
    pytest.param(SERVER + _issuer(issuer='"http://localhost.evil.example"'), {}, "trust.issuers.0.issuer", "https", id="idp-issuer-localhost-lookalike"),
    pytest.param(SERVER + _issuer(issuer='"http://127.0.0.1@evil.example"'), {}, "trust.issuers.0.issuer", "https", id="idp-issuer-loopback-userinfo"),
    pytest.param(SERVER + _issuer(jwks_uri='"http://idp.example.com/jwks"'), {}, "trust.issuers.0.jwks_uri", "https", id="jwks-uri-http"),
    pytest.param(
        SERVER + _issuer(jwks_uri="", discovery_url='"http://idp.example.com/.well-known/openid-configuration"'),
        {}, "trust.issuers.0.discovery_url", "https", id="discovery-url-http",
    ),
    pytest.param(SERVER + _issuer(algorithms='["RS256", "HS256"]'), {}, "trust.issuers.0.algorithms", "HS256", id="algorithm-HS256"),
    pytest.param(SERVER + _issuer(algorithms='["none"]'), {}, "trust.issuers.0.algorithms", "none", id="algorithm-none"),
    pytest.param(SERVER + _issuer(algorithms="[]"), {}, "trust.issuers.0.algorithms", "unsupported", id="algorithms-empty"),
    pytest.param(
        SERVER + _issuer(discovery_url='"https://idp.example.com/.well-known/openid-configuration"'),
        {}, "trust.issuers.0", "exactly one of discovery_url or jwks_uri", id="discovery-and-jwks-uri",
    ),
    pytest.param(SERVER + _issuer(jwks_uri=""), {}, "trust.issuers.0", "exactly one of discovery_url or jwks_uri", id="no-key-source"),
    pytest.param(SERVER + _issuer(audiences=""), {}, "trust.issuers.0", "audiences and/or client_ids", id="no-audiences-or-client-ids"),
    pytest.param(
        SERVER + _issuer(audiences="[]", client_ids="[]"), {}, "trust.issuers.0", "audiences and/or client_ids", id="empty-audiences-and-client-ids"
    ),
    pytest.param(SERVER + _issuer(client_id_claim='"sub"'), {}, "trust.issuers.0.client_id_claim", "client_id", id="client-id-claim"),
    pytest.param(SERVER + _issuer() + _issuer(), {}, "trust.issuers", "only once", id="duplicate-issuer"),
    pytest.param(
        SERVER + _issuer(issuer='"https://sekisho.example.com"'),
        {}, "trust.issuers", "must not contain server.issuer", id="trusting-ourselves",
    ),
    pytest.param(
        SERVER + _issuer(issuer='"https://sekisho.example.com/"'),
        {}, "server.issuer", "must not contain server.issuer", id="trusting-ourselves-trailing-slash",
    ),
    pytest.param(SERVER + 'workers = 2\ngrpc_listen = "127.0.0.1:0"\n', {}, "server.grpc_listen", "fixed port", id="workers-port-0"),
    pytest.param(SERVER + "workers = -1\n", {}, "server.workers", "greater than or equal to 0", id="workers-negative"),
    pytest.param(SERVER + 'workers = "one"\n', {}, "server.workers", "integer", id="workers-not-int"),
    pytest.param(SERVER + "shutdown_grace_seconds = 0\n", {}, "server.shutdown_grace_seconds", "greater than 0", id="shutdown-grace"),
    pytest.param(SERVER + "[trust]\nleeway_seconds = 301\n", {}, "trust.leeway_seconds", "300", id="leeway"),
    pytest.param(SERVER + "[trust]\njwks_cache_seconds = 1\n", {}, "trust.jwks_cache_seconds", "10", id="jwks-cache"),
    pytest.param(SERVER + "[trust]\nmax_token_bytes = 10\n", {}, "trust.max_token_bytes", "1024", id="max-token-bytes"),
    pytest.param(SERVER + "[trust]\nunknown_kid_wait_seconds = -1\n", {}, "trust.unknown_kid_wait_seconds", "greater than or equal to 0", id="unknown-kid-wait-negative"),
    pytest.param(SERVER + "[trust]\njwks_max_stale_seconds = 30\n", {}, "trust.jwks_max_stale_seconds", "60", id="jwks-max-stale-min"),
    pytest.param(SERVER + "[trust]\njwks_max_stale_seconds = 300\n", {}, "trust.jwks_max_stale_seconds", "must exceed trust.jwks_cache_seconds", id="jwks-max-stale-vs-refresh"),
    pytest.param(SERVER + '[policy]\nengine = "wasm"\n', {}, "policy.engine", "embedded", id="policy-engine"),
    pytest.param(SERVER + '[policy]\nquery = "sekisho.decision"\n', {}, "policy.query", "data reference", id="policy-query"),
    pytest.param(SERVER + '[keys]\nbackend = "vault"\n', {}, "keys.backend", "file", id="keys-backend"),
    pytest.param(SERVER + '[keys]\nalgorithm = "HS256"\n', {}, "keys.algorithm", "ES256", id="keys-algorithm"),
    pytest.param(SERVER + "[tokens]\nmax_lifetime_seconds = 7200\n", {}, "tokens.max_lifetime_seconds", "3600", id="max-lifetime"),
    pytest.param(SERVER + '[logging]\nlevel = "TRACE"\n', {}, "logging.level", "INFO", id="log-level"),
    pytest.param(SERVER, {"SEKISHO_SERVER__BOGUS": "1"}, "server.bogus", "Extra inputs", id="env-unknown-key"),
    pytest.param(SERVER, {"SEKISHO_SERVER__ISSUER": "http://sekisho.example.com"}, "server.issuer", "https", id="env-bad-issuer"),
    pytest.param(SERVER, {"SEKISHO_TRUST__LEEWAY_SECONDS": "soon"}, "trust.leeway_seconds", "integer", id="env-not-an-int"),
    pytest.param(
        SERVER,
        {"SEKISHO_TRUST__ISSUERS": json.dumps([{"issuer": "https://idp.example.com", "jwks_uri": "https://idp.example.com/jwks", "audiences": ["a"], "algorithms": ["HS256"]}])},
        "trust.issuers.0.algorithms", "HS256", id="env-issuers-json",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("text", "env", "key", "message"), ERROR_CASES)
def test_invalid_config_names_the_key(
    *,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    env: dict[str, str],
    key: str,
    message: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = _config(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    error = str(raised.value)
    assert key in error
    assert message in error
    assert str(path) in error  # which file, too


def test_error_cases_are_valid_without_their_fault(tmp_path: Path) -> None:
    # The cases above change one thing each: the text they start from must load.
    settings = _load(tmp_path, SERVER + _issuer())
    assert settings.trust.issuers[0].jwks_uri == "https://idp.example.com/jwks"


def test_unknown_key_message_quotes_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config key 'server\.grpc_listn'"):
        _load(tmp_path, SERVER + 'grpc_listn = "127.0.0.1:1"\n')


def test_every_bad_key_is_reported_at_once(tmp_path: Path) -> None:
    text = '[server]\nissuer = "http://sekisho.example.com"\n[keys]\nalgorithm = "none"\n'
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, text)
    assert "'server.issuer'" in str(raised.value)
    assert "'keys.algorithm'" in str(raised.value)


# A validator relating keys runs on their table (or the whole tree), so pydantic places its error
# there ('(top level)', 'decision_log'): one opening with a key path and ": " is reported under
# that key, without pydantic's "Value error, ". Any other message is left as pydantic wrote it.
KEYED_CASES = [
    pytest.param(
        '[gateway]\ntrust_source_principal = true\ntrusted_gateways = ["envoy-gw"]\n',
        "config key 'gateway.trusted_gateways': not a registered [[callers]] id",
        id="cross-section-validator",
    ),
    pytest.param(
        "[decision_log]\nenabled = true\n",
        "config key 'decision_log.hash_key_file': is empty: hash_method = 'hmac' needs a file "
        "holding the key (or set hash_method = 'salted' with a hash_salt of 16+ characters, or "
        "hash_fields = [])",
        id="section-validator",
    ),
    pytest.param(
        '[keys]\nreplica_urls = ["ftp://x"]\n',
        "config key 'keys.replica_urls': Value error, replica_urls: 'ftp://x' is not",
        id="field-validator-naming-itself-unchanged",
    ),
    pytest.param(
        '[server]\nworkers = 2\ngrpc_listen = "127.0.0.1:0"\n',
        "config key 'server': Value error, server.grpc_listen needs a fixed port",
        id="message-without-key-colon-unchanged",
    ),
]


@pytest.mark.parametrize(("text", "line"), KEYED_CASES)
def test_a_validator_message_opening_with_a_key_is_reported_under_that_key(
    tmp_path: Path, text: str, line: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, text)
    assert line in str(raised.value)


# --- http on loopback only ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://127.0.0.1:9400", id="127.0.0.1"),
        pytest.param("http://127.0.0.2:9400", id="127.0.0.2"),
        pytest.param("http://localhost:9400", id="localhost"),
        pytest.param("http://[::1]:9400", id="ipv6-loopback"),
        pytest.param("https://idp.example.com", id="https"),
    ],
)
def test_http_is_accepted_on_loopback_hosts(tmp_path: Path, url: str) -> None:
    text = f'[server]\nissuer = "{url}/sekisho"\n' + _issuer(
        issuer=f'"{url}"', jwks_uri=f'"{url}/jwks"'
    )
    settings = _load(tmp_path, text)
    assert settings.trust.issuers[0].issuer == url
    assert settings.server.issuer == f"{url}/sekisho"


# --- environment overrides ------------------------------------------------------------------------


def test_env_overrides_a_file_value_and_keeps_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEKISHO_SERVER__ISSUER", "https://override.example.com")
    monkeypatch.setenv("SEKISHO_TOKENS__MAX_LIFETIME_SECONDS", "60")
    settings = _load(tmp_path, SERVER + 'grpc_listen = "127.0.0.1:6000"\n' + _issuer())
    assert settings.server.issuer == "https://override.example.com"
    assert settings.server.grpc_listen == "127.0.0.1:6000"
    assert settings.tokens.max_lifetime_seconds == 60
    assert settings.trust.issuers[0].issuer == "https://idp.example.com"


def test_env_issuers_take_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = {
        "issuer": "https://idp-b.example.com",
        "discovery_url": "https://idp-b.example.com/d",
        "client_ids": ["c"],
    }
    monkeypatch.setenv("SEKISHO_TRUST__ISSUERS", json.dumps([entry]))
    settings = _load(tmp_path, SERVER + _issuer())
    assert [i.issuer for i in settings.trust.issuers] == ["https://idp-b.example.com"]
    assert settings.trust.issuers[0].client_ids == ("c",)


def test_env_applies_without_a_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEKISHO_POLICY__ENGINE", "opa")
    assert load_settings(None).policy.engine == "opa"


def test_env_override_can_make_a_file_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEKISHO_SERVER__ISSUER", "https://sekisho.example.com")
    settings = _load(tmp_path, '[server]\nissuer = "http://sekisho.example.com"\n')
    assert settings.server.issuer == "https://sekisho.example.com"


# --- paths -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy_path", "keys_dir", "expected_policy", "expected_keys"),
    [
        pytest.param(None, None, "conf/policies", "conf/var/keys", id="defaults"),
        pytest.param('"rego"', '"secrets/keys"', "conf/rego", "conf/secrets/keys", id="relative"),
        pytest.param('"../policies"', '"../var/keys"', "policies", "var/keys", id="parent"),
        pytest.param('"/srv/policies"', '"/srv/keys"', "/srv/policies", "/srv/keys", id="absolute"),
    ],
)
def test_paths_are_relative_to_the_config_files_folder(
    *,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    policy_path: str | None,
    keys_dir: str | None,
    expected_policy: str,
    expected_keys: str,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter
    conf = tmp_path / "conf"
    conf.mkdir()
    text = SERVER
    if policy_path:
        text += f"[policy]\npath = {policy_path}\n"
    if keys_dir:
        text += f"[keys]\ndir = {keys_dir}\n"
    settings = load_settings(_config(conf, text))
    root = tmp_path.resolve()
    assert settings.policy.path == root / expected_policy
    assert settings.keys.dir == root / expected_keys


def test_without_a_file_paths_are_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None)
    assert settings.policy.path == tmp_path.resolve() / "policies"
    assert settings.keys.dir == tmp_path.resolve() / "var/keys"


# --- the file itself ---------------------------------------------------------------------------


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match="cannot read config file") as raised:
        load_settings(path)
    assert str(path) in str(raised.value)


def test_invalid_toml_is_named(tmp_path: Path) -> None:
    path = _config(tmp_path, "[server\nissuer = 1\n")
    with pytest.raises(ConfigError, match="invalid TOML") as raised:
        load_settings(path)
    assert str(path) in str(raised.value)
