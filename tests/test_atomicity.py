"""All or nothing: a revision that fails at any statement, in either direction, on each database.

SQLite and PostgreSQL roll the whole command back: the inspected schema, the
rows, the version table and the ledger are exactly what they were before. On
MariaDB, where DDL commits itself, the version table and ledger stay at the
last completed revision and the error names the revision and the statement.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import ledger_rows
from faults import FAULT_HELPER, FAULTY, POINTS, snapshot, wipe, write_revisions

from migmagic.errors import MigrationFailed

KINDS = ("sql", "python")


def _fail(m: Any, command: str, target: str, monkeypatch: pytest.MonkeyPatch, fault: str) -> MigrationFailed:
    monkeypatch.setenv("MIGMAGIC_TEST_FAULT", fault)
    with pytest.raises(MigrationFailed) as caught:
        getattr(m, command)(target)
    monkeypatch.delenv("MIGMAGIC_TEST_FAULT")
    return caught.value


def _ledger(url: str) -> list[tuple[Any, ...]]:
    return ledger_rows(url, "revision", "direction")


def test_failed_upgrade_leaves_schema_and_version_as_they_were(rollback_migrator: tuple[Any, str], monkeypatch: pytest.MonkeyPatch) -> None:
    migrator, db_url = rollback_migrator
    ids = write_revisions(migrator)
    migrator.upgrade(ids["keep"])
    before = snapshot(db_url)
    assert before["alembic_version"]["rows"] == [(ids["keep"],)]
    for name in FAULTY:
        for point in POINTS:
            for kind in KINDS:
                err = _fail(migrator, "upgrade", "head", monkeypatch, f"{name}.up.{point}.{kind}")
                assert err.revision == ids[name], (name, point, kind)
                assert f"Revision {ids[name]} ('{name}') failed during upgrade" in str(err)
                assert f"Nothing was applied: the database is still at {ids['keep']}." in str(err)
                if kind == "sql":
                    assert "no_such_table" in (err.statement or "")
                assert snapshot(db_url) == before, (name, point, kind)
    done = migrator.upgrade("head")
    assert list(done.steps["revision"]) == [ids[n] for n in FAULTY]


def test_failed_downgrade_leaves_schema_and_version_as_they_were(rollback_migrator: tuple[Any, str], monkeypatch: pytest.MonkeyPatch) -> None:
    migrator, db_url = rollback_migrator
    ids = write_revisions(migrator)
    migrator.upgrade("head")
    before = snapshot(db_url)
    assert before["alembic_version"]["rows"] == [(ids["widen"],)]
    for name in FAULTY:
        for point in POINTS:
            for kind in KINDS:
                err = _fail(migrator, "downgrade", ids["keep"], monkeypatch, f"{name}.down.{point}.{kind}")
                assert err.revision == ids[name], (name, point, kind)
                assert "failed during downgrade" in str(err)
                assert f"Nothing was applied: the database is still at {ids['widen']}." in str(err)
                assert snapshot(db_url) == before, (name, point, kind)
    migrator.downgrade("base", accept_data_loss=True)  # drops the rows of keep and parent, on purpose
    assert set(snapshot(db_url)) == {"alembic_version", "migmagic_ledger", "migmagic_version_changes"}


def test_mariadb_keeps_completed_revisions_and_names_the_failed_statement(workdir: Any, mariadb_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from migmagic import Migrator

    db_url = mariadb_url
    migrator = Migrator.init(db_url)
    ids = write_revisions(migrator)
    parent_of = {"parent": ids["keep"], "child": ids["parent"], "widen": ids["child"]}
    for name in FAULTY:
        for point in POINTS:
            kind = KINDS[point % 2]
            # Upgrade: everything before ``name`` stays applied, the version table is at its parent.
            wipe(db_url)
            migrator.upgrade(ids["keep"])
            err = _fail(migrator, "upgrade", "head", monkeypatch, f"{name}.up.{point}.{kind}")
            completed = FAULTY[: FAULTY.index(name)]
            assert err.revision == ids[name]
            assert err.completed == [ids[n] for n in completed]
            assert f"Revision {ids[name]} ('{name}') failed during upgrade" in str(err)
            assert f"the version table is at {parent_of[name]}" in str(err)
            if kind == "sql":
                assert "Failed statement: INSERT INTO no_such_table (x) VALUES (1)" in str(err)
            shot = snapshot(db_url)
            assert shot["alembic_version"]["rows"] == [(parent_of[name],)]
            assert _ledger(db_url) == [(ids["keep"], "upgrade")] + [(ids[n], "upgrade") for n in completed]

            # Downgrade: revisions above ``name`` are undone, the version table stays at ``name``.
            wipe(db_url)
            migrator.upgrade("head")
            err = _fail(migrator, "downgrade", ids["keep"], monkeypatch, f"{name}.down.{point}.{kind}")
            undone = list(reversed(FAULTY))[: list(reversed(FAULTY)).index(name)]
            assert err.revision == ids[name]
            assert err.completed == [ids[n] for n in undone]
            assert f"the version table is at {ids[name]}" in str(err)
            if kind == "sql":
                assert "Failed statement: INSERT INTO no_such_table (x) VALUES (1)" in str(err)
            assert snapshot(db_url)["alembic_version"]["rows"] == [(ids[name],)]
            rows = _ledger(db_url)
            assert rows[: 1 + len(FAULTY)] == [(ids[n], "upgrade") for n in ["keep", *FAULTY]]
            assert rows[1 + len(FAULTY) :] == [(ids[n], "downgrade") for n in undone]
    migrator.close()


DEFERRED = '''def upgrade():
    op.create_table("p", sa.Column("id", sa.Integer, primary_key=True))
    op.create_table(
        "c",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("p_id", sa.Integer, sa.ForeignKey("p.id", deferrable=True, initially="DEFERRED")),
    )


def downgrade():
    op.drop_table("c")
    op.drop_table("p")
'''

ORPHAN = '''def upgrade():
    op.execute("INSERT INTO c (id, p_id) VALUES (1, 999)")


def downgrade():
    op.execute("DELETE FROM c")
'''


def test_failure_at_commit_records_nothing(workdir: Any, pg_url: str) -> None:
    from migmagic import Migrator

    m = Migrator.init(pg_url)
    try:
        m.revision("keep", FAULT_HELPER + "def upgrade():\n    op.create_table('keep', sa.Column('id', sa.Integer, primary_key=True))\n")
        m.upgrade("head")
        before = snapshot(pg_url)
        m.revision("deferred fk", DEFERRED)
        m.revision("orphan row", ORPHAN)
        with pytest.raises(MigrationFailed) as caught:
            m.upgrade("head")
        err = caught.value
        assert "The upgrade failed when committing" in str(err)
        assert "ForeignKeyViolation" in str(err) or "foreign key" in str(err)
        assert "Nothing was applied" in str(err)
        assert snapshot(pg_url) == before
        assert [d for _, d in _ledger(pg_url)] == ["upgrade"]
    finally:
        m.close()
