"""One profile of a revision, read by every consumer; the data-loss guard never misses quietly."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import DATABASES, fresh_database

from migmagic import Migrator, profile, replay
from migmagic.errors import DataLossRefused

HEAD = "from alembic import op\nimport sqlalchemy as sa\n\n\n"

# name -> (body, pure?, may destroy?, followed by the guard's trace?, needs autocommit?)
BODIES: dict[str, tuple[str, bool, bool, bool, bool]] = {
    "plain create": ('def upgrade():\n    op.create_table("t", sa.Column("id", sa.Integer, primary_key=True))\n', True, False, True, False),
    "plain drop": ('def upgrade():\n    op.drop_table("events")\n', True, True, True, False),
    "drop in a helper": ('def drop_it(name):\n    op.drop_table(name)\n\n\ndef upgrade():\n    drop_it("events")\n', False, True, True, False),
    "docstring at column 0": ('def upgrade():\n    """Drop it.\n\nThe line above starts at column 0.\n    """\n    op.drop_table("events")\n', True, True, True, False),
    "star import": ('from os.path import *  # noqa: F403\n\n\ndef upgrade():\n    op.drop_table("events")\n', False, True, True, False),
    "batch block": ('def upgrade():\n    with op.batch_alter_table("events") as b:\n        b.drop_column("note")\n', True, True, True, False),
    "op.execute of text()": ('def upgrade():\n    op.execute(sa.text("DELETE FROM events"))\n', False, True, False, False),
    "autocommit block": ('def upgrade():\n    with op.get_context().autocommit_block():\n        op.create_index("ix", "events", ["note"], postgresql_concurrently=True)\n', False, True, False, True),
    "a loop": ('def upgrade():\n    for name in ["events"]:\n        op.drop_table(name)\n', False, True, False, False),
    "concurrently in a docstring only": ('def upgrade():\n    """Not CONCURRENTLY: a plain index."""\n    op.create_index("ix", "events", ["note"])\n', True, False, True, False),
}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_every_consumer_reads_the_same_profile(name: str) -> None:
    body, pure, may_destroy, followed, autocommit = BODIES[name]
    source = HEAD + body
    seen = profile.of(source, "upgrade")
    assert seen.found
    assert replay.pure(source, "upgrade", batch=True) is pure == seen.pure
    assert seen.may_destroy is may_destroy
    assert (seen.not_plain is None) is followed, seen.not_plain
    assert seen.needs_autocommit is autocommit
    assert profile.of(source, "upgrade") is seen  # one parse per source and function


EVENTS = '''def upgrade():
    op.create_table("events", sa.Column("id", sa.Integer, primary_key=True), sa.Column("note", sa.String(50)), sa.Column("code", sa.String(20)),
                    sa.Column("at", sa.String(30)))


def downgrade():
    op.drop_table("events")
'''


def _seed(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO events (id, note, code, at) VALUES (:i, :n, :c, :a)"),
                [{"i": 1, "n": "x", "c": "abc", "a": "2024-05-01 12:34:56"}, {"i": 2, "n": "y", "c": "12x", "a": "2024-05-02 00:00:00"}, {"i": 3, "n": None, "c": "42", "a": None}],
            )
    finally:
        engine.dispose()


def _refused(m: Migrator, body: str) -> DataLossRefused:
    m.revision("the change", body)
    with pytest.raises(DataLossRefused) as refused:
        m.upgrade("head")
    return refused.value


GUARDED = {
    "drop in a helper": 'def drop_it(name):\n    op.drop_table(name)\n\n\ndef upgrade():\n    drop_it("events")\n\n\ndef downgrade():\n    pass\n',
    "docstring at column 0": 'def upgrade():\n    """Drop it.\n\nThe line above starts at column 0.\n    """\n    op.drop_table("events")\n\n\ndef downgrade():\n    pass\n',
}


@pytest.mark.parametrize("kind", DATABASES)
@pytest.mark.parametrize("case", sorted(GUARDED))
def test_the_guard_follows_helpers_and_docstrings(case: str, kind: str, workdir: Path, tmp_path: Path) -> None:
    for url in fresh_database(kind, tmp_path):
        m = Migrator.init(url)
        try:
            m.revision("events", EVENTS, apply=True)
            _seed(url)
            refused = _refused(m, GUARDED[case])
            assert "3 rows of table events" in str(refused), str(refused)
        finally:
            m.close()


@pytest.mark.parametrize("kind", ["sqlite", "mariadb"])
def test_the_guard_finds_a_column_named_in_another_case(kind: str, workdir: Path, tmp_path: Path) -> None:
    """SQLite and MariaDB resolve NOTE as note: so does the guard."""
    for url in fresh_database(kind, tmp_path):
        m = Migrator.init(url)
        try:
            m.revision("events", EVENTS, apply=True)
            _seed(url)
            body = 'def upgrade():\n    with op.batch_alter_table("events") as b:\n        b.drop_column("NOTE")\n\n\ndef downgrade():\n    pass\n'
            refused = _refused(m, body)
            assert "2 values of events.NOTE" in str(refused), str(refused)
        finally:
            m.close()


def test_a_type_change_that_converts_values_on_sqlite_is_counted(workdir: Path, sqlite_url: str) -> None:
    """Batch mode copies with CAST: 'abc' becomes 0, '12x' becomes 12; '42' stays 42."""
    m = Migrator.init(sqlite_url)
    try:
        m.revision("events", EVENTS, apply=True)
        _seed(sqlite_url)
        body = 'def upgrade():\n    with op.batch_alter_table("events") as b:\n        b.alter_column("code", type_=sa.Integer)\n\n\ndef downgrade():\n    pass\n'
        refused = _refused(m, body)
        assert "2 values of events.code" in str(refused) and "INTEGER" in str(refused), str(refused)
    finally:
        m.close()


@pytest.mark.parametrize("kind", DATABASES)
def test_a_timestamp_made_a_date_is_counted(kind: str, workdir: Path, tmp_path: Path) -> None:
    """The time of day goes (PostgreSQL, MariaDB) or the whole value becomes a year (SQLite): counted from the data."""
    for url in fresh_database(kind, tmp_path):
        m = Migrator.init(url)
        try:
            at = 'def upgrade():\n    op.add_column("events", sa.Column("at2", sa.DateTime))\n\n\ndef downgrade():\n    pass\n'
            m.revision("events", EVENTS, apply=True)
            m.revision("at as a timestamp", at, apply=True)
            _seed(url)
            engine = sa.create_engine(url)
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE events SET at2 = :t WHERE id = 1"), {"t": "2024-05-01 12:34:56"})
                conn.execute(sa.text("UPDATE events SET at2 = :t WHERE id = 2"), {"t": "2024-05-02 00:00:00"})
            engine.dispose()
            body = 'def upgrade():\n    with op.batch_alter_table("events") as b:\n        b.alter_column("at2", type_=sa.Date, existing_type=sa.DateTime)\n\n\ndef downgrade():\n    pass\n'
            refused = _refused(m, body)
            expected = "2 values of events.at2" if kind == "sqlite" else "1 value of events.at2"
            assert expected in str(refused), str(refused)
        finally:
            m.close()


def test_what_the_guard_cannot_analyse_is_named_every_time(workdir: Path, sqlite_url: str) -> None:
    m = Migrator.init(sqlite_url)
    try:
        m.revision("events", EVENTS, apply=True)
        rev = m.revision("cleanup", 'def upgrade():\n    op.execute(sa.text("DELETE FROM events WHERE note IS NULL"))\n\n\ndef downgrade():\n    pass\n').revision
        done = m.upgrade("head")
        assert any(f"did not analyse the upgrade of {rev}" in n for n in done.notes), done.notes
        back = m.downgrade("-1")
        assert not any("did not analyse" in n for n in back.notes)  # its downgrade is plain: analysed
        again = m.upgrade("head")
        assert any(f"did not analyse the upgrade of {rev}" in n for n in again.notes), again.notes
    finally:
        m.close()


