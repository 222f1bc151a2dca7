"""A failure at COMMIT rolls back for real and lets go of every lock (issue 21, items 1 and 7).

SQLite: a half-read ``pd.read_sql(..., chunksize=...)`` on another connection
holds a read lock, so the upgrade's COMMIT fails with "database is locked"; the
database must then be exactly as before (the next command must not commit the
upgrade) and free for everyone else. PostgreSQL: a deferred foreign key fails
at COMMIT; the advisory lock must not stay with the failed kernel.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import EVENTS, table_revision

from migmagic import Migrator
from migmagic.errors import MigmagicError


def _fill(url: str, n: int) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO events (title, event_type) VALUES (:t, 'x')"), [{"t": f"e{i}"} for i in range(n)])
    engine.dispose()


def _free_for_a_writer(path: Path) -> bool:
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        other.close()


def _version(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]
    finally:
        conn.close()


@pytest.fixture
def half_read(workdir: Path, sqlite_url: str) -> Any:
    """A Migrator at r1 (events, 3,000 rows) with r2 pending, and a half-read chunked pandas read of events."""
    m = Migrator.init(sqlite_url, lock_timeout=0.5)
    m.revision("create events", EVENTS)
    m.upgrade("head")
    _fill(sqlite_url, 3000)
    reader = sa.create_engine(sqlite_url)
    conn = reader.connect()
    chunks = pd.read_sql("SELECT * FROM events", conn, chunksize=1000)
    next(chunks)  # the statement stays open: a read lock on the file
    yield m, sqlite_url, conn, chunks
    conn.close()
    reader.dispose()
    m.close()


def test_sqlite_commit_that_fails_rolls_back_for_real_and_releases_the_lock(half_read: Any) -> None:
    m, url, conn, chunks = half_read
    path = Path(url.removeprefix("sqlite:///"))
    r1 = _version(path)
    m.revision("more", table_revision("more"))
    with pytest.raises(MigmagicError) as caught:
        m.upgrade("head")
    said = str(caught.value) + " " + str(getattr(caught.value, "hint", ""))
    for _ in chunks:  # the notebook reads on and finishes
        pass
    conn.close()
    # Before any other migmagic command: nothing of r2 is in the file, and anyone may write.
    assert _version(path) == r1
    assert _free_for_a_writer(path), "the failed upgrade still holds SQLite's write lock"
    # The next command (any) must not commit the upgrade.
    m.current()
    m.status()
    assert _version(path) == r1
    assert "more" not in sa.inspect(sa.create_engine(url)).get_table_names()
    assert "Nothing was applied" in said and r1[0] in said


def test_sqlite_reapply_whose_commit_fails_changes_nothing_file_or_database(workdir: Path, sqlite_url: str) -> None:
    m = Migrator.init(sqlite_url, lock_timeout=0.5)
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    try:
        m.revision("create events", EVENTS)
        m.revision("notes", table_revision("notes"))
        m.upgrade("head")
        _fill(sqlite_url, 3000)
        at = _version(path)
        notes_file = next(p for p in (Path(m.folder) / "versions").glob("*.py") if "notes" in p.name)
        old = notes_file.read_bytes()
        reader = sa.create_engine(sqlite_url)
        conn = reader.connect()
        chunks = pd.read_sql("SELECT * FROM events", conn, chunksize=1000)
        next(chunks)  # a read lock on the file until the notebook reads on
        with pytest.raises(MigmagicError) as caught:
            m.revision("notes", table_revision("notes").replace('sa.Integer, primary_key=True)', 'sa.Integer, primary_key=True), sa.Column("body", sa.Text)'), reapply=True)
        for _ in chunks:
            pass
        conn.close()
        reader.dispose()
        assert _free_for_a_writer(path), "the failed re-apply still holds SQLite's write lock"
        assert _version(path) == at
        # The next command must not commit the re-apply: the file holds the old code and so does the database.
        m.status()
        assert _version(path) == at
        assert notes_file.read_bytes() == old
        engine = sa.create_engine(sqlite_url)
        try:
            assert [c["name"] for c in sa.inspect(engine).get_columns("notes")] == ["id"]
        finally:
            engine.dispose()
        said = (str(caught.value) + " " + str(getattr(caught.value, "hint", ""))).lower()
        assert "nothing" in said
    finally:
        m.close()


DEFERRED = '''def upgrade():
    op.execute("CREATE TABLE parent (id integer PRIMARY KEY)")
    op.execute("CREATE TABLE child (id integer PRIMARY KEY, parent_id integer REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")


def downgrade():
    op.execute("DROP TABLE child")
    op.execute("DROP TABLE parent")
'''

ORPHAN = '''def upgrade():
    op.execute("INSERT INTO child (id, parent_id) VALUES (1, 999)")


def downgrade():
    op.execute("DELETE FROM child")
'''


def test_postgresql_advisory_lock_is_released_after_a_failure_at_commit(workdir: Path, pg_url: str) -> None:
    m = Migrator.init(pg_url, lock_timeout=1)
    other = Migrator(pg_url, lock_timeout=1)  # another kernel
    try:
        m.revision("deferred", DEFERRED)
        m.upgrade("head")
        m.revision("orphan", ORPHAN)
        with pytest.raises(MigmagicError) as caught:
            m.upgrade("head")  # the deferred foreign key fails at COMMIT
        assert "foreign key" in str(caught.value).lower() or "foreign key" in str(caught.value.__cause__ or "").lower()
        # The failed kernel is still alive (its pool open): the lock must not stay with it.
        assert other.db.lock_holder() is None
        engine = sa.create_engine(pg_url)
        try:
            with engine.connect() as c:
                held = c.execute(sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                         "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")).scalar()
        finally:
            engine.dispose()
        assert held == 0
        other.revision("fix", "def upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n", head=m.scripts().heads[0])
        other.db.lock_timeout = 1
        with pytest.raises(MigmagicError) as again:
            other.upgrade("heads")  # the orphan again: fails on its own, not on the lock
        assert "being migrated by someone else" not in str(again.value)
    finally:
        other.close()
        m.close()
