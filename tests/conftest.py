"""Fixtures named by state: a fresh database of each kind, a working folder, an IPython shell.

Each test that needs a server gets a database of its own (created here, dropped
after). Without the server the test is skipped with the reason, unless
``MIGMAGIC_REQUIRE_SERVERS=1`` (as in ``.ci/run``), which turns that into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

PG_ADMIN = os.environ.get("MIGMAGIC_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_ADMIN = os.environ.get("MIGMAGIC_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test")
REQUIRE_SERVERS = os.environ.get("MIGMAGIC_REQUIRE_SERVERS") == "1"
DATABASES = ["sqlite", "postgresql", "mariadb"]


def _unavailable(kind: str, exc: BaseException) -> None:
    reason = f"{kind} server unreachable ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})"
    if REQUIRE_SERVERS:
        pytest.fail(reason + "; MIGMAGIC_REQUIRE_SERVERS=1 makes this a failure", pytrace=False)
    pytest.skip(reason)


def _admin_engine(url: str) -> Any:
    import sqlalchemy as sa

    return sa.create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


_engines: dict[str, Any] = {}


def _admin(kind: str) -> Any:
    if kind not in _engines:
        _engines[kind] = _admin_engine(PG_ADMIN if kind == "postgresql" else MYSQL_ADMIN)
    return _engines[kind]


def fresh_database(kind: str, tmp_path: Any, name: str | None = None) -> Iterator[str]:
    """Yield the URL of a new, empty database of ``kind`` (named ``name``, else a new ``mm_…``); drop it afterwards."""
    import sqlalchemy as sa

    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    name = name or f"mm_{uuid.uuid4().hex[:12]}"
    engine = _admin(kind)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except Exception as exc:  # a server that is down
        _unavailable(kind, exc)
    base = sa.engine.make_url(PG_ADMIN if kind == "postgresql" else MYSQL_ADMIN)
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with engine.connect() as conn:
            if kind == "postgresql":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))


@pytest.fixture(autouse=True)
def replay_store(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Each test records and replays in a store of its own (``XDG_CACHE_HOME`` in its temp dir)."""
    from migmagic import replay

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    replay.forget()
    yield replay.store_dir()
    replay.forget()


@pytest.fixture(autouse=True)
def forget_modules_the_test_made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Modules imported from a test's own folders (its ``models.py``, imported by an adopted env.py that migmagic
    runs in-process to learn what it configures) are forgotten after it: the next test's ``models`` is its own."""
    import sys

    before = set(sys.modules)
    yield
    base = str(tmp_path_factory.getbasetemp())
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", None) or "").startswith(base):
            del sys.modules[name]


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A fresh empty database URL: SQLite, PostgreSQL and MariaDB in turn."""
    yield from fresh_database(request.param, tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def pg_url(tmp_path: Any) -> Iterator[str]:
    yield from fresh_database("postgresql", tmp_path)


@pytest.fixture
def mariadb_url(tmp_path: Any) -> Iterator[str]:
    yield from fresh_database("mariadb", tmp_path)


@pytest.fixture
def workdir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An empty working directory (the notebook's folder), with no DATABASE_URL set."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return work


@pytest.fixture
def migrator(workdir: Any, db_url: str) -> Iterator[Any]:
    """A Migrator bound to a fresh database and ``workdir/migrations``."""
    from migmagic import Migrator

    m = Migrator.init(db_url)
    yield m
    m.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def rollback_migrator(request: pytest.FixtureRequest, tmp_path: Any, workdir: Any) -> Iterator[tuple[Any, str]]:
    """A Migrator on a fresh database that rolls DDL back (SQLite, PostgreSQL), and its URL."""
    from migmagic import Migrator

    for url in fresh_database(request.param, tmp_path):
        m = Migrator.init(url)
        yield m, url
        m.close()


# ---------------------------------------------------------------------- IPython


@dataclass
class CellRun:
    """What running one cell gave: its value, the text it printed, and the error."""

    result: Any
    output: str
    error: BaseException | None

    @property
    def failed(self) -> bool:
        return self.error is not None


class Shell:
    """An in-process IPython shell with migmagic loaded; ``run(src)`` runs one cell."""

    def __init__(self, ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
        self.ip = ip
        self.capsys = capsys

    def run(self, src: str) -> CellRun:
        self.capsys.readouterr()
        res = self.ip.run_cell(src, store_history=False)
        out = self.capsys.readouterr()
        return CellRun(res.result, out.out + out.err, res.error_in_exec or res.error_before_exec)

    def ok(self, src: str) -> Any:
        run = self.run(src)
        assert not run.failed, f"cell failed: {run.output}"
        return run.result

    @property
    def ns(self) -> dict[str, Any]:
        return self.ip.user_ns


@pytest.fixture
def ip_empty(workdir: Any, capsys: pytest.CaptureFixture[str]) -> Iterator[Shell]:
    """An IPython shell with migmagic freshly loaded, in an empty working directory."""
    from IPython.testing.globalipapp import get_ipython, start_ipython

    ip = start_ipython() or get_ipython()
    ip.run_line_magic("reset", "-f")
    ip.config.pop("Migrate", None)  # %config Migrate.* from an earlier test
    import migmagic.magics

    migmagic.magics.load(ip)
    yield Shell(ip, capsys)
    migmagic.magics.unload(ip)


@pytest.fixture
def ip_with_db(ip_empty: Shell, db_url: str) -> Shell:
    """``ip_empty`` after ``%migrate init`` on a fresh database of each kind."""
    ip_empty.ip.user_ns["TEST_DB_URL"] = db_url
    ip_empty.ok(f"%migrate init {db_url}")
    return ip_empty


EVENTS = '''def upgrade():
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("title", sa.String(100), nullable=False),
        sa.Column("event_type", sa.String(50), nullable=False),
    )


def downgrade():
    op.drop_table("events")
'''

ADD_VENUE = '''def upgrade():
    op.add_column("events", sa.Column("venue", sa.String(100)))


def downgrade():
    with op.batch_alter_table("events") as batch:
        batch.drop_column("venue")
'''


def table_revision(name: str) -> str:
    """A revision body that creates table ``name`` (one ``id`` column) and drops it on the way down."""
    return (
        f'def upgrade():\n    op.create_table("{name}", sa.Column("id", sa.Integer, primary_key=True))\n\n\n'
        f'def downgrade():\n    op.drop_table("{name}")\n'
    )


def tables(url: str) -> set[str]:
    """The tables the database holds (without Alembic's and migmagic's own)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        names = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    from migmagic.schema import BOOKKEEPING

    return names - set(BOOKKEEPING)


def own_schema(url: str) -> str | None:
    """The schema migmagic's own tables are in (PostgreSQL: ``migmagic``; elsewhere the database's own, None)."""
    return "migmagic" if url.startswith("postgresql") else None


def columns(url: str, table: str, schema: str | None = None) -> list[str]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        return [c["name"] for c in sa.inspect(engine).get_columns(table, schema=schema)]
    finally:
        engine.dispose()


def ledger_rows(url: str, *cols: str) -> list[tuple[Any, ...]]:
    """``cols`` of every row of migmagic's ledger, oldest first (none without a ledger)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            from migmagic import ledger

            where = ledger.schema(conn)  # PostgreSQL: migmagic's own schema
            if not sa.inspect(conn).has_table("migmagic_ledger", schema=where):
                return []
            name = f"{where}.migmagic_ledger" if where else "migmagic_ledger"
            return [tuple(r) for r in conn.execute(sa.text(f"SELECT {', '.join(cols)} FROM {name} ORDER BY id"))]
    finally:
        engine.dispose()


def version(url: str) -> set[str]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return set()
            return {r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))}
    finally:
        engine.dispose()


def without_migmagic(env: dict[str, str], base: Any) -> dict[str, str]:
    """``env`` for a subprocess where ``import migmagic`` fails, as on a server migmagic is not installed on.

    The folder's env.py then runs plain Alembic: what the tests of plain Alembic's behaviour need.
    """
    from pathlib import Path

    shadow = Path(base) / "no-migmagic"
    (shadow / "migmagic").mkdir(parents=True, exist_ok=True)
    (shadow / "migmagic" / "__init__.py").write_text('raise ImportError("migmagic is not installed here")\n')
    return {**env, "PYTHONPATH": os.pathsep.join([str(shadow), *filter(None, [env.get("PYTHONPATH")])])}
