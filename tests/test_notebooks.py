"""Every notebook in notebooks/ runs top to bottom, twice, with a real kernel."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from nbrun import NOTEBOOKS, copy_to, execute, texts

ALL = sorted(NOTEBOOKS.glob("*.ipynb"))


def _revision_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("**/migrations/versions/*.py"))  # migrations/, or a folder of its own


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", ALL, ids=[p.stem for p in ALL])
def test_notebook_runs_twice_and_agrees_on_ids(notebook: Path, tmp_path: Path) -> None:
    first_dir = tmp_path / "first"
    nb_path = copy_to(notebook, first_dir)
    execute(nb_path, first_dir)
    files_once = _revision_files(first_dir)
    assert files_once, "the notebook wrote no revision"

    # Run All again in the same folder: nothing duplicated, nothing fails.
    second = execute(nb_path, first_dir)
    assert _revision_files(first_dir) == files_once
    assert not any("Traceback" in t or "Error:" in t for t in texts(second))

    # A fresh checkout writes the same revision ids.
    fresh_dir = tmp_path / "fresh"
    execute(copy_to(notebook, fresh_dir), fresh_dir)
    assert _revision_files(fresh_dir) == files_once


@pytest.mark.notebook
def test_getting_started_shows_the_walkthrough(tmp_path: Path) -> None:
    work = tmp_path / "gs"
    nb = execute(copy_to(NOTEBOOKS / "getting-started.ipynb", work), work)
    out = "\n".join(texts(nb))
    assert re.search(r"Wrote revision [0-9a-f]{12} \('create events table'\) to migrations/versions/", out)
    assert re.search(r"Upgraded sqlite:///getting-started.db to [0-9a-f]{12}: 1 step", out)
    assert "ALTER TABLE events ADD COLUMN venue VARCHAR" in out
    assert "Downgraded sqlite:///getting-started.db" in out
    assert "['alembic_version', 'events']" in out  # built by the alembic command
    # The rows inserted before the schema changes are still there at the end.
    assert "PyData meetup" in texts(nb)[-1] and "Schema review" in texts(nb)[-1]
