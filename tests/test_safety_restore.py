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


RESTORE_WITH_A_FILE_SIZE_LIMIT = """
import resource, signal, sys
from migmagic import Migrator
from migmagic.errors import MigmagicError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as a full disk fails one
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
m = Migrator(sys.argv[1])
try:
    m.restore(1)
except MigmagicError as exc:
    print(type(exc).__name__, str(exc))
"""


def test_a_restore_that_cannot_write_says_nothing_was_restored(workdir: Path) -> None:
    """Issue 21 (item 10 and a rough item): a restore that runs out of room (a real process whose files may not grow
    past a limit, as on a full disk) cannot take the point that would undo it: refused in one line that says what it
    would have dropped and that nothing was restored; the database keeps its rows. (It restored, dropping the rows
    for good with only a note, before.)"""
    import subprocess
    import sys

    url = "sqlite:///p.db"
    m = Migrator.init(url)
    m.revision("create events", EVENTS)
    m.upgrade("head")  # point 1: before it, an empty database
    _insert(url, *[f"talk {i:05d} " + "x" * 200 for i in range(2000)])  # the database is now far above the limit
    m.close()
    size = (workdir / "p.db").stat().st_size
    before = (workdir / "p.db").read_bytes()
    done = subprocess.run([sys.executable, "-c", RESTORE_WITH_A_FILE_SIZE_LIMIT, url, str(size // 4)], capture_output=True, text=True, timeout=120)
    said = done.stdout.strip()
    assert said.startswith("RestoreUnavailable Cannot restore point 1"), (said, done.stderr)
    assert "a restore point of the database as it is now could not be taken first" in said, said
    assert "It would drop what was written after the point: table events (2,000 rows" in said, said
    assert "Nothing was restored" in said and "Traceback" not in done.stderr, (said, done.stderr)
    assert not [f for f in (workdir / "p.db.migmagic-restore").iterdir() if f.name.endswith((".partial", ".db")) and not f.name.startswith("1-")]
    assert (workdir / "p.db").read_bytes() == before and len(_titles(workdir / "p.db")) == 2000


WRITE_WHILE_THE_RESTORE_WAITS = """
import sqlite3, sys, time
from pathlib import Path
db, folder = sys.argv[1], Path(sys.argv[2])
conn = sqlite3.connect(db, isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO events (title, event_type) VALUES ('written while restoring', 'talk')")
print("holding", flush=True)
deadline = time.monotonic() + 30
while not list(folder.glob(".restoring-*")) and time.monotonic() < deadline:  # the restore has staged the point
    time.sleep(0.01)
conn.execute("COMMIT")
print("committed", flush=True)
"""


def test_a_row_committed_while_the_restore_waits_is_never_dropped_unsaid(workdir: Path, sqlite_url: str) -> None:
    """Issue 21 (a hostile user's attack): another process commits a row while the restore waits for the write lock.
    The restore used to count before it and copy the point over it after: the row was gone, not among the rows it
    said it dropped, and not in the point that undoes the restore. Now the row stays, or is said and can come back."""
    import subprocess
    import sys

    path = Path(sqlite_url.removeprefix("sqlite:///"))
    m = Migrator.init(sqlite_url)
    try:
        m.revision("create events", EVENTS)
        m.upgrade("head")
        _insert(sqlite_url, "a")
        m.revision("more", table_revision("more"))
        m.upgrade("head")  # the latest point: one row
        m.lock_timeout = 30
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITE_WHILE_THE_RESTORE_WAITS, str(path), str(path) + ".migmagic-restore"],
            stdout=subprocess.PIPE, text=True,
        )
        assert writer.stdout is not None and writer.stdout.readline().strip() == "holding"
        try:
            done = m.restore()
        except RestoreUnavailable as exc:
            assert "Nothing was restored" in str(exc), str(exc)
            done = None
        assert writer.wait(timeout=60) == 0
        if done is None:
            assert _titles(path) == ["a", "written while restoring"]
            return
        said = repr(done)
        assert "1 row of events" in said, said  # the row it dropped is named...
        assert done.undo is not None
        m.restore(done.undo)  # ...and the restore can be undone with it
        assert _titles(path) == ["a", "written while restoring"]
    finally:
        m.close()


def test_rows_written_after_the_point_are_said_even_when_as_many_were_deleted(workdir: Path, sqlite_url: str) -> None:
    """Issue 21 (a hostile user's attacks): two rows written after the point and two older ones deleted left the count
    as it was, so the restore dropped the two new rows without a word. Rows are compared one by one now."""
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    m = Migrator.init(sqlite_url)
    try:
        m.revision("create events", EVENTS)
        m.upgrade("head")
        _insert(sqlite_url, "a", "b")
        m.revision("more", table_revision("more"))
        m.upgrade("head")  # the point: a, b
        _insert(sqlite_url, "c", "d")
        conn = sqlite3.connect(path)
        with conn:
            conn.execute("DELETE FROM events WHERE title IN ('a', 'b')")
        conn.close()
        done = m.restore()
        assert "2 rows of events" in repr(done), repr(done)
        assert _titles(path) == ["a", "b"]
    finally:
        m.close()
