"""Every wait is bounded: a lock held by the user's own open transaction, and an interrupted migration."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ADD_VENUE, EVENTS, columns, tables, version

from migmagic import Migrator
from migmagic.errors import MigrationFailed


def _upgrade_in_a_thread(m: Migrator) -> BaseException | None:
    """``m.upgrade('head')``, or what it raised; a hang fails the test instead of hanging it."""
    caught: list[BaseException | None] = []

    def work() -> None:
        try:
            m.upgrade("head")
            caught.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            caught.append(exc)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "the upgrade hung on a lock held by another transaction"
    return caught[0]


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_a_lock_held_by_the_users_open_transaction_is_waited_for_lock_timeout_only(kind: str, workdir: Any, tmp_path: Path) -> None:
    import sqlalchemy as sa
    from conftest import fresh_database

    for url in fresh_database(kind, tmp_path):
        m = Migrator.init(url, lock_timeout=1)
        first = m.revision("create events table", EVENTS).revision
        m.upgrade("head")
        m.revision("add venue", ADD_VENUE)
        engine = sa.create_engine(url)
        try:
            with engine.connect() as other:  # the user's own cell, with a transaction left open
                other.execute(sa.text("SELECT * FROM events")).all()
                error = _upgrade_in_a_thread(m)
                assert isinstance(error, MigrationFailed), error
                said = str(error)
                assert "waited 1 s for a lock on table events, held by " in said, said
                holder = "PostgreSQL backend pid" if kind == "postgresql" else "MySQL connection"
                assert holder in said and "Finish or roll back the other transaction" in said
                assert version(url) == {first} and "venue" not in columns(url, "events")
                other.rollback()
            m.upgrade("head")  # once the other transaction is done, it goes through
            assert "venue" in columns(url, "events")
        finally:
            engine.dispose()
            m.close()


SLOW = '''def upgrade():
    import time

    op.create_table("slow", sa.Column("id", sa.Integer, primary_key=True))
    time.sleep(60)


def downgrade():
    op.drop_table("slow")
'''


@pytest.mark.notebook
def test_interrupting_a_migration_rolls_back_and_says_so_in_one_line(workdir: Path) -> None:
    from jupyter_client.manager import KernelManager

    db = workdir / "x.db"
    m = Migrator.init(f"sqlite:///{db}")
    m.revision("slow", SLOW)
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(workdir))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        kc.execute_interactive(f"%load_ext migmagic\n%migrate init sqlite:///{db}", timeout=60)
        msg_id = kc.execute("%migrate upgrade head")
        time.sleep(3)  # the revision is sleeping, its table created in the open transaction
        km.interrupt_kernel()
        errors: list[dict[str, Any]] = []
        while True:
            msg = kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "error":
                errors.append(msg["content"])
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert len(errors) == 1 and errors[0]["ename"] == "MigrationInterrupted", errors
    assert len(errors[0]["traceback"]) == 1, errors[0]["traceback"]
    line = " ".join(errors[0]["traceback"][0].split())  # one line, broken between words in a kernel
    assert "The upgrade was interrupted during revision" in line and "Nothing was applied: the database is still at base." in line
    url = f"sqlite:///{db}"
    assert tables(url) == set() and version(url) == set()


READ_UNDER_A_LOCK = """
import sys
from migmagic import Migrator
from migmagic.errors import MigmagicError
m = Migrator(sys.argv[1], lock_timeout=1)
try:
    getattr(m, sys.argv[2])()
    print("read")
except MigmagicError as exc:
    print(type(exc).__name__, str(exc))
"""


@pytest.mark.parametrize("command", ["status", "current", "heads", "history", "log"])
@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_reading_commands_wait_for_a_locked_version_table_lock_timeout_only(kind: str, command: str, workdir: Any, tmp_path: Path) -> None:
    """Issue 21 (a hostile user's attacks): status, current, heads, history and log waited without bound (a real
    process, killed after 60 s) for a lock another session held on the version table (an ALTER TABLE alembic_version
    in an open transaction, LOCK TABLES). They give up after lock_timeout in one line naming the table."""
    import subprocess
    import sys

    import sqlalchemy as sa
    from conftest import fresh_database

    for url in fresh_database(kind, tmp_path):
        m = Migrator.init(url)
        m.revision("create events", EVENTS, apply=True)
        m.close()
        engine = sa.create_engine(url)
        holder = engine.connect()
        try:
            holder.begin()
            holder.execute(sa.text("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE" if kind == "postgresql" else "LOCK TABLES alembic_version WRITE"))
            try:
                done = subprocess.run([sys.executable, "-c", READ_UNDER_A_LOCK, url, command], capture_output=True, text=True, timeout=60)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{command} waited without bound for the lock on alembic_version")
            said = done.stdout.strip()
            assert said.startswith("LockTimeout") and "alembic_version" in said and "Traceback" not in done.stderr, (said, done.stderr[-500:])
        finally:
            holder.rollback()
            holder.close()
            engine.dispose()
