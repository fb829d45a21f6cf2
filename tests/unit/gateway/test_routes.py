"""Route table matching: host, path prefix at a segment boundary, method, most specific wins."""

import pytest
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN
from sekisho.gateway.routes import Route, RouteTable, normalise_host


def route(index: int, host: str = "", prefix: str = "/", methods: tuple[str, ...] = ()) -> Route:
    return Route(
        index=index,
        host=host,
        path_prefix=prefix,
        methods=methods,
        audience=f"https://as{index}.example.com",
        resources=(),
        scopes=(),
        requested_token_type=TOKEN_TYPE_ACCESS_TOKEN,
    )


TABLE = RouteTable(
    [
        route(0, prefix="/"),
        route(1, host="crm.example.com", prefix="/mcp"),
        route(2, host="crm.example.com", prefix="/mcp/admin", methods=("POST",)),
        route(3, prefix="/docs/"),
    ]
)


@pytest.mark.parametrize(
    ("authority", "path", "method", "expected"),
    [
        pytest.param("crm.example.com", "/mcp", "POST", 1, id="exact-prefix"),
        pytest.param("CRM.example.com", "/mcp/x?q=1", "GET", 1, id="host-case-query"),
        # Envoy's default domain matching keeps the port and a trailing dot: such a request goes
        # to another virtual host there, so it must not reach the crm route here (issue 15 item 3).
        pytest.param("crm.example.com:443", "/mcp/x", "GET", 0, id="port-is-another-host"),
        pytest.param("crm.example.com.", "/mcp/x", "GET", 0, id="trailing-dot-is-another-host"),
        pytest.param("crm.example.com", "/mcp/admin/y", "POST", 2, id="longest-prefix"),
        pytest.param("crm.example.com", "/mcp/admin/y", "GET", 1, id="method-falls-back"),
        pytest.param("crm.example.com", "/mcpx", "POST", 0, id="prefix-at-segment-only"),
        pytest.param("other.example.com", "/mcp", "POST", 0, id="other-host-catch-all"),
        pytest.param("x", "/docs", "GET", 3, id="trailing-slash-prefix-covers-bare"),
    ],
)
def test_match(authority: str, path: str, method: str, expected: int) -> None:
    matched = TABLE.match(authority, path, method)
    assert matched is not None
    assert matched.index == expected


def test_no_catch_all_means_no_route() -> None:
    table = RouteTable([route(0, host="crm.example.com", prefix="/mcp")])
    assert table.match("crm.example.com", "/other", "GET") is None
    assert table.match("evil.example.com", "/mcp", "GET") is None


@pytest.mark.parametrize(
    ("authority", "host"),
    [
        ("a.example.com:8443", "a.example.com:8443"),
        ("A.Example.com.", "a.example.com."),
        ("[::1]:80", "[::1]:80"),
    ],
)
def test_normalise_host(authority: str, host: str) -> None:
    assert normalise_host(authority) == host
