"""The gateway route table: the downstream a token is minted for.

Preferred: Envoy names the route it chose (per-route ext_authz `context_extensions`
`sekisho_route`), and the table is only looked up by that name, so Sekisho never guesses again
what Envoy decided (issue 15 item 3). Otherwise (host, path prefix, method) are matched; hosts
are compared as Envoy's virtual-host matching does by default (lower case, port and trailing
dot kept), so `crm.example.com.` or `crm.example.com:8443` do not match a `crm.example.com`
route that Envoy would not have chosen either.
"""

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Route:
    """One downstream behind the gateway; `index` identifies it in cache keys and logs."""

    index: int
    host: str
    path_prefix: str
    methods: tuple[str, ...]
    audience: str
    resources: tuple[str, ...]
    scopes: tuple[str, ...]
    requested_token_type: str
    name: str = ""

    def matches(self, host: str, path: str, method: str) -> bool:
        if self.host and self.host != host:
            return False
        if self.methods and method not in self.methods:
            return False
        return _under_prefix(path, self.path_prefix)


def _under_prefix(path: str, prefix: str) -> bool:
    # "/mcp" covers "/mcp", "/mcp/" and "/mcp/x" but not "/mcpx": a prefix ends at a segment.
    if prefix.endswith("/"):
        return path.startswith(prefix) or path == prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


def normalise_host(authority: str) -> str:
    """The authority as Envoy's domain matching compares it: lower case, nothing stripped."""
    return authority.lower()


class RouteTable:
    """Most specific match wins: a named host beats any host, then the longest path prefix."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes = sorted(routes, key=lambda r: (not r.host, -len(r.path_prefix), r.index))
        self._by_name = {route.name: route for route in self._routes if route.name}

    def named(self, name: str) -> Route | None:
        """The route Envoy named (exact match), or None."""
        return self._by_name.get(name)

    def __len__(self) -> int:
        return len(self._routes)

    def match(self, authority: str, path: str, method: str) -> Route | None:
        """The route for this request, or None when no route covers it."""
        host = normalise_host(authority)
        bare_path = path.split("?", 1)[0].split("#", 1)[0]
        for route in self._routes:
            if route.matches(host, bare_path, method.upper()):
                return route
        return None
