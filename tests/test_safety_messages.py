"""Rough messages of issue 21: each says what is true, in one line."""

from __future__ import annotations

import configparser
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import table_revision

from migmagic import Migrator
from migmagic.errors import ConnectionFailed, MigrationFailed


def test_a_replayed_step_that_fails_shows_no_migmagic_module_as_revision_code(workdir: Path, sqlite_url: str) -> None:
    m = Migrator.init(sqlite_url)
    try:
        m.revision("t", table_revision("t"))
        m.upgrade("head")
        m.downgrade("base")
        m.upgrade("head")  # replayed from the recording of the first run
        m.downgrade("base")
        engine = sa.create_engine(sqlite_url)
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x int)")
        engine.dispose()
        try:
            m.upgrade("head")
        except MigrationFailed as exc:
            lines = exc._render_traceback_()
        else:
            raise AssertionError("the upgrade should fail: t exists")
        assert not any("/migmagic/" in line for line in lines), lines
        assert "table t already exists" in lines[0] and "Nothing was applied" in lines[0]
    finally:
        m.close()


def test_a_failure_raised_outside_revision_code_is_one_line_without_a_traceback() -> None:
    """A replayed step's statement is sent by migmagic, not by revision code: no "(revision code)" traceback of migmagic's module."""
    try:
        raise sa.exc.OperationalError("CREATE TABLE t (id INTEGER)", {}, Exception("table t already exists"))
    except sa.exc.OperationalError as exc:
        error = MigrationFailed("Revision abc ('t') failed during upgrade: table t already exists.", revision="abc", original=exc)
    lines = error._render_traceback_()
    assert len(lines) == 1 and "(revision code)" not in lines[0], lines


def test_a_sqlite_file_that_cannot_be_opened_names_the_file_not_a_server(workdir: Path) -> None:
    for path, percent in ((workdir / "no such" / "x.db", False), (workdir / "50%off" / "x.db", True)):
        m = Migrator(f"sqlite:///{path}")
        try:
            m.status()
        except ConnectionFailed as exc:
            said = "\n".join(exc._render_traceback_())
        else:
            raise AssertionError("no folder: it cannot open")
        finally:
            m.close()
        assert said.count("\n") == 0
        assert "server" not in said and "does not exist" in said and "SQLite file" in said
        assert ("%25" in said) is percent


def test_a_line_break_in_a_sqlite_path_is_not_written_into_alembic_ini(workdir: Path) -> None:
    folder = workdir / "a\nb"
    folder.mkdir()
    m = Migrator.init(f"sqlite:///{folder}/x.db")
    m.close()
    ini = workdir / "migrations" / "alembic.ini"
    parser = configparser.ConfigParser()
    parser.read(ini)  # still an ini file
    assert "the URL holds a line break" in ini.read_text()
    assert not parser.has_option("alembic", "sqlalchemy.url")


def test_a_read_only_folder_is_named_not_the_revisions_first_statement(workdir: Path) -> None:
    folder = workdir / "ro"
    folder.mkdir()
    m = Migrator.init(f"sqlite:///{folder}/x.db")
    try:
        m.revision("t", table_revision("t"))
        m.upgrade("head")
        m.revision("u", table_revision("u"))
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not available here")
        try:
            with pytest.raises(ConnectionFailed) as caught:
                m.upgrade("head")
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        said = "\n".join(caught.value._render_traceback_())
        assert said.count("\n") == 0 and f"its folder {folder} cannot be written" in said and "Nothing was run" in said, said
        assert "u" not in sa.inspect(sa.create_engine(f"sqlite:///{folder}/x.db")).get_table_names()
    finally:
        m.close()
