"""Every wait of a rehearsal is bounded by lock_timeout and ends in one line naming the table and the holder (issue 21, items 5 and 14)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import ADD_VENUE, EVENTS, columns, fresh_database, version

from migmagic import Migrator
from migmagic.errors import LockTimeout, MigmagicError


def _in_a_thread(work: Any) -> Any:
    """``work()``'s result or what it raised; a hang fails the test instead of hanging it."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(work())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "it hung on a lock held by another transaction"
    return out[0]


def _one_line(error: BaseException) -> str:
    lines = error._render_traceback_()  # type: ignore[attr-defined]
    assert len(lines) == 1, lines
    return str(lines[0])


@pytest.mark.parametrize("held", ["uncommitted write", "table lock"])
def test_mariadb_dry_run_gives_up_after_lock_timeout_naming_table_and_holder(workdir: Path, tmp_path: Path, held: str) -> None:
    for url in fresh_database("mariadb", tmp_path):
        m = Migrator.init(url, lock_timeout=1)
        engine = sa.create_engine(url)
        try:
            first = m.revision("create events", EVENTS).revision
            m.upgrade("head")
            with engine.begin() as conn:
                conn.execute(sa.text("INSERT INTO events (title, event_type) VALUES ('PyData', 'talk')"))
            m.revision("add venue", ADD_VENUE)
            with engine.connect() as other:  # the user's own cell
                if held == "uncommitted write":
                    other.execute(sa.text("UPDATE events SET title = 'changed'"))
                else:
                    other.exec_driver_sql("LOCK TABLES events WRITE")
                error = _in_a_thread(lambda m=m: m.dry_run("upgrade", "head"))
                other.rollback()
                if held == "table lock":
                    other.exec_driver_sql("UNLOCK TABLES")
            assert isinstance(error, LockTimeout), repr(error)
            said = _one_line(error)
            assert "waited 1 s for a lock on table events, held by MySQL connection" in said, said
            assert "The real database was not changed" in said
            assert version(url) == {first} and "venue" not in columns(url, "events")
        finally:
            engine.dispose()
            m.close()


def test_sqlite_the_users_own_uncommitted_write_is_named_as_such(workdir: Path, sqlite_url: str) -> None:
    m = Migrator.init(sqlite_url, lock_timeout=0.2)
    try:
        m.revision("create events", EVENTS)
        m.upgrade("head")
        m.revision("add venue", ADD_VENUE)
        other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            other.execute("BEGIN")
            other.execute("INSERT INTO events (title, event_type) VALUES ('mine', 'x')")  # not committed
            with pytest.raises(MigmagicError) as caught:
                m.upgrade("head")
        finally:
            other.execute("ROLLBACK")
            other.close()
        said = _one_line(caught.value)
        assert "being migrated by someone else" not in said, said
        assert "uncommitted write on another connection" in said and "Commit or roll back" in said, said
        m.upgrade("head")
        assert "venue" in columns(sqlite_url, "events")
    finally:
        m.close()


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_a_lock_wait_failure_is_a_few_words_not_a_traceback(kind: str, workdir: Path, tmp_path: Path) -> None:
    for url in fresh_database(kind, tmp_path):
        m = Migrator.init(url, lock_timeout=1)
        engine = sa.create_engine(url)
        try:
            m.revision("create events", EVENTS)
            m.upgrade("head")
            m.revision("add venue", ADD_VENUE)
            with engine.connect() as other:
                other.execute(sa.text("SELECT * FROM events")).all()  # a transaction left open in another cell
                error = _in_a_thread(lambda m=m: m.upgrade("head"))
                other.rollback()
            said = _one_line(error)
            assert "waited 1 s for a lock on table events, held by " in said  # what waited, on what, held by whom
            assert "the database is still at" in said or "the version table is at" in said  # what was kept
            assert "Finish or roll back the other transaction" in said  # the way forward
            assert "Traceback" not in said and "sqlalche.me" not in said
        finally:
            engine.dispose()
            m.close()


def test_sqlite_dry_run_copy_gives_up_after_lock_timeout(workdir: Path, sqlite_url: str) -> None:
    m = Migrator.init(sqlite_url, lock_timeout=0.3)
    try:
        m.revision("create events", EVENTS)
        m.upgrade("head")
        m.revision("add venue", ADD_VENUE)
        other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False)
        try:
            other.execute("BEGIN EXCLUSIVE")  # another connection writing: no reader gets in
            error = _in_a_thread(lambda: m.dry_run("upgrade", "head"))
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert isinstance(error, LockTimeout), repr(error)
        said = _one_line(error)
        assert "uncommitted write on another connection" in said and "copying it for the dry run" in said, said
    finally:
        m.close()


@pytest.mark.servers
def test_postgresql_copy_dry_run_gives_up_after_lock_timeout_when_the_clone_waits(workdir: Path, tmp_path: Path) -> None:
    """``--copy``'s ``CREATE DATABASE … TEMPLATE`` waits for a lock on the real database (another session's
    uncommitted ``COMMENT ON DATABASE``, from the maintenance database): it gives up after lock_timeout, in one line,
    and the real database is untouched."""
    for url in fresh_database("postgresql", tmp_path):
        m = Migrator.init(url, lock_timeout=1)
        real = sa.engine.make_url(url).database
        elsewhere = sa.create_engine(sa.engine.make_url(url).set(database="postgres"))
        try:
            m.revision("create events", EVENTS)
            m.upgrade("head")
            m.revision("add venue", ADD_VENUE)
            with elsewhere.connect() as other:
                other.exec_driver_sql(f'COMMENT ON DATABASE "{real}" IS \'being documented\'')  # left uncommitted
                error = _in_a_thread(lambda m=m: m.dry_run("upgrade", "head", copy=True))
                other.rollback()
            assert isinstance(error, MigmagicError), repr(error)
            said = _one_line(error)
            assert "waited 1 s" in said and "creating the clone" in said, said
            assert "Traceback" not in said and "sqlalche.me" not in said
            assert columns(url, "events") == ["id", "title", "event_type"] and len(version(url)) == 1  # the real database as it was
        finally:
            elsewhere.dispose()
            m.close()
