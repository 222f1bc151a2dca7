"""``--dry-run``: the plan rehearsed on a scratch copy; the real database is what it was, byte for byte.

Every test compares the real database before and after: the inspected schema,
all rows of every table, the version table and every column of the ledger.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import ADD_VENUE, EVENTS, Shell, ledger_rows
from faults import snapshot, write_revisions

from migmagic import Migrator
from migmagic.errors import RehearsalFailed, RehearsalRefused, UsageError

LEDGER = ("id", "revision", "direction", "message", "applied_at", "seconds", "checksum", "checksum_version", "source", "migmagic_version", "alembic_version")

SEED = '''def upgrade():
    op.execute("INSERT INTO events (id, title, event_type) VALUES (1, 'a', 'x'), (2, 'b', 'y'), (3, 'c', 'x')")


def downgrade():
    op.execute("DELETE FROM events")
'''

DROP_TYPE = '''def upgrade():
    with op.batch_alter_table("events") as batch:
        batch.drop_column("event_type")
        batch.create_unique_constraint("uq_events_title", ["title"])


def downgrade():
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint("uq_events_title", type_="unique")
        batch.add_column(sa.Column("event_type", sa.String(50), nullable=False, server_default="x"))
'''


def real(url: str) -> dict[str, Any]:
    """Everything about the real database a dry run must not change."""
    return {"snapshot": snapshot(url), "ledger": ledger_rows(url, *LEDGER)}


def _history(m: Migrator) -> dict[str, str]:
    return {name: m.revision(name, body).revision for name, body in [("create events", EVENTS), ("seed", SEED), ("add venue", ADD_VENUE), ("drop type", DROP_TYPE)]}


def test_dry_run_upgrade_shows_what_would_change_and_changes_nothing(migrator: Migrator) -> None:
    ids = _history(migrator)
    migrator.upgrade(ids["seed"])
    before = real(migrator.db.url)
    report = migrator.dry_run("upgrade", "head")
    assert real(migrator.db.url) == before
    assert not report.failed and report.failure is None
    assert f"from {ids['seed']} to {ids['drop type']}" in report.summary
    assert list(report.steps["revision"]) == [ids["add venue"], ids["drop type"]]
    assert all(s >= 0 for s in report.steps["seconds"])
    changes = {(r.change, r.table, r.name) for r in report.schema_changes.itertuples()}
    assert ("column added", "events", "venue") in changes
    assert ("column removed", "events", "event_type") in changes
    assert ("unique constraint added", "events", "uq_events_title") in changes
    counts = report.row_counts.set_index("table")
    assert (counts.loc["events", "before"], counts.loc["events", "after"]) == (3, 3)
    kinds = set(report.statements["kind"])
    assert "revision" in kinds and "version table" in kinds
    assert any("venue" in s for s in report.statements[report.statements["kind"] == "revision"]["statement"])
    assert "UPDATE alembic_version" in report.sql and "migmagic_ledger" not in report.sql
    assert report.findings == [f"{ids['drop type']}: 3 values of events.event_type"]  # what the guard would refuse
    assert "venue" in repr(report) and "<script" not in report._repr_html_()
    migrator.upgrade("head", accept_data_loss=True)  # the real upgrade still has everything to do
    assert migrator.current().ids == [ids["drop type"]]


def test_dry_run_downgrade_changes_nothing(migrator: Migrator) -> None:
    ids = _history(migrator)
    migrator.upgrade("head")
    before = real(migrator.db.url)
    report = migrator.dry_run("downgrade", "base")
    assert real(migrator.db.url) == before
    assert list(report.steps["direction"]) == ["downgrade"] * 4
    changes = {(r.change, r.name) for r in report.schema_changes.itertuples()}
    assert ("table removed", "events") in changes
    assert report.row_counts.set_index("table").loc["events", "before"] == 3
    assert "to base" in report.summary and ids["create events"] in list(report.steps["revision"])


def test_a_failed_rehearsal_is_a_report_and_the_real_database_is_untouched(migrator: Migrator, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = write_revisions(migrator)
    migrator.upgrade(ids["keep"])
    before = real(migrator.db.url)
    monkeypatch.setenv("MIGMAGIC_TEST_FAULT", "child.up.2.sql")
    report = migrator.dry_run("upgrade", "head")
    monkeypatch.delenv("MIGMAGIC_TEST_FAULT")
    assert real(migrator.db.url) == before
    assert report.failed and report.failed_revision == ids["child"]
    assert f"Revision {ids['child']} ('child') failed during upgrade" in (report.failure or "")
    assert "no_such_table" in (report.failed_statement or "")
    assert list(report.steps["revision"]) == [ids["parent"]]  # the report up to the failure
    failed = report.statements[report.statements["kind"] == "revision (failed)"]
    assert list(failed["statement"]) and "no_such_table" in failed["statement"].iloc[0]
    if not migrator.db.transactional_ddl:  # MariaDB: what the failed revision left on the scratch copy
        assert "child" in set(report.schema_changes["table"])


def test_a_failed_rehearsal_fails_the_cell_and_shows_the_report(ip_empty: Shell, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ip_empty.ok(f"%migrate init {sqlite_url}")
    ip_empty.ok(f'%%revision -m "create events"\n{EVENTS}')
    ip_empty.ok('%%revision -m "broken"\ndef upgrade():\n    op.execute("INSERT INTO no_such_table VALUES (1)")\n')
    before = real(sqlite_url)
    cell = ip_empty.run("%migrate upgrade head --dry-run")
    assert cell.failed and isinstance(cell.error, RehearsalFailed)
    assert "The upgrade to head would fail at revision" in cell.output and "no_such_table" in cell.output
    assert f"RehearsalFailed: The dry run failed at revision {cell.error.revision}; the report above says why." in cell.output
    assert "steps:" in cell.output and "Traceback" not in cell.output
    assert cell.error.report.failed_revision and real(sqlite_url) == before
    ok = ip_empty.ok("%migrate upgrade +1 --dry-run")
    assert "column added" not in repr(ok) and "table added" in repr(ok)


def test_options_without_dry_run_are_a_usage_error(ip_empty: Any, sqlite_url: str) -> None:
    ip_empty.ok(f"%migrate init {sqlite_url}")
    refused = ip_empty.run("%migrate upgrade head --full")  # the Python API has no such keyword: upgrade() only runs
    assert isinstance(refused.error, UsageError) and "--full only applies to upgrade --dry-run" in refused.output
    m = Migrator.init(sqlite_url)
    with pytest.raises(UsageError, match="--copy only applies to PostgreSQL"):
        m.dry_run("upgrade", "head", copy=True)
    m.close()


def test_sqlite_copy_holds_commits_still_in_the_wal(workdir: Any, sqlite_url: str) -> None:
    m = Migrator.init(sqlite_url)
    m.revision("create events", EVENTS)
    m.revision("add venue", ADD_VENUE)
    m.upgrade(m.scripts().ids()[-1])  # the oldest: events exists, add venue pending
    path = sqlite_url.removeprefix("sqlite:///")
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("INSERT INTO events (id, title, event_type) VALUES (1, 'in the wal', 'x')")
        assert os.path.getsize(path + "-wal") > 0
        before = real(sqlite_url)
        report = m.dry_run("upgrade", "head")
        assert report.row_counts.set_index("table").loc["events", "before"] == 1
        assert real(sqlite_url) == before
    finally:
        writer.close()


def test_sql_falls_back_to_a_rehearsal_when_batch_mode_cannot_render_offline(workdir: Any, sqlite_url: str) -> None:
    m = Migrator.init(sqlite_url)
    a = m.revision("create events", EVENTS)
    b = m.revision("add venue", ADD_VENUE)
    m.upgrade("head")
    before = real(sqlite_url)
    script = str(m.sql("downgrade", f"{b.revision}:{a.revision}"))
    assert real(sqlite_url) == before
    assert script.startswith("-- Alembic cannot render this offline")
    assert "_alembic_tmp_events" in script and f"version_num='{a.revision}'" in script
    assert script.count("BEGIN;") == 1 and script.rstrip().endswith("COMMIT;")
    assert "PRAGMA" not in script and "migmagic_ledger" not in script
    m.downgrade("base")  # from another start than the database's: the copy is moved there first
    script = str(m.sql("downgrade", f"{b.revision}:{a.revision}"))
    assert "_alembic_tmp_events" in script and tuple(snapshot(sqlite_url)) == ("alembic_version", "migmagic_ledger", "migmagic_version_changes")


# ---------------------------------------------------------------------- PostgreSQL

CONCURRENT = '''def upgrade():
    with op.get_context().autocommit_block():
        op.create_index("ix_events_title", "events", ["title"], postgresql_concurrently=True)


def downgrade():
    op.drop_index("ix_events_title", table_name="events")
'''

COMMITS = '''def upgrade():
    op.create_table("sneaky", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("COMMIT")
    op.create_table("after_commit", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("after_commit")
    op.drop_table("sneaky")
'''


def test_postgres_rehearses_in_a_transaction_and_says_what_that_means(workdir: Any, pg_url: str) -> None:
    m = Migrator.init(pg_url)
    ids = _history(m)
    m.upgrade(ids["seed"])
    before = real(pg_url)
    report = m.dry_run("upgrade", "head")
    assert real(pg_url) == before and not report.failed
    assert "in one transaction that was rolled back" in report.how
    assert any("locks" in c for c in report.caveats) and any("Sequences" in c for c in report.caveats)


def test_postgres_refuses_what_cannot_run_in_a_transaction_and_copy_rehearses_it(workdir: Any, pg_url: str) -> None:
    m = Migrator.init(pg_url)
    a = m.revision("create events", EVENTS)
    c = m.revision("index concurrently", CONCURRENT)
    m.upgrade(a.revision)
    before = real(pg_url)
    with pytest.raises(RehearsalRefused) as refused:
        m.dry_run("upgrade", "head")
    assert refused.value.revision == c.revision and "autocommit_block()" in str(refused.value)
    assert "%migrate upgrade head --dry-run --copy" in refused.value.notebook_text()
    assert real(pg_url) == before
    # On a clone it runs as a real upgrade would (today migmagic's one transaction makes
    # Alembic's autocommit_block fail): the rehearsal says so, and the real database is as it was.
    report = m.dry_run("upgrade", "head", copy=True)
    assert "clone" in report.how
    assert report.failed == _real_upgrade_fails(m), report.failure
    assert real(pg_url) == before


def _real_upgrade_fails(m: Migrator) -> bool:
    """Whether the real upgrade fails, on a clone made by the test itself."""
    import uuid

    name = f"mm_t_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(m.db.url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    m.close()
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{m.db.url.rsplit("/", 1)[1]}"')
        clone = Migrator(m.db.url.rsplit("/", 1)[0] + "/" + name, m.folder)
        try:
            clone.upgrade("head")
            return False
        except Exception:
            return True
        finally:
            clone.close()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_postgres_a_commit_inside_a_revision_is_stopped_before_it_reaches_the_server(workdir: Any, pg_url: str) -> None:
    m = Migrator.init(pg_url)
    s = m.revision("sneaky commit", COMMITS)
    before = real(pg_url)
    report = m.dry_run("upgrade", "head")  # refused by the execution path itself, as in a real run
    assert report.failed and report.failed_revision == s.revision
    assert "COMMIT would end migmagic's transaction, so it was not run" in (report.failure or "")
    assert real(pg_url) == before


def test_postgres_copy_needs_no_other_session(workdir: Any, pg_url: str) -> None:
    m = Migrator.init(pg_url)
    m.revision("create events", EVENTS)
    other = sa.create_engine(pg_url)
    try:
        with other.connect():
            with pytest.raises(RehearsalRefused, match="needs no other session connected"):
                m.dry_run("upgrade", "head", copy=True)
    finally:
        other.dispose()
    assert not m.dry_run("upgrade", "head", copy=True).failed


# ---------------------------------------------------------------------- MariaDB

LINKED = '''def upgrade():
    op.create_table("parent", sa.Column("id", sa.Integer, primary_key=True))
    op.create_table("child", sa.Column("id", sa.Integer, primary_key=True), sa.Column("parent_id", sa.Integer, sa.ForeignKey("parent.id", name="fk_child_parent")))
    op.execute("INSERT INTO parent (id) VALUES " + ", ".join(f"({i})" for i in range(1, 51)))
    op.execute("INSERT INTO child (id, parent_id) VALUES " + ", ".join(f"({i}, {i})" for i in range(1, 51)))


def downgrade():
    op.drop_table("child")
    op.drop_table("parent")
'''

UNLINK = '''def upgrade():
    op.drop_constraint("fk_child_parent", "child", type_="foreignkey")
    op.execute("DELETE FROM parent WHERE id > 40")


def downgrade():
    op.create_foreign_key("fk_child_parent", "child", "parent", ["parent_id"], ["id"])
'''


@contextlib.contextmanager
def databases_created() -> Iterator[list[str]]:
    """The names of the databases this process creates meanwhile (its ``CREATE DATABASE`` statements)."""
    made: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        made.extend(re.findall(r"CREATE DATABASE\s+[`\"]?(\w+)", statement, re.IGNORECASE))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        yield made
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)


def test_mariadb_rehearses_on_a_sample_with_foreign_keys_kept(workdir: Any, mariadb_url: str) -> None:
    m = Migrator.init(mariadb_url)
    a = m.revision("linked", LINKED)
    m.revision("unlink", UNLINK)
    m.upgrade(a.revision)
    before = real(mariadb_url)
    with databases_created() as scratch:
        report = m.dry_run("upgrade", "head", sample=10)
    assert not report.failed, report.failure  # the foreign key survived the copy: it could be dropped by name
    assert real(mariadb_url) == before
    counts = report.row_counts.set_index("table")
    assert counts.loc["parent", "before"] == 10 and counts.loc["child", "before"] == 10
    assert "sample" in report.how and any("sample" in c for c in report.caveats)
    assert ("foreign key removed", "fk_child_parent") in {(r.change, r.name) for r in report.schema_changes.itertuples()}
    with databases_created() as more:
        full = m.dry_run("upgrade", "head", full=True)
    scratch += more
    fc = full.row_counts.set_index("table")
    assert (fc.loc["parent", "before"], fc.loc["parent", "after"]) == (50, 40)
    assert real(mariadb_url) == before
    # The scratch databases these rehearsals made are gone (only those: others may be rehearsing on this server).
    assert len(scratch) == 2
    engine = sa.create_engine(mariadb_url)
    try:
        with engine.connect() as conn:
            left = [
                r[0] for r in conn.execute(
                    sa.text("SELECT schema_name FROM information_schema.schemata WHERE schema_name IN :names").bindparams(
                        sa.bindparam("names", expanding=True)
                    ),
                    {"names": scratch},
                )
            ]
    finally:
        engine.dispose()
    assert left == []


def test_dry_run_of_a_revision_the_guard_cannot_follow_is_not_called_destructive(migrator: Migrator) -> None:
    """A revision using the migration context itself (an index built in autocommit_block()) destroys
    nothing: the rehearsal says it went through, as the real upgrade runs it without --accept-data-loss,
    and what the guard could not analyse is a note, not something "it would destroy"."""
    migrator.revision("create events", EVENTS)
    migrator.revision("index concurrently", '''def upgrade():
    with op.get_context().autocommit_block():
        op.create_index("ix_events_title", "events", ["title"], postgresql_concurrently=True, if_not_exists=True)


def downgrade():
    op.drop_index("ix_events_title", "events")
''')
    clone = {"copy": True} if migrator.db.dialect_name == "postgresql" else {}  # its rolled-back transaction cannot hold an autocommit block
    report = migrator.dry_run("upgrade", "head", **clone)
    assert not report.failed and report.findings == []
    assert report.at_stake is None and "It went through" in repr(report) and "accept-data-loss" not in repr(report)
    assert any("did not analyse the upgrade" in c and "op.get_context()" in c for c in report.caveats), report.caveats
    done = migrator.upgrade("head")  # the real upgrade: no refusal, the same note
    assert any("did not analyse the upgrade" in n for n in done.notes), done.notes
