"""What a rehearsal saw each statement do to the tables: locks, rewrites, copies, algorithms, sizes.

A :class:`Reviewer` is made on the connection a rehearsal runs its plan on
(inside its transaction on PostgreSQL), and told about each statement just
before it runs (:meth:`Reviewer.before`) and just after (:meth:`Reviewer.after`);
``after`` returns a :class:`StatementReview`, or None when there is nothing to
say (a SELECT, a statement on a table the plan itself created).

* PostgreSQL: the locks the statement took (``pg_locks`` for the backend's own
  pid: the ones held after it and not before), whether it rewrote a table (its
  ``pg_class.relfilenode`` changed), and each table's size (``reltuples`` and
  ``pg_total_relation_size``; an exact ``count(*)`` below :data:`EXACT_BELOW` rows).
* SQLite: which tables batch mode copies (``CREATE TABLE _alembic_tmp_<name>``)
  and their row counts; every write locks the whole database.
* MySQL/MariaDB: for an ``ALTER TABLE`` (or ``CREATE INDEX``), whether the server
  runs it INSTANT, INPLACE or needs COPY: the statement is tried with an explicit
  ``ALGORITHM=`` on an empty twin of the table (``CREATE TABLE ... LIKE``) in the
  same (scratch) database, INSTANT first, then INPLACE; and the table's size
  (read from ``sizes_from``, the real database's name on the same server, if given).

Its own queries go through the driver's cursor, so the statement listeners on
the connection (the dry run's capture, the transaction keeper, the journal) never
see them. Nothing here commits; on PostgreSQL nothing here writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

EXACT_BELOW = 100_000
"""Tables the catalog estimates below this many rows (or never analysed) are counted exactly."""

_SKIPPED = re.compile(r"^\s*(SELECT|SHOW|SET|RESET|BEGIN|START|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE|PRAGMA|EXPLAIN|WITH\s+\w+\s+AS\s*\(\s*SELECT)\b", re.I)

# What each PostgreSQL table lock blocks while it is held (the documentation's conflict table, in words).
BLOCKS = {
    "ACCESS SHARE": "blocks only ACCESS EXCLUSIVE (some DDL)",
    "ROW SHARE": "blocks EXCLUSIVE and ACCESS EXCLUSIVE",
    "ROW EXCLUSIVE": "blocks schema changes, CREATE INDEX and table-wide locks; reads and writes go on",
    "SHARE UPDATE EXCLUSIVE": "blocks schema changes and VACUUM; reads and writes go on",
    "SHARE": "blocks writes; reads go on",
    "SHARE ROW EXCLUSIVE": "blocks writes; reads go on",
    "EXCLUSIVE": "blocks writes and row locks; plain reads go on",
    "ACCESS EXCLUSIVE": "blocks reads and writes",
}
_STRENGTH = list(BLOCKS)


@dataclass(frozen=True)
class Lock:
    """A table lock held while a statement ran: ``mode`` as PostgreSQL's documentation spells it (``ACCESS EXCLUSIVE``).

    ``earlier``: the statement's own table was already locked this strongly by an
    earlier statement of the same transaction (held until it ends), so pg_locks
    shows nothing new for it.
    """

    mode: str
    table: str
    earlier: bool = False

    def __str__(self) -> str:
        return f"{self.mode} on {self.table}" + (" (held since an earlier statement)" if self.earlier else "")


@dataclass(frozen=True)
class Size:
    """A table's size: ``rows`` (exact when ``exact``, else the catalog's estimate) and ``bytes`` (None: not known)."""

    rows: int | None
    bytes: int | None = None
    exact: bool = True

    def __str__(self) -> str:
        rows = "? rows" if self.rows is None else f"{'' if self.exact else '~'}{_count(self.rows)} rows"
        return rows + (f", {_bytes(self.bytes)}" if self.bytes is not None else "")


@dataclass
class StatementReview:
    """What one statement did to the tables, as the rehearsal saw it."""

    statement: str
    locks: list[Lock] = field(default_factory=list)  # PostgreSQL
    rewrites: list[str] = field(default_factory=list)  # PostgreSQL: tables whose storage changed
    copies: list[str] = field(default_factory=list)  # SQLite: tables batch mode copies
    algorithm: str | None = None  # MySQL/MariaDB: INSTANT | INPLACE | COPY
    table: str | None = None  # MySQL/MariaDB: the table the ALTER is on
    sizes: dict[str, Size] = field(default_factory=dict)
    note: str | None = None  # what could not be found out, and why

    def describe(self) -> str:
        """One sentence: "ACCESS EXCLUSIVE on events (3,000 rows, 440 kB), rewrites the table: blocks reads and writes while it runs."."""
        parts = []
        for lock in self.locks:
            said = [str(self.sizes[lock.table])] if lock.table in self.sizes else []
            said += ["held since an earlier statement"] if lock.earlier else []
            parts.append(f"{lock.mode} on {lock.table}" + (f" ({'; '.join(said)})" if said else ""))
        for table in self.copies:
            parts.append(f"copies {table}{self._size(table)} (batch mode: a new table, the rows copied, the old one dropped)")
        if self.algorithm:
            parts.append(f"{self.algorithm} on {self.table}{self._size(self.table or '')}")
        text = "; ".join(parts) or "no table locks"
        if self.rewrites:
            text += ", rewrites " + ", ".join(self.rewrites)
        strongest = max((_STRENGTH.index(lock.mode) for lock in self.locks if lock.mode in BLOCKS), default=None)
        if strongest is not None:
            text += f": {BLOCKS[_STRENGTH[strongest]]} while it runs"
        elif self.copies:
            text += ": SQLite holds its write lock on the whole database while it runs"
        elif self.algorithm == "COPY":
            text += ": the table is copied row by row; writes wait while it runs"
        elif self.algorithm:
            text += ": " + ("a change to the table's metadata only" if self.algorithm == "INSTANT" else "rebuilt in place; reads and writes mostly go on")
        return text + (f" ({self.note})" if self.note else "") + "."

    def _size(self, table: str) -> str:
        size = self.sizes.get(table)
        return f" ({size})" if size else ""

    def row(self) -> dict[str, Any]:
        """As a table row: statement, locks, rewrites, copies, algorithm, what it means."""
        return {
            "statement": " ".join(self.statement.split()),
            "locks": ", ".join(map(str, self.locks)) or None,
            "rewrites": ", ".join(self.rewrites) or None,
            "copies": ", ".join(self.copies) or None,
            "algorithm": self.algorithm,
            "what it means": self.describe(),
        }


COLUMNS = ["statement", "locks", "rewrites", "copies", "algorithm", "what it means"]


def table(reviews: list[StatementReview]) -> pd.DataFrame:
    """``reviews`` as a table (statement, locks, rewrites, copies, algorithm, what it means), for the dry run's report."""
    from . import display

    return display.table([r.row() for r in reviews], COLUMNS, "No statement locked, rewrote or copied a table.")


def reviewer(connection: Any, *, sizes_from: str | None = None) -> Reviewer:
    """The :class:`Reviewer` for ``connection``'s database kind (a SQLAlchemy ``Connection``).

    ``sizes_from``: MySQL/MariaDB, the real database's name on the same server,
    whose table sizes are reported (the scratch database holds a sample).
    """
    name = connection.dialect.name
    if name == "postgresql":
        return PostgreSQLReviewer(connection)
    if name == "sqlite":
        return SQLiteReviewer(connection)
    if name in ("mysql", "mariadb"):
        return MySQLReviewer(connection, sizes_from)
    raise ValueError(f"No reviewer for {name!r}: PostgreSQL, SQLite, MySQL and MariaDB have one.")


class Reviewer:
    """Told of each statement before and after it runs; :attr:`reviews` keeps what ``after`` returned."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.reviews: list[StatementReview] = []

    def before(self, statement: str) -> None:
        """Called just before ``statement`` runs on the connection."""

    def after(self, statement: str) -> StatementReview | None:
        """Called just after ``statement`` ran; what it did to the tables, or None."""
        if _SKIPPED.match(statement):
            return None
        review = self._review(statement)
        if review is not None:
            self.reviews.append(review)
        return review

    def _review(self, statement: str) -> StatementReview | None:
        return None

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        """The driver's cursor: no SQLAlchemy event sees these queries."""
        cursor = self.connection.connection.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    def _rows(self, sql: str, params: Any = None) -> list[Any]:
        """``sql``'s rows; its ``%s`` placeholders written as the driver wants them (asyncpg: ``$1``, ``$2``...)."""
        style = self.connection.dialect.paramstyle
        if params is not None and style in ("numeric_dollar", "qmark"):
            numbers = iter(range(1, len(params) + 1))
            sql = re.sub("%s", lambda _: f"${next(numbers)}" if style == "numeric_dollar" else "?", sql)
        with self._cursor() as cursor:
            cursor.execute(sql, params) if params is not None else cursor.execute(sql)
            return list(cursor.fetchall())


# =========================================================================== PostgreSQL

_PG_TABLES = """
SELECT c.oid, c.relfilenode, c.oid::regclass::text, c.reltuples
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""
_PG_NAME = r'(?:"[^"]+"|[\w$]+)'
_PG_TARGET = re.compile(
    r"^\s*(?:ALTER\s+TABLE(?:\s+ONLY)?(?:\s+IF\s+EXISTS)?|CREATE\s+(?:UNIQUE\s+)?INDEX(?:\s+CONCURRENTLY)?(?:\s+IF\s+NOT\s+EXISTS)?"
    rf"(?:\s+{_PG_NAME})?\s+ON(?:\s+ONLY)?|TRUNCATE(?:\s+TABLE)?|UPDATE(?:\s+ONLY)?|DELETE\s+FROM(?:\s+ONLY)?|INSERT\s+INTO)\s+({_PG_NAME}(?:\.{_PG_NAME})?)",
    re.I,
)
_PG_DROP = re.compile(rf"^\s*DROP\s+TABLE(?:\s+IF\s+EXISTS)?\s+({_PG_NAME}(?:\.{_PG_NAME})?(?:\s*,\s*{_PG_NAME}(?:\.{_PG_NAME})?)*)", re.I)
_PG_LOCKS = "SELECT relation, mode FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation' AND granted"


class PostgreSQLReviewer(Reviewer):
    """Locks from ``pg_locks`` (own pid), rewrites from ``relfilenode``, sizes from the catalog."""

    def __init__(self, connection: Any) -> None:
        super().__init__(connection)
        self._existing = {row[0] for row in self._rows(_PG_TABLES)}  # tables made later are the plan's own
        self._locks: set[tuple[int, str]] = set()
        self._before: dict[int, Any] = {}
        self._dropped: dict[int, Size] = {}  # sizes of the tables a DROP TABLE is about to remove

    def before(self, statement: str) -> None:
        if _SKIPPED.match(statement):
            return
        self._locks = {(row[0], row[1]) for row in self._rows(_PG_LOCKS)}
        self._before = {row[0]: row for row in self._rows(_PG_TABLES)}
        drop = _PG_DROP.match(statement)
        names = [n.strip() for n in drop.group(1).split(",")] if drop else []
        oids = [self._rows("SELECT to_regclass(%s::text)::oid", (n,))[0][0] for n in names]
        self._dropped = {oid: self._size(self._before[oid]) for oid in oids if oid in self._before}

    def _review(self, statement: str) -> StatementReview | None:
        tables = {**self._before, **{row[0]: row for row in self._rows(_PG_TABLES)}}  # a dropped table keeps its name
        taken = {(oid, mode) for oid, mode in self._rows(_PG_LOCKS) if oid in tables and oid in self._existing} - self._locks
        strongest: dict[int, str] = {}
        for oid, mode in taken:
            name = _pg_mode(mode)
            if oid not in strongest or _STRENGTH.index(name) > _STRENGTH.index(strongest[oid]):
                strongest[oid] = name
        rewritten = [oid for oid, row in self._before.items() if oid in self._existing and oid not in self._dropped and tables[oid][1] != row[1]]
        earlier: set[int] = set()
        target = _PG_TARGET.match(statement)
        if target:  # its own table, locked by an earlier statement: nothing new in pg_locks, still held
            oid = self._rows("SELECT to_regclass(%s::text)::oid", (target.group(1),))[0][0]
            held = [_pg_mode(mode) for o, mode in self._locks if o == oid]
            if oid in tables and oid in self._existing and oid not in strongest and held:
                strongest[oid] = max(held, key=_STRENGTH.index)
                earlier.add(oid)
        if not strongest and not rewritten:
            return None
        review = StatementReview(statement)
        for oid in sorted(strongest, key=lambda o: tables[o][2]):
            review.locks.append(Lock(strongest[oid], tables[oid][2], earlier=oid in earlier))
        review.rewrites = sorted(tables[oid][2] for oid in rewritten)
        for oid in {*strongest, *rewritten}:
            review.sizes[tables[oid][2]] = self._dropped[oid] if oid in self._dropped else self._size(tables[oid])
        return review

    def _size(self, row: Any) -> Size:
        oid, _node, name, estimate = row
        total = self._rows("SELECT pg_total_relation_size(%s::oid)", (oid,))[0][0]  # for the tables reported only
        if estimate is None or estimate < EXACT_BELOW:  # -1: never analysed
            return Size(self._rows(f"SELECT count(*) FROM {name}")[0][0], total)
        return Size(int(estimate), total, exact=False)


def _pg_mode(mode: str) -> str:
    """``AccessExclusiveLock`` -> ``ACCESS EXCLUSIVE``."""
    return " ".join(re.findall(r"[A-Z][a-z]+", mode.removesuffix("Lock"))).upper()


# =========================================================================== SQLite

_BATCH_TABLE = re.compile(r'^\s*CREATE\s+TABLE\s+["`\[]?_alembic_tmp_([^\s"`\](]+)', re.I)


class SQLiteReviewer(Reviewer):
    """Batch mode's copies: ``CREATE TABLE _alembic_tmp_<name>`` copies ``<name>``; its rows counted before."""

    def __init__(self, connection: Any) -> None:
        super().__init__(connection)
        self._rows_before: dict[str, int] = {}

    def before(self, statement: str) -> None:
        match = _BATCH_TABLE.match(statement)
        if match:
            table = match.group(1)
            self._rows_before[table] = self._rows(f'SELECT count(*) FROM "{table}"')[0][0]

    def _review(self, statement: str) -> StatementReview | None:
        match = _BATCH_TABLE.match(statement)
        if not match or match.group(1) not in self._rows_before:
            return None
        table = match.group(1)
        return StatementReview(statement, copies=[table], sizes={table: Size(self._rows_before.pop(table))})


# =========================================================================== MySQL / MariaDB

_ALTER = re.compile(r"^\s*ALTER\s+(?:ONLINE\s+|IGNORE\s+)*TABLE\s+(`[^`]+`|[\w$]+)(?:\.(`[^`]+`|[\w$]+))?", re.I)
_CREATE_INDEX = re.compile(r"^\s*CREATE\s+(?:UNIQUE\s+|FULLTEXT\s+|SPATIAL\s+)?INDEX\s+\S+\s+ON\s+(`[^`]+`|[\w$]+)", re.I)
_PROBE = "_migmagic_algorithm_probe"
_NOT_SUPPORTED = (1845, 1846)  # ER_ALTER_OPERATION_NOT_SUPPORTED(_REASON)


class MySQLReviewer(Reviewer):
    """INSTANT, INPLACE or COPY per ALTER, tried on an empty twin of the table; sizes from ``information_schema``."""

    def __init__(self, connection: Any, sizes_from: str | None = None) -> None:
        super().__init__(connection)
        self.sizes_from = sizes_from
        self._pending: tuple[str, str | None, str | None] | None = None  # (table, algorithm, note)

    def before(self, statement: str) -> None:
        self._pending = None
        alter = _ALTER.match(statement)
        match = alter or _CREATE_INDEX.match(statement)
        if not match or (alter and alter.group(2)):
            return  # not an ALTER, or another schema's table: not probed
        table = match.group(1).strip("`")
        algorithm, note = self._probe(statement, match, table)
        self._pending = (table, algorithm, note)

    def _review(self, statement: str) -> StatementReview | None:
        if self._pending is None:
            return None
        table, algorithm, note = self._pending
        self._pending = None
        return StatementReview(statement, algorithm=algorithm, table=table, sizes={table: self._size(table)}, note=note)

    def _probe(self, statement: str, match: re.Match[str], table: str) -> tuple[str | None, str | None]:
        start, end = match.span(1)
        twin = statement[:start] + f"`{_PROBE}`" + statement[end:]
        separator = "," if _ALTER.match(statement) else ""
        try:
            self._run(f"DROP TABLE IF EXISTS `{_PROBE}`")
            self._run(f"CREATE TABLE `{_PROBE}` LIKE `{table}`")
        except Exception as exc:
            return None, f"not probed: {_error_text(exc)}"
        try:
            for algorithm in ("INSTANT", "INPLACE"):
                try:
                    self._run(f"{twin.rstrip().rstrip(';')}{separator} ALGORITHM={algorithm}")
                    return algorithm, None
                except Exception as exc:
                    if _error_code(exc) not in _NOT_SUPPORTED:
                        return None, f"not probed: {_error_text(exc)}"
            return "COPY", None
        finally:
            self._run(f"DROP TABLE IF EXISTS `{_PROBE}`")

    def _run(self, sql: str) -> None:
        with self._cursor() as cursor:
            cursor.execute(sql)

    def _size(self, table: str) -> Size:
        schema = self.sizes_from or self._rows("SELECT DATABASE()")[0][0]
        found = self._rows(
            "SELECT TABLE_ROWS, DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (schema, table),
        )
        if not found:
            return Size(None)
        estimate, total = found[0]
        if estimate is None or estimate < EXACT_BELOW:
            return Size(self._rows(f"SELECT count(*) FROM `{schema}`.`{table}`")[0][0], total)
        return Size(int(estimate), total, exact=False)


def _error_code(exc: BaseException) -> int | None:
    """The server's error number of a PyMySQL error (``args[0]``)."""
    args: tuple[Any, ...] = tuple(exc.args)
    return args[0] if args and isinstance(args[0], int) else None


def _error_text(exc: BaseException) -> str:
    args: tuple[Any, ...] = tuple(exc.args)
    return " ".join(str(args[1] if len(args) > 1 else exc).split())


# =========================================================================== words


def _count(n: int) -> str:
    for limit, unit in ((1_000_000_000, "G"), (1_000_000, "M")):
        if n >= limit:
            return f"{n / limit:.1f} {unit}"
    return f"{n:,}"


def _bytes(n: int) -> str:
    for limit, unit in ((1 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "kB")):
        if n >= limit:
            return f"{n / limit:.0f} {unit}"
    return f"{n} bytes"
