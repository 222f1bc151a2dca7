"""The model styles users have, in a real Jupyter kernel: a Flask app adopted, and SQLModel models.

Each notebook is executed top to bottom by a fresh kernel (nbclient), in a
folder of its own, the way a user runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import columns, tables
from nbrun import execute
from test_models_flask import URL, make_flask_project

pytestmark = pytest.mark.notebook


def _notebook(cells: list[str], path: Path) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(nb, path)
    return path


def _outputs(nb: Any) -> list[str]:
    """Each code cell's text: streams, text/plain results, errors."""
    out = []
    for cell in nb.cells:
        parts = []
        for o in cell.get("outputs", []):
            if o.output_type == "stream":
                parts.append(o.text)
            elif o.output_type == "error":
                parts.append("\n".join(o.traceback))
            elif "data" in o:
                parts.append(o.data.get("text/plain", ""))
        out.append("\n".join(parts))
    return out


def test_a_flask_app_adopted_in_a_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    make_flask_project(project)
    notebook = _notebook(
        [
            "%load_ext migmagic",
            f"%migrate init {URL}",
            "import sqlalchemy as sa\nfrom sqlalchemy.orm import Mapped, mapped_column\nfrom app import db, User",
            "%migrate check",
            "%migrate check --metadata db.Model",
            "class Tag(db.Model):\n    id: Mapped[int] = mapped_column(primary_key=True)\n    label: Mapped[str] = mapped_column(sa.String(40))",
            "%migrate diff --metadata app:db",
            '%migrate revision --autogenerate -m "tags" --metadata db',
            "%migrate upgrade head",
            "%migrate check --metadata app:db",
        ],
        project / "adopt.ipynb",
    )
    out = _outputs(execute(notebook, project))
    assert out[3].startswith("No pending model changes: sqlite:///instance/app.db matches the models (1 table)."), out[3]
    assert out[4].startswith("No pending model changes"), out[4]
    assert out[6].startswith("1 difference between the models and sqlite:///instance/app.db (nothing written)."), out[6]
    assert "add table" in out[6] and "tag" in out[6]
    assert "Wrote revision" in out[7] and "1 change detected" in out[7], out[7]
    assert out[9].startswith("No pending model changes: sqlite:///instance/app.db matches the models (2 tables)."), out[9]
    assert columns(URL, "tag") == ["id", "label"]


def test_sqlmodel_models_in_a_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "heroes"
    work.mkdir()
    monkeypatch.chdir(work)
    notebook = _notebook(
        [
            "%load_ext migmagic",
            "%migrate init sqlite:///heroes.db",
            "from sqlmodel import Field, SQLModel\n\n"
            "class Hero(SQLModel, table=True):\n"
            "    id: int | None = Field(default=None, primary_key=True)\n"
            "    name: str = Field(index=True)\n"
            "    secret_name: str\n"
            "    age: int | None = None",
            '%migrate revision --autogenerate -m "heroes"',
            "%migrate upgrade head",
            "%migrate check",
        ],
        work / "heroes.ipynb",
    )
    out = _outputs(execute(notebook, work))
    assert "Wrote revision" in out[3], out[3]
    assert "hero" in out[4] and "upgrade" in out[4], out[4]
    assert out[5].startswith("No pending model changes: sqlite:///heroes.db matches the models (1 table)."), out[5]
    [revision] = (work / "migrations" / "versions").glob("*_heroes.py")
    assert "import sqlmodel.sql.sqltypes\n" in revision.read_text()
    assert tables("sqlite:///heroes.db") == {"hero"}
