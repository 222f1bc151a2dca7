"""Nothing migmagic leaves in a database makes a plain `alembic` command fail or half-apply.

Each test lets migmagic migrate a database, changes what production changes
(the account that ran migmagic is gone, migmagic's table dropped by hand, a
deploy role granted only the app's tables), then runs the `alembic` command on
the folder as a subprocess: it must succeed and apply the whole revision.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import EVENTS, table_revision, tables, version, without_migmagic

ALEMBIC = str(Path(sys.executable).parent / "alembic")


def alembic(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    """The plain `alembic` command: migmagic not importable where it runs (a deploy image without it)."""
    env = without_migmagic(dict(os.environ, DATABASE_URL=url), Path.cwd().parent)
    return subprocess.run([ALEMBIC, "-c", "migrations/alembic.ini", *args], env=env, capture_output=True, text=True)


def admin(url: str) -> Any:
    import sqlalchemy as sa

    return sa.create_engine(url, isolation_level="AUTOCOMMIT")


def with_user(url: str, user: str, password: str | None = None) -> str:
    import sqlalchemy as sa

    return sa.engine.make_url(url).set(username=user, password=password).render_as_string(hide_password=False)


def assert_applied_fully(done: subprocess.CompletedProcess[str], url: str, head: str, table: str) -> None:
    assert done.returncode == 0, done.stderr[-3000:]
    assert version(url) == {head}
    assert table in tables(url)


# Triggers as migmagic 0.1.0 put them on MariaDB's version table (watch.py before this change).
OLD_MARIADB_TRIGGERS = [
    f"CREATE TRIGGER migmagic_watch_{event} AFTER {event.upper()} ON alembic_version FOR EACH ROW "
    f"INSERT INTO migmagic_version_changes (old_version, new_version, changed_at) VALUES ({v}, UTC_TIMESTAMP(6))"
    for event, v in {"insert": "NULL, NEW.version_num", "update": "OLD.version_num, NEW.version_num", "delete": "OLD.version_num, NULL"}.items()
]
OLD_CHANGES_TABLE = (
    "CREATE TABLE IF NOT EXISTS migmagic_version_changes (id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY, "
    "old_version VARCHAR(255), new_version VARCHAR(255), changed_at VARCHAR(32) NOT NULL)"
)


@pytest.mark.parametrize("old_triggers", [False, True], ids=["migmagic-now", "triggers-of-an-older-migmagic"])
def test_mariadb_the_account_that_ran_migmagic_is_gone(old_triggers: bool, workdir: Path, mariadb_url: str) -> None:
    """The account that first ran migmagic is dropped; root's `alembic upgrade head` applies the next revision fully.

    With triggers an older migmagic left (DEFINER = that account), migmagic's next command drops them.
    """
    import sqlalchemy as sa

    from migmagic import Migrator

    user, password = f"mm_{uuid.uuid4().hex[:8]}", "x-Pw-9"
    database = sa.engine.make_url(mariadb_url).database
    root = admin(mariadb_url)
    with root.connect() as conn:
        conn.exec_driver_sql(f"CREATE USER '{user}'@'%%' IDENTIFIED BY '{password}'")
        conn.exec_driver_sql(f"GRANT ALL PRIVILEGES ON {database}.* TO '{user}'@'%%'")
    try:
        m = Migrator.init(with_user(mariadb_url, user, password))
        m.revision("create events table", EVENTS)
        m.upgrade("head")
        m.close()
        if old_triggers:
            user_engine = admin(with_user(mariadb_url, user, password))
            with user_engine.connect() as conn:
                conn.exec_driver_sql(OLD_CHANGES_TABLE)
                for statement in OLD_MARIADB_TRIGGERS:
                    conn.exec_driver_sql(statement)
            user_engine.dispose()
            m = Migrator.init(mariadb_url)  # root now, as after the account is gone
            m.revision("create speakers table", table_revision("speakers"))
            m.upgrade("head")
            m.close()
    finally:
        with root.connect() as conn:
            conn.exec_driver_sql(f"DROP USER IF EXISTS '{user}'@'%%'")
    head = Migrator(mariadb_url).revision("create rooms table", table_revision("rooms")).revision

    done = alembic("upgrade", "head", url=mariadb_url)

    assert_applied_fully(done, mariadb_url, head, "rooms")
    root.dispose()


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_the_changes_table_dropped_by_hand(kind: str, workdir: Path, tmp_path: Path) -> None:
    """migmagic_version_changes dropped by hand: `alembic upgrade head` still applies fully, and migmagic goes on."""
    from conftest import fresh_database

    from migmagic import Migrator, ledger, watch

    for url in fresh_database(kind, tmp_path):
        m = Migrator.init(url)
        m.revision("create events table", EVENTS)
        m.upgrade("head")
        engine = admin(url)
        with engine.connect() as conn:
            where = f"{ledger.SCHEMA}." if kind == "postgresql" else ""
            if kind == "mariadb":  # migmagic keeps none there now: the one an earlier version made
                conn.exec_driver_sql(OLD_CHANGES_TABLE)
            conn.exec_driver_sql(f"DROP TABLE {where}{watch.TABLE_NAME}")
        engine.dispose()
        head = m.revision("create rooms table", table_revision("rooms")).revision

        done = alembic("upgrade", "head", url=url)

        assert_applied_fully(done, url, head, "rooms")
        assert m.status().current == [head]
        m.revision("create speakers table", table_revision("speakers"))
        m.upgrade("head")
        assert "speakers" in tables(url)
        m.close()


def test_postgresql_a_deploy_role_without_migmagic_s_tables(workdir: Path, pg_url: str) -> None:
    """A deploy role granted the app's tables and alembic_version only (never migmagic_*): `alembic upgrade` applies fully."""
    from migmagic import Migrator

    m = Migrator.init(pg_url)
    m.revision("create events table", EVENTS)
    m.upgrade("head")
    head = m.revision("create rooms table", table_revision("rooms")).revision
    m.close()
    role = f"deploy_{uuid.uuid4().hex[:8]}"
    import sqlalchemy as sa

    database = sa.engine.make_url(pg_url).database
    root = admin(pg_url)
    with root.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        conn.exec_driver_sql(f"GRANT CONNECT ON DATABASE {database} TO {role}")
        conn.exec_driver_sql(f"GRANT USAGE, CREATE ON SCHEMA public TO {role}")
        conn.exec_driver_sql(f"GRANT ALL PRIVILEGES ON TABLE alembic_version, events TO {role}")
    try:
        deploy = with_user(pg_url, role)
        done = alembic("upgrade", "head", url=deploy)
        assert_applied_fully(done, pg_url, head, "rooms")
    finally:
        with root.connect() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")
        root.dispose()
