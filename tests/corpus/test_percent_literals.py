"""A literal ``%`` in a revision's SQL reaches the database as plain Alembic sends it (issue 25.4).

PostgreSQL through psycopg (which reads ``%`` as a placeholder whenever parameters are
passed) and SQLite: ``format('%I.%I', ...)``, ``%`` and ``%%`` in literals, a ``DO`` block
with ``%`` in its body, ``exec_driver_sql`` and bound parameters. The same folder is
upgraded by migmagic on two fresh databases (the second may replay the first's
recording) and by plain Alembic with the folder's own env.py; the rows must agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import fresh_database

from migmagic import Migrator

BODY = '''def upgrade():
    op.create_table("t", sa.Column("v", sa.Text))
    op.execute("INSERT INTO t SELECT format('%I.%I', 'a', 'b')" if op.get_bind().dialect.name == "postgresql" else "INSERT INTO t VALUES ('a.b')")
    op.execute("INSERT INTO t VALUES ('50%'), ('100%%')")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DO $$ BEGIN INSERT INTO t VALUES (format('%s-%%', 'do')); END $$")
    op.get_bind().exec_driver_sql("INSERT INTO t VALUES ('driver 10%%')")
    op.execute(sa.text("INSERT INTO t VALUES (:v)").bindparams(v="bound 5%"))


def downgrade():
    op.drop_table("t")
'''


def _rows(url: str) -> list[str]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(r[0] for r in conn.execute(sa.text("SELECT v FROM t")))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def three_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    generators = []
    for i in range(3):
        (tmp_path / f"db{i}").mkdir()
        generators.append(fresh_database(request.param, tmp_path / f"db{i}"))
    try:
        yield [next(g) for g in generators]
    finally:
        for g in generators:
            g.close()


def test_percent_reaches_the_database_as_plain_alembic_sends_it(three_urls: list[str], workdir: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from alembic import command
    from alembic.config import Config

    first, second, plain = three_urls
    m = Migrator.init(first)
    m.revision("percent literals", BODY)
    m.upgrade("head")
    m.close()
    m = Migrator.init(second)
    m.upgrade("head")
    m.close()

    monkeypatch.setenv("DATABASE_URL", plain)  # the folder's env.py reads it, as the alembic command would
    command.upgrade(Config(str(workdir / "migrations" / "alembic.ini")), "head")

    expected = _rows(plain)  # whatever Alembic itself sends through this driver: not chosen here
    assert len(expected) >= 5
    assert _rows(first) == expected
    assert _rows(second) == expected
