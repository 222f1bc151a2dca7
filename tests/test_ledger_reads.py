"""Reading the ledger costs what the revisions cost, not what its history holds; the answer is unchanged."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from conftest import EVENTS, table_revision

from migmagic import ledger

TAGS = table_revision("tags")
NOTES = table_revision("notes")


def full_scan(conn: Any) -> dict[str, ledger.Entry]:
    """The algorithm ``latest()`` had: every row, oldest first, a downgrade forgetting the revision."""
    if not ledger.exists(conn):
        return {}
    t = ledger.table(ledger.schema(conn))
    rows = conn.execute(
        sa.select(t.c.revision, t.c.checksum, t.c.direction, t.c.applied_at)
        .where(t.c.direction.in_((*ledger.APPLYING, "downgrade")))
        .order_by(t.c.id)
    )
    out: dict[str, ledger.Entry] = {}
    for rev, checksum, direction, applied_at in rows:
        if direction == "downgrade":
            out.pop(rev, None)
        else:
            out[rev] = ledger.Entry(rev, checksum, direction, applied_at)
    return out


def _both(m: Any) -> tuple[dict[str, ledger.Entry], dict[str, ledger.Entry]]:
    with m.db.reading() as conn:
        return ledger.latest(conn), full_scan(conn)


def test_latest_equals_the_full_scan_after_many_cycles(migrator: Any) -> None:
    a = migrator.revision("create events table", EVENTS).revision
    b = migrator.revision("create tags", TAGS).revision
    c = migrator.revision("create notes", NOTES).revision
    new, old = _both(migrator)
    assert new == old == {}
    for cycle in range(10):
        migrator.upgrade("head")
        new, old = _both(migrator)
        assert new == old and set(new) == {a, b, c}
        migrator.downgrade("base" if cycle % 2 else a)
        new, old = _both(migrator)
        assert new == old and set(new) == (set() if cycle % 2 else {a})
    migrator.upgrade(b)
    migrator.accept(a)  # an accept row counts as applying
    migrator.stamp(c)  # so does a stamp
    migrator.stamp(b)
    new, old = _both(migrator)
    assert new == old and set(new) == {a, b, c}
    assert (new[a].direction, new[b].direction, new[c].direction) == ("accept", "stamp", "stamp")
    # A row of a direction latest() does not count (none is written today) is passed over.
    with migrator.db.engine.begin() as conn:
        row = ledger.row(revision=a, direction="note", message="", seconds=None, source=None, alembic_version="")
        ledger.insert(conn, [row, {**row, "revision": "0000dead"}])
    new, old = _both(migrator)
    assert new == old and new[a].direction == "accept" and "0000dead" not in new
    with migrator.db.reading() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ledger.table(ledger.schema(conn)))).scalar() >= 45


def test_a_ledger_table_made_without_the_index_gets_it(migrator: Any, db_url: str) -> None:
    migrator.revision("create events table", EVENTS)
    migrator.revision("create tags", TAGS)
    migrator.upgrade("+1")
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            where = ledger.schema(conn)
            conn.execute(sa.text(f"DROP INDEX {where + '.' if where else ''}{ledger.INDEX_NAME}" + (" ON migmagic_ledger" if conn.dialect.name in ("mysql", "mariadb") else "")))
        assert ledger.INDEX_NAME not in {ix["name"] for ix in sa.inspect(engine).get_indexes("migmagic_ledger", schema=where)}
        assert migrator.status().applied == 1  # reads work without it
        migrator.upgrade("head")
        assert ledger.INDEX_NAME in {ix["name"] for ix in sa.inspect(engine).get_indexes("migmagic_ledger", schema=where)}
        migrator.downgrade("base")  # and a command on a ledger that has it changes nothing
        assert [ix["column_names"] for ix in sa.inspect(engine).get_indexes("migmagic_ledger", schema=where) if ix["name"] == ledger.INDEX_NAME] == [["revision", "id"]]
    finally:
        engine.dispose()
