"""Changes to the version table that migmagic did not make are noticed, whichever way they came.

The ``alembic`` command downgrading and upgrading the folder migmagic wrote, a
``UPDATE alembic_version`` typed by hand: ``status`` names the revisions applied
outside migmagic, ``history`` gives them the time they were applied again, and
``log`` shows what happened; migmagic's own steps never count as outside.

MySQL/MariaDB keep no triggers on the version table (a trigger there runs as
its DEFINER and breaks the `alembic` command once that account is gone): there
only a revision applied that the ledger never recorded is seen; a downgrade and
upgrade again by the `alembic` command leaves no trace (tested as such).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ADD_VENUE, EVENTS, table_revision, without_migmagic

ALEMBIC = str(Path(sys.executable).parent / "alembic")

ADD_PLACE = '''def upgrade():
    op.add_column("events", sa.Column("place", sa.String(100)))


def downgrade():
    with op.batch_alter_table("events") as batch:
        batch.drop_column("place")
'''


def alembic(*args: str, url: str) -> None:
    """The plain `alembic` command (migmagic not importable where it runs: its env.py then runs plain Alembic)."""
    env = without_migmagic(dict(os.environ, DATABASE_URL=url), Path.cwd().parent)
    done = subprocess.run([ALEMBIC, "-c", "migrations/alembic.ini", *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def applied_at(m: Any, rev: str) -> Any:
    h = m.history()
    return h.loc[h["revision"] == rev, "applied"].iloc[0]


def markers(m: Any, rev: str) -> str:
    h = m.history()
    return str(h.loc[h["revision"] == rev, "markers"].iloc[0])


def watched(url: str) -> bool:
    """Whether migmagic watches the version table with triggers there (not on MySQL/MariaDB)."""
    return not url.startswith("mysql")


def test_the_alembic_command_downgrading_and_upgrading_is_noticed(migrator: Any, db_url: str) -> None:
    m = migrator
    first = m.revision("create events table", EVENTS).revision
    head = m.revision("add venue", ADD_VENUE).revision
    m.upgrade("head")
    assert m.status().outside == []
    before = applied_at(m, head)

    alembic("downgrade", "-1", url=db_url)
    alembic("upgrade", "head", url=db_url)
    if not watched(db_url):  # the narrower promise: the version table is as migmagic left it, nothing is seen
        assert m.status().outside == [] and applied_at(m, head) == before
        return

    st = m.status()
    assert st.outside == [head]
    assert "applied outside migmagic" in markers(m, head)
    assert "applied outside migmagic" not in markers(m, first)
    assert applied_at(m, head) > before
    log = m.log()
    outside = log[log["revision"] == head]["direction"].tolist()
    assert outside[-2:] == ["unapplied outside migmagic", "applied outside migmagic"], log.to_string()

    # A command that migrates records what it found in the ledger; the story stays the same.
    assert m.upgrade("head").steps.empty
    assert m.status().outside == [head]
    log = m.log()
    assert log[log["revision"] == head]["direction"].tolist()[-2:] == ["unapplied outside migmagic", "applied outside migmagic"]

    # Applied again by migmagic: no longer outside.
    m.downgrade("-1")
    m.upgrade("head")
    assert m.status().outside == []
    assert "applied outside migmagic" not in markers(m, head)


def test_a_revision_the_ledger_never_recorded_is_outside(migrator: Any, db_url: str) -> None:
    """Every kind, MySQL/MariaDB included: a revision the `alembic` command applied and migmagic never did."""
    m = migrator
    first = m.revision("create events table", EVENTS).revision
    m.upgrade("head")
    head = m.revision("add venue", ADD_VENUE).revision
    alembic("upgrade", "head", url=db_url)
    assert m.status().outside == [head]
    assert "applied outside migmagic" in markers(m, head) and "applied outside migmagic" not in markers(m, first)
    m.downgrade("-1")
    m.upgrade("head")
    assert m.status().outside == []


def test_migmagic_own_steps_are_never_outside(migrator: Any) -> None:
    m = migrator
    m.revision("create events table", EVENTS)
    m.revision("add venue", ADD_VENUE)
    for _ in range(2):
        m.upgrade("head")
        m.downgrade("base")
    m.upgrade("+1")
    m.stamp("head")
    m.upgrade("head")
    assert m.status().outside == []
    assert not m.log()["direction"].str.contains("outside").any()


def test_a_version_table_changed_by_hand_is_noticed(workdir: Path, sqlite_url: str) -> None:
    import sqlalchemy as sa

    from migmagic import Migrator

    m = Migrator.init(sqlite_url)
    try:
        m.revision("create events table", EVENTS)
        venue = m.revision("add venue", ADD_VENUE).revision
        m.upgrade("head")
        place = m.revision("add place", ADD_PLACE).revision
        engine = sa.create_engine(sqlite_url)
        with engine.begin() as conn:  # what `alembic stamp` does, typed by hand
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :new"), {"new": place})
        engine.dispose()
        assert m.status().outside == [place]
        assert m.status().pending == []
        assert venue not in m.status().outside
    finally:
        m.close()




def test_a_merge_applied_by_the_alembic_command_reapplies_nothing_else(workdir: Path, sqlite_url: str) -> None:
    import sqlalchemy as sa

    from migmagic import Migrator

    m = Migrator.init(sqlite_url)
    try:
        root = m.revision("root", EVENTS).revision
        a = m.revision("branch a", table_revision("a"), head=root).revision
        b = m.revision("branch b", table_revision("b"), head=root).revision
        m.upgrade("heads")
        merged = m.merge([a, b], "join branches").revision
        alembic("upgrade", "head", url=sqlite_url)
        assert m.status().outside == [merged]
        engine = sa.create_engine(sqlite_url)
        with engine.begin() as conn:  # the merge undone as Alembic does it: one head updated back, the other inserted
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :a"), {"a": a})
            conn.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES (:b)"), {"b": b})
        engine.dispose()
        assert m.status().outside == []
        assert m.status().pending == [merged]
        log = m.log()
        assert log["direction"].tolist()[-2:] == ["applied outside migmagic", "unapplied outside migmagic"], log.to_string()
    finally:
        m.close()


def test_a_failed_command_keeps_what_it_found(workdir: Path, sqlite_url: str) -> None:
    from migmagic import Migrator
    from migmagic.errors import MigrationFailed

    m = Migrator.init(sqlite_url)
    try:
        m.revision("create events table", EVENTS)
        head = m.revision("add venue", ADD_VENUE).revision
        m.upgrade("head")
        alembic("downgrade", "-1", url=sqlite_url)
        alembic("upgrade", "head", url=sqlite_url)
        m.revision("broken", "def upgrade():\n    op.execute('SELECT * FROM no_such_table')\n\n\ndef downgrade():\n    pass\n")
        with pytest.raises(MigrationFailed):
            m.upgrade("head")
        assert m.status().outside == [head]
    finally:
        m.close()


def test_a_notebook_sees_what_the_alembic_command_did(ip_with_db: Any) -> None:
    """What the notebook user sees: ``%migrate status`` and ``%migrate history`` after the shell's alembic."""
    ip = ip_with_db
    url = ip.ns["TEST_DB_URL"]
    ip.ok(f'%%revision -m "create events table"\n{EVENTS}')
    head = ip.ok(f'%%revision -m "add venue"\n{ADD_VENUE}').revision
    ip.ok("%migrate upgrade head")
    assert dict(ip.ok("%migrate status").fields)["applied outside migmagic"] == "none"

    alembic("downgrade", "-1", url=url)
    alembic("upgrade", "head", url=url)
    if not watched(url):
        assert dict(ip.ok("%migrate status").fields)["applied outside migmagic"] == "none"
        return

    status = ip.ok("%migrate status")
    assert dict(status.fields)["applied outside migmagic"] == head
    history = ip.ok("%migrate history")
    row = history[history["revision"] == head].iloc[0]
    assert "applied outside migmagic" in row["markers"]
    assert "applied outside migmagic" in history.to_string()
