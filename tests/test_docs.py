"""The documentation says what the code is: the layout page's table is the real import graph,
and the site builds (``mkdocs build --strict``) with every tutorial executed and a page per command."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from nbrun import ROOT, tutorials

import migmagic

PACKAGE = Path(migmagic.__file__).resolve().parent
LAYOUT = ROOT / "docs" / "layout.md"


# ----------------------------------------------------------------------------- the layout page


def modules() -> dict[str, Path]:
    """Every module of the package by its dotted name inside it (``display``, ``adapter.scripts``; ``__init__`` the package)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if "templates" in rel.parts:
            continue
        parts = list(rel.with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name or "__init__"] = path
    return found


def row_name(name: str, path: Path) -> str:
    """How the table names a module: its file, relative to migmagic/ (``display.py``, ``adapter/__init__.py``)."""
    return path.relative_to(PACKAGE).as_posix()


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of the package that ``path`` imports, anywhere in it (functions and TYPE_CHECKING too)."""
    package = name.split(".")[:-1] if path.name != "__init__.py" else ([] if name == "__init__" else name.split("."))

    def dotted(parts: list[str]) -> str:
        return ".".join(parts) or "__init__"

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] + (node.module.split(".") if node.module else [])
            elif node.module and (node.module == "migmagic" or node.module.startswith("migmagic.")):
                base = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:
                whole = dotted([*base, alias.name])
                found.add(whole if whole in known else dotted(base))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "migmagic":
                    found.add(next((dotted(parts[1:i]) for i in range(len(parts), 0, -1) if dotted(parts[1:i]) in known), "__init__"))
    return (found & known) - {name}


def real_layout() -> dict[str, set[str]]:
    """{row name: the modules it imports}, from the code."""
    known = modules()
    return {row_name(n, p): imports(n, p, set(known)) for n, p in known.items()}


def documented_layout() -> list[tuple[str, set[str]]]:
    """The rows of the layout page's table: (what its module column says, the modules its imports column names)."""
    text = LAYOUT.read_text(encoding="utf-8")
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 3 or set(cells[0]) <= {"-", " "} or cells[0] == "module":
            continue
        rows.append((", ".join(re.findall(r"`([^`]+)`", cells[0])), set(re.findall(r"`([^`]+)`", cells[2]))))
    return rows


def test_the_layout_table_is_the_import_graph() -> None:
    """One row per module of migmagic/, and its imports column is exactly what it imports from migmagic."""
    real = real_layout()
    rows = documented_layout()
    fixes = [f"split the row for `{n}`: one module per row" for n, _ in rows if ", " in n]
    rows = [row for row in rows if ", " not in row[0]]
    names = [name for name, _ in rows]
    fixes += [f"remove the second row for `{n}` (one row per module)" for n in sorted({n for n in names if names.count(n) > 1})]
    fixes += [f"remove the row for `{n}`: there is no migmagic/{n}" for n in sorted(set(names) - real.keys())]
    for name in sorted(real.keys() - set(names)):
        fixes.append(f"add a row for `{name}`, imports: {_column(real[name])}")
    for name, said in rows:
        if name in real and said != real[name]:
            missing, extra = sorted(real[name] - said), sorted(said - real[name])
            fixes.append(
                f"row `{name}`: the imports column should read {_column(real[name])}"
                + (f" (add {', '.join(missing)})" if missing else "")
                + (f" (remove {', '.join(extra)})" if extra else "")
            )
    assert fixes == [], "docs/layout.md's table disagrees with the code; fix these rows:\n  " + "\n  ".join(fixes)


def _column(names: set[str]) -> str:
    return ", ".join(f"`{n}`" for n in sorted(names)) or "—"


# ----------------------------------------------------------------------------- the site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as ``.ci/run`` builds it: ``mkdocs build --strict`` (warnings are errors), from the repository."""
    out = tmp_path_factory.mktemp("site")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MIGMAGIC_TUTORIAL_URL")}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def _page(site: Path, path: str) -> str:
    return (site / path / "index.html").read_text(encoding="utf-8")


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", tutorials(), ids=[p.stem for p in tutorials()])
def test_each_tutorial_page_holds_its_executed_output(site: Path, notebook: Path) -> None:
    import nbformat

    page = _page(site, f"tutorials/{notebook.stem}")
    cells = [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
    # Every code cell is there, and each cell that shows something showed it when the site was built.
    assert page.count('class="cell border-box-sizing code_cell') == len(cells)
    assert page.count('class="output_area"') >= len(cells) // 2
    assert "Traceback" not in page
    assert re.search(r"(Upgraded|Wrote revision) ", page)


@pytest.mark.notebook
def test_the_pictures_are_in_the_tutorials(site: Path) -> None:
    """The revision graph and the schema diagram are inline SVG in the executed tutorials."""
    assert "<svg" in _page(site, "tutorials/getting-started")  # %migrate graph, history's lanes
    diagram = _page(site, "tutorials/models-and-autogenerate")
    assert re.search(r"<svg[^>]*>.*venues.*</svg>", diagram, re.DOTALL)


@pytest.mark.notebook
def test_each_command_has_a_page_made_from_its_help(site: Path) -> None:
    from migmagic.magics import COMMANDS

    for name in COMMANDS:
        page = _page(site, f"commands/{name}")
        assert f"usage: %migrate {name}" in page, name
    assert "usage: %%revision" in _page(site, "revision-cells")


@pytest.mark.notebook
def test_the_guarantees_and_the_layout_have_pages(site: Path) -> None:
    assert "All or nothing" in _page(site, "guarantees")
    assert "How the code is laid out" in _page(site, "layout")
    for stub in ("models", "in-ci"):
        assert (site / stub / "index.html").is_file()
