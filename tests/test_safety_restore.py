"""Restore checks the points are this database's, says what it drops, and can be undone (issue 21, item 10)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import EVENTS, table_revision

from migmagic import Migrator
from migmagic.errors import RestoreUnavailable


def _titles(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT title FROM events ORDER BY id")]
    finally:
        conn.close()


def _insert(url: str, *titles: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for t in titles:
            conn.execute(sa.text("INSERT INTO events (title, event_type) VALUES (:t, 'talk')"), {"t": t})
    engine.dispose()


def test_points_of_a_database_made_again_are_refused(workdir: Path) -> None:
    url = "sqlite:///p.db"
    m = Migrator.init(url)
    m.revision("create events", EVENTS)
    m.upgrade("head")
    _insert(url, "old project")
    m.revision("more", table_revision("more"))
    m.upgrade("head")  # point 2: the old project with its row
    m.close()
    (workdir / "p.db").unlink()  # start over, as the tutorials say
    m = Migrator(url)
    try:
        m.upgrade("head")  # a new database: its own ledger
        _insert(url, "new project")
        with pytest.raises(RestoreUnavailable) as caught:
            m.restore(2)
        assert "taken of another database" in str(caught.value) and "Nothing was restored" in str(caught.value)
        assert _titles(workdir / "p.db") == ["new project"]
        m.restore()  # its own latest point (before its first upgrade) is fine
    finally:
        m.close()


def test_restore_says_what_it_drops_and_can_be_undone(workdir: Path, sqlite_url: str) -> None:
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    m = Migrator.init(sqlite_url)
    try:
        m.revision("create events", EVENTS)
        m.upgrade("head")
        _insert(sqlite_url, "a", "b")
        m.revision("more", table_revision("more"))
        m.upgrade("head")  # a point with two rows
        _insert(sqlite_url, "c", "d", "e")  # written after the point
        done = m.restore()
        said = repr(done)
        assert "3 rows of events" in said, said
        assert _titles(path) == ["a", "b"]
        undo = done.undo
        assert undo is not None and f"%migrate restore {undo}" in said
        m.restore(undo)  # the restore undone
        assert _titles(path) == ["a", "b", "c", "d", "e"]
        assert "more" in sa.inspect(sa.create_engine(sqlite_url)).get_table_names()
    finally:
        m.close()


def test_a_deleted_database_file_comes_back_from_its_point(workdir: Path, sqlite_url: str) -> None:
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    m = Migrator.init(sqlite_url)
    try:
        m.revision("create events", EVENTS)
        m.upgrade("head")
        _insert(sqlite_url, "a")
        m.revision("more", table_revision("more"))
        m.upgrade("head")
        m.close()
        path.unlink()
        m.restore()
        assert _titles(path) == ["a"]
    finally:
        m.close()
