"""The data-loss guard: what an ``upgrade`` or ``downgrade`` would destroy, counted before it runs.

The guard is an ``inspect`` hook of :func:`migmagic.run.migrate`: it sees the
:class:`~migmagic.run.Plan` under the migration lock, before any step runs, on
the connection that will run it. Each planned revision's ``op`` calls are
recorded without running them (:func:`migmagic.adapter.record_operations`,
batch blocks included), then counted on the database:

* ``drop_table``: the table's rows;
* ``drop_column``: the column's non-NULL values;
* ``alter_column(nullable=False)``: the column's NULLs;
* ``alter_column(type_=String(n))``: the values longer than ``n`` characters.

The plan is followed step by step: a table or column that an earlier step of
the same plan creates (or a table it empties by dropping) has nothing at stake,
and a renamed one is counted under the name it has in the database now. If
anything is at stake the command is refused with
:class:`~migmagic.errors.DataLossRefused` and nothing runs; ``accept_data_loss``
skips the guard.

Revisions the recorder cannot follow (``op.execute``, ``op.bulk_insert``,
``op.get_bind()``, a custom operation, an exception while recorded) are not
analysed: they are named in a note, and do not block. The counts are read in the
command's own transaction (on PostgreSQL and SQLite each inside a savepoint), so
they see what the steps would see.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import display, kinds
from .errors import DataLossRefused, Fix

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .adapter import RecordedOp, RecordedStep
    from .run import Plan

COLUMNS = ["revision", "operation", "table", "column", "rows at stake"]

TableKey = tuple["str | None", str]


@dataclass(frozen=True)
class Finding:
    """Data one operation of one revision would destroy: ``rows`` rows (or values) of ``table`` (``column``)."""

    revision: str
    operation: str  # "drop table" | "drop column" | "make NOT NULL" | "narrow to VARCHAR(n)"
    table: str
    column: str | None
    rows: int

    def words(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else f"table {self.table}"
        if self.operation == "drop table":
            return f"{self.rows} row{_s(self.rows)} of {where}"
        if self.operation == "drop column":
            return f"{self.rows} value{_s(self.rows)} of {where}"
        if self.operation == "make NOT NULL":
            return f"{self.rows} NULL{_s(self.rows)} in {where}, made NOT NULL"
        return f"{self.rows} value{_s(self.rows)} of {where} too long for {self.operation.removeprefix('narrow to ')}"


def _s(n: int) -> str:
    return "" if n == 1 else "s"


@dataclass
class Analysis:
    """What a plan would destroy (``findings``) and the steps the guard could not follow (``unanalysed``)."""

    findings: list[Finding] = field(default_factory=list)
    unanalysed: list[str] = field(default_factory=list)  # one sentence per step

    def table(self) -> Any:
        rows = [(f.revision, f.operation, f.table, f.column, f.rows) for f in self.findings]
        return display.table(rows, COLUMNS)


class Guard:
    """The ``inspect`` hook: refuses a plan that would destroy data; keeps notes on what it could not analyse."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.analysis: Analysis | None = None

    def __call__(self, plan: Plan, conn: Connection) -> None:
        if plan.command not in ("upgrade", "downgrade") or not plan.steps:
            return
        self.analysis = analysis = analyse(plan, conn)
        if analysis.findings:
            raise refusal(plan, analysis)
        self.notes += analysis.unanalysed


def refusal(plan: Plan, analysis: Analysis) -> DataLossRefused:
    """The error that refuses ``plan``: what is at stake, and the two ways forward."""
    found = analysis.findings
    listed = "; ".join(f.words() for f in found[:3]) + (f"; and {len(found) - 3} more" if len(found) > 3 else "")
    return DataLossRefused(
        f"The {plan.command} to {plan.target} would destroy data: {listed}. Nothing was run.",
        command=plan.command, target=plan.target, findings=analysis.table(), unanalysed=analysis.unanalysed,
        hint="See exactly what it changes with {0}, or run it anyway with {1}.",
        fixes=[
            Fix(plan.command, (plan.target,), (("dry_run", True),)),
            Fix(plan.command, (plan.target,), (("accept_data_loss", True),)),
        ],
    )


_MAY_DESTROY = re.compile(r"\b(drop_table|drop_column|alter_column|execute|bulk_insert|get_bind|get_context|run_async)\b")


def _may_destroy(plan: Plan) -> bool:
    """Whether any step's function so much as names an operation that can destroy data, or data access.

    A plan that does not (a fresh database brought to head by create_table and
    add_column, say) has nothing at stake: nothing is recorded or counted.
    """
    return any(step.revision in plan.scripts and _names_destruction(plan.scripts.info(step.revision).source, step.direction) for step in plan.steps)


@functools.lru_cache(maxsize=4096)
def _names_destruction(source: str, direction: str) -> bool:
    """Whether the ``direction`` function of ``source`` names an operation that can destroy data (or is not found)."""
    function = re.search(rf"^(?:async\s+)?def {direction}\b.*?(?=^[^\s#]|\Z)", source, re.MULTILINE | re.DOTALL)
    return function is None or _MAY_DESTROY.search(function.group(0)) is not None


def analyse(plan: Plan, conn: Connection) -> Analysis:
    """Record the plan's operations and count, on ``conn``, what they would destroy."""
    from .adapter import record_operations

    if not _may_destroy(plan):
        return Analysis()

    recorded = record_operations(plan.scripts, plan.steps, conn.dialect.name)
    counter = _Counter(conn)
    out = Analysis()
    for step in recorded:
        if step.unfollowed:
            out.unanalysed.append(_not_analysed(plan, step, step.unfollowed))
            continue
        for op in step.ops:
            try:
                found = counter.follow(step.revision, op)
            except _CannotCount as exc:
                out.unanalysed.append(_not_analysed(plan, step, str(exc)))
                break
            out.findings += [f for f in found if f.rows > 0]
    return out


def _not_analysed(plan: Plan, step: RecordedStep, why: str) -> str:
    message = plan.scripts.info(step.revision).message
    return f"The data-loss guard did not analyse the {step.direction} of {step.revision} ({message!r}): {why}."


class _CannotCount(Exception):
    pass


class _Counter:
    """The database's tables and columns as the plan changes them, mapped back to what is there now.

    ``tables`` maps a table as the plan names it to the table in the database
    it is (None: made by the plan, nothing at stake); ``columns`` does the same
    for columns. Names not mapped are the database's own.
    """

    def __init__(self, conn: Connection) -> None:
        import sqlalchemy as sa

        self.conn = conn
        self.inspector = sa.inspect(conn)
        self.tables: dict[TableKey, TableKey | None] = {}
        self.columns: dict[tuple[TableKey, str], str | None] = {}

    # ---- where a name of the plan is in the database now

    def real_table(self, key: TableKey) -> TableKey | None:
        real = self.tables.get(key, key)
        if real is None or not self.inspector.has_table(real[1], schema=real[0]):
            return None
        return real

    def real_column(self, key: TableKey, column: str) -> tuple[TableKey, str] | None:
        table = self.real_table(key)
        if table is None:
            return None
        real = self.columns.get((key, column), column)
        if real is None or real not in {c["name"] for c in self.inspector.get_columns(table[1], schema=table[0])}:
            return None
        return table, real

    # ---- one operation

    def follow(self, revision: str, op: RecordedOp) -> list[Finding]:
        """Count what ``op`` destroys, then update the names as ``op`` changes them."""
        if op.table is None:
            return []
        key: TableKey = (op.schema, op.table)
        shown = f"{op.schema}.{op.table}" if op.schema else op.table
        found: list[Finding] = []
        if op.name == "create_table":
            self.tables[key] = None
            self._forget_columns(key)
        elif op.name == "drop_table":
            real = self.real_table(key)
            if real is not None:
                found.append(Finding(revision, "drop table", shown, None, self._count(real, None, "rows")))
            self.tables[key] = None
            self._forget_columns(key)
        elif op.name == "rename_table" and op.new_name:
            new: TableKey = (op.schema, op.new_name)
            self.tables[new] = self.tables.get(key, key)
            self.tables[key] = None
            for (table, column), real_column in list(self.columns.items()):
                if table == key:
                    self.columns[(new, column)] = real_column
            self._forget_columns(key)
        elif op.name == "add_column" and op.column:
            self.columns[(key, op.column)] = None
        elif op.name == "drop_column" and op.column:
            real_col = self.real_column(key, op.column)
            if real_col is not None:
                found.append(Finding(revision, "drop column", shown, op.column, self._count(real_col[0], real_col[1], "values")))
            self.columns[(key, op.column)] = None
        elif op.name == "alter_column" and op.column:
            found += self._alter(revision, key, shown, op)
            if op.new_name and op.new_name != op.column:
                self.columns[(key, op.new_name)] = self.columns.get((key, op.column), op.column)
                self.columns[(key, op.column)] = None
        return found

    def _alter(self, revision: str, key: TableKey, shown: str, op: RecordedOp) -> list[Finding]:
        assert op.column is not None
        real_col = self.real_column(key, op.column)
        if real_col is None:
            return []
        found: list[Finding] = []
        if op.nullable is False:
            found.append(Finding(revision, "make NOT NULL", shown, op.column, self._count(*real_col, "nulls")))
        if op.length is not None:
            longer = self._count(*real_col, "longer", op.length)
            found.append(Finding(revision, f"narrow to {op.type or f'VARCHAR({op.length})'}", shown, op.column, longer))
        return found

    def _forget_columns(self, key: TableKey) -> None:
        for table, column in [k for k in self.columns if k[0] == key]:
            del self.columns[(table, column)]

    # ---- counting

    def _count(self, table: TableKey, column: str | None, what: str, length: int = 0) -> int:
        import sqlalchemy as sa

        col: Any = sa.column(column) if column else None
        t = sa.table(table[1], *([col] if col is not None else []), schema=table[0])
        query = sa.select(sa.func.count()).select_from(t)
        if what == "values":
            query = sa.select(sa.func.count(col)).select_from(t)
        elif what == "nulls":
            query = query.where(col.is_(None))
        elif what == "longer":
            chars = getattr(sa.func, kinds.for_dialect(self.conn.dialect.name).string_length)  # characters, not bytes
            query = query.where(chars(sa.cast(col, sa.Text())) > length)
        try:
            with self.conn.begin_nested():
                return int(self.conn.execute(query).scalar() or 0)
        except Exception as exc:
            what_col = f"{table[1]}.{column}" if column else table[1]
            raise _CannotCount(f"counting {what} of {what_col} failed ({type(exc).__name__})") from None
