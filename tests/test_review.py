"""What a rehearsal sees each statement do: locks and rewrites (PostgreSQL), batch copies (SQLite), algorithms (MariaDB).

Each test seeds real tables with a few thousand rows, runs Alembic's own
operations on a connection whose statement events call the reviewer (as the dry
run's capture does), and checks what the server itself says (pg_locks,
relfilenode, the ALGORITHM= the server accepts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from migmagic import review

ROWS = 3000


def _seed(conn: Any, dialect: str) -> None:
    conn.execute(sa.text("CREATE TABLE owners (id BIGINT PRIMARY KEY)"))
    title = "VARCHAR(100)" if dialect != "postgresql" else "TEXT"
    conn.execute(sa.text(f"CREATE TABLE events (id BIGINT PRIMARY KEY, title {title}, owner_id BIGINT, n INTEGER)"))
    conn.execute(sa.insert(sa.table("owners", sa.column("id"))), [{"id": i} for i in range(1, 11)])
    conn.execute(
        sa.insert(sa.table("events", sa.column("id"), sa.column("title"), sa.column("owner_id"), sa.column("n"))),
        [{"id": i, "title": f"event {i}", "owner_id": 1 + i % 10, "n": i} for i in range(1, ROWS + 1)],
    )


@pytest.fixture
def watched(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """``run(url, operations)``: seed, then run ``operations(op)`` with a reviewer on the connection's statements."""
    engines: list[Any] = []

    def run(url: str, operations: Callable[[Any], None], **kwargs: Any) -> list[review.StatementReview]:
        engine = sa.create_engine(url)
        engines.append(engine)
        with engine.begin() as conn:
            _seed(conn, engine.dialect.name)
        with engine.connect() as conn:
            trans = conn.begin()
            reviewer = review.reviewer(conn, **kwargs)

            def before(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
                reviewer.before(statement)

            def after(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
                reviewer.after(statement)

            sa.event.listen(conn, "before_cursor_execute", before)
            sa.event.listen(conn, "after_cursor_execute", after)
            operations(Operations(MigrationContext.configure(conn)))
            trans.rollback()  # a PostgreSQL rehearsal is rolled back
        return reviewer.reviews

    yield run
    for engine in engines:
        engine.dispose()


def _one(reviews: list[review.StatementReview], start: str) -> review.StatementReview:
    found = [r for r in reviews if r.statement.lstrip().upper().startswith(start.upper())]
    assert len(found) == 1, [r.statement for r in reviews]
    return found[0]


# ---------------------------------------------------------------------- PostgreSQL


def test_pg_index_without_concurrently_takes_share_on_the_table_and_rewrites_nothing(watched: Any, pg_url: str) -> None:
    got = _one(watched(pg_url, lambda op: op.create_index("ix_events_title", "events", ["title"])), "CREATE INDEX")
    assert got.locks == [review.Lock("SHARE", "events")] and got.rewrites == []
    assert got.sizes["events"].rows == ROWS and got.sizes["events"].exact and got.sizes["events"].bytes
    assert got.describe().startswith(f"SHARE on events ({ROWS:,} rows, ") and "blocks writes" in got.describe()


def test_pg_volatile_default_rewrites_the_table_under_access_exclusive(watched: Any, pg_url: str) -> None:
    def ops(op: Any) -> None:
        op.add_column("events", sa.Column("seen", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False))
        op.add_column("events", sa.Column("made", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False))

    reviews = watched(pg_url, ops)
    volatile, constant = (r for r in reviews if "ADD COLUMN" in r.statement)
    assert volatile.locks == [review.Lock("ACCESS EXCLUSIVE", "events")] and volatile.rewrites == ["events"]
    assert "rewrites events: blocks reads and writes while it runs" in volatile.describe()
    assert constant.rewrites == []  # PostgreSQL 11+: now() is stable, no rewrite
    assert constant.locks == [review.Lock("ACCESS EXCLUSIVE", "events", earlier=True)]  # still held from the first
    assert constant.describe().startswith(f"ACCESS EXCLUSIVE on events ({ROWS:,} rows, ") and "; held since an earlier statement)" in constant.describe()


def test_pg_type_change_with_rewrite(watched: Any, pg_url: str) -> None:
    got = _one(watched(pg_url, lambda op: op.alter_column("events", "n", type_=sa.BigInteger)), "ALTER TABLE events ALTER COLUMN n")
    assert got.locks == [review.Lock("ACCESS EXCLUSIVE", "events")] and got.rewrites == ["events"]
    assert got.sizes["events"].rows == ROWS


def test_pg_type_change_without_rewrite_is_told_apart(watched: Any, pg_url: str) -> None:
    got = _one(watched(pg_url, lambda op: op.alter_column("events", "title", type_=sa.Text)), "ALTER TABLE")
    assert got.rewrites == []  # text to text: binary-coercible


def test_pg_foreign_key_with_validation_locks_both_tables(watched: Any, pg_url: str) -> None:
    got = _one(watched(pg_url, lambda op: op.create_foreign_key("fk_events_owner", "events", "owners", ["owner_id"], ["id"])), "ALTER TABLE")
    assert got.locks == [review.Lock("SHARE ROW EXCLUSIVE", "events"), review.Lock("SHARE ROW EXCLUSIVE", "owners")]
    assert got.rewrites == [] and got.sizes["owners"].rows == 10 and got.sizes["events"].rows == ROWS


def test_pg_set_not_null_takes_access_exclusive_without_rewrite(watched: Any, pg_url: str) -> None:
    got = _one(watched(pg_url, lambda op: op.alter_column("events", "title", nullable=False)), "ALTER TABLE")
    assert got.locks == [review.Lock("ACCESS EXCLUSIVE", "events")] and got.rewrites == []


def test_pg_a_dropped_table_is_named_with_the_rows_it_had(watched: Any, pg_url: str) -> None:
    got = _one(watched(pg_url, lambda op: op.drop_table("events")), "DROP TABLE")
    assert got.locks == [review.Lock("ACCESS EXCLUSIVE", "events")] and got.rewrites == []
    assert got.sizes["events"].rows == ROWS


def test_pg_a_new_table_and_reads_say_nothing(watched: Any, pg_url: str) -> None:
    def ops(op: Any) -> None:
        op.create_table("tags", sa.Column("id", sa.BigInteger, primary_key=True))
        op.create_index("ix_tags_id", "tags", ["id"])
        op.get_bind().execute(sa.text("SELECT count(*) FROM events"))

    assert watched(pg_url, ops) == []


def test_pg_the_reviewers_queries_are_not_seen_by_the_statement_listeners(watched: Any, pg_url: str) -> None:
    seen: list[str] = []
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        _seed(conn, "postgresql")
    with engine.connect() as conn, conn.begin():
        reviewer = review.reviewer(conn)
        sa.event.listen(conn, "before_cursor_execute", lambda _c, _cur, statement, *_a: seen.append(statement))
        reviewer.before("CREATE INDEX ix ON events (title)")
        conn.exec_driver_sql("CREATE INDEX ix ON events (title)")
        assert reviewer.after("CREATE INDEX ix ON events (title)") is not None
        conn.rollback()
    engine.dispose()
    assert seen == ["CREATE INDEX ix ON events (title)"]


def test_pg_an_estimated_size_for_a_large_table(watched: Any, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(review, "EXACT_BELOW", 100)
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        _seed(conn, "postgresql")
        conn.exec_driver_sql("ANALYZE events")
    with engine.connect() as conn, conn.begin():
        reviewer = review.reviewer(conn)
        reviewer.before("ALTER TABLE events ALTER COLUMN n TYPE bigint")
        conn.exec_driver_sql("ALTER TABLE events ALTER COLUMN n TYPE bigint")
        got = reviewer.after("ALTER TABLE events ALTER COLUMN n TYPE bigint")
        conn.rollback()
    engine.dispose()
    assert got is not None and got.sizes["events"] == review.Size(ROWS, got.sizes["events"].bytes, exact=False)
    assert f"~{ROWS:,} rows" in got.describe()


# ---------------------------------------------------------------------- SQLite


def test_sqlite_batch_mode_copies_the_table_with_its_rows(watched: Any, sqlite_url: str) -> None:
    def ops(op: Any) -> None:
        with op.batch_alter_table("events") as batch:
            batch.alter_column("title", nullable=False)
        op.add_column("owners", sa.Column("note", sa.Text))  # a plain ALTER: no copy

    reviews = watched(sqlite_url, ops)
    assert len(reviews) == 1
    assert reviews[0].copies == ["events"] and reviews[0].sizes["events"].rows == ROWS
    assert reviews[0].describe().startswith(f"copies events ({ROWS:,} rows)")


# ---------------------------------------------------------------------- MariaDB


def test_mariadb_instant_inplace_and_copy_per_alter(watched: Any, mariadb_url: str) -> None:
    database = sa.engine.make_url(mariadb_url).database

    def ops(op: Any) -> None:
        op.add_column("events", sa.Column("note", sa.String(50)))
        op.create_index("ix_events_title", "events", ["title"])
        op.alter_column("events", "n", type_=sa.BigInteger, existing_type=sa.Integer)

    reviews = watched(mariadb_url, ops, sizes_from=database)
    by_start = {r.statement.split()[0] + " " + r.statement.split()[-1]: r for r in reviews}
    assert [r.algorithm for r in reviews] == ["INSTANT", "INPLACE", "COPY"], by_start
    assert all(r.table == "events" and r.sizes["events"].rows == ROWS for r in reviews)
    assert "COPY on events (3,000 rows" in reviews[2].describe()
    engine = sa.create_engine(mariadb_url)
    with engine.connect() as conn:  # the twin is gone, the statements ran once each
        assert "_migmagic_algorithm_probe" not in sa.inspect(conn).get_table_names()
        columns = {c["name"]: c for c in sa.inspect(conn).get_columns("events")}
        assert "note" in columns and isinstance(columns["n"]["type"], sa.BigInteger)
    engine.dispose()


def test_the_reviews_as_a_table_escape_names_in_html() -> None:
    got = review.StatementReview('ALTER TABLE "<b>" ALTER COLUMN n TYPE bigint', locks=[review.Lock("ACCESS EXCLUSIVE", '"<b>"')], rewrites=['"<b>"'])
    frame = review.table([got])
    assert list(frame.columns) == review.COLUMNS
    assert "&lt;b&gt;" in frame._repr_html_() and "<b>" not in frame._repr_html_()
    assert got.row()["what it means"] == 'ACCESS EXCLUSIVE on "<b>", rewrites "<b>": blocks reads and writes while it runs.'
