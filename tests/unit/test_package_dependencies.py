"""Dependencies point inward (docs/architecture.md): no import cycle between sekisho's
subpackages, of any length. Read from the source with `ast` (every import, function-level ones
included, except under `if TYPE_CHECKING:`), so a cycle fails here rather than as an import
order that happens to work."""

import ast
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "server" / "sekisho"
GENERATED = "_gen"


def _package_of(module: str) -> str | None:
    """The subpackage `module` belongs to, or None for a top-level module or another library."""
    parts = module.split(".")
    if parts[0] != "sekisho" or len(parts) < 2 or parts[1] == GENERATED:
        return None
    return parts[1] if (ROOT / parts[1]).is_dir() else None


def _imported(tree: ast.Module) -> list[str]:
    checking_only = {
        id(node)
        for branch in ast.walk(tree)
        if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
        for node in ast.walk(branch)
    }
    names: list[str] = []
    for node in ast.walk(tree):
        if id(node) in checking_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def package_graph() -> dict[str, dict[str, str]]:
    """subpackage → {subpackage it imports: one file that does}."""
    graph: dict[str, dict[str, str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        source = _package_of("sekisho." + ".".join(path.relative_to(ROOT).with_suffix("").parts))
        if source is None:
            continue
        edges = graph.setdefault(source, {})
        for name in _imported(ast.parse(path.read_text(encoding="utf-8"))):
            target = _package_of(name)
            if target is not None and target != source:
                edges.setdefault(target, str(path.relative_to(ROOT)))
    return graph


def cycles(graph: Mapping[str, Mapping[str, str]]) -> list[list[str]]:
    """The strongly connected components with more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_subpackages() -> None:
    graph = package_graph()
    assert len(graph) >= 10 and sum(len(edges) for edges in graph.values()) >= 15  # read, not empty
    problems = [
        [f"{a} -> {b} ({graph[a][b]})" for a in cycle for b in cycle if b in graph[a]]
        for cycle in cycles(graph)
    ]
    assert problems == []


def test_a_cycle_of_three_packages_is_found() -> None:
    graph = {"http": {"status": "x"}, "status": {"policy": "y"}, "policy": {"http": "z"}}
    assert cycles(graph | {"client": {"verify": "w"}}) == [["http", "policy", "status"]]
    assert cycles({"http": {"status": "x"}, "status": {}}) == []
