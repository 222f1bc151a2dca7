"""The data-loss guard: a command that would destroy data is refused before any step runs, on every database."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import EVENTS, Shell, version
from snapshot import snapshot, sqlite_bytes

from migmagic import Migrator
from migmagic.errors import DataLossRefused

READINGS = '''def upgrade():
    op.create_table(
        "readings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sensor", sa.String(50)),
        sa.Column("unit", sa.String(20)),
        sa.Column("note", sa.String(200)),
    )
    op.create_table("calibrations", sa.Column("id", sa.Integer, primary_key=True), sa.Column("sensor", sa.String(50)))
    op.create_table("scratch", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("scratch")
    op.drop_table("calibrations")
    op.drop_table("readings")
'''

# Destroys data everywhere: a table with rows, a column with values (in a batch block).
DROPS = '''def upgrade():
    op.drop_table("calibrations")
    with op.batch_alter_table("readings") as batch:
        batch.drop_column("note")


def downgrade():
    op.add_column("readings", sa.Column("note", sa.String(200)))
    op.create_table("calibrations", sa.Column("id", sa.Integer, primary_key=True), sa.Column("sensor", sa.String(50)))
'''

# NULLs under a new NOT NULL, values longer than a narrowed type.
TIGHTEN = '''def upgrade():
    with op.batch_alter_table("readings") as batch:
        batch.alter_column("unit", existing_type=sa.String(20), nullable=False)
        batch.alter_column("sensor", existing_type=sa.String(50), type_=sa.String(5))


def downgrade():
    with op.batch_alter_table("readings") as batch:
        batch.alter_column("sensor", existing_type=sa.String(5), type_=sa.String(50))
        batch.alter_column("unit", existing_type=sa.String(20), nullable=True)
'''

DROP_SCRATCH = '''def upgrade():
    op.drop_table("scratch")


def downgrade():
    op.create_table("scratch", sa.Column("id", sa.Integer, primary_key=True))
'''


def _fill(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO readings (id, sensor, unit, note) VALUES (:i, :s, :u, :n)"),
            [
                {"i": 1, "s": "t1", "u": "C", "n": "calibrated"},
                {"i": 2, "s": "thermometer-2", "u": None, "n": None},
                {"i": 3, "s": "t3", "u": None, "n": "moved"},
            ],
        )
        conn.execute(sa.text("INSERT INTO calibrations (id, sensor) VALUES (1, 't1'), (2, 't3')"))
    engine.dispose()


@pytest.fixture
def readings(migrator: Migrator) -> Migrator:
    """A database with readings (3 rows, 2 notes, 2 NULL units, 1 long sensor name), calibrations (2 rows), scratch (empty)."""
    migrator.revision("create readings", READINGS)
    migrator.upgrade("head")
    _fill(migrator.db.url)
    return migrator


def _findings(exc: DataLossRefused) -> list[tuple[Any, ...]]:
    frame = exc.findings[["operation", "table", "column", "rows at stake"]]
    return [tuple(None if pd.isna(v) else v for v in r) for r in frame.itertuples(index=False)]


def test_a_destructive_upgrade_is_refused_and_the_database_is_untouched(readings: Migrator) -> None:
    url = readings.db.url
    drops = readings.revision("drop calibrations and notes", DROPS)
    before, before_bytes = snapshot(url), sqlite_bytes(url)
    with pytest.raises(DataLossRefused) as refused:
        readings.upgrade("head")
    assert _findings(refused.value) == [("drop table", "calibrations", None, 2), ("drop column", "readings", "note", 2)]
    assert list(refused.value.findings["revision"]) == [drops.revision] * 2
    assert refused.value.command == "upgrade" and refused.value.target == "head"
    assert snapshot(url) == before and sqlite_bytes(url) == before_bytes  # schema, rows, version table, ledger
    message = str(refused.value)
    assert "2 rows of table calibrations; 2 values of readings.note" in message
    assert "upgrade('head', accept_data_loss=True)" in message and "dry_run('upgrade', 'head')" in message


def test_accept_data_loss_runs_it(readings: Migrator) -> None:
    drops = readings.revision("drop calibrations and notes", DROPS)
    outcome = readings.upgrade("head", accept_data_loss=True)
    assert list(outcome.steps["revision"]) == [drops.revision]
    assert version(readings.db.url) == {drops.revision}
    assert "calibrations" not in snapshot(readings.db.url)


def test_nulls_under_not_null_and_values_longer_than_a_narrowed_type_are_counted(readings: Migrator) -> None:
    readings.revision("tighten readings", TIGHTEN)
    before = snapshot(readings.db.url)
    with pytest.raises(DataLossRefused) as refused:
        readings.upgrade("head")
    found = _findings(refused.value)
    assert found[0] == ("make NOT NULL", "readings", "unit", 2)
    assert found[1][0].startswith("narrow to VARCHAR(5)") and found[1][1:] == ("readings", "sensor", 1)
    assert snapshot(readings.db.url) == before


def test_an_empty_table_dropped_is_not_a_finding(readings: Migrator) -> None:
    rev = readings.revision("drop scratch", DROP_SCRATCH)
    outcome = readings.upgrade("head")
    assert version(readings.db.url) == {rev.revision} and outcome.notes == []


def test_a_downgrade_that_drops_a_table_with_rows_is_caught(readings: Migrator) -> None:
    before = snapshot(readings.db.url)
    with pytest.raises(DataLossRefused) as refused:
        readings.downgrade("base")
    assert _findings(refused.value) == [("drop table", "calibrations", None, 2), ("drop table", "readings", None, 3)]
    assert "downgrade('base', accept_data_loss=True)" in str(refused.value)
    assert snapshot(readings.db.url) == before
    readings.downgrade("base", accept_data_loss=True)
    assert version(readings.db.url) == set()


def test_a_table_an_earlier_step_creates_or_renames_is_followed(migrator: Migrator) -> None:
    """Across a plan: a table the plan made has nothing at stake; a renamed one is counted under its old name."""
    migrator.revision("create readings", READINGS)
    migrator.upgrade("head")
    _fill(migrator.db.url)
    migrator.revision("staging table", 'def upgrade():\n    op.create_table("staging", sa.Column("id", sa.Integer))\n\n\ndef downgrade():\n    pass\n')
    migrator.revision("drop staging", 'def upgrade():\n    op.drop_table("staging")\n\n\ndef downgrade():\n    pass\n')
    migrator.upgrade("head")  # staging is made and dropped by one plan: nothing at stake
    migrator.revision("rename", 'def upgrade():\n    op.rename_table("calibrations", "old_calibrations")\n\n\ndef downgrade():\n    pass\n')
    migrator.revision("drop renamed", 'def upgrade():\n    op.drop_table("old_calibrations")\n\n\ndef downgrade():\n    pass\n')
    with pytest.raises(DataLossRefused) as refused:
        migrator.upgrade("head")
    assert _findings(refused.value) == [("drop table", "old_calibrations", None, 2)]


EXECUTES = '''def upgrade():
    op.execute("UPDATE readings SET note = NULL")
    op.drop_column("readings", "note")


def downgrade():
    op.add_column("readings", sa.Column("note", sa.String(200)))
'''

RAISES = '''def upgrade():
    rows = int("not a number")
    op.drop_table("calibrations")


def downgrade():
    pass
'''


def test_revisions_that_touch_data_themselves_are_noted_not_analysed(readings: Migrator) -> None:
    rev = readings.revision("clear notes", EXECUTES)
    outcome = readings.upgrade("head")
    assert version(readings.db.url) == {rev.revision}
    assert outcome.notes == [
        f"The data-loss guard did not analyse the upgrade of {rev.revision} ('clear notes'): it reads or writes data itself (op.execute)."
    ]


def test_a_revision_that_raises_while_recorded_is_noted_and_then_fails_for_real(readings: Migrator) -> None:
    from migmagic.errors import MigrationFailed

    readings.revision("broken", RAISES)
    with pytest.raises(MigrationFailed, match="ValueError"):
        readings.upgrade("head")  # not blocked by the guard: the revision itself fails, as without it


@pytest.mark.parametrize("kind", ["bind", "bulk"])
def test_get_bind_and_bulk_insert_are_not_analysed(readings: Migrator, kind: str) -> None:
    body = {
        "bind": 'def upgrade():\n    op.get_bind().execute(sa.text("DELETE FROM calibrations"))\n    op.drop_table("calibrations")\n\n\ndef downgrade():\n    pass\n',
        "bulk": 'def upgrade():\n    t = op.create_table("x", sa.Column("id", sa.Integer))\n    op.bulk_insert(t, [{"id": 1}])\n    op.drop_table("calibrations")\n\n\ndef downgrade():\n    pass\n',
    }[kind]
    readings.revision(f"data {kind}", body)
    outcome = readings.upgrade("head")
    assert len(outcome.notes) == 1 and ("op.get_bind()" in outcome.notes[0] or "op.bulk_insert" in outcome.notes[0])


def test_the_notebook_shows_the_table_and_names_the_options(ip_with_db: Shell) -> None:
    ip = ip_with_db
    ip.ok(f'%%revision -m "create readings" --apply\n{READINGS}')
    _fill(ip.ns["TEST_DB_URL"])
    ip.ok(f'%%revision -m "drop calibrations and notes"\n{DROPS}')
    refused = ip.run("%migrate upgrade head")
    assert isinstance(refused.error, DataLossRefused)
    text = "\n".join(refused.error._render_traceback_())
    assert text.startswith("DataLossRefused: The upgrade to head would destroy data: 2 rows of table calibrations")
    assert "%migrate upgrade head --accept-data-loss" in text and "%migrate upgrade head --dry-run" in text
    assert "rows at stake" in text and "calibrations" in text.splitlines()[2]
    done = ip.ok("%migrate upgrade head --accept-data-loss")
    assert "Upgraded" in done.summary


SIDE_EFFECT = '''def upgrade():
    import pathlib

    with pathlib.Path("ran.txt").open("a") as f:
        f.write("ran\\n")
    op.drop_table("events")


def downgrade():
    pass
'''


def test_the_guard_never_runs_a_revisions_own_code(workdir: Any, sqlite_url: str) -> None:
    """Code besides op calls is not called to record it: it runs once, in the real run."""
    from pathlib import Path

    from migmagic import Migrator

    m = Migrator.init(sqlite_url)
    m.revision("create events table", EVENTS)
    m.upgrade("head")
    m.revision("side effect", SIDE_EFFECT)
    outcome = m.upgrade("head")
    assert Path("ran.txt").read_text() == "ran\n"
    assert any("did not analyse" in n and "besides op calls" in n for n in outcome.notes), outcome.notes
