"""The code's layout holds: no import circle, one module per concern, nothing reaching into the façade."""

from __future__ import annotations

import ast
from pathlib import Path

import migmagic

PACKAGE = Path(migmagic.__file__).resolve().parent


def _imports(path: Path) -> set[str]:
    """The migmagic modules ``path`` imports, at module level or inside functions (TYPE_CHECKING too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("migmagic."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("migmagic."))
    return found - {"__init__"}


def _graph() -> dict[str, set[str]]:
    modules = {p.stem: p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return {name: _imports(path) & modules.keys() for name, path in modules.items()}


def test_no_import_circle() -> None:
    graph = _graph()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = path[path.index(node):] + [node]
            raise AssertionError("import circle: " + " -> ".join(cycle))
        if node in done:
            return
        for child in sorted(graph[node]):
            visit(child, [*path, node])
        done.add(node)

    for name in sorted(graph):
        visit(name, [])


def test_only_the_magics_reach_the_facade() -> None:
    """engine.py is the façade: the modules it glues never import it or take a Migrator."""
    for path in PACKAGE.glob("*.py"):
        if path.stem in ("engine", "magics", "__init__"):
            continue
        assert "engine" not in _imports(path), f"{path.name} imports engine"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert "Migrator" not in used, f"{path.name} uses Migrator"


def test_alembic_is_imported_by_the_adapter_only() -> None:
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
        if path.stem != "adapter":
            assert not {n for n in names if n.split(".")[0] == "alembic"}, f"{path.name} imports Alembic"


def test_the_engine_knows_nothing_of_ipython() -> None:
    for path in PACKAGE.glob("*.py"):
        if path.stem in ("magics",):
            continue
        text = path.read_text(encoding="utf-8")
        assert "import IPython" not in text and "from IPython" not in text, path.name


def test_the_facade_stays_a_facade() -> None:
    lines = (PACKAGE / "engine.py").read_text(encoding="utf-8").count("\n")
    assert lines < 450, f"engine.py has {lines} lines: machinery belongs in run, folder, state"  # ~30 commands, a few lines each
