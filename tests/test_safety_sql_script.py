"""``--sql`` captured from a rehearsal is a script that does what the upgrade does (issue 21, item 6).

SQLite batch mode cannot render offline, so ``--sql`` rehearses and captures the
statements; parameterised ones must carry their values as literals, or running
the script binds NULL to every placeholder.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

from conftest import EVENTS

from migmagic import Migrator

ROWS = '''def upgrade():
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("venue", sa.String(50), nullable=True))
        batch.alter_column("event_type", existing_type=sa.String(), nullable=True)  # a table copy: needs the live table
    events = sa.table(
        "events", sa.column("id", sa.Integer), sa.column("title", sa.String), sa.column("event_type", sa.String),
        sa.column("venue", sa.String),
    )
    op.bulk_insert(events, [
        {"id": 1, "title": "PyData", "event_type": "talk", "venue": "Hall 'A'"},
        {"id": 2, "title": "Schema review? yes", "event_type": "meeting", "venue": None},
        {"id": 3, "title": "100% :done", "event_type": "talk", "venue": "x\\\\y"},
    ])


def downgrade():
    op.execute("DELETE FROM events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("venue")
'''


def _rows(path: Path) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT id, title, event_type, venue FROM events ORDER BY id").fetchall()
    finally:
        conn.close()


def test_sql_from_a_rehearsal_runs_to_the_same_rows_as_the_upgrade(workdir: Path, sqlite_url: str) -> None:
    m = Migrator.init(sqlite_url)
    try:
        m.revision("create events", EVENTS)
        m.upgrade("head")
        m.revision("rows", ROWS)
        script = str(m.sql("upgrade", "head"))
        assert script.startswith("-- Alembic cannot render this offline")
        path = Path(sqlite_url.removeprefix("sqlite:///"))
        copy = workdir / "by-script.db"
        shutil.copy(path, copy)
        conn = sqlite3.connect(copy, isolation_level=None)
        try:
            conn.executescript(script)
        finally:
            conn.close()
        m.upgrade("head", accept_data_loss=True)
        assert _rows(copy) == _rows(path)
        assert _rows(copy)[0] == (1, "PyData", "talk", "Hall 'A'")
        assert len(_rows(copy)) == 3
    finally:
        m.close()


def test_a_value_without_a_literal_form_is_never_left_as_a_placeholder() -> None:
    from migmagic.rehearse import _inline

    assert _inline("INSERT INTO t (a, b) VALUES (?, ?)", (1, "it's"), "qmark", "sqlite") == "INSERT INTO t (a, b) VALUES (1, 'it''s')"
    assert _inline("INSERT INTO t (a) VALUES (%(a)s) -- 100%%", {"a": None}, "pyformat", "postgresql") == "INSERT INTO t (a) VALUES (NULL) -- 100%"
    assert _inline("SELECT '?' , ?", (b"\x01",), "qmark", "sqlite") == "SELECT '?' , X'01'"
    assert _inline("INSERT INTO t VALUES (?)", (object(),), "qmark", "sqlite") is None
