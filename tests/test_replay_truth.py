"""Replay that cannot lie: each way a recording once built a wrong database, as a test (issue "Replay that cannot lie")."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import plain
import pytest
import sqlalchemy as sa
from conftest import fresh_database, tables, version

from migmagic import Migrator, replay
from migmagic.errors import MigrationFailed


def _replayed(outcome: Any) -> int:
    import re

    found = re.search(r"\((\d+) replayed", outcome.summary)
    return int(found.group(1)) if found else 0


def _fresh(kind: str, tmp_path: Path, name: str) -> Any:
    where = tmp_path / name
    where.mkdir()
    return fresh_database(kind, where)


def _streams(store: Path) -> list[dict[str, Any]]:
    if not (store / replay.STORE_NAME).exists():
        return []
    conn = sqlite3.connect(store / replay.STORE_NAME)
    try:
        return [json.loads(s) for (s,) in conn.execute("SELECT statements FROM recording")]
    finally:
        conn.close()


# --------------------------------------------------------------------------- 1. a resume's substituted statements


CUSTOMERS = '''def upgrade():
    op.create_table("customers", sa.Column("id", sa.Integer, primary_key=True), sa.Column("email", sa.String(100)))


def downgrade():
    op.drop_table("customers")
'''
ORDERS = '''def upgrade():
    op.create_table("orders", sa.Column("id", sa.Integer, primary_key=True), sa.Column("customer_id", sa.Integer))
    op.create_unique_constraint("uq_customers_email", "customers", ["email"])


def downgrade():
    op.drop_constraint("uq_customers_email", "customers", type_="unique")
    op.drop_table("orders")
'''


def test_a_resume_never_becomes_a_recording(mariadb_url: str, workdir: Path, tmp_path: Path, replay_store: Path) -> None:
    """MariaDB: orders is created, the unique constraint fails on duplicates; fixed and resumed (CREATE TABLE skipped as DO 0).
    Nothing of that run is stored, and every later fresh database gets its orders table."""
    m = Migrator.init(mariadb_url)
    try:
        m.revision("customers", CUSTOMERS, apply=True)
        engine = sa.create_engine(mariadb_url)
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO customers (id, email) VALUES (1, 'a@x'), (2, 'a@x')"))
        orders = m.revision("orders", ORDERS).revision
        with pytest.raises(MigrationFailed):
            m.upgrade("head")
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM customers WHERE id = 2"))
        engine.dispose()
        resumed = m.resume()
        assert "skipped 1 statement" in resumed.summary, resumed.summary
        assert version(mariadb_url) == {orders}
    finally:
        m.close()
    assert not any("DO 0" in json.dumps(s) for s in _streams(replay_store))
    for i in range(2):
        for url in _fresh("mariadb", tmp_path, f"later{i}"):
            later = Migrator(url, m.folder)
            try:
                later.upgrade("head")
                assert {"customers", "orders"} <= tables(url)
                assert later.status().half_applied == []
            finally:
                later.close()


# --------------------------------------------------------------------------- 2. what Alembic's runtime carries from one revision to the next

KIND_A = '''def upgrade():
    op.create_table("a", sa.Column("id", sa.Integer, primary_key=True), sa.Column("k", sa.Enum("x", "y", name="kind")))


def downgrade():
    op.drop_table("a")
    sa.Enum(name="kind").drop(op.get_bind(), checkfirst=True)
'''
KIND_B_HELPER = '''def columns():
    return [sa.Column("id", sa.Integer, primary_key=True), sa.Column("k", sa.Enum("x", "y", name="kind"))]


def upgrade():
    op.create_table("b", *columns())


def downgrade():
    op.drop_table("b")
'''
KIND_B_PURE = '''def upgrade():
    op.create_table("b", sa.Column("id", sa.Integer, primary_key=True), sa.Column("k", sa.Enum("x", "y", name="kind")))


def downgrade():
    op.drop_table("b")
'''


def _enums(url: str) -> list[tuple[str, list[str]]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid "
                "JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = current_schema() GROUP BY t.typname ORDER BY 1"
            )).all()
        return [(r[0], list(r[1])) for r in rows]
    finally:
        engine.dispose()


@pytest.mark.parametrize("second", ["helper", "pure"])
def test_an_enum_two_revisions_share_builds_on_every_fresh_database(second: str, workdir: Path, tmp_path: Path, replay_store: Path) -> None:
    """PostgreSQL: one run creates type kind once for both tables. Three fresh databases in turn all reach head, alike."""
    built: list[tuple[Any, ...]] = []
    folder = None
    for i in range(3):
        for url in _fresh("postgresql", tmp_path, f"db{i}"):
            m = Migrator.init(url) if folder is None else Migrator(url, folder)
            try:
                if folder is None:
                    m.revision("a", KIND_A)
                    m.revision("b", KIND_B_HELPER if second == "helper" else KIND_B_PURE)
                    folder = m.folder
                outcome = m.upgrade("head")
                assert _replayed(outcome) == (2 if second == "pure" and i > 0 else 0), outcome.summary
                built.append((sorted(tables(url)), _enums(url), sorted(version(url))))
            finally:
                m.close()
    assert built[0][1] == [("kind", ["x", "y"])]
    assert built[1] == built[0] and built[2] == built[0]


# --------------------------------------------------------------------------- 3. depends_on across roots


def test_depends_on_downgrade_keeps_what_alembic_keeps(workdir: Path, tmp_path: Path) -> None:
    """Two roots, a2 depends on s1: downgrading to a1 leaves (a1, s1), with replay on, as plain Alembic does."""
    from conftest import table_revision

    for url in _fresh("sqlite", tmp_path, "author"):
        m = Migrator.init(url)
        s1 = m.revision("s1", table_revision("s1"), head="base", branch_label="shared").revision
        a1 = m.revision("a1", table_revision("a1"), head="base", branch_label="app").revision
        a2 = m.revision("a2", table_revision("a2"), head=a1, depends_on=s1).revision
        m.upgrade(a2)  # recorded
        m.downgrade(a1)  # the same steps the other database takes next: whatever could be recorded of them is
        m.close()
    for url, plain_url in zip(_fresh("sqlite", tmp_path, "replayed"), _fresh("sqlite", tmp_path, "plain"), strict=True):
        other = Migrator(url, m.folder)
        assert _replayed(other.upgrade(a2)) == 3
        other.downgrade(a1)
        plain.run(plain_url, m.folder, "upgrade", a2)
        plain.run(plain_url, m.folder, "downgrade", a1)
        assert version(url) == version(plain_url) == {a1, s1}
        assert other.status().pending == [a2]
        other.close()


# --------------------------------------------------------------------------- 4. holes in the purity proof

HELPERS = '''import os

from alembic import op as _alembic_op


class _Prefixed:
    """A team's wrapper: every table name gets the deployment's prefix."""

    def __getattr__(self, name):
        call = getattr(_alembic_op, name)

        def prefixed(table, *args, **kwargs):
            return call(os.environ["MM_PREFIX"] + table, *args, **kwargs)

        return prefixed


op = _Prefixed()
'''
STAR = '''from helpers import *  # noqa: F403


def upgrade():
    op.create_table("items", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("items")
'''


def test_a_star_import_that_rebinds_op_is_never_replayed(workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "helpers.py").write_text(HELPERS)
    monkeypatch.syspath_prepend(str(workdir))
    source = "from alembic import op\nimport sqlalchemy as sa\n" + STAR
    assert not replay.pure(source, "upgrade", batch=True)
    for form in ("from helpers import op", "import helpers as op", "from helpers import op as op", "import os"):
        assert not replay.pure(source.replace("from helpers import *  # noqa: F403", form), "upgrade", batch=True), form
    assert replay.pure(source.replace("from helpers import *  # noqa: F403", "from typing import Any"), "upgrade", batch=True)
    folder = None
    for i, prefix in enumerate(("one_", "two_")):
        monkeypatch.setenv("MM_PREFIX", prefix)
        for url in _fresh("sqlite", tmp_path, f"deploy{i}"):
            m = Migrator.init(url) if folder is None else Migrator(url, folder)
            if folder is None:
                m.revision("items", STAR)
                folder = m.folder
            assert _replayed(m.upgrade("head")) == 0
            assert tables(url) == {f"{prefix}items"}
            m.close()


# --------------------------------------------------------------------------- statements as Alembic sends them

PERCENT = '''def upgrade():
    op.execute("CREATE FUNCTION qualified() RETURNS text AS $$ SELECT format('%I.%I', 'a b', 'c') || ' 100%' $$ LANGUAGE sql")
    op.create_table("pct", sa.Column("id", sa.Integer, primary_key=True), sa.Column("p", sa.String(10), server_default="100%"))


def downgrade():
    op.drop_table("pct")
    op.execute("DROP FUNCTION qualified()")
'''


def test_replayed_statements_reach_the_driver_as_alembic_sent_them(workdir: Path, tmp_path: Path) -> None:
    """PostgreSQL (psycopg formats placeholders): '%I' in a function body, '100%' in a default — the same on a replayed database."""
    results = []
    folder = None
    for i in range(3):
        for url in _fresh("postgresql", tmp_path, f"db{i}"):
            m = Migrator.init(url) if folder is None else Migrator(url, folder)
            if folder is None:
                m.revision("percent", PERCENT)
                folder = m.folder
            assert _replayed(m.upgrade("head")) == (1 if i else 0)
            engine = sa.create_engine(url)
            with engine.connect() as conn:
                results.append((conn.execute(sa.text("SELECT qualified()")).scalar(), sa.inspect(conn).get_columns("pct")[1]["default"]))
            engine.dispose()
            m.close()
    assert results[0][0] == '"a b".c 100%'
    assert results[1] == results[0] and results[2] == results[0]


def test_the_store_is_said_and_cleared(ip_empty: Any, sqlite_url: str, replay_store: Path) -> None:
    from conftest import table_revision

    ip_empty.ok(f"%migrate init {sqlite_url}")
    ip_empty.ok(f'%%revision -m "t" --apply\n{table_revision("t")}')
    said = ip_empty.ok("%migrate replay")
    assert "holds 1 recorded plan" in str(said) and "--clear" in str(said)
    cleared = ip_empty.ok("%migrate replay --clear")
    assert "1 recorded plan dropped" in str(cleared)
    assert not (replay_store / replay.STORE_NAME).exists()
    assert "holds 0 recorded plans" in str(ip_empty.ok("%migrate replay"))
