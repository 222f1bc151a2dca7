"""``notebooks/models-and-autogenerate.ipynb``, executed twice in the same folder by a real kernel."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "models-and-autogenerate.ipynb"

pytestmark = pytest.mark.notebook


def _execute(folder: Path) -> Any:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(folder / NOTEBOOK.name, as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    return nb


def _text(cell: Any) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if "text" in out:
            parts.append(out["text"])
        data = out.get("data", {})
        if "text/plain" in data:
            parts.append(data["text/plain"])
    return "\n".join(parts)


def _cell(nb: Any, source_start: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith(source_start):
            return _text(cell)
    raise AssertionError(f"no cell starts with {source_start!r}")


def _cells(nb: Any, source_start: str) -> list[str]:
    return [_text(c) for c in nb.cells if c.cell_type == "code" and c.source.startswith(source_start)]


def test_tutorial_runs_twice_with_the_same_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    folder = tmp_path / "notebooks"
    folder.mkdir()
    shutil.copy(NOTEBOOK, folder / NOTEBOOK.name)

    first = _execute(folder)
    versions = sorted(p.name for p in (folder / "models-and-autogenerate" / "migrations" / "versions").glob("*.py"))
    assert len(versions) == 3

    # What the first run shows.
    assert "Wrote revision" in _cell(first, 'first = %migrate revision --autogenerate -m "create venues and events"')
    assert "add table" in _cell(first, "first = ")
    shown = _cells(first, "%migrate show head")[0]
    assert "op.create_table('venues'" in shown and "name='uq_venues_name'" in shown
    check_lines = _cells(first, "%migrate check")
    assert check_lines[0].startswith("No pending model changes: sqlite:///models.db matches the models (2 tables).")
    assert "Left alone 1 table the models do not know: visits" in check_lines[0]
    diff = _cell(first, "%migrate diff")
    assert diff.startswith("3 differences between the models and sqlite:///models.db (nothing written).")
    assert "add column" in diff and "add foreign key" in diff and "venues.id" in diff
    second_code = _cells(first, "%migrate show head")[1]
    assert "batch_alter_table('events'" in second_code
    assert "create_foreign_key('fk_events_venue_id_venues'" in second_code
    assert "drop_constraint('fk_events_venue_id_venues', type_='foreignkey')" in second_code
    pending = _cell(first, "from migmagic.errors import PendingModelChanges")
    assert "2 pending model changes" in pending and "change type" in pending and "add index" in pending
    assert "VARCHAR(100)" in pending and "VARCHAR(200)" in pending

    def results(nb: Any) -> dict[str, str]:
        return {
            "history": _cell(nb, "%migrate history"),
            "last check": _cells(nb, "%migrate check")[-1],
            "schema events": _cell(nb, "%migrate schema events"),
            "rows": _cell(nb, "pd.read_sql("),
        }

    once = results(first)
    assert once["last check"].startswith("No pending model changes")
    assert "ix_events_title" in once["schema events"] and "VARCHAR(200)" in once["schema events"]
    assert "fk_events_venue_id_venues" in once["schema events"]
    rows = once["rows"]
    assert "Opening talk" in rows and "Riverside Club" in rows and "Bergen" in rows and "Data workshop" in rows
    overview = _cells(first, "%migrate schema")[0]
    assert "visits" in overview and "events       3    3" in overview and "venues       2    2" in overview

    # Run All again in the same folder: the tutorial starts from a clean state, so it writes the
    # same revisions again and shows the same results.
    second = _execute(folder)
    assert sorted(p.name for p in (folder / "models-and-autogenerate" / "migrations" / "versions").glob("*.py")) == versions
    assert _cell(second, "first = ") == _cell(first, "first = ")
    twice = results(second)
    assert len(_ids(once["history"])) == 3 and _ids(twice["history"]) == _ids(once["history"])
    assert twice["last check"] == once["last check"]
    assert twice["schema events"] == once["schema events"]
    assert twice["rows"] == once["rows"]


def _ids(history: str) -> list[str]:
    """The revision ids of ``history``'s plain text (after the text graph column: ``*``, ``o``, ``|``, ...)."""
    words = [[w for w in line.split() if w.strip("*o|/\\-")] for line in history.splitlines()[1:]]
    return [w[0] for w in words if w]
