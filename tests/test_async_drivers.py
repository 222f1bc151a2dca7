"""An async URL runs through the driver it names (issue 25): what a revision sends reaches asyncpg, aiosqlite or asyncmy.

The expectation is plain Alembic's, run with Alembic's asyncio recipe (an
``AsyncEngine`` and ``run_sync``): the same folder on another fresh database must
hold the same rows. The revision records the driver its connection uses and sends
SQL through ``exec_driver_sql`` that psycopg would parse for placeholders
(``format('%I.%I', ...)``): through asyncpg it runs as written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import fresh_database

# What the revision saw: the driver of op.get_bind(), and what the database answered to SQL sent as is.
PG_REVISION = '''def upgrade():
    op.create_table("seen", sa.Column("driver", sa.String(40)), sa.Column("answer", sa.String(80)))
    bind = op.get_bind()
    answer = bind.exec_driver_sql("SELECT format('%I.%I', 'public', 'Mixed Case')").scalar()
    bind.execute(sa.text("INSERT INTO seen VALUES (:d, :a)"), {"d": bind.dialect.driver, "a": answer})


def downgrade():
    op.drop_table("seen")
'''
SQLITE_REVISION = '''def upgrade():
    op.create_table("seen", sa.Column("driver", sa.String(40)), sa.Column("answer", sa.String(80)))
    bind = op.get_bind()
    answer = bind.exec_driver_sql("SELECT printf('%s.%d', 'x', 7) || ' 100%'").scalar()
    bind.execute(sa.text("INSERT INTO seen VALUES (:d, :a)"), {"d": bind.dialect.driver, "a": answer})


def downgrade():
    op.drop_table("seen")
'''


def _async(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql+asyncpg://").replace("sqlite:///", "sqlite+aiosqlite:///")


@pytest.fixture
def asyncpg_urls(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two fresh PostgreSQL databases, as postgresql+asyncpg:// URLs: one for migmagic, one for plain Alembic."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = fresh_database("postgresql", tmp_path / "a"), fresh_database("postgresql", tmp_path / "b")
    try:
        yield _async(next(first)), _async(next(second))
    finally:
        first.close()
        second.close()


def plain_async(url: str, folder: Path, command: str, target: str) -> None:
    """Plain Alembic with its asyncio recipe (the ``async`` template's env.py): an AsyncEngine, ``run_sync``, ``asyncio.run``."""
    import sqlalchemy as sa
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.ext.asyncio import create_async_engine

    config = Config()
    config.set_main_option("script_location", str(folder))
    script = ScriptDirectory.from_config(config)

    def fn(rev: Any, _context: Any) -> Any:
        return script._upgrade_revs(target, rev) if command == "upgrade" else script._downgrade_revs(target, rev)

    def do_run_migrations(connection: Any) -> None:
        with EnvironmentContext(config, script, fn=fn, destination_rev=target) as env:
            env.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
            with env.begin_transaction():
                env.run_migrations()

    async def run_async_migrations() -> None:
        engine = create_async_engine(url, poolclass=sa.pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
        await engine.dispose()

    asyncio.run(run_async_migrations())


def seen(url: str) -> list[tuple[str, str]]:
    """The rows the revision wrote, read with a sync driver (a reader of the database, not of migmagic)."""
    import sqlalchemy as sa

    sync = url.replace("+asyncpg", "+psycopg").replace("+aiosqlite", "").replace("+asyncmy", "+pymysql")
    engine = sa.create_engine(sync, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT driver, answer FROM seen"))]


@pytest.mark.servers
def test_an_asyncpg_url_runs_revisions_through_asyncpg(asyncpg_urls: tuple[str, str], workdir: Path) -> None:
    from migmagic import Migrator

    ours, theirs = asyncpg_urls
    m = Migrator.init(ours)
    m.revision("seen", PG_REVISION)
    m.upgrade("head")
    plain_async(theirs, workdir / "migrations", "upgrade", "head")
    assert seen(ours) == seen(theirs) == [("asyncpg", 'public."Mixed Case"')]
    status = m.status()
    assert status.current == status.heads and status.applied == 1 and not status.pending
    m.downgrade("base", accept_data_loss=True)
    assert m.status().current == []


def test_an_aiosqlite_url_runs_revisions_through_aiosqlite(tmp_path: Path, workdir: Path) -> None:
    from migmagic import Migrator

    ours, theirs = (_async(f"sqlite:///{tmp_path / name}") for name in ("ours.db", "theirs.db"))
    m = Migrator.init(ours)
    m.revision("seen", SQLITE_REVISION)
    m.upgrade("head")
    plain_async(theirs, workdir / "migrations", "upgrade", "head")
    assert seen(ours) == seen(theirs) == [("aiosqlite", "x.7 100%")]


def _notebook(cells: list[str], path: Path, *, failing: int) -> Path:
    """A notebook of ``cells``; cell ``failing`` is one that shows an error (tagged so the kernel goes on)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(source, metadata={"tags": ["raises-exception"]} if i == failing else {})
        for i, source in enumerate(cells)
    ]
    nbformat.write(nb, path)
    return path


@pytest.mark.servers
@pytest.mark.notebook
def test_asyncpg_in_a_kernel_whose_event_loop_is_running(asyncpg_urls: tuple[str, str], tmp_path: Path) -> None:
    from nbrun import execute, texts

    ours, theirs = asyncpg_urls
    work = tmp_path / "nb"
    work.mkdir()
    failing = "def upgrade():\n    op.execute(\"SELECT format('%I', 'x')\")\n    raise RuntimeError('boom in the revision')\n\n\ndef downgrade():\n    pass\n"
    notebook = _notebook(
        [
            "%load_ext migmagic",
            "%migrate init",
            '%%revision -m "seen"\n' + PG_REVISION,
            "%migrate upgrade head",
            "import asyncio\nprint(asyncio.get_running_loop() is not None)\nawait asyncio.sleep(0)",
            "%migrate status",
            '%%revision -m "fails"\n' + failing,
            "%migrate upgrade head",
            "%migrate history",
        ],
        work / "async.ipynb",
        failing=7,
    )
    nb = execute(notebook, work, env={"DATABASE_URL": ours})
    out = texts(nb)
    assert out[3].strip().startswith("Upgraded postgresql+asyncpg://") and "1 step" in out[3], out[3]
    assert out[4].strip() == "True"
    assert "postgresql+asyncpg://" in out[5] and "MissingGreenlet" not in "".join(out)
    assert "Revision" in out[7] and "RuntimeError: boom in the revision" in out[7] and "Nothing was applied" in out[7], out[7]
    # migmagic's error and the revision's own frames, as with a sync driver: nothing of the event loop or greenlets.
    assert "Traceback (revision code)" in out[7] and not any(w in out[7] for w in ("asyncio", "greenlet", "sqlalchemy", "migmagic/")), out[7]
    first = next((work / "migrations" / "versions").glob("*_seen.py")).name.split("_")[0]
    plain_async(theirs, work / "migrations", "upgrade", first)
    assert seen(ours) == seen(theirs) == [("asyncpg", 'public."Mixed Case"')]


HOLDS = '''def upgrade():
    op.create_table("held", sa.Column("what", sa.String(40)), sa.Column("value", sa.String(40)))
    bind = op.get_bind()
    locks = bind.exec_driver_sql(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted"
    ).scalar()
    timeout = bind.exec_driver_sql("SHOW lock_timeout").scalar()
    bind.execute(sa.text("INSERT INTO held VALUES ('advisory locks', :n), ('lock_timeout', :t)"), {"n": str(locks), "t": timeout})


def downgrade():
    op.drop_table("held")
'''
FAILS = '''def upgrade():
    op.create_table("never", sa.Column("id", sa.Integer))
    raise RuntimeError("the second revision fails")


def downgrade():
    pass
'''


@pytest.mark.servers
def test_over_asyncpg_the_lock_the_waits_and_all_or_nothing_hold(asyncpg_urls: tuple[str, str], workdir: Path) -> None:
    from migmagic import Migrator
    from migmagic.database import Database
    from migmagic.errors import LockTimeout, MigrationFailed

    url = asyncpg_urls[0]
    m = Migrator.init(url, lock_timeout=1)
    m.revision("held", HOLDS)
    # Someone else (a session with a sync driver, as another program would be) holds migmagic's lock.
    other = Database(url.replace("+asyncpg", "+psycopg"))
    try:
        with other.migrating():
            with pytest.raises(LockTimeout) as caught:
                m.upgrade("head")
            assert "is being migrated by someone else (PostgreSQL backend pid" in str(caught.value)
            assert dict(m.status().fields)["lock"].startswith("PostgreSQL backend pid")
    finally:
        other.dispose()
    assert m.status().current == []
    m.upgrade("head")  # free now: the revision runs on the connection that holds the lock, its waits bounded
    assert sorted(_rows(url, "SELECT what, value FROM held")) == [("advisory locks", "1"), ("lock_timeout", "1s")]
    # A table lock held by the user's own open transaction: waited for lock_timeout, then said in one line (asyncpg's SQLSTATE).
    m.revision("add note", 'def upgrade():\n    op.add_column("held", sa.Column("note", sa.Text))\n\n\ndef downgrade():\n    op.drop_column("held", "note")\n')
    import sqlalchemy as sa

    engine = sa.create_engine(url.replace("+asyncpg", "+psycopg"), poolclass=sa.pool.NullPool)
    with engine.connect() as user:
        user.execute(sa.text("SELECT * FROM held")).all()
        with pytest.raises(MigrationFailed) as waited:
            m.upgrade("head")
        assert "waited 1 s for a lock on table held, held by PostgreSQL backend pid" in str(waited.value), str(waited.value)
    m.upgrade("head")
    m.revision("never", FAILS)
    m.revision("fourth", 'def upgrade():\n    op.create_table("fourth", sa.Column("id", sa.Integer))\n\n\ndef downgrade():\n    op.drop_table("fourth")\n')
    before = m.status().current
    with pytest.raises(MigrationFailed, match="the second revision fails"):
        m.upgrade("head")
    assert m.status().current == before
    assert _rows(url, "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('never', 'fourth')") == [(0,)]


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    import sqlalchemy as sa

    engine = sa.create_engine(url.replace("+asyncpg", "+psycopg"), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


MYSQL_REVISION = '''def upgrade():
    op.create_table("seen", sa.Column("driver", sa.String(40)), sa.Column("answer", sa.String(80)))
    bind = op.get_bind()
    answer = bind.exec_driver_sql("SELECT CONCAT('100', '%%')").scalar()  # asyncmy formats it, as PyMySQL would
    bind.execute(sa.text("INSERT INTO seen VALUES (:d, :a)"), {"d": bind.dialect.driver, "a": answer})


def downgrade():
    op.drop_table("seen")
'''


@pytest.mark.servers
def test_an_asyncmy_url_runs_revisions_through_asyncmy(tmp_path: Path, workdir: Path) -> None:
    """MariaDB, where each revision commits on its own: the per-step commits and the journal go through asyncmy too."""
    from migmagic import Migrator

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = fresh_database("mariadb", tmp_path / "a"), fresh_database("mariadb", tmp_path / "b")
    try:
        ours, theirs = (next(g).replace("mysql+pymysql://", "mysql+asyncmy://") for g in (first, second))
        m = Migrator.init(ours)
        m.revision("seen", MYSQL_REVISION)
        m.revision("never", FAILS)
        with pytest.raises(Exception, match="the second revision fails"):
            m.upgrade("head")
        assert m.status().current == [m.scripts().by_message("seen").id]  # type: ignore[union-attr]
        plain_async(theirs, workdir / "migrations", "upgrade", m.scripts().by_message("seen").id)  # type: ignore[union-attr]
        assert seen(ours) == seen(theirs) == [("asyncmy", "100%")]
    finally:
        first.close()
        second.close()
