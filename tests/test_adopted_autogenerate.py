"""Adopting a project does not pollute its own autogenerate: `alembic check` and `flask db check` stay clean.

A project with Alembic's generic template (`alembic init`) or Flask-Migrate's
(`flask db init`), its env.py as the template wrote it (the generic one told
its models, as Alembic's tutorial says), migrated once by the project's own
tool, then adopted by migmagic, which writes and applies a revision. The
project's own check must then report nothing: no ``remove_table`` for
migmagic's tables, no ``remove_index``.

PostgreSQL: with nothing changed in env.py (migmagic's tables are in a schema
of their own). SQLite and MariaDB, where migmagic's tables sit beside the
project's: after the user agreed to ``%migrate init --update-env``, which adds
a marked block of lines to env.py; without it the check fails, and migmagic's
status says so in one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import fresh_database

BIN = Path(sys.executable).parent

MODELS = '''import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80), index=True)
'''

FLASK_APP = '''import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["APP_DATABASE_URL"]
db = SQLAlchemy(app)
migrate = Migrate(app, db)


class User(db.Model):
    __tablename__ = "users"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), index=True)
'''

DATA = '''def upgrade():
    op.execute("INSERT INTO users (id, name) VALUES (1, 'admin')")


def downgrade():
    op.execute("DELETE FROM users WHERE id = 1")
'''


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=300)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def migmagic_migrates(url: str, *, consent: bool) -> Any:
    """What a notebook does after `%migrate init URL [--update-env]` in the project: a revision, written and applied."""
    from migmagic import Migrator

    m = Migrator.init(url)
    if consent:
        m.ensure_folder(update_env=True)
    m.revision("first admin", DATA, apply=True)
    status = m.status()
    m.close()
    return status


def expects_consent(kind: str) -> bool:
    return kind != "postgresql"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mariadb"])
def test_alembic_check_of_a_generic_template_project(kind: str, workdir: Path, tmp_path: Path) -> None:
    for url in fresh_database(kind, tmp_path):
        (workdir / "models.py").write_text(MODELS)
        ok(run(str(BIN / "alembic"), "init", "alembic"))
        env = workdir / "alembic" / "env.py"
        # The one line Alembic's tutorial has its users change: the models.
        env.write_text(env.read_text().replace("target_metadata = None", "from models import Base\ntarget_metadata = Base.metadata"))
        ini = workdir / "alembic.ini"
        ini.write_text(ini.read_text().replace("driver://user:pass@localhost/dbname", url.replace("%", "%%")))
        alembic = [str(BIN / "alembic")]
        ok(run(*alembic, "revision", "--autogenerate", "-m", "users"))
        ok(run(*alembic, "upgrade", "head"))
        before = env.read_text()

        if expects_consent(kind):
            status = migmagic_migrates(url, consent=False)
            assert any("alembic check would propose dropping migmagic's tables" in n and "--update-env" in n for n in status.notes), status.notes
            polluted = run(*alembic, "check")
            assert polluted.returncode != 0 and "migmagic_ledger" in polluted.stdout + polluted.stderr
            assert env.read_text() == before  # never without the user's consent
            migmagic_migrates(url, consent=True)
            assert "# --- Added by migmagic (%migrate init --update-env)" in env.read_text()
        else:
            status = migmagic_migrates(url, consent=False)
            assert status.notes == []
            assert env.read_text() == before

        out = ok(run(*alembic, "check"))
        assert "No new upgrade operations detected" in out
        ok(run(*alembic, "upgrade", "head"))  # and its own upgrade still runs with migmagic's lines in env.py


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mariadb"])
def test_flask_db_check_of_a_flask_migrate_project(kind: str, workdir: Path, tmp_path: Path) -> None:
    for url in fresh_database(kind, tmp_path):
        (workdir / "app.py").write_text(FLASK_APP)
        flask = [str(BIN / "flask"), "--app", "app", "db"]
        env = {"APP_DATABASE_URL": url, "PYTHONPATH": str(workdir)}
        ok(run(*flask, "init", env=env))
        ok(run(*flask, "migrate", "-m", "users", env=env))
        ok(run(*flask, "upgrade", env=env))
        env_py = workdir / "migrations" / "env.py"
        before = env_py.read_text()

        migmagic_migrates(url, consent=expects_consent(kind))
        if not expects_consent(kind):
            assert env_py.read_text() == before

        out = ok(run(*flask, "check", env=env))
        assert "No new upgrade operations detected" in out


def test_postgresql_an_earlier_versions_tables_move_to_migmagic_s_schema(workdir: Path, pg_url: str) -> None:
    """Tables an earlier migmagic made in the current schema: read there, kept there by a dry run, moved by the next upgrade."""
    import sqlalchemy as sa
    from conftest import EVENTS, table_revision

    from migmagic import Migrator

    m = Migrator.init(pg_url)
    first = m.revision("create events table", EVENTS).revision
    m.upgrade("head")
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:  # the layout of migmagic 0.1.0: everything in public
        conn.exec_driver_sql("ALTER TABLE migmagic.migmagic_ledger SET SCHEMA public")
        conn.exec_driver_sql("ALTER TABLE migmagic.migmagic_version_changes SET SCHEMA public")
        conn.exec_driver_sql("DROP SCHEMA migmagic CASCADE")
    m.close()
    m = Migrator(pg_url)
    assert m.status().outside == [] and m.status().applied == 1  # read where it is
    m.revision("create rooms table", table_revision("rooms"))
    m.dry_run("upgrade", "head")
    assert m.status().outside == []  # the rehearsal moved nothing for good
    m.upgrade("head")
    assert m.status().outside == [] and m.status().applied == 2
    insp = sa.inspect(engine)
    assert not {t for t in insp.get_table_names() if t.startswith("migmagic_")}
    assert set(insp.get_table_names(schema="migmagic")) == {"migmagic_ledger", "migmagic_version_changes"}
    assert [r for r in m.log()["revision"]][:1] == [first]
    m.close()
    engine.dispose()


def test_postgresql_a_role_that_may_not_create_a_schema_keeps_the_tables_beside_its_own(workdir: Path, pg_url: str) -> None:
    """No CREATE on the database: migmagic works as before, its tables in the current schema (and says nothing wrong)."""
    import uuid

    import sqlalchemy as sa
    from conftest import EVENTS, ledger_rows, own_schema, table_revision

    from migmagic import Migrator

    role = f"app_{uuid.uuid4().hex[:8]}"
    database = sa.engine.make_url(pg_url).database
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        conn.exec_driver_sql(f"REVOKE CREATE ON DATABASE {database} FROM PUBLIC")
        conn.exec_driver_sql(f"GRANT CONNECT ON DATABASE {database} TO {role}")
        conn.exec_driver_sql(f"GRANT USAGE, CREATE ON SCHEMA public TO {role}")
    try:
        url = sa.engine.make_url(pg_url).set(username=role).render_as_string(hide_password=False)
        m = Migrator.init(url)
        m.revision("create events table", EVENTS)
        m.upgrade("head")
        m.revision("create rooms table", table_revision("rooms"))
        m.upgrade("head")
        assert m.status().outside == [] and m.status().applied == 2
        m.close()
        assert own_schema(pg_url) == "migmagic" and "migmagic_ledger" in sa.inspect(admin).get_table_names()
        assert len(ledger_rows(pg_url, "revision")) == 2
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()
