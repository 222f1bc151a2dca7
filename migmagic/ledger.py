"""The ledger: one row per step migmagic applied, written with the step itself.

Table ``migmagic_ledger``: revision, direction (upgrade, downgrade, stamp,
accept, repair; ``outside`` and ``outside-down`` for what the version table's
watch saw done outside migmagic, see :mod:`migmagic.watch`), applied_at (UTC), duration in seconds, the SHA-256 checksum of the
revision's normalized source with the checksum algorithm's version, the source
itself (so an edit can be shown as a difference), and the migmagic and Alembic
versions. Rows are inserted on the migration's own connection, inside the same
transaction as the version-table update.

What migmagic writes here never fails for the revision's sake, whatever the
database's character set and packet limit: the message is kept as UTF-8 bytes
(``message_utf8``; the ``message`` column holds it with non-ASCII characters
escaped), the source as zlib-compressed bytes (``source_zlib``). On MySQL/MariaDB
a source that, compressed, would not fit in a packet (``max_allowed_packet``) is
not stored: the row keeps its checksum and says so in ``note``. Ledger tables
made by earlier versions (message and source as text) get the new columns added
when a command first writes to them; their rows read as before.

Where it lives (:func:`schema`): on PostgreSQL in a schema of migmagic's own,
``migmagic`` (with the version table's watch, :mod:`migmagic.watch`), so a
project's own autogenerate and ``alembic check`` (which look at the default
schema only) never see it; a ledger an earlier version made in the current
schema is moved there by the next command that migrates (``ALTER TABLE ... SET
SCHEMA``, in that command's transaction) and read where it is until then.
SQLite and MySQL/MariaDB: in the database itself.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from . import __version__, revisionfile

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection

TABLE_NAME = "migmagic_ledger"
SCHEMA = "migmagic"  # PostgreSQL: migmagic's tables live in a schema of their own
INDEX_NAME = "ix_migmagic_ledger_revision"
APPLYING = ("upgrade", "accept", "stamp", "repair")
OUTSIDE, OUTSIDE_DOWN = "outside", "outside-down"  # applied, unapplied by something other than migmagic
COUNTED = (*APPLYING, OUTSIDE, "downgrade", OUTSIDE_DOWN)
UNAPPLYING = ("downgrade", OUTSIDE_DOWN)
WORDS = {OUTSIDE: "applied outside migmagic", OUTSIDE_DOWN: "unapplied outside migmagic"}  # as ``log`` shows them

_tables: dict[str | None, Table] = {}


def schema(conn: Connection) -> str | None:
    """The schema migmagic's tables are in on ``conn``'s database (None: the database's default).

    PostgreSQL: :data:`SCHEMA` once it exists; a ledger an earlier version made
    in the current schema, not yet moved, is read there, and a role that may
    not create a schema keeps its tables there too (None). Asked of the database
    each time (one round trip): a rehearsal that moved the tables in a
    transaction it rolled back leaves them where they were.
    """
    if conn.dialect.name != "postgresql":
        return None
    import sqlalchemy as sa

    moved, legacy, own = conn.execute(
        sa.text(
            "SELECT to_regclass(:new) IS NOT NULL, to_regclass(quote_ident(current_schema()) || '.' || :name) IS NOT NULL, "
            "to_regnamespace(:schema) IS NOT NULL"
        ),
        {"new": f"{SCHEMA}.{TABLE_NAME}", "name": TABLE_NAME, "schema": SCHEMA},
    ).one()
    if moved:
        return SCHEMA
    return None if legacy or not own else SCHEMA


def _current(conn: Connection) -> str:
    import sqlalchemy as sa

    return conn.dialect.identifier_preparer.quote(str(conn.execute(sa.text("SELECT current_schema()")).scalar()))


def place(conn: Connection, name: str) -> None:
    """PostgreSQL: create :data:`SCHEMA` and move table ``name`` there from the current schema if an earlier version made it there."""
    if conn.dialect.name != "postgresql":
        return
    import sqlalchemy as sa

    if not conn.execute(sa.text("SELECT to_regnamespace(:schema) IS NOT NULL"), {"schema": SCHEMA}).scalar():
        try:
            with conn.begin_nested():
                conn.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))
        except sa.exc.ProgrammingError:  # no CREATE on the database: the tables stay in the current schema
            return
    old = f"{_current(conn)}.{name}"
    moved, legacy = conn.execute(
        sa.text("SELECT to_regclass(:new) IS NOT NULL, to_regclass(:old) IS NOT NULL"), {"new": f"{SCHEMA}.{name}", "old": old}
    ).one()
    if legacy and not moved:
        conn.execute(sa.text(f"ALTER TABLE {old} SET SCHEMA {SCHEMA}"))


def table(schema: str | None = None) -> Table:
    """The ledger's SQLAlchemy table in ``schema`` (built on first use); see :func:`schema`."""
    if schema not in _tables:
        import sqlalchemy as sa
        from sqlalchemy.dialects import mysql

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
            *_added(sa, mysql),
            schema=schema,
        )
        # What latest() reads: the last row per revision, found in the index.
        sa.Index(INDEX_NAME, _table.c.revision, _table.c.id)
        _tables[schema] = _table
    return _tables[schema]


def _added(sa: Any, mysql: Any) -> list[Any]:
    """The columns added since the first version (old tables get them in :func:`ensure`)."""
    return [
        sa.Column("message_utf8", sa.LargeBinary),
        sa.Column("source_zlib", sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")),
        sa.Column("note", sa.String(255)),
    ]


_complete: set[tuple[str, str]] = set()  # (engine URL, database) whose ledger has every column


def ensure(conn: Connection) -> None:
    """Create the ledger table and its index where they are missing.

    ``CREATE ... IF NOT EXISTS`` statements, no inspection: a ledger table made
    before the index existed gets it on the first command that migrates. MySQL
    (not MariaDB) has no ``CREATE INDEX IF NOT EXISTS``: there the index is
    looked up first.
    """
    from sqlalchemy.schema import CreateIndex, CreateTable

    place(conn, TABLE_NAME)
    t = table(schema(conn))
    conn.execute(CreateTable(t, if_not_exists=True))
    (index,) = t.indexes
    dialect = conn.dialect
    if dialect.name == "mysql" and not getattr(dialect, "is_mariadb", False):
        import sqlalchemy as sa

        if index.name not in {ix["name"] for ix in sa.inspect(conn).get_indexes(TABLE_NAME, schema=t.schema)}:
            conn.execute(CreateIndex(index))
    else:
        conn.execute(CreateIndex(index, if_not_exists=True))
    _add_columns(conn, t)


def _add_columns(conn: Connection, t: Table) -> None:
    import sqlalchemy as sa

    key = (conn.engine.url.render_as_string(hide_password=True), str(conn.engine.url.database))
    if key in _complete:
        return
    have = {c["name"] for c in sa.inspect(conn).get_columns(TABLE_NAME, schema=t.schema)}
    name = f"{t.schema}.{TABLE_NAME}" if t.schema else TABLE_NAME
    for column in t.c:
        if column.name not in have:  # nullable, no default: instant on MariaDB, PostgreSQL and SQLite
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE {name} ADD COLUMN {column.name} {kind}"))
    _complete.add(key)


def exists(conn: Connection) -> bool:
    import sqlalchemy as sa

    return sa.inspect(conn).has_table(TABLE_NAME, schema=schema(conn))


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
    alembic_version: str | None,
    note: str | None = None,
) -> dict[str, Any]:
    """One ledger row, stamped now (UTC), with the source's checksum; text any character set stores."""
    message = message[:255]
    return dict(
        revision=revision,
        direction=direction,
        message=message.encode("ascii", "backslashreplace").decode("ascii")[:255],
        message_utf8=message.encode("utf-8"),
        applied_at=datetime.now(timezone.utc).replace(tzinfo=None),
        seconds=seconds,
        checksum=revisionfile.checksum(source) if source is not None else None,
        checksum_version=revisionfile.CHECKSUM_VERSION if source is not None else None,
        source=None,
        source_zlib=_packed(source) if source is not None else None,
        note=note,
        migmagic_version=__version__,
        alembic_version=alembic_version,
    )


@functools.lru_cache(maxsize=4096)
def _packed(source: str) -> bytes:
    """The normalized source, compressed (once per source: a notebook applies the same revisions again and again)."""
    import zlib

    return zlib.compress(revisionfile.normalize(source).encode("utf-8"), 6)


def insert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert ledger rows on ``conn``, inside the caller's transaction, in one statement."""
    # One INSERT statement, values as parameters: SQLAlchemy compiles it once
    # and sends many rows as one batch.
    if rows:
        if conn.dialect.name in ("mysql", "mariadb"):
            rows = [_fitted(conn, r) for r in rows]
        conn.execute(_insert(schema(conn)), rows)


def _fitted(conn: Connection, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` without its source when the source would make the INSERT larger than the server takes."""
    source = row.get("source_zlib")
    if source is None or len(source) < 65536:
        return row
    limit = conn.info.get("migmagic_max_packet")
    if limit is None:
        import sqlalchemy as sa

        limit = conn.info["migmagic_max_packet"] = int(conn.execute(sa.text("SELECT @@max_allowed_packet")).scalar() or 0)
    budget = (limit - 65536) // 2  # escaped, a byte takes at most two
    if len(source) <= budget:
        return row
    note = (
        f"source not stored: {len(source)} bytes compressed exceed what the server's max_allowed_packet "
        f"({limit} bytes) takes; the checksum is kept"
    )
    return {**row, "source_zlib": None, "note": note[:255]}


_inserts: dict[str | None, Any] = {}


def _insert(schema: str | None) -> Any:
    if schema not in _inserts:
        _inserts[schema] = table(schema).insert()
    return _inserts[schema]


def latest(conn: Connection) -> dict[str, Entry]:
    """For each applied revision the ledger knows of, the last row that applied it.

    A revision whose last row is a ``downgrade`` (or ``outside-down``) has no
    entry. ``accept`` and ``stamp`` rows count as applying; an ``outside`` row
    (the ``alembic`` command applied it, say) is an entry without a checksum.

    Only the last row of each revision is read (its id found in
    ``ix_migmagic_ledger_revision`` alone), so the cost follows the number of
    revisions, not the length of the ledger's history. A revision whose last row
    has another direction than those (none today) is looked up again among its
    applying and downgrade rows.
    """
    if not exists(conn):
        return {}
    where = schema(conn)
    found = list(conn.execute(_latest(where)))
    others = [rev for rev, _, direction, _ in found if direction not in COUNTED]
    if others:
        found = [r for r in found if r[2] in COUNTED] + list(conn.execute(_latest_counted(where), {"revisions": others}))
    return {rev: Entry(rev, checksum, direction, applied_at) for rev, checksum, direction, applied_at in found if direction not in UNAPPLYING}


_statements: dict[tuple[str, str | None], Any] = {}


def _latest(schema: str | None) -> Any:
    """The last row of each revision: ``... JOIN (SELECT MAX(id) ... GROUP BY revision)``, built once."""
    if ("latest", schema) not in _statements:
        import sqlalchemy as sa

        t = table(schema)
        last = sa.select(sa.func.max(t.c.id).label("id")).group_by(t.c.revision).subquery("last")
        _statements["latest", schema] = sa.select(t.c.revision, t.c.checksum, t.c.direction, t.c.applied_at).join_from(t, last, t.c.id == last.c.id)
    return _statements["latest", schema]


def _latest_counted(schema: str | None) -> Any:
    """The last applying-or-downgrade row of each of the ``revisions`` given."""
    if ("counted", schema) not in _statements:
        import sqlalchemy as sa

        t = table(schema)
        last = (
            sa.select(sa.func.max(t.c.id).label("id"))
            .where(t.c.revision.in_(sa.bindparam("revisions", expanding=True)), t.c.direction.in_(COUNTED))
            .group_by(t.c.revision)
            .subquery("last")
        )
        _statements["counted", schema] = sa.select(t.c.revision, t.c.checksum, t.c.direction, t.c.applied_at).join_from(t, last, t.c.id == last.c.id)
    return _statements["counted", schema]


def applied_source(conn: Connection, revision: str) -> str | None:
    """The source recorded by the last row that applied ``revision`` (to show an edit's difference)."""
    import zlib

    import sqlalchemy as sa

    t = table(schema(conn))
    found = conn.execute(
        sa.select(t.c.source_zlib, t.c.source)
        .where(t.c.revision == revision, t.c.direction.in_(APPLYING))
        .order_by(t.c.id.desc())
        .limit(1)
    ).first()
    if found is None:
        return None
    packed, text = found
    return zlib.decompress(packed).decode("utf-8") if packed is not None else text


def rows(conn: Connection) -> list[dict[str, Any]]:
    """Every ledger row, oldest first, directions in words (``applied outside migmagic`` for ``outside``)."""
    import sqlalchemy as sa

    if not exists(conn):
        return []
    t = table(schema(conn))
    have = {c["name"] for c in sa.inspect(conn).get_columns(TABLE_NAME, schema=t.schema)}  # an older ledger lacks the added columns
    cols = [c for c in t.c if c.name not in ("source", "source_zlib") and c.name in have]
    out = []
    for r in conn.execute(sa.select(*cols).order_by(t.c.id)):
        d = dict(r._mapping)
        raw = d.pop("message_utf8", None)
        if raw is not None:
            d["message"] = bytes(raw).decode("utf-8")
        d["direction"] = WORDS.get(d["direction"], d["direction"])
        out.append(d)
    return out
