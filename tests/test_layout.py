"""The code's layout holds: no import circle, one module per concern, nothing reaching into the façade,
Alembic and its internals in the adapter package alone."""

from __future__ import annotations

import ast
from pathlib import Path

import migmagic

PACKAGE = Path(migmagic.__file__).resolve().parent


def _units() -> dict[str, list[Path]]:
    """The package's parts: each top-level module, and each subpackage as one part (``adapter``)."""
    units = {p.stem: [p] for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    for sub in PACKAGE.iterdir():
        if sub.is_dir() and (sub / "__init__.py").exists():
            units[sub.name] = sorted(sub.rglob("*.py"))
    return units


def _imports(path: Path) -> set[str]:
    """The top-level parts of migmagic ``path`` imports, at module level or inside functions (TYPE_CHECKING too)."""
    depth = len(path.relative_to(PACKAGE).parts)  # 1: a top-level module; 2: a module of a subpackage
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == depth:
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
    units = _units()
    return {name: set().union(*(_imports(p) for p in paths)) & units.keys() - {name} for name, paths in units.items()}


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
    for path in PACKAGE.rglob("*.py"):
        if path.stem in ("engine", "magics", "__init__", "cli_env") and path.parent == PACKAGE:  # the front ends: notebook, alembic command
            continue
        assert "engine" not in _imports(path), f"{path.name} imports engine"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert "Migrator" not in used, f"{path.name} uses Migrator"


def test_alembic_is_imported_by_the_adapter_only() -> None:
    adapter = PACKAGE / "adapter"
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
        if adapter not in path.parents and "templates" not in path.parts:
            assert not {n for n in names if n.split(".")[0] == "alembic"}, f"{path.name} imports Alembic"


def _alembic_private_names() -> set[str]:
    """Every ``_name`` Alembic defines (functions, methods, classes, attributes set on self or at module level)."""
    import alembic

    names: set[str] = set()
    for path in Path(alembic.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_alembic_internals_are_the_listed_ones_and_only_in_the_adapter() -> None:
    """A private Alembic name used anywhere is in adapter.ALEMBIC_INTERNALS, and used only in the adapter package."""
    from migmagic.adapter import ALEMBIC_INTERNALS

    theirs = _alembic_private_names()
    listed = {name.rsplit(".", 1)[-1] for name in ALEMBIC_INTERNALS}
    ours: set[str] = set()
    used: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if "templates" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):  # what migmagic defines itself is its own, whatever Alembic calls its own
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                ours.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and node.attr not in listed:
                ours.add(node.attr)
        attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        attrs |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("alembic") for a in n.names}
        if path.parent.name == "adapter":  # a method of Alembic's replaced by a subclass of the adapter's is used too
            attrs |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name in listed}
        used[str(path.relative_to(PACKAGE))] = attrs
    internal = (theirs - ours) | listed
    outside = {f: sorted(a & internal) for f, a in used.items() if not f.startswith("adapter/") and a & internal}
    assert outside == {}, f"Alembic internals used outside migmagic/adapter/: {outside}"
    unlisted = {f: sorted((a & theirs) - ours - listed) for f, a in used.items() if f.startswith("adapter/") and (a & theirs) - ours - listed}
    assert unlisted == {}, f"private Alembic names used but not in adapter.ALEMBIC_INTERNALS: {unlisted}"
    unused = listed - set().union(*used.values())
    assert unused == set(), f"listed in ALEMBIC_INTERNALS but not used: {unused}"


def test_the_engine_knows_nothing_of_ipython() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.stem in ("magics",):
            continue
        text = path.read_text(encoding="utf-8")
        assert "import IPython" not in text and "from IPython" not in text, path.name


def test_the_facade_opens_no_connection_and_takes_no_lock() -> None:
    """engine.py glues: no connection of its own (the modules read through ``Database.read``), no lock, no SQL."""
    tree = ast.parse((PACKAGE / "engine.py").read_text(encoding="utf-8"))
    calls = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    assert not calls & {"connect", "reading", "migrating", "locked", "execute", "exec_driver_sql", "begin", "commit"}, calls
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments) for a in n.args}
    assert "conn" not in names and "sqlalchemy" not in names
