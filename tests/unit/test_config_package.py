"""The config package's one public surface: code outside server/sekisho/config imports
`sekisho.config` (its root), never a module inside it, so which module holds a section can change
without touching callers (docs/architecture.md §6)."""

import ast
from pathlib import Path

import sekisho.config

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "server" / "sekisho" / "config"
TREES = ("server/sekisho", "tests", "bench", "examples")


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _callers() -> list[Path]:
    return [
        path
        for tree in TREES
        for path in (ROOT / tree).rglob("*.py")
        if PACKAGE not in path.parents and "_gen" not in path.parts and ".venv" not in path.parts
    ]


def test_callers_import_the_package_root_only() -> None:
    inside = {
        (str(path.relative_to(ROOT)), module)
        for path in _callers()
        for module in _imported_modules(path)
        if module.startswith("sekisho.config.")
    }
    assert inside == set()


def test_the_root_exports_every_section_model() -> None:
    models = {
        node.name
        for path in PACKAGE.glob("*.py")
        for node in ast.parse(path.read_text(encoding="utf-8")).body
        if isinstance(node, ast.ClassDef) and node.name.endswith("Config")
    }
    assert models <= set(sekisho.config.__all__)


def test_package_modules_never_import_the_root() -> None:
    # The root imports every module; a module importing the root back would be an import cycle.
    importers = sorted(
        path.name for path in PACKAGE.glob("*.py") if "sekisho.config" in _imported_modules(path)
    )
    assert importers == []
