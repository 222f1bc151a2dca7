"""Replay: a pure-DDL revision's recorded SQL builds the same database as Alembic; nothing else is replayed."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import fresh_database, table_revision, tables, version

from migmagic import Migrator, replay
from migmagic.errors import MigrationFailed
from migmagic.schema import BOOKKEEPING

# (message, upgrade body, downgrade body); SQLite gets batch blocks where ALTER needs them.
PARENT = ("create parent", '''    op.create_table(
        "parent",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(20), nullable=False),
        sa.Column("score", sa.Integer, server_default="0"),
        sa.UniqueConstraint("code", name="uq_parent_code"),
        sa.CheckConstraint("score >= 0", name="ck_parent_score"),
    )
    op.create_index("ix_parent_score", "parent", ["score"])
''', '''    op.drop_index("ix_parent_score", table_name="parent")
    op.drop_table("parent")
''')
CHILD = ("create child", '''    op.create_table(
        "child",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("parent.id", name="fk_child_parent"), nullable=False),
        sa.Column("label", sa.String(100), server_default=sa.text("'none'")),
        sa.Column("pct", sa.String(10), server_default="100%"),
        sa.Column("created", sa.DateTime, nullable=True),
        sa.Column("flag", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Index("ix_child_label", "label"),
    )
''', '''    op.drop_table("child")
''')
ADD = ("add note", '''    op.add_column("child", sa.Column("note", sa.String(100), nullable=True))
    op.add_column("child", sa.Column("gone", sa.Integer))
''', '''    op.drop_column("child", "gone")
    op.drop_column("child", "note")
''')
DROP = ("drop gone", '''    op.drop_column("child", "gone")
''', '''    op.add_column("child", sa.Column("gone", sa.Integer))
''')
INDEX = ("index note", '''    op.create_index(op.f("ix_child_note"), "child", ["note"], unique=False)
''', '''    op.drop_index(op.f("ix_child_note"), table_name="child")
''')
ALTER = ("alter note", '''    op.alter_column("child", "note", existing_type=sa.String(100), type_=sa.String(200), nullable=False, existing_nullable=True, server_default="n/a")
''', '''    op.alter_column("child", "note", existing_type=sa.String(200), type_=sa.String(100), nullable=True, existing_nullable=False, server_default=None)
''')
UNIQUE = ("unique label", '''    op.create_unique_constraint("uq_child_label", "child", ["label"])
''', '''    op.drop_constraint("uq_child_label", "child", type_="unique")
''')
FK = ("fk on other", '''    op.create_table("other", sa.Column("id", sa.Integer, primary_key=True), sa.Column("child_id", sa.Integer))
    op.create_foreign_key("fk_other_child", "other", "child", ["child_id"], ["id"])
''', '''    op.drop_constraint("fk_other_child", "other", type_="foreignkey")
    op.drop_table("other")
''')
PLAIN = [PARENT, CHILD, ADD, DROP, INDEX, ALTER, UNIQUE, FK]

SQLITE_BATCH = {
    "alter note": ('''    with op.batch_alter_table("child") as b:
        b.alter_column("note", existing_type=sa.String(100), type_=sa.String(200), nullable=False, existing_nullable=True, server_default="n/a")
''', '''    with op.batch_alter_table("child") as b:
        b.alter_column("note", existing_type=sa.String(200), type_=sa.String(100), nullable=True, existing_nullable=False, server_default=None)
'''),
    "unique label": ('''    with op.batch_alter_table("child") as b:
        b.create_unique_constraint("uq_child_label", ["label"])
''', '''    with op.batch_alter_table("child") as b:
        b.drop_constraint("uq_child_label", type_="unique")
'''),
    "fk on other": ('''    op.create_table("other", sa.Column("id", sa.Integer, primary_key=True), sa.Column("child_id", sa.Integer))
    with op.batch_alter_table("other") as b:
        b.create_foreign_key("fk_other_child", "child", ["child_id"], ["id"])
''', '''    with op.batch_alter_table("other") as b:
        b.drop_constraint("fk_other_child", type_="foreignkey")
    op.drop_table("other")
'''),
}

NOT_PURE = {
    "get_bind": '''    conn = op.get_bind()
    op.create_table("x", sa.Column("id", sa.Integer, primary_key=True))
''',
    "if": '''    if True:
        op.create_table("x", sa.Column("id", sa.Integer, primary_key=True))
''',
    "for": '''    for name in ["x"]:
        op.create_table(name, sa.Column("id", sa.Integer, primary_key=True))
''',
    "try": '''    try:
        op.create_table("x", sa.Column("id", sa.Integer, primary_key=True))
    except Exception:
        pass
''',
    "execute of a name": '''    statement = "CREATE TABLE x (id INTEGER PRIMARY KEY)"
    op.execute(statement)
''',
    "execute of a text()": '''    op.execute(sa.text("CREATE TABLE x (id INTEGER PRIMARY KEY)"))
''',
    "bulk_insert": '''    t = op.create_table("x", sa.Column("id", sa.Integer, primary_key=True))
    op.bulk_insert(t, [{"id": 1}])
''',
    "another call": '''    op.create_table("x", sa.Column("id", sa.Integer, primary_key=True), sa.Column("at", sa.DateTime, default=len("abc")))
''',
    "a helper": '''    make_x()
''',
    "an f-string": '''    op.create_table(f"x{1}", sa.Column("id", sa.Integer, primary_key=True))
''',
}


def _body(up: str, down: str) -> str:
    return f"def upgrade():\n{up}\n\ndef downgrade():\n{down}"


def _revisions(kind: str) -> list[tuple[str, str]]:
    out = []
    for message, up, down in PLAIN:
        if kind == "sqlite" and message in SQLITE_BATCH:
            up, down = SQLITE_BATCH[message]
        out.append((message, _body(up, down)))
    return out


def _schema(url: str) -> tuple[Any, ...]:
    """Everything the inspector sees of the user's tables, and the version table."""
    engine = sa.create_engine(url)
    try:
        insp = sa.inspect(engine)
        tables = sorted(t for t in insp.get_table_names() if t not in BOOKKEEPING)
        seen = {}
        for t in tables:
            checks = insp.get_check_constraints(t)
            seen[t] = (
                [(c["name"], str(c["type"]), c["nullable"], str(c.get("default"))) for c in insp.get_columns(t)],
                insp.get_pk_constraint(t),
                sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(t)),
                sorted((u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(t)),
                sorted((f["name"], tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"])) for f in insp.get_foreign_keys(t)),
                sorted((c["name"], " ".join(c["sqltext"].split())) for c in checks),
            )
        with engine.connect() as conn:
            versions = sorted(r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))) if insp.has_table("alembic_version") else []
        return seen, versions
    finally:
        engine.dispose()


@pytest.fixture
def second_url(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[str]:
    """Another fresh database of the same kind as ``db_url``."""
    kind = sa.engine.make_url(db_url).get_backend_name()
    other = tmp_path / "second"
    other.mkdir()
    yield from fresh_database("mariadb" if kind == "mysql" else kind, other)


@pytest.fixture(params=["sqlite", "postgresql"])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two fresh databases of one kind: SQLite, PostgreSQL (where replayed statements go to the driver's cursor)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = fresh_database(request.param, tmp_path / "a"), fresh_database(request.param, tmp_path / "b")
    try:
        yield next(first), next(second)
    finally:
        for gen in (first, second):
            next(gen, None)


def _recorded(store: Path) -> list[Any]:
    """The keys recorded in the store."""
    if not (store / replay.STORE_NAME).exists():
        return []
    conn = sqlite3.connect(store / replay.STORE_NAME)
    try:
        keys = [json.loads(k) for (k,) in conn.execute("SELECT key FROM recording")]
    finally:
        conn.close()
    return keys


def _kind(url: str) -> str:
    return sa.engine.make_url(url).get_backend_name()


def _replayed(outcome: Any) -> int:
    import re

    found = re.search(r"\((\d+) replayed", outcome.summary)
    return int(found.group(1)) if found else 0


def test_replay_builds_what_alembic_builds(migrator: Any, db_url: str, second_url: str) -> None:
    """A fresh database of a plan recorded once replays it whole; every other plan runs through Alembic. Same schema either way."""
    kind = _kind(db_url)
    for message, body in _revisions(kind):
        migrator.revision(message, body)
    first = migrator.upgrade("head")  # Alembic runs the plan; a plan of pure revisions from an empty database is recorded
    assert _replayed(first) == 0
    other = Migrator(second_url, migrator.folder)
    try:
        again = other.upgrade("head")
        # SQLite: batch blocks are never proven pure, so the plan is never recorded; MySQL/MariaDB never replay.
        expected = len(PLAIN) if kind == "postgresql" else 0
        assert _replayed(again) == expected, again.summary
        if expected:
            assert f"({expected} replayed from recorded SQL)" in again.summary
        assert _schema(second_url) == _schema(db_url)
        assert list(other.log()["direction"]) == ["upgrade"] * len(PLAIN)  # the ledger as ever
        assert other.status().edited == []

        # Downgrades, and plans that do not start from an empty database, run through Alembic.
        assert _replayed(migrator.downgrade("base")) == 0
        assert _replayed(other.downgrade("base")) == 0
        assert _schema(second_url) == _schema(db_url)
        assert _schema(second_url)[0] == {}
        middle = migrator.scripts().by_message("index note")
        assert middle is not None
        assert _replayed(migrator.upgrade(middle.id)) == 0
        assert _replayed(other.upgrade(middle.id)) == 0
        assert _schema(second_url) == _schema(db_url)
        assert version(second_url) == {middle.id}
    finally:
        other.close()


def test_branches_and_merges_replay_to_the_version_table_alembic_keeps(two_urls: tuple[str, str], workdir: Path, tmp_path: Path) -> None:
    """A plan through a branch point and a merge, recorded whole, replays with the version-table statements Alembic sent."""
    url, other_url = two_urls
    m = Migrator.init(url)

    def table(name: str, **where: str) -> str:
        return m.revision(name, table_revision(name), **where).revision

    root = table("root")
    a = table("a", head=root)
    b = table("b", head=root)
    merged = m.merge([a, b], "join branches").revision
    tip = table("tip")
    assert _replayed(m.upgrade("heads")) == 0  # recorded
    other = Migrator(other_url, m.folder)
    replayed = other.upgrade("heads")
    assert _replayed(replayed) == 5, replayed.summary
    assert version(other_url) == version(url) == {tip}
    assert tables(other_url) == tables(url)
    plans = [("downgrade", "-1"), ("downgrade", merged), ("downgrade", a), ("upgrade", "heads"), ("downgrade", "base")]
    for command, target in plans:
        getattr(m, command)(target)
        outcome = getattr(other, command)(target)
        assert _replayed(outcome) == 0, outcome.summary  # not from an empty database: Alembic
        assert version(other_url) == version(url), (command, target)
        assert tables(other_url) == tables(url), (command, target)
    assert b in other.log()["revision"].tolist()
    other.close()
    m.close()


def test_a_revision_edited_by_one_byte_is_not_replayed(workdir: Path, sqlite_url: str, tmp_path: Path) -> None:
    m = Migrator.init(sqlite_url)
    a = m.revision("create parent", _body(PARENT[1], PARENT[2]))
    m.revision("create child", _body(CHILD[1], CHILD[2]))
    m.upgrade("head")
    path = Path(m.scripts().info(a.revision).path)
    path.write_text(path.read_text().replace("String(20)", "String(21)"))
    other = Migrator(f"sqlite:///{tmp_path / 'other.db'}", m.folder)
    assert _replayed(other.upgrade("head")) == 0  # another plan: its key holds every revision's source
    columns = sa.inspect(sa.create_engine(f"sqlite:///{tmp_path / 'other.db'}")).get_columns("parent")
    assert str(next(c for c in columns if c["name"] == "code")["type"]) == "VARCHAR(21)"
    third = Migrator(f"sqlite:///{tmp_path / 'third.db'}", m.folder)
    assert _replayed(third.upgrade("head")) == 2  # the edited plan, recorded by the one before
    for x in (m, other, third):
        x.close()


def test_a_fresh_process_replays_without_proving_again(workdir: Path, sqlite_url: str, tmp_path: Path) -> None:
    """A recording is made only of a plan proven pure: finding it is the proof (a fresh kernel parses nothing)."""
    m = Migrator.init(sqlite_url)
    m.revision("create parent", _body(PARENT[1], PARENT[2]))
    m.revision("create child", _body(CHILD[1], CHILD[2]))
    m.upgrade("head")
    m.close()
    replay.forget()
    replay._proofs.clear()  # as in a new process: nothing proven, nothing in memory; the store on disk stays
    other = Migrator(f"sqlite:///{tmp_path / 'other.db'}", m.folder)
    assert _replayed(other.upgrade("head")) == 2
    assert replay._proofs == {}
    other.close()


def test_a_replayed_statement_the_database_refuses_fails_truthfully(pg_url: str, workdir: Path, tmp_path: Path) -> None:
    """Replayed on the driver's cursor: a refused statement is the same one-line failure, pointing at the revision; nothing stays."""
    (tmp_path / "first").mkdir()
    for url in fresh_database("postgresql", tmp_path / "first"):
        m = Migrator.init(url)
        m.revision("create parent", _body(PARENT[1], PARENT[2]))
        child = m.revision("create child", _body(CHILD[1], CHILD[2])).revision
        m.upgrade("head")
        m.close()
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:  # not a table: the database still counts as empty, so the plan replays, and CREATE TABLE child fails
        conn.execute(sa.text("CREATE TYPE child AS (x integer)"))
    other = Migrator(pg_url, workdir / "migrations")
    with pytest.raises(MigrationFailed) as err:
        other.upgrade("head")
    text = str(err.value)
    assert err.value.revision == child and "CREATE TABLE child" in text and "Nothing was applied" in text, text
    assert "already exists" in text and "recording of this plan" in text, text
    shown = "\n".join(err.value._render_traceback_())
    assert "Traceback (revision code)" not in shown and "replay.py" not in shown, shown
    assert sorted(t for t in sa.inspect(engine).get_table_names() if t not in BOOKKEEPING) == []
    assert version(pg_url) == set()
    other.close()
    engine.dispose()


def test_a_recording_of_another_server_version_is_not_replayed(workdir: Path, sqlite_url: str, tmp_path: Path, replay_store: Path) -> None:
    m = Migrator.init(sqlite_url)
    m.revision("create parent", _body(PARENT[1], PARENT[2]))
    m.upgrade("head")
    store = sqlite3.connect(replay_store / replay.STORE_NAME, isolation_level=None)
    ((digest, key_text, statements_text),) = store.execute("SELECT digest, key, statements FROM recording").fetchall()
    key, stream = json.loads(key_text), json.loads(statements_text)
    assert key["dialect"] == "sqlite" and [step[1] for step in key["plan"]] == ["upgrade"]
    assert any("CREATE TABLE parent" in s for s, _ in stream["steps"][0])
    assert any("alembic_version" in s for s, _ in stream["prologue"] + stream["steps"][0])  # Alembic's bookkeeping is in the stream
    assert not any("migmagic_ledger" in s for s, _ in stream["prologue"] + stream["steps"][0])
    key["server_version"] = "2.0.0"
    store.execute("UPDATE recording SET key = ?", (json.dumps(key, sort_keys=True),))
    store.close()
    replay.forget()  # as in a new kernel
    other = Migrator(f"sqlite:///{tmp_path / 'other.db'}", m.folder)
    assert _replayed(other.upgrade("head")) == 0
    third = Migrator(f"sqlite:///{tmp_path / 'third.db'}", m.folder)
    replay.forget()
    assert _replayed(third.upgrade("head")) == 1  # the miss recorded it again, with the right key
    for x in (m, other, third):
        x.close()


@pytest.mark.parametrize("name", sorted(NOT_PURE))
def test_a_revision_not_proven_pure_is_never_replayed(name: str, workdir: Path, sqlite_url: str, tmp_path: Path, replay_store: Path) -> None:
    source = f"from alembic import op\nimport sqlalchemy as sa\n\n\ndef make_x():\n    pass\n\n\ndef upgrade():\n{NOT_PURE[name]}\n\ndef downgrade():\n    op.drop_table('x')\n"
    assert not replay.pure(source, "upgrade", batch=True)
    assert replay.pure(source, "downgrade", batch=True)
    m = Migrator.init(sqlite_url)
    m.revision("not pure", "def make_x():\n    pass\n\n\n" + _body(NOT_PURE[name], "    op.drop_table('x')\n"))
    m.upgrade("head")
    other = Migrator(f"sqlite:///{tmp_path / 'other.db'}", m.folder)
    assert _replayed(other.upgrade("head")) == 0
    assert not _recorded(replay_store)
    m.close()
    other.close()


def test_module_level_code_and_batch_on_sqlite_are_not_pure() -> None:
    head = "from alembic import op\nimport sqlalchemy as sa\n"
    up = "\n\ndef upgrade():\n    op.drop_table('x')\n"
    assert replay.pure(head + up, "upgrade", batch=False)
    assert not replay.pure(head + "print('hi')\n" + up, "upgrade", batch=False)
    assert not replay.pure(head + "op.drop_table = print\n" + up, "upgrade", batch=False)
    assert not replay.pure(head + "import os as sa\n" + up, "upgrade", batch=False)
    assert not replay.pure("import sqlalchemy as sa\n" + up, "upgrade", batch=False)  # op is not Alembic's
    batch = head + "\n\ndef upgrade():\n    with op.batch_alter_table('x') as b:\n        b.drop_column('y')\n"
    assert replay.pure(batch, "upgrade", batch=True) and not replay.pure(batch, "upgrade", batch=False)
    always = batch.replace("('x')", "('x', recreate='always')")
    assert not replay.pure(always, "upgrade", batch=True)


def test_replay_off(workdir: Path, sqlite_url: str, tmp_path: Path, replay_store: Path) -> None:
    m = Migrator.init(sqlite_url, replay=False)
    m.revision("create parent", _body(PARENT[1], PARENT[2]))
    m.upgrade("head")
    assert not _recorded(replay_store)  # nothing recorded either
    on = Migrator(f"sqlite:///{tmp_path / 'on.db'}", m.folder)
    on.upgrade("head")
    off = Migrator(f"sqlite:///{tmp_path / 'off.db'}", m.folder, replay=False)
    outcome = off.upgrade("head")
    assert _replayed(outcome) == 0 and "replayed" not in outcome.summary
    for x in (m, on, off):
        x.close()


def test_replay_off_in_a_notebook(ip_empty: Any, sqlite_url: str) -> None:
    ip_empty.ok("%config Migrate.replay = False")
    ip_empty.ok(f"%migrate init {sqlite_url}")
    from migmagic import magics

    assert magics._loaded[id(ip_empty.ip)].migrator.db.replay is False


def test_mariadb_never_replays_and_keeps_per_step_commits(mariadb_url: str, workdir: Path, tmp_path: Path, replay_store: Path) -> None:
    m = Migrator.init(mariadb_url)
    m.revision("create parent", _body(PARENT[1], PARENT[2]))
    b = m.revision("create child", _body(CHILD[1], CHILD[2]))
    m.upgrade("head")
    assert not _recorded(replay_store)  # DDL commits itself there: replay never records nor replays
    m.revision("fails", _body('    op.add_column("child", sa.Column("x", sa.Integer))\n    raise RuntimeError("boom")\n', "    pass\n"))
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    for url in fresh_database("mariadb", other_dir):
        other = Migrator(url, m.folder)
        try:
            with pytest.raises(MigrationFailed) as failed:
                other.upgrade("head")
            assert failed.value.completed == [m.scripts().by_message("create parent").id, b.revision]  # type: ignore[union-attr]
            assert version(url) == {b.revision}  # the steps committed, each with its version row
            assert [r for r in other.log()["direction"]] == ["upgrade", "upgrade"]
            assert "x" in {c["name"] for c in sa.inspect(sa.create_engine(url)).get_columns("child")}  # DDL of the failed one stays, as ever
        finally:
            other.close()
    m.close()
