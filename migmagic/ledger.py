"""The ledger: one row per step migmagic applied, written with the step itself.

Table ``migmagic_ledger``: revision, direction (upgrade, downgrade, stamp,
accept), applied_at (UTC), duration in seconds, the SHA-256 checksum of the
revision's normalized source with the checksum algorithm's version, the source
itself (so an edit can be shown as a difference), and the migmagic and Alembic
versions. Rows are inserted on the migration's own connection, inside the same
transaction as the version-table update.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from . import __version__, revisionfile

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection

TABLE_NAME = "migmagic_ledger"
APPLYING = ("upgrade", "accept", "stamp")

_table: Table | None = None


def table() -> Table:
    """The ledger's SQLAlchemy table (built on first use)."""
    global _table
    if _table is None:
        import sqlalchemy as sa

        _table = sa.Table(
            TABLE_NAME,
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("revision", sa.String(64), nullable=False),
            sa.Column("direction", sa.String(16), nullable=False),
            sa.Column("message", sa.String(255)),
            sa.Column("applied_at", sa.DateTime, nullable=False),
            sa.Column("seconds", sa.Float),
            sa.Column("checksum", sa.String(64)),
            sa.Column("checksum_version", sa.Integer),
            sa.Column("source", sa.Text().with_variant(sa.Text(2**24), "mysql", "mariadb")),
            sa.Column("migmagic_version", sa.String(32)),
            sa.Column("alembic_version", sa.String(32)),
        )
    return _table


def ensure(conn: Connection) -> None:
    """Create the ledger table if the database has none."""
    table().create(conn, checkfirst=True)


def exists(conn: Connection) -> bool:
    import sqlalchemy as sa

    return sa.inspect(conn).has_table(TABLE_NAME)


@dataclass(frozen=True)
class Entry:
    """What the ledger last recorded for one applied revision."""

    revision: str
    checksum: str | None
    direction: str
    applied_at: datetime


def row(
    *,
    revision: str,
    direction: str,
    message: str,
    seconds: float | None,
    source: str | None,
    alembic_version: str,
) -> dict[str, Any]:
    """One ledger row, stamped now (UTC), with the source's checksum."""
    return dict(
        revision=revision,
        direction=direction,
        message=message[:255],
        applied_at=datetime.now(timezone.utc).replace(tzinfo=None),
        seconds=seconds,
        checksum=revisionfile.checksum(source) if source is not None else None,
        checksum_version=revisionfile.CHECKSUM_VERSION if source is not None else None,
        source=revisionfile.normalize(source) if source is not None else None,
        migmagic_version=__version__,
        alembic_version=alembic_version,
    )


def insert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert ledger rows on ``conn``, inside the caller's transaction, in one statement."""
    # One INSERT statement, values as parameters: SQLAlchemy compiles it once
    # and sends many rows as one batch.
    if rows:
        conn.execute(_insert(), rows)


_insert_statement: Any = None


def _insert() -> Any:
    global _insert_statement
    if _insert_statement is None:
        _insert_statement = table().insert()
    return _insert_statement


def latest(conn: Connection) -> dict[str, Entry]:
    """For each revision applied through migmagic, the last row that recorded its source.

    A revision whose last row is a ``downgrade`` has no entry: whatever applied
    it again (the ``alembic`` command, say) left no checksum to compare with.
    """
    import sqlalchemy as sa

    if not exists(conn):
        return {}
    t = table()
    rows = conn.execute(
        sa.select(t.c.revision, t.c.checksum, t.c.direction, t.c.applied_at)
        .where(t.c.direction.in_((*APPLYING, "downgrade")))
        .order_by(t.c.id)
    )
    out: dict[str, Entry] = {}
    for rev, checksum, direction, applied_at in rows:
        if direction == "downgrade":
            out.pop(rev, None)
        else:
            out[rev] = Entry(rev, checksum, direction, applied_at)
    return out


def applied_source(conn: Connection, revision: str) -> str | None:
    """The source recorded by the last row that applied ``revision`` (to show an edit's difference)."""
    import sqlalchemy as sa

    t = table()
    return conn.execute(
        sa.select(t.c.source)
        .where(t.c.revision == revision, t.c.direction.in_(APPLYING))
        .order_by(t.c.id.desc())
        .limit(1)
    ).scalar()


def rows(conn: Connection) -> list[dict[str, Any]]:
    """Every ledger row, oldest first."""
    import sqlalchemy as sa

    if not exists(conn):
        return []
    t = table()
    cols = [c for c in t.c if c.name != "source"]
    return [dict(r._mapping) for r in conn.execute(sa.select(*cols).order_by(t.c.id))]
