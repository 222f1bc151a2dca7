"""pytest-alembic's built-in tests on the folders migmagic writes run on their own test database.

The plugin hands its engine to env.py in ``config.attributes["connection"]``
(Alembic's recipe). The folder's env.py must migrate that engine's database and
no other: its tests go up and down every revision, which on the user's database
would delete the user's rows. Each test here sets up a folder and a user's
database as a notebook does, runs the plugin's tests as a pytest subprocess
(``conftest.py`` with ``alembic_config`` and ``alembic_engine``, as the plugin's
docs say), and checks that they passed, that the test database was the one used,
and that the user's database is byte for byte what it was.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import fresh_database
from nbrun import NOTEBOOKS, copy_to, execute

MODELS = '''import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    email: Mapped[str | None] = mapped_column(sa.String(120), index=True)
'''

DATA_REVISION = '''def upgrade():
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("name", sa.String))
    op.bulk_insert(users, [{"id": 1, "name": "admin"}])


def downgrade():
    op.execute("DELETE FROM users WHERE id = 1")
'''

CONFTEST = '''import os

import pytest
import sqlalchemy as sa
from pytest_alembic.config import Config


@pytest.fixture
def alembic_config():
    return Config(config_options={{"file": "{folder}/alembic.ini", "script_location": "{folder}"}})


@pytest.fixture
def alembic_engine():
    """The test database, emptied before each test (the built-in tests expect to start from nothing)."""
    url = os.environ["TEST_DATABASE_URL"]
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if os.path.exists(path):
            os.remove(path)
    engine = sa.create_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    yield engine
    engine.dispose()
'''

DEFAULT_TESTS = ["test_single_head_revision", "test_upgrade", "test_model_definitions_match_ddl", "test_up_down_consistency"]
EXPERIMENTAL_TESTS = ["test_downgrade_leaves_no_trace"]


def run_pytest_alembic(workdir: Path, folder: str, test_url: str, user_url: str, *, with_models: bool = True) -> subprocess.CompletedProcess[str]:
    """pytest-alembic's built-in tests on ``folder``, against ``test_url``, as a pytest subprocess.

    DATABASE_URL names the user's database, as it does in a shell where the user runs the
    ``alembic`` command: the plugin's engine must win over it.
    """
    suite = workdir / "ci_tests"
    suite.mkdir(exist_ok=True)
    (suite / "conftest.py").write_text(CONFTEST.format(folder=folder))
    defaults = [t for t in DEFAULT_TESTS if with_models or t != "test_model_definitions_match_ddl"]
    (suite / "test_migrations.py").write_text(
        f"from pytest_alembic.tests import {', '.join(defaults)}  # noqa: F401\n"
        f"from pytest_alembic.tests.experimental import {', '.join(EXPERIMENTAL_TESTS)}  # noqa: F401\n"
    )
    env = dict(os.environ, TEST_DATABASE_URL=test_url, DATABASE_URL=user_url, PYTHONPATH=str(workdir))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(suite), str(suite)],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600,
    )


def snapshot(url: str) -> dict[str, Any]:
    """Every table's rows (sorted, as text), the version table and migmagic's included; a SQLite file's bytes."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            out: dict[str, Any] = {}
            insp = sa.inspect(conn)
            names = [f'"{n}"' for n in insp.get_table_names()]
            if conn.dialect.name == "postgresql" and insp.has_schema("migmagic"):  # migmagic's own tables
                names += [f'migmagic."{n}"' for n in insp.get_table_names(schema="migmagic")]
            for name in sorted(names):
                rows = conn.execute(sa.text(f"SELECT * FROM {name}"))
                out[name] = sorted(tuple(str(v) for v in r) for r in rows)
    finally:
        engine.dispose()
    database = sa.engine.make_url(url).database
    if url.startswith("sqlite") and database:
        out["file bytes"] = Path(database).read_bytes()
    return out


def used(test_url: str) -> bool:
    """Whether pytest-alembic's runs reached the test database (they leave its version table there)."""
    import sqlalchemy as sa

    engine = sa.create_engine(test_url)
    try:
        return sa.inspect(engine).has_table("alembic_version")
    finally:
        engine.dispose()


def assert_passed(done: subprocess.CompletedProcess[str], count: int) -> None:
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert f"{count} passed" in done.stdout, done.stdout[-2000:]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_plugins_tests_run_on_their_own_database(kind: str, workdir: Path, tmp_path: Path) -> None:
    """The issue's notebook: init with models, an autogenerated and a data revision, upgrade, a row of the user's."""
    import sqlalchemy as sa

    from migmagic import Migrator

    (workdir / "models.py").write_text(MODELS)
    sys.path.insert(0, str(workdir))
    user_db = fresh_database(kind, tmp_path / "user")
    test_db = fresh_database(kind, tmp_path / "test")
    try:
        url = "sqlite:///app.db" if kind == "sqlite" else next(user_db)
        test_url = f"sqlite:///{tmp_path / 'ci.db'}" if kind == "sqlite" else next(test_db)
        m = Migrator.init(url, metadata="models:Base")
        m.autogenerate("create users")
        m.revision("first admin", DATA_REVISION)
        m.upgrade("head")
        m.close()
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO users (id, name) VALUES (2, 'a user of the app')"))
        engine.dispose()
        before = snapshot(url)
        assert before['"users"'] == [("1", "admin", "None"), ("2", "a user of the app", "None")]

        done = run_pytest_alembic(workdir, "migrations", test_url, url)

        assert_passed(done, 5)
        assert snapshot(url) == before, "pytest-alembic's tests changed the user's database"
        assert used(test_url)
    finally:
        sys.path.remove(str(workdir))
        sys.modules.pop("models", None)
        for gen in (user_db, test_db):
            next(gen, None)


TUTORIAL_MODELS = '''import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Venue(Base):
    __tablename__ = "venues"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80), unique=True)
    city: Mapped[str | None] = mapped_column(sa.String(40))


class Event(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200), index=True)
    kind: Mapped[str] = mapped_column(sa.String(20), server_default="talk")
    venue_id: Mapped[int | None] = mapped_column(sa.ForeignKey("venues.id"))
'''

# Each tutorial's folder and database, as the notebook names them; the models tutorial's final
# models, as a module a project would keep them in (its cells define them in the notebook).
TUTORIALS = {
    "getting-started": ("getting-started/migrations", "sqlite:///getting-started.db", None),
    "models-and-autogenerate": ("models-and-autogenerate/migrations", "sqlite:///models.db", TUTORIAL_MODELS),
    "rehearse-and-verify": ("rehearse-and-verify/migrations", "sqlite:///rehearse.db", None),
}


@pytest.mark.notebook
@pytest.mark.parametrize("tutorial", sorted(TUTORIALS))
def test_the_plugins_tests_pass_on_each_tutorials_folder(tutorial: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each tutorial run by a real kernel; then pytest-alembic on its folder, with SQLite and PostgreSQL test databases."""
    from migmagic import Migrator

    folder, url, models = TUTORIALS[tutorial]
    work = tmp_path / "work"
    execute(copy_to(NOTEBOOKS / f"{tutorial}.ipynb", work), work)
    monkeypatch.chdir(work)
    if models:  # as a project records its models for CI: %migrate init --metadata
        (work / "tutorial_models.py").write_text(models)
        monkeypatch.syspath_prepend(str(work))
        Migrator.init(url, folder, metadata="tutorial_models:Base").close()
    before = snapshot(url)
    assert before['"alembic_version"'], f"{url} is not the database {tutorial} migrated"
    for kind in ("sqlite", "postgresql"):
        for test_url in fresh_database(kind, tmp_path / kind):
            if kind == "sqlite":
                (tmp_path / kind).mkdir()
            done = run_pytest_alembic(work, folder, test_url, url, with_models=models is not None)
            assert_passed(done, 5 if models else 4)
            assert used(test_url), kind
    assert snapshot(url) == before


@pytest.mark.notebook
def test_the_plugins_tests_leave_a_postgresql_tutorial_database_alone(pg_url: str, tmp_path: Path) -> None:
    """The getting-started tutorial run on PostgreSQL (its MIGMAGIC_TUTORIAL_URL), then pytest-alembic on a PostgreSQL test database."""
    work = tmp_path / "work"
    execute(copy_to(NOTEBOOKS / "getting-started.ipynb", work), work, env={"MIGMAGIC_TUTORIAL_URL": pg_url})
    before = snapshot(pg_url)
    assert before['"events"'] and before['"alembic_version"'] and before['migmagic."migmagic_ledger"']
    for test_url in fresh_database("postgresql", tmp_path / "test"):
        done = run_pytest_alembic(work, "getting-started/migrations", test_url, pg_url, with_models=False)
        assert_passed(done, 4)
        assert used(test_url)
    assert snapshot(pg_url) == before
