"""Rehearsals tell the truth: a dry run or verify never reaches the real database through a schema name, and a
rehearsal in the real database's rolled-back transaction that a revision commits says exactly what was committed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import tables
from snapshot import snapshot

from migmagic import Migrator
from migmagic.errors import RehearsalRefused

EVENTS = '''def upgrade():
    op.create_table("events", sa.Column("id", sa.Integer, primary_key=True), sa.Column("title", sa.String(50)))


def downgrade():
    op.drop_table("events")
'''


def _fill(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO events (id, title) VALUES (1, 'a'), (2, 'b')"))
    finally:
        engine.dispose()


def _name(url: str) -> str:
    return str(sa.engine.make_url(url).database)


@pytest.mark.parametrize("how", ["traced", "op.execute"])
def test_mariadb_rehearsals_never_reach_the_real_database_by_name(how: str, mariadb_url: str, workdir: Path) -> None:
    db = _name(mariadb_url)
    m = Migrator.init(mariadb_url)
    try:
        m.revision("events", EVENTS, apply=True)
        _fill(mariadb_url)
        if how == "traced":  # as autogenerate writes it for models with __table_args__ = {"schema": ...}
            up, down = f'op.add_column("events", sa.Column("venue", sa.String(50)), schema="{db}")', f'op.drop_column("events", "venue", schema="{db}")'
        else:
            up, down = f'op.execute("ALTER TABLE {db}.events ADD COLUMN venue VARCHAR(50)")', f'op.execute("ALTER TABLE `{db}`.events DROP COLUMN venue")'
        venue = m.revision("venue", f"def upgrade():\n    {up}\n\n\ndef downgrade():\n    {down}\n").revision
        gone = m.revision("gone", f'def upgrade():\n    op.drop_table("events", schema="{db}")\n\n\ndef downgrade():\n    pass\n').revision
        before = snapshot(mariadb_url)
        with pytest.raises(RehearsalRefused) as refused:
            m.dry_run("upgrade", venue)
        assert f"names the database {db} itself" in str(refused.value) and venue in str(refused.value)
        assert snapshot(mariadb_url) == before
        with pytest.raises(RehearsalRefused):
            m.verify()
        assert snapshot(mariadb_url) == before
        # The real upgrade, then a downgrade rehearsed: the real table keeps its rows.
        m.upgrade(venue)
        before = snapshot(mariadb_url)
        with pytest.raises(RehearsalRefused):
            m.dry_run("downgrade", "-1")
        assert snapshot(mariadb_url) == before
        with pytest.raises(RehearsalRefused):
            m.dry_run("upgrade", gone)
        assert snapshot(mariadb_url) == before and "events" in tables(mariadb_url)
    finally:
        m.close()


def _charset(url: str) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = :d"
            return str(conn.execute(sa.text(query), {"d": _name(url)}).scalar())
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "sql",
    ["USE {db}", "/*!40101 USE `{db}` */", "ALTER DATABASE {db} CHARACTER SET utf8mb4", "ALTER SCHEMA `{db}` COLLATE latin1_bin"],
)
def test_mariadb_rehearsals_never_reach_the_real_database_by_use_or_alter_database(sql: str, mariadb_url: str, workdir: Path) -> None:
    """Issue 21 (a hostile user's attacks): ``USE app`` moved the rest of the rehearsal, the version table included,
    onto the real database (the real table was dropped, the real version table moved); ``ALTER DATABASE app`` changed
    the real database's character set while the dry run said nothing was changed. Both are stopped before they run."""
    db = _name(mariadb_url)
    m = Migrator.init(mariadb_url)
    try:
        m.revision("events", EVENTS, apply=True)
        _fill(mariadb_url)
        body = f'def upgrade():\n    op.execute("{sql.format(db=db)}")\n    op.drop_table("events")\n\n\ndef downgrade():\n    pass\n'
        m.revision("off the scratch", body)
        before, charset = snapshot(mariadb_url), _charset(mariadb_url)
        with pytest.raises(RehearsalRefused) as refused:
            m.dry_run("upgrade", "head")
        assert f"names the database {db} itself" in str(refused.value), str(refused.value)
        assert snapshot(mariadb_url) == before and _charset(mariadb_url) == charset
        with pytest.raises(RehearsalRefused):
            m.verify()
        assert snapshot(mariadb_url) == before and _charset(mariadb_url) == charset
    finally:
        m.close()


def _database_settings(url: str) -> tuple[Any, Any]:
    from conftest import PG_ADMIN

    engine = sa.create_engine(PG_ADMIN)
    try:
        with engine.connect() as conn:
            d = {"d": _name(url)}
            found = conn.execute(sa.text(
                "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = :d"
            ), d).fetchall()
            comment = conn.execute(sa.text("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :d"), d).scalar()
            return found, comment
    finally:
        engine.dispose()


@pytest.mark.parametrize("how", ["verify", "copy"])
def test_postgresql_rehearsals_on_another_database_never_alter_the_real_one_by_name(how: str, pg_url: str, workdir: Path) -> None:
    """Issue 21 (a hostile user's attacks): verify (a throwaway database) and dry_run(copy=True) (a clone) ran a
    revision's ALTER DATABASE app SET ... and COMMENT ON DATABASE app against the real database, which PostgreSQL
    allows from any database of the server, while saying the real database was not touched. Now they are stopped."""
    db = _name(pg_url)
    m = Migrator.init(pg_url)
    try:
        m.revision("events", EVENTS, apply=True)
        body = (
            f'def upgrade():\n    op.execute("ALTER DATABASE {db} SET statement_timeout = 12345")\n'
            f'    op.execute("COMMENT ON DATABASE \\"{db}\\" IS \'changed\'")\n\n\ndef downgrade():\n    pass\n'
        )
        m.revision("database settings", body)
        before = _database_settings(pg_url)
        with pytest.raises(RehearsalRefused) as refused:
            m.verify() if how == "verify" else m.dry_run("upgrade", "head", copy=True)
        assert f"names the database {db} itself" in str(refused.value), str(refused.value)
        assert _database_settings(pg_url) == before
    finally:
        m.close()


def test_mariadb_revisions_without_a_schema_still_rehearse(mariadb_url: str, workdir: Path) -> None:
    m = Migrator.init(mariadb_url)
    try:
        m.revision("events", EVENTS)
        m.revision("venue", 'def upgrade():\n    op.add_column("events", sa.Column("venue", sa.String(50)))\n\n\ndef downgrade():\n    op.drop_column("events", "venue")\n')
        before = snapshot(mariadb_url)
        report = m.dry_run("upgrade", "head")
        assert not report.failed, report.failure
        assert snapshot(mariadb_url) == before
        assert not m.verify().failures
        assert snapshot(mariadb_url) == before
    finally:
        m.close()


COMMITS = '''def upgrade():
    op.create_table("committed", sa.Column("id", sa.Integer, primary_key=True))
    op.get_bind().connection.dbapi_connection.commit()
    op.create_table("after", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("after")
    op.drop_table("committed")
'''


def test_postgresql_dry_run_a_revision_commits_says_what_was_committed(pg_url: str, workdir: Path) -> None:
    m = Migrator.init(pg_url)
    try:
        m.revision("events", EVENTS, apply=True)
        rev = m.revision("commits through the driver", COMMITS).revision
        with pytest.raises(RehearsalRefused) as refused:
            m.dry_run("upgrade", "head")
        text = str(refused.value)
        assert f"Revision {rev}" in text and "committed to the real database" in text, text
        assert "CREATE TABLE committed" in text and "--copy" in refused.value.notebook_text(), text
        held: Any = tables(pg_url)
        assert "committed" in held  # what the message says was committed, was
    finally:
        m.close()


def test_mariadb_dry_run_on_a_sample_counts_what_is_at_stake_on_the_real_table(mariadb_url: str, workdir: Path) -> None:
    """Issue 23 item 10: with --sample, "data at stake" is the real table's; migmagic's own statements are not the plan's."""
    m = Migrator.init(mariadb_url)
    try:
        m.revision("events", EVENTS, apply=True)
        _fill(mariadb_url)  # two rows, two titles
        m.revision("drop title", 'def upgrade():\n    op.drop_column("events", "title")\n\n\ndef downgrade():\n    op.add_column("events", sa.Column("title", sa.String(50)))\n')
        report = m.dry_run("upgrade", "head", sample=1)
        assert any("2 values of events.title" in str(f) for f in report.findings), report.findings
        kinds = set(report.statements["kind"])
        assert "migmagic" not in kinds and not any("migmagic_" in s for s in report.statements["statement"]), report.statements
    finally:
        m.close()


def test_every_database_lists_the_same_kinds_of_statement(workdir: Path, tmp_path: Path) -> None:
    """The ledger insert MariaDB sends per step is migmagic's, not the plan's: no database lists it."""
    from conftest import fresh_database

    for kind in ("sqlite", "mariadb"):
        (tmp_path / kind).mkdir()
        for url in fresh_database(kind, tmp_path / kind):
            m = Migrator(url, workdir / kind / "migrations")
            try:
                m.revision("events", EVENTS)
                report = m.dry_run("upgrade", "head")
                assert set(report.statements["kind"]) == {"revision", "version table"}, (kind, report.statements)
            finally:
                m.close()
