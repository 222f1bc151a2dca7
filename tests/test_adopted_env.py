"""What an adopted project's own env.py passes to context.configure, migmagic applies (issue 25, item 5).

The folder's env.py is Alembic's generic template (its own engine from ``sqlalchemy.url``)
with models whose naming convention names the constraints its revisions leave unnamed
(``batch_op.create_unique_constraint(None, ...)``) and later drop by those names, and a
version table of its own (on PostgreSQL in a schema of its own). Plain Alembic is the
``alembic`` command with that env.py, run as a subprocess on another fresh database:
after ``upgrade head`` and after ``downgrade base`` both databases must hold the same.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import fresh_database
from snapshot import snapshot

ALEMBIC = str(Path(sys.executable).parent / "alembic")

ENV = '''"""A project's own env.py: Alembic's generic template, its models' naming convention, its version table."""
from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

target_metadata = sa.MetaData(naming_convention={
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
})


def run_migrations_online() -> None:
    connectable = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table="project_version",
            version_table_schema="meta" if connection.dialect.name == "postgresql" else None,
            transaction_per_migration=True,
            compare_type=True,
            compare_server_default=True,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
'''

INI = """[alembic]
script_location = {folder}
sqlalchemy.url = {url}

[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
formatter = generic

[formatter_generic]
format = %(levelname)s %(message)s
"""

FIRST = '''"""parents and children, their constraints unnamed

Revision ID: a1
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "a1"
down_revision = None


def upgrade():
    op.create_table("parent", sa.Column("id", sa.Integer, primary_key=True))
    op.create_table(
        "child",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("parent_id", sa.Integer),
        sa.Column("code", sa.String(20)),
    )
    with op.batch_alter_table("child") as batch_op:
        batch_op.create_unique_constraint(None, ["code"])
        batch_op.create_foreign_key(None, "parent", ["parent_id"], ["id"])


def downgrade():
    op.drop_table("child")
    op.drop_table("parent")
'''

SECOND = '''"""drop them by the names the naming convention gave them

Revision ID: b2
Revises: a1
"""
from alembic import op

revision = "b2"
down_revision = "a1"


def upgrade():
    with op.batch_alter_table("child") as batch_op:
        batch_op.drop_constraint("uq_child_code", type_="unique")
        batch_op.drop_constraint("fk_child_parent_id_parent", type_="foreignkey")


def downgrade():
    with op.batch_alter_table("child") as batch_op:
        batch_op.create_unique_constraint(None, ["code"])
        batch_op.create_foreign_key(None, "parent", ["parent_id"], ["id"])
'''


def _folder(where: Path, url: str, env: str = ENV) -> Path:
    """The project's folder (env.py, alembic.ini naming ``url``, two revisions) under ``where``."""
    folder = where / "migrations"
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text(env)
    (folder / "alembic.ini").write_text(INI.format(folder=folder, url=url.replace("%", "%%")))
    (folder / "script.py.mako").write_text("")
    (folder / "versions" / "a1_first.py").write_text(FIRST)
    (folder / "versions" / "b2_second.py").write_text(SECOND)
    return folder


def _meta_schema(url: str) -> None:
    """PostgreSQL: the schema env.py puts the version table in, made beforehand (as its DBA would)."""
    import sqlalchemy as sa

    if not url.startswith("postgresql"):
        return
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA meta"))
    engine.dispose()


def _held(url: str) -> dict[str, Any]:
    """The project's tables (constraint names included) and its version table's rows; migmagic's own left out."""
    import sqlalchemy as sa

    tables = {t: v for t, v in snapshot(url).items() if not t.startswith("migmagic_")}
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            where = "meta.project_version" if conn.dialect.name == "postgresql" else "project_version"
            version = sorted(r[0] for r in conn.execute(sa.text(f"SELECT version_num FROM {where}")))
    finally:
        engine.dispose()
    return {"tables": tables, "version": version}


def _alembic(folder: Path, *args: str) -> None:
    done = subprocess.run([ALEMBIC, "-c", str(folder / "alembic.ini"), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_an_adopted_env_py_naming_convention_and_version_table_are_applied(kind: str, tmp_path: Path, workdir: Path) -> None:
    from migmagic import Migrator

    (tmp_path / "plain").mkdir()
    (tmp_path / "mm").mkdir()
    plain_db, mm_db = fresh_database(kind, tmp_path / "plain"), fresh_database(kind, tmp_path / "mm")
    plain_url, mm_url = next(plain_db), next(mm_db)
    try:
        for url in (plain_url, mm_url):
            _meta_schema(url)
        plain = _folder(tmp_path / "plain", plain_url)
        ours = _folder(tmp_path / "mm", mm_url)

        _alembic(plain, "upgrade", "head")
        m = Migrator.init(mm_url, ours)
        m.upgrade("head")
        at_head = _held(plain_url)
        assert at_head["version"] == ["b2"]
        assert _held(mm_url) == at_head
        assert m.current().ids == ["b2"]  # read from the version table env.py names

        _alembic(plain, "downgrade", "a1")
        m.downgrade("a1", accept_data_loss=True)
        at_a1 = _held(plain_url)
        assert at_a1["tables"]["child"]["uniques"] == [("uq_child_code", ("code",))]
        assert _held(mm_url) == at_a1

        _alembic(plain, "downgrade", "base")
        m.downgrade("base", accept_data_loss=True)
        assert _held(mm_url) == _held(plain_url)
        m.close()
    finally:
        for gen in (plain_db, mm_db):
            next(gen, None)


def test_adoption_says_what_env_py_configures_that_migmagic_does_not_apply(tmp_path: Path, workdir: Path) -> None:
    from migmagic import Migrator

    url = f"sqlite:///{tmp_path / 'app.db'}"
    m = Migrator.init(url, _folder(workdir, url))
    notes = m.status().notes
    env = [n for n in notes if "context.configure" in n]
    assert any(n.startswith("migrations/env.py passes transaction_per_migration=True") and "one transaction" in n for n in env), notes
    assert any("compare_server_default=True" in n and "autogenerate" in n for n in env), notes
    assert not any("compare_type" in n for n in env), notes  # True is Alembic's default: nothing to say
    assert not any("target_metadata" in n or "version_table" in n for n in env), notes  # applied: nothing to say
    assert "migrations/env.py names the version table project_version: migmagic runs, reads and writes it as Alembic does" in " ".join(notes)
    m.close()


def test_an_env_py_that_cannot_run_is_said_in_one_line_and_the_rest_works(tmp_path: Path, workdir: Path) -> None:
    from migmagic import Migrator

    url = f"sqlite:///{tmp_path / 'app.db'}"
    env = "import the_project_that_is_not_installed_here\n" + ENV
    m = Migrator.init(url, _folder(workdir, url, env))
    notes = [n for n in m.status().notes if "context.configure" in n]
    assert len(notes) == 1 and "\n" not in notes[0], notes
    assert "could not be run" in notes[0] and "ModuleNotFoundError: No module named 'the_project_that_is_not_installed_here'" in notes[0]
    # As before the fix: the revisions run without what env.py configures (here, that fails as it did).
    with pytest.raises(Exception, match="Nothing was applied|must have a name"):
        m.upgrade("head")
    m.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_dry_run_and_sql_treat_env_py_version_table_as_the_version_table(kind: str, tmp_path: Path, workdir: Path) -> None:
    from migmagic import Migrator

    db = fresh_database(kind, tmp_path)
    url = next(db)
    try:
        _meta_schema(url)
        m = Migrator.init(url, _folder(workdir, url))
        script = m.sql("upgrade", "head")
        created = "CREATE TABLE meta.project_version" if kind == "postgresql" else "CREATE TABLE project_version"
        assert created in script.sql and "alembic_version" not in script.sql, script.sql
        assert "CONSTRAINT uq_child_code UNIQUE (code)" in script.sql  # the naming convention, as the real run applies it
        rehearsal = m.dry_run("upgrade", "head")
        assert sorted(rehearsal.schema_changes["table"]) == ["child", "parent"]  # the version table is bookkeeping, not the project's schema
        kinds = {s["statement"].split()[0]: s["kind"] for s in rehearsal.statements.to_dict("records") if "project_version" in s["statement"]}
        assert kinds and set(kinds.values()) == {"version table"}, kinds
        m.close()
    finally:
        next(db, None)


COOKBOOK = '''"""A project's own env.py in Alembic's cookbook style: a connection handed in is used; set-up and hooks of its own."""
import pathlib

from alembic import context

pathlib.Path(__file__).with_name("runs.txt").open("a").write("ran\\n")  # how many times env.py ran


def on_version_apply(ctx, step, heads, run_args):
    pass


connection = context.config.attributes["connection"]
connection.exec_driver_sql("PRAGMA foreign_keys=ON")
context.configure(connection=connection, on_version_apply=on_version_apply, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
'''


def test_env_py_connection_set_up_and_hooks_are_said_and_it_runs_once_per_checksum(tmp_path: Path, workdir: Path) -> None:
    from migmagic import Migrator

    url = f"sqlite:///{tmp_path / 'app.db'}"
    folder = _folder(workdir, url, COOKBOOK)
    m = Migrator.init(url, folder)
    notes = m.status().notes
    assert "migrations/env.py runs 'PRAGMA foreign_keys=ON' on the connection before context.configure: migmagic does not." in notes
    assert "migrations/env.py passes on_version_apply=on_version_apply to context.configure: migmagic does not call it (its ledger records each step)." in notes
    assert not any("transaction_per_migration" in n for n in notes)  # False is Alembic's default: nothing to say
    m.history()
    m.status()
    assert (folder / "runs.txt").read_text() == "ran\n"  # learned once, not per command
    (folder / "env.py").write_text(COOKBOOK.replace("PRAGMA foreign_keys=ON", "PRAGMA recursive_triggers=ON"))
    assert "migrations/env.py runs 'PRAGMA recursive_triggers=ON' on the connection before context.configure: migmagic does not." in m.status().notes
    assert (folder / "runs.txt").read_text() == "ran\nran\n"  # edited: learned again
    m.close()


def test_an_edited_env_py_of_migmagics_own_does_not_list_its_template_settings(workdir: Path, sqlite_url: str) -> None:
    """The env.py `%migrate init` wrote, edited by hand, is learned like a project's own; its template's own
    include_name (leaving migmagic's tables out) and render_as_batch were said as settings migmagic does not apply."""
    from migmagic import Migrator

    m = Migrator.init(sqlite_url)
    env = m.folder / "env.py"
    env.write_text(env.read_text() + "\n# our team's note\n")
    m.close()
    again = Migrator(sqlite_url, m.folder)
    try:
        shown = repr(again.status())
        assert "passes include_name" not in shown and "passes render_as_batch" not in shown, shown
    finally:
        again.close()
