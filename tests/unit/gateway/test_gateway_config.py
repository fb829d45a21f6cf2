"""[gateway] settings: defaults, normalisation, and errors that name the key."""

from pathlib import Path

import pytest
from sekisho.config import Settings, load_settings
from sekisho.errors import ConfigError

ROUTE = 'audience = "https://crm-as.example.com"\n'


def load(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "sekisho.toml"
    path.write_text(text)
    return load_settings(path)


def test_defaults_read_authorization_bearer_with_no_routes() -> None:
    gateway = Settings().gateway
    assert (gateway.token_header, gateway.token_scheme, gateway.routes) == (
        "authorization",
        "Bearer",
        (),
    )


def test_route_is_normalised(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        '[gateway]\ntoken_header = "X-User-Token"\ntoken_scheme = ""\n'
        '[[gateway.routes]]\nhost = "MCP.Example.com"\nmethods = ["post"]\n' + ROUTE,
    )
    (route,) = settings.gateway.routes
    assert settings.gateway.token_header == "x-user-token"
    assert (route.host, route.methods, route.path_prefix) == ("mcp.example.com", ("POST",), "/")
    assert route.token_profile == "access_token"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        pytest.param('[gateway]\ntoken_header = "bad header"\n', "gateway.token_header", id="hdr"),
        pytest.param('[[gateway.routes]]\npath_prefix = "crm"\n' + ROUTE, "path_prefix", id="path"),
        pytest.param(
            '[[gateway.routes]]\ntoken_profile = "x"\n' + ROUTE, "token_profile", id="prof"
        ),
        pytest.param("[[gateway.routes]]\nscopes = []\n", "audience", id="no-audience"),
        pytest.param("[[gateway.routes]]\nsurprise = 1\n" + ROUTE, "surprise", id="unknown-key"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load(tmp_path, text)
