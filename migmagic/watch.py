"""The version table's watch: every change to ``alembic_version``, whoever made it, is written down.

Triggers on ``alembic_version`` (``AFTER INSERT / UPDATE / DELETE``, on SQLite
and PostgreSQL) add a row to ``migmagic_version_changes`` for each change: the
version before, the version after, and when (UTC, the server's clock). So a
revision the ``alembic`` command downgraded and upgraded again, or a version row
typed by hand, is seen the next time migmagic reads the database, though the
version table ends up as it was.

migmagic's own steps fire the triggers too; their rows are deleted with the
ledger rows of those steps, in the same transaction (:func:`forget`). So what
the table holds at the start of a command is what happened outside migmagic
since its last command. A command that migrates moves those changes into the
ledger (:func:`events` says, revision by revision, what they applied and
unapplied) before its first step; a command that only reads shows them.

The triggers are created by the first command that migrates once the version
table exists. Nothing they do can make a plain ``alembic`` command fail:

* PostgreSQL: the trigger function is ``SECURITY DEFINER`` (it writes with the
  privileges of the role that installed it, so a deploy role granted only the
  app's tables and ``alembic_version`` runs ``alembic upgrade`` as before), and
  any error inside it (the changes table dropped by hand, say) is caught: the
  change is then not logged, the command goes on.
* MySQL/MariaDB: no triggers. A trigger there always runs as its ``DEFINER``
  and fails every write to the version table once that account is gone (or in a
  dump restored on a server without it), after the revision's DDL committed: a
  half-applied database. Triggers earlier versions installed are dropped by the
  next command that migrates. Outside changes are seen there only as the
  version table read against the ledger (:mod:`migmagic.state`): a revision
  applied that the ledger never recorded; a downgrade and upgrade again by the
  ``alembic`` command leaves no trace.
* SQLite: a trigger cannot catch an error, so the changes table must not be
  dropped alone: drop the three ``migmagic_watch_*`` triggers with it (see the docs).
  Where the triggers cannot be created, nothing fails: outside changes are then not seen.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .adapter import Scripts

TABLE_NAME = "migmagic_version_changes"
VERSION_TABLE = "alembic_version"
TRIGGER = "migmagic_watch"  # PostgreSQL: one trigger (and its function); elsewhere one per event, suffixed


@dataclass(frozen=True)
class Change:
    """One change to the version table: ``old`` → ``new`` (None for an INSERT's old, a DELETE's new)."""

    id: int
    old: str | None
    new: str | None
    at: datetime


@dataclass(frozen=True)
class Event:
    """What a change did to one revision: ``applied`` or ``unapplied``, and when."""

    revision: str
    direction: str  # "applied" | "unapplied"
    at: datetime

    @property
    def ledger_direction(self) -> str:
        """The ledger's word for it: ``outside`` or ``outside-down``."""
        from . import ledger

        return ledger.OUTSIDE if self.direction == "applied" else ledger.OUTSIDE_DOWN

    @property
    def words(self) -> str:
        """As ``log`` shows it: ``applied outside migmagic`` or ``unapplied outside migmagic``."""
        from . import ledger

        return ledger.WORDS[self.ledger_direction]


_tables: dict[str | None, Any] = {}


def table(schema: str | None = None) -> Any:
    """The changes table in ``schema`` (PostgreSQL: the ledger's, :func:`migmagic.ledger.schema`)."""
    if schema not in _tables:
        import sqlalchemy as sa

        _tables[schema] = sa.Table(
            TABLE_NAME,
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("old_version", sa.String(255)),
            sa.Column("new_version", sa.String(255)),
            sa.Column("changed_at", sa.String(32), nullable=False),  # as the server wrote it: read back with fromisoformat
            schema=schema,
        )
    return _tables[schema]


def ensure(conn: Connection) -> None:
    """Create the changes table where it is missing (with the ledger's, before anything runs; not on MySQL/MariaDB)."""
    from sqlalchemy.schema import CreateTable

    from . import ledger

    if watches(conn):
        ledger.place(conn, TABLE_NAME)
        conn.execute(CreateTable(table(ledger.schema(conn)), if_not_exists=True))


def watches(conn: Connection) -> bool:
    """Whether the version table is watched by triggers on this database (not on MySQL/MariaDB)."""
    return conn.dialect.name not in ("mysql", "mariadb")


def install(conn: Connection) -> None:
    """Put the triggers on the version table if it exists and they are missing (MySQL/MariaDB: drop old ones).

    Where the database refuses them, nothing fails and nothing is left half
    done on PostgreSQL (a savepoint keeps the command's transaction usable); the
    next command tries again. MySQL/MariaDB commit DDL themselves, so call it
    where everything before has committed.
    """
    import sqlalchemy as sa

    dialect = conn.dialect.name
    if not watches(conn):
        _drop_mysql_triggers(conn)
        return
    if not sa.inspect(conn).has_table(VERSION_TABLE) or _installed(conn, dialect):
        return
    with contextlib.suppress(sa.exc.DBAPIError), conn.begin_nested() if dialect == "postgresql" else contextlib.nullcontext():
        for statement in _triggers(conn, dialect):
            conn.exec_driver_sql(statement, execution_options={"no_parameters": True})


def _drop_mysql_triggers(conn: Connection) -> None:
    """Drop the triggers earlier versions put on the version table (they break the ``alembic`` command once their DEFINER is gone)."""
    import sqlalchemy as sa

    query = "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = DATABASE() AND trigger_name LIKE :name"
    for (name,) in conn.execute(sa.text(query), {"name": TRIGGER + "%"}).all():
        with contextlib.suppress(sa.exc.DBAPIError):  # no TRIGGER privilege: the next command tries again
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")


def _installed(conn: Connection, dialect: str) -> bool:
    import sqlalchemy as sa

    if dialect == "sqlite":
        query = "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table AND name LIKE :name"
        return int(conn.execute(sa.text(query), {"table": VERSION_TABLE, "name": TRIGGER + "%"}).scalar() or 0) >= 3
    # PostgreSQL: the trigger, and its function as this version writes it (beside the changes table,
    # SECURITY DEFINER, errors caught).
    from . import ledger

    query = (
        "SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE t.tgname = :name AND t.tgrelid = to_regclass(:table) AND p.prosecdef AND p.prosrc LIKE '%EXCEPTION%' "
        "AND n.nspname = coalesce(:schema, current_schema())"
    )
    return bool(conn.execute(sa.text(query), {"name": TRIGGER, "table": VERSION_TABLE, "schema": ledger.schema(conn)}).scalar())


def _triggers(conn: Connection, dialect: str) -> list[str]:
    """The statements that watch the version table on ``dialect``."""
    columns = f"INSERT INTO {TABLE_NAME} (old_version, new_version, changed_at)"
    values = {"insert": "NULL, NEW.version_num", "update": "OLD.version_num, NEW.version_num", "delete": "OLD.version_num, NULL"}
    if dialect == "sqlite":
        now = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
        return [
            f"CREATE TRIGGER IF NOT EXISTS {TRIGGER}_{event} AFTER {event.upper()} ON {VERSION_TABLE} "
            f"BEGIN {columns} VALUES ({v}, {now}); END"
            for event, v in values.items()
        ]
    if dialect == "postgresql":
        import sqlalchemy as sa

        from . import ledger

        schema = str(conn.execute(sa.text("SELECT current_schema()")).scalar())
        q = conn.dialect.identifier_preparer.quote
        where = q(ledger.schema(conn) or schema)
        changes, fn = f"{where}.{TABLE_NAME}", f"{where}.{TRIGGER}_log"
        now = "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
        body = " ".join(
            f"{'IF' if i == 0 else 'ELSIF'} TG_OP = '{event.upper()}' THEN {columns.replace(TABLE_NAME, changes)} VALUES ({v}, {now});"
            for i, (event, v) in enumerate(values.items())
        )
        # SECURITY DEFINER: writes as the role that installed it, whoever changes the version table;
        # a fixed search_path, as PostgreSQL's docs ask of such functions. Any error is swallowed (in a
        # subtransaction of its own): the watch never fails the command that changed the version table.
        return [
            f"CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp "
            f"AS $$ BEGIN BEGIN {body} END IF; EXCEPTION WHEN OTHERS THEN NULL; END; RETURN NULL; END $$",
            f"DROP TRIGGER IF EXISTS {TRIGGER} ON {q(schema)}.{VERSION_TABLE}",
            f"CREATE TRIGGER {TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON {q(schema)}.{VERSION_TABLE} FOR EACH ROW EXECUTE PROCEDURE {fn}()",
            *([f"DROP FUNCTION IF EXISTS {q(schema)}.{TRIGGER}_log()"] if where != q(schema) else []),  # an earlier version's
        ]
    return []


def changes(conn: Connection) -> list[Change]:
    """The changes made outside migmagic since its last command, oldest first (none without the table)."""
    import sqlalchemy as sa

    if not _has_changes_table(conn):
        return []
    t = table(_schema(conn))
    rows = conn.execute(sa.select(t.c.id, t.c.old_version, t.c.new_version, t.c.changed_at).order_by(t.c.id))
    return [Change(i, old, new, datetime.fromisoformat(str(at))) for i, old, new, at in rows]


def forget(conn: Connection) -> None:
    """Delete every change row: called with the ledger rows of migmagic's own steps, in their transaction.

    MySQL/MariaDB keep no changes table (a database an earlier version watched may still have one: it is emptied).
    """
    if watches(conn) or _has_changes_table(conn):
        conn.execute(table(_schema(conn)).delete())


def _schema(conn: Connection) -> str | None:
    from . import ledger

    return ledger.schema(conn)


def _has_changes_table(conn: Connection) -> bool:
    import sqlalchemy as sa

    return sa.inspect(conn).has_table(TABLE_NAME, schema=_schema(conn))


def events(scripts: Scripts, heads: Sequence[str], found: Sequence[Change]) -> list[Event]:
    """What ``found`` (oldest first) applied and unapplied, revision by revision, for a database now at ``heads``.

    The version table before the first change is worked out backwards from
    ``heads``; then each change is compared with the one before. Alembic merges
    by deleting all but one of the merged heads and updating the last (and
    unmerges by updating, then inserting the others): those rows count as one
    change, so the branches they join are not taken as unapplied and applied again.
    """
    if not found:
        return []
    version = list(heads)
    for c in reversed(found):
        if c.new is not None and c.new in version:
            version.remove(c.new)
        if c.old is not None:
            version.append(c.old)
    out: list[Event] = []
    order = {r: i for i, r in enumerate(reversed(scripts.ids()))}  # oldest first
    applied: set[str] | None = None  # worked out only when a change is not one plain step
    for group in _grouped(scripts, found):
        at = group[-1].at
        step = _one_step(scripts, group)
        if step is not None:
            out.append(Event(step[0], step[1], at))
            if applied is not None:
                (applied.add if step[1] == "applied" else applied.discard)(step[0])
        else:
            if applied is None:
                applied = scripts.applied([h for h in version if h in scripts])
            after = scripts.applied([h for h in _moved(version, group) if h in scripts])
            out += [Event(r, "unapplied", at) for r in sorted(applied - after, key=order.__getitem__, reverse=True)]
            out += [Event(r, "applied", at) for r in sorted(after - applied, key=order.__getitem__)]
            applied = after
        version = _moved(version, group)
    return out


def _moved(version: list[str], group: Sequence[Change]) -> list[str]:
    """The version table after ``group``."""
    version = list(version)
    for c in group:
        if c.old is not None and c.old in version:
            version.remove(c.old)
        if c.new is not None:
            version.append(c.new)
    return version


def _one_step(scripts: Scripts, group: Sequence[Change]) -> tuple[str, str] | None:
    """``(revision, "applied" | "unapplied")`` when ``group`` is one plain step up or down a known revision; else None."""
    if len(group) != 1:
        return None
    old, new = group[0].old, group[0].new
    if new is not None and new in scripts and scripts.info(new).down_revisions == ((old,) if old is not None else ()):
        return new, "applied"
    if old is not None and old in scripts and scripts.info(old).down_revisions == ((new,) if new is not None else ()):
        return old, "unapplied"
    return None


def _grouped(scripts: Scripts, found: Sequence[Change]) -> list[list[Change]]:
    """``found`` in groups: a merge's deletes with the update that follows, an unmerge's update with its inserts."""
    groups: list[list[Change]] = []
    for c in found:
        last = groups[-1] if groups else None
        if last is not None and _joins(scripts, last, c):
            last.append(c)
        else:
            groups.append([c])
    return groups


def _joins(scripts: Scripts, group: list[Change], c: Change) -> bool:
    first = group[0]
    if all(g.new is None for g in group) and c.old is not None and c.new is not None and c.new in scripts:  # merge: DELETE..., UPDATE
        parents = scripts.info(c.new).down_revisions
        return c.old in parents and all(g.old in parents for g in group)
    if first.old is not None and first.new is not None and c.old is None and c.new is not None and first.old in scripts:  # unmerge
        parents = scripts.info(first.old).down_revisions
        return first.new in parents and c.new in parents and all(g.old is None for g in group[1:])
    return False


def ledger_rows(scripts: Scripts, seen: Sequence[Event]) -> list[dict[str, Any]]:
    """The ledger rows that record ``seen``: directions ``outside`` and ``outside-down``, at the time of the change."""
    from . import ledger

    rows = []
    for e in seen:
        note = f"{e.words}: the version table changed at {e.at:%Y-%m-%d %H:%M:%S} UTC"
        message = scripts.info(e.revision).message if e.revision in scripts else ""
        row = ledger.row(
            revision=e.revision, direction=e.ledger_direction, message=message,
            seconds=None, source=None, alembic_version=None, note=note,
        )
        rows.append({**row, "applied_at": e.at})
    return rows
