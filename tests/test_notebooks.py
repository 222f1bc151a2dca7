"""Every notebook in notebooks/ runs top to bottom, twice, with a real kernel."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import columns, tables
from nbrun import (
    NOTEBOOKS,
    copy_notebooks,
    copy_to,
    execute,
    readme_render_command,
    texts,
    tutorials,
)

ALL = tutorials()


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
    assert not any("Traceback" in t or "Error:" in t for t in texts(second, expected_errors=False))

    # A fresh checkout writes the same revision ids.
    fresh_dir = tmp_path / "fresh"
    execute(copy_to(notebook, fresh_dir), fresh_dir)
    assert _revision_files(fresh_dir) == files_once


GETTING_STARTED = NOTEBOOKS / "getting-started.ipynb"


def _assert_walkthrough(nb: Any, url: str) -> None:
    out = "\n".join(texts(nb))
    assert re.search(r"Revision [0-9a-f]{12} \('create events table'\)|Wrote revision [0-9a-f]{12} \('create events table'\) to getting-started/migrations/versions/", out)
    assert re.search(rf"Upgraded {re.escape(url)} to [0-9a-f]{{12}}", out)
    assert "ALTER TABLE events ADD COLUMN venue VARCHAR(200)" in out
    assert f"Downgraded {url}" in out
    assert "['alembic_version', 'events'" in out  # built by the alembic command (through migmagic: its tables follow)
    # The rows inserted before the schema changes are still there at the end.
    assert "PyData meetup" in texts(nb)[-1] and "Schema review" in texts(nb)[-1]


@pytest.mark.notebook
def test_getting_started_shows_the_walkthrough(tmp_path: Path) -> None:
    work = tmp_path / "gs"
    nb = execute(copy_to(GETTING_STARTED, work), work)
    out = "\n".join(texts(nb))
    assert re.search(r"Wrote revision [0-9a-f]{12} \('create events table'\) to getting-started/migrations/versions/", out)
    assert re.search(r"Upgraded sqlite:///getting-started.db to [0-9a-f]{12}: 1 step", out)
    _assert_walkthrough(nb, "sqlite:///getting-started.db")
    assert (work / "getting-started.db").is_file()


def _normalised(text: str) -> str:
    """A cell's text without what honestly differs from run to run: times, durations, spacing."""
    text = re.sub(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:?\d{2})?", "<time>", text)
    text = re.sub(r"\b\d+\.\d+\b", "<number>", text)  # durations, the steps' seconds column
    return " ".join(text.split())


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", ALL, ids=[p.stem for p in ALL])
def test_notebook_shows_the_same_thing_when_run_again(notebook: Path, tmp_path: Path) -> None:
    """Run All twice in one folder: every cell shows the same text the second time (times and
    durations aside), because each tutorial starts by removing what its last run left."""
    work = tmp_path / "twice"
    nb_path = copy_to(notebook, work)
    first = [_normalised(t) for t in texts(execute(nb_path, work))]
    second = [_normalised(t) for t in texts(execute(nb_path, work))]
    differ = [(i, a, b) for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b]
    assert differ == [], "code cells showing something else on the second run: " + "; ".join(
        f"cell {i}: {a[:200]!r} then {b[:200]!r}" for i, a, b in differ
    )


@pytest.mark.notebook
def test_getting_started_leaves_the_database_in_database_url_alone(tmp_path: Path) -> None:
    """DATABASE_URL often names the user's own application database: the README's first command
    must not touch it. The tutorial runs on its own file and the named one stays byte for byte."""
    import sqlite3

    theirs = tmp_path / "app.db"
    with sqlite3.connect(theirs) as conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, title TEXT)")
        conn.executemany("INSERT INTO events (title) VALUES (?)", [("keep me",), ("me too",)])
    conn.close()
    before = theirs.read_bytes()
    work = tmp_path / "gs"
    nb = execute(copy_to(GETTING_STARTED, work), work, env={"DATABASE_URL": f"sqlite:///{theirs}"})
    assert theirs.read_bytes() == before
    with sqlite3.connect(theirs) as conn:
        assert conn.execute("SELECT title FROM events ORDER BY id").fetchall() == [("keep me",), ("me too",)]
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["events"]
    conn.close()
    _assert_walkthrough(nb, "sqlite:///getting-started.db")
    assert str(theirs) not in "\n".join(texts(nb))


@pytest.mark.notebook
@pytest.mark.servers
@pytest.mark.parametrize("url_fixture", ["pg_url", "mariadb_url"], ids=["postgresql", "mariadb"])
def test_getting_started_runs_on_the_database_in_migmagic_tutorial_url(
    url_fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """What the tutorial says holds: the same cells run on PostgreSQL and MariaDB, top to bottom, twice."""
    url = request.getfixturevalue(url_fixture)
    work = tmp_path / "gs"
    nb_path = copy_to(GETTING_STARTED, work)
    first = execute(nb_path, work, env={"MIGMAGIC_TUTORIAL_URL": url})
    _assert_walkthrough(first, url)
    second = execute(nb_path, work, env={"MIGMAGIC_TUTORIAL_URL": url})
    assert not any("Traceback" in t or "Error:" in t for t in texts(second, expected_errors=False))
    assert "PyData meetup" in texts(second)[-1]
    assert tables(url) == {"events"} and "venue" in columns(url, "events")
    assert not (work / "getting-started.db").exists()


@pytest.mark.notebook
def test_readme_first_command_renders_every_tutorial_twice(tmp_path: Path) -> None:
    """The README's first command, as a user runs it: every tutorial rendered to HTML, one
    after the other, in one copy of the notebooks folder, and again in the same copy."""
    command = readme_render_command()
    copy_notebooks(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "JUPYTER_PATH")}
    expected = sorted(f"{p.stem}.html" for p in tutorials())
    assert len(expected) >= 2
    for run in ("first", "second"):
        for html in (tmp_path / "out").glob("*.html"):
            html.unlink()
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{run} run of {command!r} failed:\n{done.stderr[-3000:]}"
        assert sorted(p.name for p in (tmp_path / "out").glob("*.html")) == expected, run
    for html in (tmp_path / "out").glob("*.html"):
        text = html.read_text(encoding="utf-8")
        # A cell error not tagged raises-exception stops nbconvert (the return code above); those
        # that are (a refusal shown on purpose) are one line, never a traceback.
        assert "Traceback" not in text, html.name
    # What the tutorials wrote next to themselves is ignored by git: `git status` stays clean.
    tracked = {p.relative_to(NOTEBOOKS) for p in NOTEBOOKS.rglob("*") if p.is_file()}
    written = [
        f"notebooks/{p.relative_to(tmp_path / 'notebooks')}"
        for p in (tmp_path / "notebooks").rglob("*")
        if p.is_file() and p.relative_to(tmp_path / "notebooks") not in tracked
    ]
    assert written
    ignored = subprocess.run(
        ["git", "-C", str(NOTEBOOKS.parent), "check-ignore", "--no-index", "--stdin"],
        input="\n".join(written), capture_output=True, text=True,
    ).stdout.split()
    assert sorted(set(written) - set(ignored)) == []
