"""What a new user trips on (issue 14): messages that read as sentences and name the fix."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import EVENTS, MYSQL_ADMIN, PG_ADMIN, Shell, _admin

from migmagic.errors import ConnectionFailed, MigrationFailed, RevisionNotFound, UsageError


def one_line(run: Any) -> str:
    assert run.failed, run.output
    lines = run.error._render_traceback_()
    return lines[0]


@pytest.fixture
def ip_sqlite(ip_empty: Shell, sqlite_url: str) -> Shell:
    ip_empty.ok(f"%migrate init {sqlite_url}")
    return ip_empty


# ---------------------------------------------------------------- 6. close matches


def test_unknown_command_suggests_the_close_one(ip_sqlite: Shell) -> None:
    run = ip_sqlite.run("%migrate upgrad")
    assert isinstance(run.error, UsageError)
    assert one_line(run) == "UsageError: Unknown command 'upgrad'. Did you mean upgrade?"


def test_unknown_command_without_a_close_one_lists_the_commands(ip_sqlite: Shell) -> None:
    line = one_line(ip_sqlite.run("%migrate frobnicate"))
    assert line.startswith("UsageError: Unknown command 'frobnicate'. Commands: init, status,")


def test_unknown_option_suggests_the_close_one(ip_sqlite: Shell) -> None:
    run = ip_sqlite.run("%migrate upgrade head --sqll")
    assert isinstance(run.error, UsageError)
    assert one_line(run) == "UsageError: %migrate upgrade: unknown option '--sqll'. Did you mean --sql?"


def test_unknown_option_of_the_revision_cell_suggests_the_close_one(ip_sqlite: Shell) -> None:
    line = one_line(ip_sqlite.run('%%revision -m "x" --aply\ndef upgrade():\n    pass\n'))
    assert line == "UsageError: %%revision: unknown option '--aply'. Did you mean --apply?"


# ---------------------------------------------------------------- 8. sentences


def test_a_database_error_and_the_hint_are_two_sentences(ip_sqlite: Shell) -> None:
    body = 'def upgrade():\n    op.execute("SELECT * FROM no_such_table")\n\n\ndef downgrade():\n    pass\n'
    run = ip_sqlite.run(f'%%revision -m "broken" --apply\n{body}')
    assert isinstance(run.error, MigrationFailed)
    assert "no such table: no_such_table. Nothing was applied" in one_line(run)


def test_a_hint_after_a_full_stop_gets_no_second_one() -> None:
    assert str(UsageError("It broke.", hint="Fix it.")) == "It broke. Fix it."
    assert str(UsageError("Which one?", hint="Name it.")) == "Which one? Name it."
    assert str(UsageError("no such table: x", hint="Nothing was applied.")) == "no such table: x. Nothing was applied."


def test_an_unknown_revision_names_the_heads_without_a_question_mark(ip_sqlite: Shell) -> None:
    ip_sqlite.ok(f'%%revision -m "create events table"\n{EVENTS}')
    head = ip_sqlite.ok("%migrate heads")["revision"][0]
    run = ip_sqlite.run("%migrate show zzzz")
    assert isinstance(run.error, RevisionNotFound)
    assert one_line(run).endswith(f"Heads are: {head}.")


def test_an_ambiguous_prefix_for_upgrade_names_the_candidates(ip_sqlite: Shell) -> None:
    ip_sqlite.ok('%migrate revision -m "one" --rev-id 6aaa')
    ip_sqlite.ok('%migrate revision -m "two" --rev-id 6bbb')
    for command in ("upgrade 6", "show 6"):
        run = ip_sqlite.run(f"%migrate {command}")
        assert isinstance(run.error, RevisionNotFound), run.output
        line = one_line(run)
        assert "'6' is ambiguous" in line and "6aaa" in line and "6bbb" in line, line
    assert run.error.candidates == ["6bbb", "6aaa"] or sorted(run.error.candidates) == ["6aaa", "6bbb"]


# ---------------------------------------------------------------- 8. connection failures, said precisely


def _url(admin: str, **parts: Any) -> str:
    import sqlalchemy as sa

    return sa.engine.make_url(admin).set(**parts).render_as_string(hide_password=False)


def _connect_error(ip: Shell, url: str) -> str:
    ip.ns["url"] = url
    ip.ok("%config Migrate.url = url")  # not on the line: a password typed there earns a warning
    run = ip.run("%migrate init")
    assert isinstance(run.error, ConnectionFailed), run.output
    line = one_line(run)
    assert "(10" not in line and "(20" not in line, line  # never the driver's (code, "text") tuple
    return line


def test_mariadb_wrong_password_says_authentication_failed(ip_empty: Shell) -> None:
    import sqlalchemy as sa

    user = f"mm_{uuid.uuid4().hex[:8]}"
    try:
        with _admin("mariadb").connect() as conn:
            conn.execute(sa.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'right-pw'"))
    except Exception as exc:  # pragma: no cover
        pytest.skip(f"MariaDB unreachable: {exc}")
    try:
        line = _connect_error(ip_empty, _url(MYSQL_ADMIN, username=user, password="wrong-pw-9"))
    finally:
        with _admin("mariadb").connect() as conn:
            conn.execute(sa.text(f"DROP USER '{user}'@'%'"))
    assert "authentication failed" in line and "wrong-pw-9" not in line and "right-pw" not in line, line
    assert f"mysql+pymysql://{user}:***@127.0.0.1:3306/test" in line
    assert "Check that the server runs" not in line


@pytest.mark.parametrize("admin", [PG_ADMIN, MYSQL_ADMIN], ids=["postgresql", "mariadb"])
def test_a_missing_database_says_it_does_not_exist(ip_empty: Shell, admin: str) -> None:
    line = _connect_error(ip_empty, _url(admin, database="mm_no_such_db"))
    assert "database 'mm_no_such_db' does not exist" in line, line
    assert "CREATE DATABASE mm_no_such_db" in line


@pytest.mark.parametrize("admin", [PG_ADMIN, MYSQL_ADMIN], ids=["postgresql", "mariadb"])
def test_an_unused_port_says_the_server_is_unreachable(ip_empty: Shell, admin: str) -> None:
    line = _connect_error(ip_empty, _url(admin, port=1, password="s3cret-pw"))
    assert "the server is unreachable: nothing answers at 127.0.0.1:1 (connection refused)." in line, line
    assert "s3cret-pw" not in line


# ---------------------------------------------------------------- 9. line numbers of the cell


def test_syntax_error_line_counts_the_magic_line_as_line_1(ip_sqlite: Shell) -> None:
    cell = '%%revision -m "broken"\ndef upgrade():\n    op.create_table(\n        "x",\n    sa.Column("id", sa.Integer)\n'
    # the unclosed "(" is on line 3 of the cell as the notebook numbers it
    line = one_line(ip_sqlite.run(cell))
    assert line.startswith("RevisionCellError: Line 3 of the cell: '(' was never closed."), line
    cell = '%%revision -m "broken"\ndef upgrade():\n    pass\n\ndef downgrade(:\n    pass\n'
    line = one_line(ip_sqlite.run(cell))
    assert line.startswith("RevisionCellError: Line 5 of the cell:"), line
    assert ip_sqlite.run(cell).error.line == 5


def test_python_api_counts_lines_of_the_body() -> None:
    from migmagic import revisionfile
    from migmagic.errors import RevisionCellError

    with pytest.raises(RevisionCellError) as info:
        revisionfile.check_body("def upgrade(:\n    pass\n")
    assert info.value.line == 1 and str(info.value).startswith("Line 1 of the body:")


# ---------------------------------------------------------------- 11. nothing set up yet

NOT_SET_UP = "Nothing is set up here yet: no migrations/ folder and no database URL. Run %migrate init [URL] first."


@pytest.mark.parametrize("line", ["upgrade head", "downgrade base", "history", "current", "heads", "log", "schema", "upgrade head --sql"])
def test_a_command_before_init_says_to_run_init(ip_empty: Shell, workdir: Path, line: str) -> None:
    run = ip_empty.run(f"%migrate {line}")
    assert isinstance(run.error, UsageError), run.output
    assert one_line(run) == f"UsageError: {NOT_SET_UP}"
    assert not (workdir / "migmagic.db").exists()
    assert not (workdir / "migrations").exists()


def test_status_before_init_says_so_without_creating_the_database(ip_empty: Shell, workdir: Path) -> None:
    for line in ("%migrate", "%migrate status"):
        result = ip_empty.ok(line)
        assert repr(result) == NOT_SET_UP
    assert not (workdir / "migmagic.db").exists()


def test_help_and_init_work_before_init(ip_empty: Shell, workdir: Path) -> None:
    assert "Commands:" in ip_empty.run("%migrate -h").output
    ip_empty.ok("%migrate init")
    assert "Nothing to upgrade" in repr(ip_empty.ok("%migrate upgrade head"))


@pytest.mark.parametrize("setting", ["folder", "env", "config"])
def test_commands_work_when_something_is_set_up(ip_empty: Shell, workdir: Path, monkeypatch: pytest.MonkeyPatch, setting: str) -> None:
    if setting == "folder":
        (workdir / "migrations" / "versions").mkdir(parents=True)
    elif setting == "env":
        monkeypatch.setenv("DATABASE_URL", "sqlite:///env.db")
    else:
        ip_empty.ok("%config Migrate.url = 'sqlite:///configured.db'")
    assert "Nothing to upgrade" in repr(ip_empty.ok("%migrate upgrade head"))
