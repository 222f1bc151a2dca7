"""The journal: where a step stands while it runs, on databases that commit DDL themselves.

MySQL/MariaDB commit every DDL statement on their own, so a revision that fails
or is killed half-way leaves part of its work behind. Table ``migmagic_journal``
says how far it got:

* a ``step`` row (revision, direction, the source's checksum), committed before
  the step's first statement runs;
* one ``sql`` row per statement that changed something (its position in the
  step, the SHA-256 of its text, the first characters of the text), written
  right after the statement on the same connection. After a statement that
  commits itself (DDL) the row is committed at once; after a data statement it
  stays in that statement's transaction, and commits (or rolls back) with it.
* When the step completes, its rows are deleted in the transaction that updates
  the version table and writes the ledger row: a finished step leaves nothing.

So rows in the journal are a step that started and never finished: a
*half-applied* revision, with the statements that committed. A failure that
committed nothing leaves nothing either (the ``step`` row is removed).

Reads and session statements (``SELECT``, ``SHOW``, ``SET``...) are neither
recorded nor skipped: they change nothing and are needed again on resume. The
version table's own updates are Alembic's, not the revision's, and are left out.

:class:`Recorder` does the recording, and on ``resume`` the skipping: each
recorded statement, when the revision's code emits it again, is checked against
its recorded hash and replaced by ``DO 0``; a different statement stops the
resume before it runs. SQLite and PostgreSQL roll a failed command back whole:
they have no journal (the table is never created there).

Journal rows are written with the DBAPI connection directly (they must not be
seen by the statement listener, and must commit without ending SQLAlchemy's
transaction); the text columns hold ASCII only, so any character set stores them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .errors import Fix, ResumeRefused, RevisionHalfApplied

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection

TABLE_NAME = "migmagic_journal"
PREFIX = 120  # characters of a statement's text kept with its hash

_table: Table | None = None


def table() -> Table:
    """The journal's SQLAlchemy table (built on first use)."""
    global _table
    if _table is None:
        import sqlalchemy as sa

        _table = sa.Table(
            TABLE_NAME,
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("revision", sa.String(64), nullable=False),
            sa.Column("direction", sa.String(16), nullable=False),
            sa.Column("kind", sa.String(8), nullable=False),  # "step" | "sql"
            sa.Column("position", sa.Integer),  # the statement's place in the step, from 0
            sa.Column("checksum", sa.String(64)),  # step: the source's; sql: the statement's
            sa.Column("text", sa.String(255)),  # sql: the statement's first characters, ASCII
            sa.Column("at", sa.DateTime, nullable=False),
        )
    return _table


def ensure(conn: Connection) -> None:
    """Create the journal table if the database has none (only where DDL commits itself)."""
    table().create(conn, checkfirst=True)


def keeps_journal(conn: Connection) -> bool:
    """Whether this database needs a journal: it commits DDL itself."""
    return conn.dialect.name in ("mysql", "mariadb")


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Statement:
    """A statement of a half-applied step that committed."""

    position: int
    checksum: str
    text: str


@dataclass(frozen=True)
class HalfApplied:
    """A step that started and never finished: what committed of it."""

    revision: str
    direction: str
    checksum: str | None
    """The revision source's checksum when the step started."""
    started_at: datetime
    statements: list[Statement] = field(default_factory=list)
    message: str = ""

    @property
    def committed(self) -> str:
        """``1 committed statement`` / ``2 committed statements`` / ``no committed statement``."""
        n = len(self.statements)
        return f"{n or 'no'} committed statement{'s' if n != 1 else ''}"

    @property
    def summary(self) -> str:
        """``abc1 (upgrade stopped after 1 committed statement)``."""
        return f"{self.revision} ({self.direction} stopped after {self.committed})"

    def sentence(self, *, short: bool = False) -> str:
        """``Revision abc1 ('msg') is half-applied: its upgrade stopped after 1 committed statement (CREATE ...)``.

        ``short``: ``abc1 is half-applied: 1 statement committed (CREATE ...)``.
        """
        shown = "; ".join(s.text for s in self.statements[:3]) + ("; ..." if len(self.statements) > 3 else "")
        n = len(self.statements)
        if short:
            return f"{self.revision} is half-applied: {n} statement{'s' if n != 1 else ''} committed ({shown})"
        return f"Revision {self.revision} ({self.message!r}) is half-applied: its {self.direction} stopped after {self.committed} ({shown})"


def half_applied(conn: Connection, messages: dict[str, str] | None = None) -> list[HalfApplied]:
    """The steps the journal holds, oldest first (none on SQLite and PostgreSQL)."""
    import sqlalchemy as sa

    if not keeps_journal(conn) or not sa.inspect(conn).has_table(TABLE_NAME):
        return []
    t = table()
    steps: dict[tuple[str, str], HalfApplied] = {}
    for rev, direction, kind, position, checksum, text, at in conn.execute(
        sa.select(t.c.revision, t.c.direction, t.c.kind, t.c.position, t.c.checksum, t.c.text, t.c.at).order_by(t.c.id)
    ):
        key = (rev, direction)
        if kind == "step":
            steps[key] = HalfApplied(rev, direction, checksum, at, [], (messages or {}).get(rev, ""))
        elif key in steps:
            steps[key].statements.append(Statement(position, checksum, text))
    # A step with no statement recorded committed nothing (a kill between a DDL statement and its row's
    # commit, a millisecond, is the exception): it does not block, and its row goes when the step next runs.
    return [h for h in steps.values() if h.statements]


def refusal(half: HalfApplied) -> RevisionHalfApplied:
    """The error ``upgrade``/``downgrade`` raise while ``half`` is in the journal."""
    return RevisionHalfApplied(
        half.sentence() + ".",
        revision=half.revision,
        direction=half.direction,
        committed=[s.text for s in half.statements],
        hint="Nothing was run. Finish it with {0}, or put the database right by hand and record it with {1} or {2}.",
        fixes=ways_out(half.revision),
    )


def ways_out(revision: str) -> list[Fix]:
    """``resume``, ``repair REV --applied``, ``repair REV --not-applied``."""
    return [Fix("resume"), Fix("repair", (revision,), (("applied", True),)), Fix("repair", (revision,), (("applied", False),))]


# --------------------------------------------------------------------------- statements


_WORD = re.compile(r"\s*(?:/\*.*?\*/\s*|--[^\n]*\n\s*)*([A-Za-z]+)", re.S)
_UNCHANGING = {"select", "show", "describe", "desc", "explain", "set", "do", "use", "help", "handler"}
_DATA = {"insert", "update", "delete", "replace", "load", "call", "with", "values", "table"}
_VERSION_TABLE = re.compile(r"^\s*(insert\s+into|update|delete\s+from)\s+[`\"]?alembic_version\b", re.I)


def kind_of(statement: str) -> str:
    """``read`` (changes nothing: not recorded, never skipped), ``data`` (in the transaction) or ``ddl`` (commits itself)."""
    m = _WORD.match(statement)
    word = m.group(1).lower() if m else ""
    if word == "with" and not re.search(r"\b(insert|update|delete|replace)\b", statement, re.I):
        return "read"
    if word in _UNCHANGING:
        return "read"
    return "data" if word in _DATA else "ddl"


def normalized(statement: str) -> str:
    """The statement's text as hashed: whitespace runs folded to one space, ends stripped."""
    return " ".join(statement.split())


def statement_checksum(statement: str) -> str:
    return hashlib.sha256(normalized(statement).encode("utf-8")).hexdigest()


def ascii_text(text: str, limit: int = PREFIX) -> str:
    """``text`` cut at ``limit`` characters, non-ASCII characters escaped (``\\u6d3b``): storable in any character set."""
    return text[:limit].encode("ascii", "backslashreplace").decode("ascii")[:255]


# --------------------------------------------------------------------------- recording


class Recorder:
    """Records the steps run on one connection in the journal; on resume, skips what committed.

    :meth:`before` and :meth:`after` hear the connection's statements while a plan runs;
    :meth:`start` and :meth:`finish` bracket each step (:meth:`forget` once its
    ledger row committed); :meth:`abandon` is called when a step failed: a step
    that committed nothing leaves nothing, one that did is :attr:`stopped`.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.step: Any = None  # the step running (a migmagic.adapter.Step), None between steps
        self.position = 0  # statements of the running step seen so far (recorded or skipped)
        self.kept: list[Statement] = []  # ... that committed
        self._pending: list[Statement] = []  # ... data statements in the open transaction
        self.skip: list[Statement] = []  # resume: the statements that committed before
        self.stopped: HalfApplied | None = None  # what a failed step left in the journal
        self._resume: HalfApplied | None = None
        self._finished = False  # the step's own statements are done: what follows is bookkeeping

    # ---- resume

    def resuming(self, half: HalfApplied) -> None:
        """The next step is ``half`` again: skip the statements that committed, checking each is the same."""
        self._resume = half

    def _is_resumed(self, step: Any) -> bool:
        half = self._resume
        return half is not None and (step.revision, step.direction) == (half.revision, half.direction)

    # ---- the DBAPI connection, for rows the listener must not see

    def _raw(self, sql: str, params: Sequence[Any] = (), *, commit: bool = False) -> None:
        dbapi = self.conn.connection.dbapi_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        try:
            cursor.execute(sql, tuple(params))
        finally:
            cursor.close()
        if commit:
            dbapi.commit()

    def _insert(self, kind: str, position: int | None, checksum: str | None, text: str | None, *, commit: bool) -> None:
        step = self.step
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        self._raw(
            f"INSERT INTO {TABLE_NAME} (revision, direction, kind, position, checksum, text, at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (step.revision, step.direction, kind, position, checksum, text, now),
            commit=commit,
        )

    def _forget_rows(self, step: Any, *, commit: bool) -> None:
        self._raw(f"DELETE FROM {TABLE_NAME} WHERE revision = %s AND direction = %s", (step.revision, step.direction), commit=commit)

    # ---- the step's brackets

    def start(self, step: Any) -> None:
        """Before ``step``'s first statement: its ``step`` row, committed (unless resuming it: that row is there)."""
        self.step = None
        self.stopped = None
        if step.direction not in ("upgrade", "downgrade"):
            return  # a stamp runs no statement
        self.step = step
        self._finished = False
        self.position = 0
        self._pending = []
        if self._is_resumed(step):
            assert self._resume is not None
            self.skip = list(self._resume.statements)
        else:
            self.skip = []
            self._insert("step", None, step.checksum, None, commit=True)
        self.kept = []

    def finish(self, step: Any) -> str | None:
        """After ``step``'s version-table update, in its transaction: the journal forgets it.

        Returns what the ledger row should say about how the step ran (a resume), or None.
        """
        if self.step is None:
            return None
        if self.position < len(self.skip):
            raise self._refused(self.skip[self.position], None)
        self._forget_rows(step, commit=False)
        self._finished = True
        if self._is_resumed(step):
            n = len(self.skip)
            return f"resumed: {n} statement{'s' if n != 1 else ''} had committed before"
        return None

    def forget(self) -> None:
        """The step's ledger row and version-table update committed (with the journal's forgetting)."""
        self.step = None

    def abandon(self) -> None:
        """The running step failed, the process lives: say what it left; if it committed nothing, leave nothing."""
        step, self.step = self.step, None
        if step is None:
            return
        kept = [*self.skip, *self.kept]
        if kept:
            self.stopped = HalfApplied(step.revision, step.direction, step.checksum, datetime.now(), kept, step.message)
            return
        dbapi = self.conn.connection.dbapi_connection
        assert dbapi is not None
        dbapi.rollback()  # the data statements of the step, and their rows
        self.step = step
        try:
            self._forget_rows(step, commit=True)
        finally:
            self.step = None

    # ---- the statements, heard through the execution's tap (migmagic.run.Tap)

    def _counts(self, statement: str) -> bool:
        return self.step is not None and not self._finished and not _VERSION_TABLE.match(statement) and kind_of(statement) != "read"

    def before(self, statement: str, parameters: Any, context: Any, executemany: bool) -> tuple[str, Any] | None:
        """A statement about to run: on resume, one that committed before is checked and skipped (``DO 0`` sent instead)."""
        if not self._counts(statement) or self.position >= len(self.skip):
            return None
        recorded = self.skip[self.position]
        if statement_checksum(statement) != recorded.checksum:
            raise self._refused(recorded, statement)
        if context is not None:
            context._migmagic_skipped = True
        self.position += 1
        return "DO 0", ([{}] * len(parameters) if executemany else {})

    def after(self, statement: str, context: Any) -> None:
        """A statement done: recorded in the journal (committed with it, when it is DDL)."""
        if not self._counts(statement) or getattr(context, "_migmagic_skipped", False):
            return
        ddl = kind_of(statement) == "ddl"
        done = Statement(self.position, statement_checksum(statement), ascii_text(normalized(statement)))
        self._insert("sql", done.position, done.checksum, done.text, commit=ddl)
        self.position += 1
        self._pending.append(done)
        if ddl:  # it committed itself, and every data statement before it
            self.kept += self._pending
            self._pending = []

    def _refused(self, recorded: Statement, now: str | None) -> ResumeRefused:
        step = self.step
        rev = step.revision if step is not None else ""
        message = step.message if step is not None else ""
        now_text = ascii_text(normalized(now)) if now is not None else "(nothing: the code now emits fewer statements)"
        return ResumeRefused(
            f"Cannot resume {rev} ({message!r}): its statement {recorded.position + 1} is not the one that committed. "
            f"committed: {recorded.text}; now: {now_text}.",
            revision=rev,
            position=recorded.position,
            recorded=recorded.text,
            now=now_text,
            hint="Nothing was run. Put the file back as it was when it ran, or finish by hand and record it with {0} or {1}.",
            fixes=ways_out(rev)[1:],
        )
