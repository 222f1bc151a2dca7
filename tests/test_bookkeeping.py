"""Issue 11, item 4: migmagic's own bookkeeping never fails after a revision's DDL committed.

Faults injected for real: a database whose character set cannot store the
revision's message or source (MariaDB latin1, PostgreSQL LATIN1), a revision
larger than MariaDB's ``max_allowed_packet``, a ledger table from an earlier
version, and a ledger insert the database refuses (a trigger).
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import _admin, _unavailable, columns, ledger_rows, own_schema, tables, version

from migmagic import Migrator, revisionfile
from migmagic.errors import MigrationFailed

MESSAGE = "créer les événements 活动 🎉"
BODY = '''# 注释: une table pour les événements 🎉
def upgrade():
    op.create_table("events", sa.Column("id", sa.Integer, primary_key=True))
    op.create_index("ix_events_id", "events", ["id"])


def downgrade():
    op.drop_table("events")
'''


def _database(kind: str, charset: str) -> Iterator[str]:
    """A fresh database in ``charset`` (MariaDB: latin1; PostgreSQL: LATIN1), dropped afterwards."""
    name = f"mm_{uuid.uuid4().hex[:12]}"
    engine = _admin(kind)
    create = (
        f"CREATE DATABASE {name} CHARACTER SET {charset}"
        if kind == "mariadb"
        else f"CREATE DATABASE {name} ENCODING '{charset}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
    )
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(create))
    except Exception as exc:
        _unavailable(kind, exc)
    url = engine.url.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}" + (" WITH (FORCE)" if kind == "postgresql" else "")))


@pytest.fixture(params=["mariadb", "postgresql"])
def latin1_url(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from _database(request.param, "latin1" if request.param == "mariadb" else "LATIN1")


def test_a_message_and_source_the_charset_cannot_store_apply_and_read_back(workdir: Any, latin1_url: str) -> None:
    m = Migrator.init(latin1_url)
    try:
        rev = m.revision(MESSAGE, BODY).revision
        done = m.upgrade("head")
        assert list(done.steps["revision"]) == [rev]
        assert version(latin1_url) == {rev} and tables(latin1_url) == {"events"}
        log = m.log()
        assert list(log["message"]) == [MESSAGE]
        assert log.iloc[0]["checksum"] == revisionfile.checksum(m.scripts().info(rev).source)
        assert m.status().problems == [] and m.status().edited == []
        # The source stored is the one applied: an edit shows as a difference with the CJK comment intact.
        path = m.scripts().info(rev).path
        path.write_text(path.read_text(encoding="utf-8").replace('["id"]', '["id"], unique=True'), encoding="utf-8")
        with pytest.raises(Exception) as caught:
            m.upgrade("head")
        assert "# 注释: une table pour les événements 🎉" in caught.value.diff  # type: ignore[attr-defined]
        m.accept(rev)
        m.downgrade("base")
        assert tables(latin1_url) == set() and version(latin1_url) == set()
        assert [d for (d,) in ledger_rows(latin1_url, "direction")] == ["upgrade", "accept", "downgrade"]
    finally:
        m.close()


def _big_source(random: bool, size: int) -> str:
    """A revision body whose source is about ``size`` bytes: repetitive (compresses well) or random."""
    if random:
        blob = base64.b64encode(os.urandom(size * 3 // 4)).decode()
    else:
        blob = "the same line, over and over again, to make a large revision file " * (size // 68)
    lines = "\n".join("# " + blob[i : i + 76] for i in range(0, len(blob), 76))
    return lines + "\n" + BODY


def _packet(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT @@max_allowed_packet")).scalar())
    finally:
        engine.dispose()


@pytest.mark.parametrize("random", [False, True], ids=["compressible", "incompressible"])
def test_a_revision_larger_than_the_packet_limit_applies(workdir: Any, mariadb_url: str, random: bool) -> None:
    limit = _packet(mariadb_url)
    m = Migrator.init(mariadb_url)
    try:
        rev = m.revision("a very large revision", _big_source(random, limit + limit // 4)).revision
        source = m.scripts().info(rev).source
        assert len(source.encode()) > limit
        m.upgrade("head")
        assert version(mariadb_url) == {rev} and tables(mariadb_url) == {"events"}
        (checksum, note), = ledger_rows(mariadb_url, "checksum", "note")
        assert checksum == revisionfile.checksum(source)
        from migmagic import ledger

        engine = sa.create_engine(mariadb_url)
        try:
            with engine.connect() as conn:
                stored = ledger.applied_source(conn, rev)
        finally:
            engine.dispose()
        if random:
            assert stored is None
            assert note.startswith("source not stored: ") and "max_allowed_packet" in note
        else:
            assert stored == revisionfile.normalize(source) and note is None
        assert m.status().edited == [] and m.status().problems == []
    finally:
        m.close()


OLD_LEDGER = """CREATE TABLE migmagic_ledger (
    id INTEGER NOT NULL {auto} PRIMARY KEY,
    revision VARCHAR(64) NOT NULL,
    direction VARCHAR(16) NOT NULL,
    message VARCHAR(255),
    applied_at {dt} NOT NULL,
    seconds FLOAT,
    checksum VARCHAR(64),
    checksum_version INTEGER,
    source {text},
    migmagic_version VARCHAR(32),
    alembic_version VARCHAR(32)
)"""


def test_a_ledger_table_from_an_earlier_version_keeps_working(migrator: Any, db_url: str) -> None:
    """The ledger of migmagic 0.1 (message and source as text) gains its new columns and its rows still read."""
    kind = db_url.split(":")[0].split("+")[0]
    auto = {"sqlite": "", "postgresql": "GENERATED BY DEFAULT AS IDENTITY", "mysql": "AUTO_INCREMENT"}[kind]
    dt = "TIMESTAMP" if kind == "postgresql" else "DATETIME"
    text = "MEDIUMTEXT" if kind == "mysql" else "TEXT"
    a = migrator.revision("create events table", BODY)
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(OLD_LEDGER.format(auto=auto, dt=dt, text=text)))
        # The alembic command applied it long ago, and migmagic 0.1 recorded it.
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
            conn.execute(sa.text(f"INSERT INTO alembic_version VALUES ('{a.revision}')"))
            conn.execute(sa.text("CREATE TABLE events (id INTEGER PRIMARY KEY)"))
            conn.execute(sa.text("CREATE INDEX ix_events_id ON events (id)"))
            conn.execute(
                sa.text(
                    "INSERT INTO migmagic_ledger (revision, direction, message, applied_at, checksum, checksum_version, source) "
                    "VALUES (:r, 'upgrade', 'create events table', '2024-01-01 00:00:00', :c, 1, :s)"
                ),
                {"r": a.revision, "c": revisionfile.checksum(migrator.scripts().info(a.revision).source), "s": revisionfile.normalize(migrator.scripts().info(a.revision).source)},
            )
    finally:
        engine.dispose()
    # Reads work before anything is written with the new version.
    assert list(migrator.log()["message"]) == ["create events table"]
    assert migrator.status().problems == []
    b = migrator.revision("add a column", "def upgrade():\n    op.add_column('events', sa.Column('note', sa.String(20)))\n")
    migrator.upgrade("head")
    assert "note" in columns(db_url, "events")
    assert {"message_utf8", "source_zlib", "note"} <= set(columns(db_url, "migmagic_ledger", own_schema(db_url)))  # PostgreSQL: moved
    assert list(migrator.log()["revision"]) == [a.revision, b.revision]
    # An edit of the revision recorded by the old version still shows its difference.
    path = migrator.scripts().info(a.revision).path
    path.write_text(path.read_text().replace('["id"]', '["id"], unique=True'))
    with pytest.raises(Exception) as caught:
        migrator.upgrade("head")
    assert '-    op.create_index("ix_events_id", "events", ["id"])' in caught.value.diff  # type: ignore[attr-defined]


REFUSE_LEDGER = {
    "postgresql": [
        "CREATE FUNCTION refuse_ledger() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'ledger refused'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse_ledger BEFORE INSERT ON migmagic.migmagic_ledger FOR EACH ROW EXECUTE FUNCTION refuse_ledger()",
    ],
    "mysql": [
        "CREATE TRIGGER refuse_ledger BEFORE INSERT ON migmagic_ledger FOR EACH ROW "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'ledger refused'",
    ],
}


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    from conftest import fresh_database

    yield from fresh_database(request.param, tmp_path)


def test_a_ledger_insert_the_database_refuses_is_named_as_migmagics(workdir: Any, server_url: str) -> None:
    """Not the revision's fault: the error says so, and the revision is never made impossible to apply."""
    m = Migrator.init(server_url)
    try:
        keep = m.revision("keep", "def upgrade():\n    op.create_table('keep', sa.Column('id', sa.Integer, primary_key=True))\n").revision
        m.upgrade("head")
        rev = m.revision("create events table", BODY).revision
        kind = "postgresql" if server_url.startswith("postgresql") else "mysql"
        engine = sa.create_engine(server_url)
        with engine.begin() as conn:
            for statement in REFUSE_LEDGER[kind]:
                conn.execute(sa.text(statement))
        with pytest.raises(MigrationFailed) as caught:
            m.upgrade("head")
        err = caught.value
        assert err.message.startswith("migmagic could not record the upgrade of "), err
        assert "in its ledger (migmagic_ledger)" in err.message and "ledger refused" in err.message
        assert f"Revision {rev}" not in err.message and err.revision == rev
        assert "not the revision's fault" in str(err)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TRIGGER refuse_ledger" + (" ON migmagic.migmagic_ledger" if kind == "postgresql" else "")))
        engine.dispose()
        if kind == "postgresql":
            assert "Nothing was applied: the database is still at " + keep in str(err)
            assert version(server_url) == {keep} and tables(server_url) == {"keep"}
            m.upgrade("head")
        else:
            # The statements committed; the step is half-applied, and resume records it.
            assert f"{rev} is half-applied" in str(err) and "resume()" in str(err)
            assert [h.revision for h in m.state().half_applied] == [rev]
            assert tables(server_url) == {"keep", "events"} and version(server_url) == {keep}
            m.resume()
        assert version(server_url) == {rev} and tables(server_url) == {"keep", "events"}
        assert [r for (r,) in ledger_rows(server_url, "revision")] == [keep, rev]
    finally:
        m.close()
