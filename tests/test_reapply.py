"""``--reapply``: downgrade with the old code, rewrite, upgrade with the new — all or nothing where it can be.

SQLite and PostgreSQL: the three acts are one transaction. When the new code fails
(or the new file does not load), the inspected schema, the rows, the version table,
the ledger and the revision file's bytes are exactly what they were, and the error
says so. MariaDB commits DDL itself: the old file is put back, the old code is
upgraded again, and the error says where the database ended up.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import columns, ledger_rows, tables, version
from faults import snapshot

from migmagic import Migrator
from migmagic.errors import MigrationFailed, ScriptDirectoryError

A = '''def upgrade():
    op.create_table("a", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50)))


def downgrade():
    op.drop_table("a")
'''

# B reads A's column first, so new code for A that renames it makes B fail before any DDL of its own.
B = '''def upgrade():
    op.create_index("ix_a_name", "a", ["name"])
    op.create_table("b", sa.Column("id", sa.Integer, primary_key=True), sa.Column("note", sa.String(50)))


def downgrade():
    op.drop_table("b")
    op.drop_index("ix_a_name", table_name="a")
'''

A_RAISES = A.replace("def upgrade():\n", "def upgrade():\n    raise RuntimeError(\"the new code is broken\")\n")
A_RENAMED = A.replace('"name"', '"title"')
A_HALF_DONE = A.replace('sa.String(50)))\n', 'sa.String(50)))\n    raise RuntimeError("the new code stops half way")\n', 1)
A_DOES_NOT_LOAD = "import no_such_module_for_migmagic\n\n\n" + A.replace('"name"', '"label"')
A_GOOD = A.replace('sa.String(50)', 'sa.String(80)')


def _ledger(url: str) -> list[tuple[Any, ...]]:
    return ledger_rows(url, "id", "revision", "direction", "checksum")


def _state(url: str, path: Path) -> tuple[dict[str, Any], list[tuple[Any, ...]], bytes]:
    """What a failed re-apply must leave as it was: the database (schema, rows, version, ledger) and the file's bytes."""
    return snapshot(url), _ledger(url), path.read_bytes()


def _insert_row(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO b (id, note) VALUES (1, 'keep me')"))
    finally:
        engine.dispose()


def _applied_a_and_b(m: Migrator, url: str) -> tuple[str, str, Path]:
    """Revisions a and b applied, a row in b, and a's file with CRLF line endings (bytes that must survive)."""
    a = m.revision("create a", A, apply=True).revision
    b = m.revision("create b", B, apply=True).revision
    _insert_row(url)
    path = m.scripts().info(a).path
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))  # not an edit: the checksum ignores line endings
    assert dict(m.status().fields)["edited since applied"] == "none"
    return a, b, path


@pytest.mark.parametrize("new_code", [A_RAISES, A_RENAMED, A_HALF_DONE], ids=["raises", "breaks-the-next-revision", "fails-half-way"])
def test_failed_reapply_changes_nothing(rollback_migrator: tuple[Migrator, str], new_code: str) -> None:
    m, url = rollback_migrator
    a, b, path = _applied_a_and_b(m, url)
    before = _state(url, path)
    file_before = before[2]

    with pytest.raises(MigrationFailed) as caught:
        m.revision("create a", new_code, reapply=True, accept_data_loss=True)
    err = str(caught.value)

    assert _state(url, path) == before  # schema, the row in b, the version table, the ledger, the file
    assert before[0]["b"]["rows"] == [(1, "keep me")]
    assert version(url) == {b}
    assert f"Could not re-apply {a}" in err
    assert f"Nothing changed: the database is still at {b}" in err and "still holds its old code" in err
    assert "at base" not in err
    # The warm cache holds the old code again: nothing looks edited, and the old code still runs.
    assert m.scripts().info(a).source == file_before.decode().replace("\r\n", "\n")
    assert dict(m.status().fields)["edited since applied"] == "none"
    m.downgrade("base", accept_data_loss=True)  # drops the row of b, on purpose
    m.upgrade("head")
    assert tables(url) == {"a", "b"}


def test_failed_reapply_shows_the_new_code_that_failed(rollback_migrator: tuple[Migrator, str]) -> None:
    m, url = rollback_migrator
    _applied_a_and_b(m, url)
    with pytest.raises(MigrationFailed) as caught:
        m.revision("create a", A_RAISES, reapply=True, accept_data_loss=True)
    shown = "\n".join(caught.value._render_traceback_())
    # The traceback points at the line of the code that ran, though the file holds the old code again.
    assert 'raise RuntimeError("the new code is broken")' in shown
    assert "RuntimeError: the new code is broken" in shown


def test_reapply_whose_new_file_does_not_load_changes_nothing(rollback_migrator: tuple[Migrator, str]) -> None:
    m, url = rollback_migrator
    a, b, path = _applied_a_and_b(m, url)
    before = _state(url, path)

    with pytest.raises(ScriptDirectoryError) as caught:
        m.revision("create a", A_DOES_NOT_LOAD, reapply=True, accept_data_loss=True)

    assert "no_such_module_for_migmagic" in str(caught.value)
    assert f"Nothing changed: the database is still at {b}" in str(caught.value)
    assert _state(url, path) == before
    assert m.scripts().info(a).source == before[2].decode().replace("\r\n", "\n")


def test_reapply_whose_file_cannot_be_written_changes_nothing(rollback_migrator: tuple[Migrator, str], monkeypatch: pytest.MonkeyPatch) -> None:
    m, url = rollback_migrator
    a, b, path = _applied_a_and_b(m, url)
    before = _state(url, path)
    real_write_text = Path.write_text

    def disk_full(self: Path, *args: Any, **kwargs: Any) -> int:
        if self.parent == path.parent:
            raise OSError(28, "No space left on device")
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", disk_full)
    with pytest.raises(ScriptDirectoryError) as caught:
        m.revision("create a", A_GOOD, reapply=True, accept_data_loss=True)
    monkeypatch.undo()

    assert "No space left on device" in str(caught.value)
    assert f"Nothing changed: the database is still at {b}" in str(caught.value)
    assert _state(url, path) == before
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == []  # no temp file left


A_FAILS_AT_COMMIT = '''def upgrade():
    op.create_table("a", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50)))
    op.create_table(
        "c",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("a_id", sa.Integer, sa.ForeignKey("a.id", deferrable=True, initially="DEFERRED")),
    )
    op.execute("INSERT INTO c (id, a_id) VALUES (1, 999)")


def downgrade():
    op.drop_table("c")
    op.drop_table("a")
'''


def test_reapply_failing_at_commit_changes_nothing(workdir: Any, pg_url: str) -> None:
    m = Migrator.init(pg_url)
    try:
        a, b, path = _applied_a_and_b(m, pg_url)
        before = _state(pg_url, path)
        with pytest.raises(MigrationFailed) as caught:
            m.revision("create a", A_FAILS_AT_COMMIT, reapply=True, accept_data_loss=True)
        assert "The re-apply failed when committing" in str(caught.value)
        assert f"Nothing changed: the database is still at {b}" in str(caught.value)
        assert _state(pg_url, path) == before
    finally:
        m.close()


def test_reapply_succeeds_in_one_go(migrator: Migrator, db_url: str) -> None:
    a, b, path = _applied_a_and_b(migrator, db_url)
    old_checksum = migrator.scripts().info(a).checksum
    ledger_before = _ledger(db_url)

    done = migrator.revision("create a", A_GOOD, reapply=True, accept_data_loss=True)

    assert done.action == "rewrote" and done.revision == a
    assert done.applied is not None
    assert list(done.applied.steps["direction"]) == ["downgrade", "downgrade", "upgrade", "upgrade"]
    assert list(done.applied.steps["revision"]) == [b, a, a, b]
    assert version(db_url) == {b}
    assert tables(db_url) == {"a", "b"}
    assert "VARCHAR(80)" in str(snapshot(db_url)["a"]["columns"])
    assert "String(80)" in path.read_text()
    new_checksum = migrator.scripts().info(a).checksum
    added = [(rev, direction, checksum) for _, rev, direction, checksum in _ledger(db_url)[len(ledger_before) :]]
    b_checksum = migrator.scripts().info(b).checksum
    assert added == [(b, "downgrade", b_checksum), (a, "downgrade", old_checksum), (a, "upgrade", new_checksum), (b, "upgrade", b_checksum)]
    assert dict(migrator.status().fields)["edited since applied"] == "none"


# ---------------------------------------------------------------------- MariaDB: step by step


@pytest.fixture
def mariadb_migrator(workdir: Any, mariadb_url: str) -> Iterator[Migrator]:
    m = Migrator.init(mariadb_url)
    yield m
    m.close()


@pytest.mark.parametrize("new_code", [A_RAISES, A_RENAMED], ids=["raises", "breaks-the-next-revision"])
def test_mariadb_failed_reapply_puts_the_old_code_back(mariadb_migrator: Migrator, mariadb_url: str, new_code: str) -> None:
    m, url = mariadb_migrator, mariadb_url
    a, b, path = _applied_a_and_b(m, url)
    file_before = path.read_bytes()

    with pytest.raises(MigrationFailed) as caught:
        m.revision("create a", new_code, reapply=True, accept_data_loss=True)
    err = str(caught.value)

    assert path.read_bytes() == file_before
    assert version(url) == {b}
    assert tables(url) == {"a", "b"} and columns(url, "a") == ["id", "name"]
    assert f"Could not re-apply {a}" in err
    assert "cannot roll back DDL" in err
    assert f"the database is back at {b}" in err
    assert "data the downgrades dropped is not restored" in err
    assert snapshot(url)["b"]["rows"] == []  # as the error says: b was dropped and created again
    assert m.scripts().info(a).source == file_before.decode().replace("\r\n", "\n")
    assert dict(m.status().fields)["edited since applied"] == "none"


def test_mariadb_reapply_whose_recovery_fails_says_where_the_database_is(mariadb_migrator: Migrator, mariadb_url: str) -> None:
    m, url = mariadb_migrator, mariadb_url
    a, b, path = _applied_a_and_b(m, url)
    file_before = path.read_bytes()

    # The new code creates table a, then fails: MariaDB keeps the table, so the old code cannot create it again.
    with pytest.raises(MigrationFailed) as caught:
        m.revision("create a", A_HALF_DONE, reapply=True, accept_data_loss=True)
    err = str(caught.value)

    assert path.read_bytes() == file_before
    assert version(url) == set()
    assert "the new code stops half way" in err
    assert "upgrading with the old code failed too" in err
    assert "the version table is at base" in err
    assert tables(url) == {"a"}
    assert dict(m.status().fields)["current"] == "base (nothing applied)"
