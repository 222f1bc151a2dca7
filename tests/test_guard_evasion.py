"""The data-loss guard against revisions written to slip past it: each one is refused, or named in a note — never run in silence.

Each revision below destroyed data with no refusal and no note on the old main
(issue 21, the hostile user's attacks).
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import version
from snapshot import snapshot
from test_guard import _findings, readings  # noqa: F401  (the fixture)

from migmagic import Migrator
from migmagic.errors import DataLossRefused

# op functions imported by name: the revision never writes "op.drop_table".
BY_NAME = '''from alembic.op import drop_table, drop_column as remove_column


def upgrade():
    drop_table("calibrations")
    remove_column("readings", "note")


def downgrade():
    pass
'''

# A batch that recreates the table from a definition of its own: "note" is not in it, so its values are not copied.
COPY_FROM = '''def upgrade():
    readings = sa.Table(
        "readings", sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True), sa.Column("sensor", sa.String(50)), sa.Column("unit", sa.String(20)),
    )
    with op.batch_alter_table("readings", recreate="always", copy_from=readings) as batch:
        batch.create_index("ix_readings_unit", ["unit"])


def downgrade():
    pass
'''

# PostgreSQL: USING decides the new values; a cast of the old ones would keep them all.
USING = '''def upgrade():
    op.alter_column("readings", "sensor", existing_type=sa.String(50), type_=sa.String(60), postgresql_using="'x'")


def downgrade():
    pass
'''


def test_op_functions_imported_by_name_are_counted(readings: Migrator) -> None:  # noqa: F811
    readings.revision("drop by name", BY_NAME)
    before = snapshot(readings.db.url)
    with pytest.raises(DataLossRefused) as refused:
        readings.upgrade("head")
    assert _findings(refused.value) == [("drop table", "calibrations", None, 2), ("drop column", "readings", "note", 2)]
    assert snapshot(readings.db.url) == before


def test_a_batch_that_recreates_the_table_from_its_own_definition_is_named(readings: Migrator) -> None:  # noqa: F811
    rev = readings.revision("recreate readings", COPY_FROM)
    try:
        outcome = readings.upgrade("head")
    except DataLossRefused:
        return  # refused: fine too
    assert version(readings.db.url) == {rev.revision}
    assert any(rev.revision in n and "did not analyse" in n and "copy_from" in n for n in outcome.notes), outcome.notes


@pytest.fixture
def pg_readings(workdir: Any, pg_url: str) -> Migrator:
    from test_guard import READINGS, _fill

    m = Migrator.init(pg_url)
    m.revision("create readings", READINGS)
    m.upgrade("head")
    _fill(pg_url)
    return m


def test_postgresql_using_is_what_is_counted(pg_readings: Migrator) -> None:
    pg_readings.revision("sensor through USING", USING)
    before = snapshot(pg_readings.db.url)
    with pytest.raises(DataLossRefused) as refused:
        pg_readings.upgrade("head")
    [(operation, table, column, rows)] = _findings(refused.value)
    assert (table, column, rows) == ("readings", "sensor", 3) and "USING 'x'" in operation
    assert snapshot(pg_readings.db.url) == before
