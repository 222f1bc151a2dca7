"""The data-loss guard: what an ``upgrade`` or ``downgrade`` would destroy, counted before it runs.

The guard is an observer of a run (see :mod:`migmagic.observers` for the commands
that get it): it sees each :class:`~migmagic.run.Plan` under the migration lock,
before any step runs, on the connection that will run it. Each planned revision's ``op`` calls are
recorded without running them (:func:`migmagic.adapter.trace_operations`,
batch blocks included), then counted on the database:

* ``drop_table``: the table's rows;
* ``drop_column``: the column's non-NULL values;
* ``alter_column(nullable=False)``: the column's NULLs;
* ``alter_column(type_=String(n))``: the values longer than ``n`` characters.
* ``alter_column(type_=...)``: the values the new type would change (on PostgreSQL
  through ``postgresql_using=`` when given: that expression makes the new values).

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

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import display, kinds
from .errors import DataLossRefused, Fix
from .run import Observer

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .adapter import TracedOp, TracedStep
    from .run import Execution, Plan

COLUMNS = ["revision", "operation", "table", "column", "rows at stake"]

TableKey = tuple["str | None", str]


@dataclass(frozen=True)
class Finding:
    """Data one operation of one revision would destroy: ``rows`` rows (or values) of ``table`` (``column``)."""

    revision: str
    operation: str  # "drop table" | "drop column" | "make NOT NULL" | "narrow to VARCHAR(n)" | "convert to TYPE"
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
        if self.operation.startswith("convert to "):
            return f"{self.rows} value{_s(self.rows)} of {where} that {self.operation.removeprefix('convert to ')} would change"
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


class Guard(Observer):
    """The data-loss guard, as an observer of a run: refuses a plan that would destroy data; notes what it could not analyse."""

    def __init__(self, command: str | None = None) -> None:
        self.command = command  # the user's command when it is not the plan's own ("resume")
        self.notes: list[str] = []
        self.analysis: Analysis | None = None

    def planned(self, plan: Plan, ex: Execution) -> None:
        if plan.command not in ("upgrade", "downgrade") or not plan.steps:
            return
        self.analysis = analysis = analyse(plan, ex.conn)
        if analysis.findings:
            raise refusal(plan, analysis, self.command)
        self.notes += analysis.unanalysed


def refusal(plan: Plan, analysis: Analysis, command: str | None = None) -> DataLossRefused:
    """The error that refuses ``plan``: what is at stake, and the ways forward (``command``: the user's, when it is not the plan's)."""
    found = analysis.findings
    listed = "; ".join(f.words() for f in found[:3]) + (f"; and {len(found) - 3} more" if len(found) > 3 else "")
    if command == "resume":  # the rest of a half-applied step: no dry run of it, only the resume itself
        said, hint, fixes = "The resume of", "Run it anyway with {0}.", [Fix("resume", (), (("accept_data_loss", True),))]
    else:
        said, hint = "The", "See exactly what it changes with {0}, or run it anyway with {1}."
        fixes = [Fix(plan.command, (plan.target,), (("dry_run", True),)), Fix(plan.command, (plan.target,), (("accept_data_loss", True),))]
    return DataLossRefused(
        f"{said} {plan.command} to {plan.target} would destroy data: {listed}. Nothing was run.",
        command=command or plan.command, target=plan.target, findings=analysis.table(), unanalysed=analysis.unanalysed, at_stake=listed,
        hint=hint, fixes=fixes,
    )


def _may_destroy(plan: Plan) -> bool:
    """Whether any step's function may destroy data (see :attr:`migmagic.profile.Profile.may_destroy`).

    A plan none of whose functions names an operation that can destroy data, or
    reaches the data, or cannot be followed (a fresh database brought to head by
    create_table and add_column, say) has nothing at stake: nothing is recorded or counted.
    """
    from . import profile

    return any(
        step.revision in plan.scripts and profile.of(plan.scripts.info(step.revision).source, step.direction).may_destroy
        for step in plan.steps
    )


def analyse(plan: Plan, conn: Connection) -> Analysis:
    """Record the plan's operations and count, on ``conn``, what they would destroy."""
    from .adapter import trace_operations

    if not _may_destroy(plan):
        return Analysis()

    recorded = trace_operations(plan.scripts, plan.steps, conn.dialect.name)
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


def _not_analysed(plan: Plan, step: TracedStep, why: str) -> str:
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
        self.folds_case = conn.dialect.name in ("sqlite", "mysql", "mariadb")  # unquoted and quoted names alike
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
        if real is None:
            return None
        names = [c["name"] for c in self.inspector.get_columns(table[1], schema=table[0])]
        if real in names:
            return table, real
        if self.folds_case:  # SQLite and MySQL/MariaDB find "NOTE" as note: so does the guard
            same = [n for n in names if n.lower() == real.lower()]
            return (table, same[0]) if same else None
        return None

    def column_type(self, table: TableKey, column: str) -> Any:
        return next((c["type"] for c in self.inspector.get_columns(table[1], schema=table[0]) if c["name"] == column), None)

    # ---- one operation

    def follow(self, revision: str, op: TracedOp) -> list[Finding]:
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

    def _alter(self, revision: str, key: TableKey, shown: str, op: TracedOp) -> list[Finding]:
        assert op.column is not None
        real_col = self.real_column(key, op.column)
        if real_col is None:
            return []
        found: list[Finding] = []
        if op.nullable is False:
            found.append(Finding(revision, "make NOT NULL", shown, op.column, self._count(*real_col, "nulls")))
        if op.using is not None and op.new_type is not None:  # USING decides the values, not a cast of the old ones
            old = op.existing_type if op.existing_type is not None else self.column_type(*real_col)
            changed = self._count_converted(real_col[0], real_col[1], op.new_type, old, op.using)
            found.append(Finding(revision, f"convert to {op.type or op.new_type} USING {op.using}", shown, op.column, changed))
        elif op.length is not None:
            longer = self._count(*real_col, "longer", op.length)
            found.append(Finding(revision, f"narrow to {op.type or f'VARCHAR({op.length})'}", shown, op.column, longer))
        elif op.new_type is not None:
            old = op.existing_type if op.existing_type is not None else self.column_type(*real_col)
            changed = self._count_converted(real_col[0], real_col[1], op.new_type, old)
            found.append(Finding(revision, f"convert to {op.type or op.new_type}", shown, op.column, changed))
        return found

    def _count_converted(self, table: TableKey, column: str, new: Any, old: Any, using: str | None = None) -> int:
        """The values of ``column`` that do not come back the same through the new type (``'12x'`` as INTEGER is 12).

        ``using``: PostgreSQL's ``USING`` expression, which makes the new values instead of a cast of the old ones.
        """
        dialect = self.conn.dialect
        to_new, back = _cast_target(new, dialect), _cast_target(old, dialect) if old is not None else None
        if to_new is None or back is None:
            raise _CannotCount(f"the change of {table[1]}.{column} to {new} cannot be compared value by value here")
        q = dialect.identifier_preparer
        where = f"{q.quote_schema(table[0])}.{q.quote(table[1])}" if table[0] else q.quote(table[1])
        col = q.quote(column)
        again = f"CAST(CAST({col if using is None else f'({using})'} AS {to_new}) AS {back})"
        sql = f"SELECT count(*) FROM {where} WHERE {col} IS NOT NULL AND ({again} IS NULL OR {again} <> {col})"
        try:
            with self.conn.begin_nested():
                return int(self.conn.exec_driver_sql(sql.replace("%", "%%") if dialect.paramstyle in ("format", "pyformat") else sql).scalar() or 0)
        except Exception as exc:
            raise _CannotCount(f"converting {table[1]}.{column} to {to_new} fails on its values here ({type(exc).__name__}): the step itself would fail") from None

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


def _cast_target(type_: Any, dialect: Any) -> str | None:
    """``type_`` as the target of a ``CAST`` on ``dialect`` (MySQL/MariaDB cast to a few kinds only), or None."""
    import sqlalchemy as sa

    if isinstance(type_, type):
        type_ = type_()
    if dialect.name in ("mysql", "mariadb"):
        if isinstance(type_, sa.Boolean | sa.Integer):
            return "SIGNED"
        if isinstance(type_, sa.DateTime):
            return "DATETIME"
        if isinstance(type_, sa.Date):
            return "DATE"
        if isinstance(type_, sa.Time):
            return "TIME"
        if isinstance(type_, sa.Float):
            return "DOUBLE"
        if isinstance(type_, sa.Numeric):
            return f"DECIMAL({type_.precision or 10},{type_.scale or 0})"
        if isinstance(type_, sa.String):
            return f"CHAR({type_.length})" if type_.length else "CHAR"
        return None
    try:
        return str(type_.compile(dialect=dialect))
    except Exception:
        return None
