"""The gateway route table: (host, path prefix, method) → the downstream a token is minted for."""

from collections.abc import Iterable
from dataclasses import dataclass

from sekisho.profiles import PROFILES

PROFILE_TOKEN_TYPES = {p.name: p.token_type_urn for p in PROFILES}


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
    """The host part of an HTTP authority, lower case, without port or trailing dot."""
    host = authority.lower()
    if host.startswith("["):  # IPv6 literal
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0].rstrip(".") if ":" in host else host.rstrip(".")


class RouteTable:
    """Most specific match wins: a named host beats any host, then the longest path prefix."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes = sorted(routes, key=lambda r: (not r.host, -len(r.path_prefix), r.index))

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
