"""Revisions with real fault points, and a full snapshot of a database's schema.

Each revision below calls ``_fault("NAME.up.N")`` / ``_fault("NAME.down.N")``
between its statements. The source never changes; what happens at a fault
point is chosen by the ``MIGMAGIC_TEST_FAULT`` environment variable, e.g.
``child.up.1.sql``:

* ``sql``: a real statement the database rejects (``INSERT INTO no_such_table``);
* ``python``: the revision raises ``RuntimeError``;
* ``hang``: the revision writes the file named by ``MIGMAGIC_TEST_HANG_FILE``
  and sleeps, to be killed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from snapshot import snapshot as snapshot_of

FAULT_HELPER = '''import os
import time


def _fault(point):
    want = os.environ.get("MIGMAGIC_TEST_FAULT", "")
    where, _, kind = want.rpartition(".")
    if where != point:
        return
    if kind == "sql":
        op.execute("INSERT INTO no_such_table (x) VALUES (1)")
    elif kind == "hang":
        with open(os.environ["MIGMAGIC_TEST_HANG_FILE"], "w") as f:
            f.write("holding the lock")
        time.sleep(600)
    else:
        raise RuntimeError("injected fault at " + point)

'''

# (message, body without the helper); every faulty step has three statements and four fault points.
REVISIONS: list[tuple[str, str]] = [
    (
        "keep",
        '''
def upgrade():
    op.create_table("keep", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50)))
    op.execute("INSERT INTO keep (id, name) VALUES (1, 'a')")


def downgrade():
    op.drop_table("keep")
''',
    ),
    (
        "parent",
        '''
def upgrade():
    _fault("parent.up.0")
    op.create_table("parent", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50), nullable=False))
    _fault("parent.up.1")
    op.create_index("ix_parent_name", "parent", ["name"])
    _fault("parent.up.2")
    op.execute("INSERT INTO parent (id, name) VALUES (1, 'p')")
    _fault("parent.up.3")


def downgrade():
    _fault("parent.down.0")
    op.execute("DELETE FROM parent")
    _fault("parent.down.1")
    op.drop_index("ix_parent_name", table_name="parent")
    _fault("parent.down.2")
    op.drop_table("parent")
    _fault("parent.down.3")
''',
    ),
    (
        "child",
        '''
def upgrade():
    _fault("child.up.0")
    op.create_table(
        "child",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("parent.id", name="fk_child_parent")),
    )
    _fault("child.up.1")
    op.add_column("parent", sa.Column("note", sa.String(20)))
    _fault("child.up.2")
    op.execute("INSERT INTO child (id, parent_id) VALUES (1, 1)")
    _fault("child.up.3")


def downgrade():
    _fault("child.down.0")
    op.execute("DELETE FROM child")
    _fault("child.down.1")
    with op.batch_alter_table("parent") as batch:
        batch.drop_column("note")
    _fault("child.down.2")
    op.drop_table("child")
    _fault("child.down.3")
''',
    ),
    (
        "widen",
        '''
def upgrade():
    _fault("widen.up.0")
    with op.batch_alter_table("keep") as batch:
        batch.add_column(sa.Column("extra", sa.Integer))
    _fault("widen.up.1")
    op.create_table("other", sa.Column("id", sa.Integer, primary_key=True))
    _fault("widen.up.2")
    op.execute("UPDATE keep SET extra = 1")
    _fault("widen.up.3")


def downgrade():
    _fault("widen.down.0")
    op.drop_table("other")
    _fault("widen.down.1")
    with op.batch_alter_table("keep") as batch:
        batch.drop_column("extra")
    _fault("widen.down.2")
    op.execute("UPDATE keep SET name = 'a'")
    _fault("widen.down.3")
''',
    ),
]

FAULTY = [name for name, _ in REVISIONS[1:]]
POINTS = range(4)


def write_revisions(m: Any) -> dict[str, str]:
    """Write the four revisions with ``m``; return name -> revision id."""
    ids: dict[str, str] = {}
    for name, body in REVISIONS:
        ids[name] = m.revision(name, FAULT_HELPER + body).revision
    return ids


def snapshot(url: str) -> dict[str, Any]:
    """Everything a schema comparison needs: tables, columns, keys, indexes, version, rows; the ledger as its row count."""
    return snapshot_of(url, ledger_count=True)


def wipe(url: str) -> None:
    """Drop every table (for MariaDB, where a failed revision's DDL stays)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            meta = sa.MetaData()
            meta.reflect(conn)
            meta.drop_all(conn)
    finally:
        engine.dispose()


def text_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")
