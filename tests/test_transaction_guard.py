"""The transaction guard reads a revision's SQL with a tokenizer: only a top-level COMMIT/END/ROLLBACK/ABORT/PREPARE TRANSACTION ends the transaction.

Each shape runs in a real revision (``op.execute(...)``) on SQLite and PostgreSQL,
through the Python API and through ``%migrate upgrade head``: the words inside
trigger and function bodies, ``DO`` blocks, ``CASE ... END``, literals and comments
run; the statements that would end migmagic's transaction are still refused before
they reach the database, and nothing is applied.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Shell, fresh_database, tables, version

from migmagic import Migrator
from migmagic.errors import MigrationFailed
from migmagic.sqltext import transaction_end

SQLITE_TRIGGER = """
CREATE TRIGGER guard_t
BEFORE UPDATE ON marks
FOR EACH ROW
WHEN OLD.note != NEW.note
BEGIN
    SELECT RAISE(ABORT, 'note is immutable');
END;
"""  # mlflow-skinny 3.17.2's shape (1bd49d398cd23, 'add secrets tables')

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION guard_f()
RETURNS TRIGGER AS $$
BEGIN
    IF OLD.note != NEW.note THEN
        RAISE EXCEPTION 'note is immutable';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""

PG_TRIGGER = "CREATE TRIGGER guard_t BEFORE UPDATE ON marks FOR EACH ROW EXECUTE FUNCTION guard_f();"

PG_DO = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM marks WHERE note = 'do') THEN
        INSERT INTO marks (note) VALUES ('do');
    END IF;
END
$$;
"""

# name -> {database: statements its revision sends with op.execute, one call each}; the revision then marks the shape's name.
SHAPES: dict[str, dict[str, list[str]]] = {
    "trigger body": {
        "sqlite": [SQLITE_TRIGGER, "INSERT INTO marks (note) VALUES ('trigger')"],
        "postgresql": [PG_FUNCTION, PG_TRIGGER, "INSERT INTO marks (note) VALUES ('trigger')"],
    },
    "DO block": {"postgresql": [PG_DO]},
    "CASE ... END": {
        "sqlite": ["INSERT INTO marks (note) SELECT CASE WHEN 1 = 1 THEN 'case' END;"],
        "postgresql": ["INSERT INTO marks (note) VALUES ('x'); DELETE FROM marks WHERE note = CASE WHEN true THEN 'x' END; INSERT INTO marks (note) VALUES ('case')"],
    },
    "string literal": {
        "sqlite": ["INSERT INTO marks (note) VALUES ('a; COMMIT; END')"],
        "postgresql": ["INSERT INTO marks (note) VALUES ('a; COMMIT'); INSERT INTO marks (note) VALUES (E'b\\'; END')"],
    },
    "dollar-quoted literal": {"postgresql": ["INSERT INTO marks (note) VALUES ($q$c; ROLLBACK; END$q$)"]},
    "comments": {
        "sqlite": ["INSERT INTO marks (note) VALUES ('comment') -- done; COMMIT"],
        "postgresql": ["INSERT INTO marks (note) VALUES ('comment'); /* then; END; */ -- ; COMMIT"],
    },
    "rollback to savepoint": {
        db: [
            "SAVEPOINT s",
            "INSERT INTO marks (note) VALUES ('rolled back')",
            "ROLLBACK TRANSACTION TO SAVEPOINT s",
            "RELEASE SAVEPOINT s",
            "INSERT INTO marks (note) VALUES ('savepoint')",
        ]
        for db in ("sqlite", "postgresql")
    },
}

REFUSED = {
    "COMMIT": "COMMIT",
    "END": "END",
    "SELECT 1; COMMIT": "COMMIT",
    "/* why */ COMMIT": "COMMIT",
    "-- note\nrollback;": "ROLLBACK",
    "END TRANSACTION": "END",
    "PREPARE TRANSACTION 'x'": "PREPARE TRANSACTION",
}


def _revision(statements: list[str], mark: str = "done") -> str:
    calls = "".join(f"    op.execute({s!r})\n" for s in [*statements, f"INSERT INTO marks (note) VALUES ('{mark}')"])
    return (
        'def upgrade():\n    op.create_table("marks", sa.Column("note", sa.String(100)))\n'
        f"{calls}\n\ndef downgrade():\n    op.drop_table(\"marks\")\n"
    )


def _marks(url: str) -> set[str]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {r[0] for r in conn.execute(sa.text("SELECT note FROM marks"))}
    finally:
        engine.dispose()


CASES = [(name, db) for name, by_db in SHAPES.items() for db in by_db]


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Any, workdir: Any) -> Iterator[str]:
    yield from fresh_database(request.param, tmp_path)


@pytest.mark.parametrize(("shape", "url"), CASES, indirect=["url"], ids=[f"{n}-{d}" for n, d in CASES])
@pytest.mark.parametrize("through", ["api", "magic"])
def test_words_inside_bodies_literals_and_comments_run(shape: str, url: str, through: str, ip_empty: Shell) -> None:
    db = "sqlite" if url.startswith("sqlite") else "postgresql"
    body = _revision(SHAPES[shape][db], mark=shape)
    if through == "api":
        m = Migrator.init(url)
        try:
            rev = m.revision(shape, body).revision
            m.upgrade("head")
        finally:
            m.close()
    else:
        ip_empty.ok(f"%migrate init {url}")
        rev = ip_empty.ok(f'%%revision -m "{shape}"\n{body}').revision
        ip_empty.ok("%migrate upgrade head")
    assert version(url) == {rev}
    marks = _marks(url)
    assert shape in marks  # every statement ran, to the revision's last
    assert "rolled back" not in marks


@pytest.mark.parametrize("url", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("statement", list(REFUSED))
def test_a_statement_that_ends_the_transaction_is_still_refused(url: str, statement: str) -> None:
    m = Migrator.init(url)
    try:
        first = m.revision("first", _revision(["INSERT INTO marks (note) VALUES ('first')"])).revision
        m.revision("ends", f'def upgrade():\n    op.execute({statement!r})\n\n\ndef downgrade():\n    pass\n')
        with pytest.raises(MigrationFailed) as failed:
            m.upgrade("head")
    finally:
        m.close()
    assert f"{REFUSED[statement]} would end migmagic's transaction, so it was not run" in str(failed.value)
    assert failed.value.completed == [first]
    assert tables(url) == set() and version(url) == set()


@pytest.mark.parametrize("url", ["sqlite", "postgresql"], indirect=True)
def test_the_refusal_in_a_notebook_points_at_the_revision(url: str, ip_empty: Shell) -> None:
    ip_empty.ok(f"%migrate init {url}")
    ip_empty.ok('%%revision -m "ends"\ndef upgrade():\n    op.execute("SELECT 1; COMMIT")\n')
    run = ip_empty.run("%migrate upgrade head")
    assert run.failed and "COMMIT would end migmagic's transaction, so it was not run" in run.output
    assert "_ends.py" in run.output and 'op.execute("SELECT 1; COMMIT")' in run.output
    assert version(url) == set()


# The reader alone, on the shapes it must tell apart (no database needed).
@pytest.mark.parametrize(
    ("sql", "ends"),
    [
        *[(s, None) for by_db in SHAPES.values() for statements in by_db.values() for s in statements],
        *REFUSED.items(),
        ("COMMIT PREPARED 'x'", None),
        ("ROLLBACK PREPARED 'x'", None),
        ("rollback to s", None),
        ("ABORT", "ABORT"),
        ("COMMIT AND CHAIN", "COMMIT"),
        ("BEGIN; SELECT 1; END", "END"),
        ("CREATE PROCEDURE p() BEGIN SELECT 1; COMMIT; END", None),
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END", None),
        ("CREATE FUNCTION f() RETURNS int AS 'BEGIN; COMMIT; END;' LANGUAGE plpgsql", None),
        ('SELECT 1 AS "x; commit"', None),
        ("UPDATE t SET end_date = 1", None),
        ("PREPARE s AS SELECT 1", None),
        ("DO $x$ BEGIN PERFORM format('%I.%I', 'a', 'b'); END $x$", None),
    ],
)
def test_the_reader_finds_only_top_level_ends(sql: str, ends: str | None) -> None:
    assert transaction_end(sql) == ends
