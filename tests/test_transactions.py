"""A revision that ends the transaction itself, and Alembic's autocommit_block(): truthful on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import ledger_rows, table_revision, tables, version

from migmagic import Migrator
from migmagic.errors import MigrationFailed, RevisionEndedTransaction

FIRST = table_revision("first")
LAST = table_revision("last")


def _middle(statement: str) -> str:
    return f'''def upgrade():
    op.create_table("middle", sa.Column("id", sa.Integer, primary_key=True))
    {statement}
    op.create_table("middle_after", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("middle_after")
    op.drop_table("middle")
'''


def _three(m: Migrator, middle: str, last: str = LAST) -> list[str]:
    return [m.revision(msg, body).revision for msg, body in (("first", FIRST), ("middle", middle), ("last", last))]


@pytest.mark.parametrize("statement", ['op.execute("COMMIT")', 'op.execute("commit")', 'op.execute(sa.text("END"))', 'op.execute("ROLLBACK")'])
def test_a_commit_statement_is_refused_and_nothing_is_applied(rollback_migrator: tuple[Migrator, str], statement: str) -> None:
    m, url = rollback_migrator
    revs = _three(m, _middle(statement))
    with pytest.raises(MigrationFailed) as failed:
        m.upgrade("head")
    error = failed.value
    assert error.revision == revs[1] and error.completed == [revs[0]]
    assert "would end migmagic's transaction, so it was not run" in str(error) and "autocommit_block" in str(error)
    assert "Nothing was applied: the database is still at base." in str(error)
    assert tables(url) == set() and version(url) == set() and ledger_rows(url, "revision") == []


def test_a_commit_through_the_connection_stops_truthfully(rollback_migrator: tuple[Migrator, str]) -> None:
    m, url = rollback_migrator
    revs = _three(m, _middle("op.get_bind().commit()"))
    with pytest.raises(RevisionEndedTransaction) as stopped:
        m.upgrade("head")
    error = stopped.value
    assert error.revision == revs[1] and error.committed == revs[:2] and error.not_run == [revs[2]]
    assert "it committed through the connection" in str(error) and "upgrade('head') runs the rest" in str(error)
    assert "%migrate upgrade head runs the rest" in error._render_traceback_()[0]
    # The truth: what the error says is what the database holds, and the three agree.
    assert tables(url) == {"first", "middle", "middle_after"}
    assert version(url) == {revs[1]}
    assert ledger_rows(url, "revision", "direction") == [(revs[0], "upgrade"), (revs[1], "upgrade")]
    assert m.status().outside == [] and m.status().pending == [revs[2]]
    m.upgrade("head")  # the rest runs, as said
    assert version(url) == {revs[2]}


def test_a_sqlite_commit_through_the_driver_stops_truthfully(workdir: Any, sqlite_url: str) -> None:
    m = Migrator.init(sqlite_url)
    revs = _three(m, _middle("op.get_bind().connection.dbapi_connection.commit()"))
    with pytest.raises(RevisionEndedTransaction) as stopped:
        m.upgrade("head")
    assert "through the driver" in str(stopped.value)
    assert version(sqlite_url) == {revs[1]}
    assert [r for r, in ledger_rows(sqlite_url, "revision")] == revs[:2]
    assert tables(sqlite_url) == {"first", "middle", "middle_after"}


DRIVER_THEN_FAILS = '''def upgrade():
    op.create_table("middle", sa.Column("id", sa.Integer, primary_key=True))
    op.get_bind().connection.dbapi_connection.{how}()
    op.create_table("middle_after", sa.Column("id", sa.Integer, primary_key=True))
    {then}


def downgrade():
    pass
'''


@pytest.mark.parametrize("how", ["commit", "rollback"])
@pytest.mark.parametrize("then", ["pass", 'op.execute("SELECT * FROM no_such_table")'])
def test_a_sqlite_transaction_ended_through_the_driver_is_told_as_it_is(workdir: Any, sqlite_url: str, how: str, then: str) -> None:
    """Issue 21 (a hostile user's attacks): after a rollback (or a commit) sent through the driver, the statements that
    followed ran in autocommit: the error said "Nothing was applied" while middle_after (or first and middle) had been
    committed. What the error says is now what the database holds."""
    m = Migrator.init(sqlite_url)
    revs = _three(m, DRIVER_THEN_FAILS.format(how=how, then=then))
    with pytest.raises((MigrationFailed, RevisionEndedTransaction)) as caught:
        m.upgrade("head")
    said = str(caught.value)
    if "Nothing was applied" in said:
        assert tables(sqlite_url) == set() and version(sqlite_url) == set(), said
    else:
        committed = caught.value.committed if isinstance(caught.value, RevisionEndedTransaction) else caught.value.completed
        assert version(sqlite_url) == ({committed[-1]} if committed else set()), said
        assert [r for r, in ledger_rows(sqlite_url, "revision")] == committed, said
        assert {"first"} <= tables(sqlite_url) if revs[0] in committed else True, said


FIRST_ENDS_THROUGH_THE_DRIVER = '''def upgrade():
    op.create_table("first", sa.Column("id", sa.Integer, primary_key=True))
    op.get_bind().connection.dbapi_connection.{how}()
    op.create_table("first_after", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    pass
'''


@pytest.mark.parametrize("how", ["commit", "rollback"])
def test_a_sqlite_transaction_ended_through_the_driver_in_the_first_revision_is_told_as_it_is(workdir: Any, sqlite_url: str, how: str) -> None:
    """Before any step is done, a rollback through the driver used to be
    taken for a commit: the first revision was recorded as applied though its first table was gone. A row of
    migmagic's own in a temporary table, written in the command's transaction, now tells a commit from a rollback."""
    m = Migrator.init(sqlite_url)
    revs = [m.revision("first", FIRST_ENDS_THROUGH_THE_DRIVER.format(how=how)).revision, m.revision("second", LAST).revision]
    with pytest.raises((MigrationFailed, RevisionEndedTransaction)) as caught:
        m.upgrade("head")
    said = str(caught.value)
    applied = ledger_rows(sqlite_url, "revision")
    if how == "rollback":
        assert "rolled back migmagic's transaction through the driver" in said and "Nothing was applied" in said, said
        assert tables(sqlite_url) == set() and applied == [], said
    else:
        assert isinstance(caught.value, RevisionEndedTransaction) and caught.value.committed == revs[:1], said
        assert {"first", "first_after"} <= tables(sqlite_url) and [r for r, in applied] == revs[:1], said
    m.close()


SQLITE_BLOCK = '''def upgrade():
    op.create_table("middle", sa.Column("id", sa.Integer, primary_key=True))
    with op.get_context().autocommit_block():
        op.execute("VACUUM")
    op.create_table("middle_after", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("middle_after")
    op.drop_table("middle")
'''

POSTGRES_BLOCK = '''def upgrade():
    op.execute("CREATE TYPE mood AS ENUM ('sad', 'ok')")
    op.create_table("middle", sa.Column("id", sa.Integer, primary_key=True))
    with op.get_context().autocommit_block():
        op.execute("ALTER TYPE mood ADD VALUE 'happy'")
    op.create_table("middle_after", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("middle_after")
    op.drop_table("middle")
    op.execute("DROP TYPE mood")
'''

BROKEN = '''def upgrade():
    op.create_table("last", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("SELECT * FROM no_such_table")
'''


def _block(url: str) -> str:
    return SQLITE_BLOCK if url.startswith("sqlite") else POSTGRES_BLOCK


def test_autocommit_block_works_as_in_alembic(rollback_migrator: tuple[Migrator, str]) -> None:
    m, url = rollback_migrator
    revs = _three(m, _block(url))
    outcome = m.upgrade("head")
    assert version(url) == {revs[2]} and tables(url) == {"first", "middle", "middle_after", "last"}
    assert [r for r, in ledger_rows(url, "revision")] == revs
    assert any(f"{revs[1]} ran an autocommit block" in note for note in outcome.notes), outcome.notes
    m.downgrade("base")
    assert tables(url) == set() and version(url) == set()


def test_a_failure_after_an_autocommit_block_says_what_stayed(rollback_migrator: tuple[Migrator, str]) -> None:
    m, url = rollback_migrator
    revs = _three(m, _block(url), last=BROKEN)
    with pytest.raises(MigrationFailed) as failed:
        m.upgrade("head")
    said = str(failed.value)
    assert failed.value.revision == revs[2]
    assert f"Committed before the failure, at the autocommit block of {revs[1]}: {revs[0]} and the statements of {revs[1]}" in said
    assert f"the version table is at {revs[0]}" in said
    # As said: the first revision and the middle one's statements up to its block; nothing after.
    assert version(url) == {revs[0]}
    assert tables(url) == {"first", "middle"}
    assert [r for r, in ledger_rows(url, "revision")] == [revs[0]]
