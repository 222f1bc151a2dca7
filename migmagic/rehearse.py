"""Rehearse before you touch the data: dry runs on a scratch copy, and ``verify`` on a throwaway database.

Both are :mod:`migmagic.run`'s one sequence (:func:`migmagic.run.migrate`: lock,
state, plan, verify, steps, ledger, commit) run against another
:class:`~migmagic.database.Database`; nothing here runs a revision any other way.

Where a dry run runs, per database (the real database is never written):

* SQLite: a copy made with the backup API (a plain file copy would miss commits
  still in the WAL) in a temporary folder, deleted after.
* PostgreSQL: the real database, in one transaction that is always rolled back.
  Exclusive locks the revisions take are held until then, and sequences they
  advance stay advanced. A revision that cannot run in a transaction
  (``autocommit_block``, ``CONCURRENTLY``) is refused before anything runs; a
  ``COMMIT`` is stopped before it reaches the server, and the transaction is
  checked to be the one opened before it is rolled back. ``copy=True``
  rehearses on a ``CREATE DATABASE ... TEMPLATE`` clone instead (no other
  session may be connected to the real database), dropped after.
* MySQL/MariaDB (DDL commits itself): a scratch database on the same server
  with every table's ``SHOW CREATE TABLE`` (foreign keys kept) and a sample of
  rows per table (``sample``, default 1,000; all rows with ``sample=None``); the
  version table and the ledger are copied whole. Dropped after.

``verify`` runs upgrade, downgrade and upgrade again, revision by revision, on
an empty throwaway database (SQLite: a temporary file; servers: a database
created for the run and dropped after) and compares schemas with
:mod:`migmagic.snapshot`.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import display, observers, profile, run, schema, snapshot
from .database import Database
from .errors import (
    Fix,
    InvalidTarget,
    MetadataError,
    MigrationFailed,
    RehearsalFailed,
    RehearsalRefused,
    UsageError,
    VerifyFailed,
)
from .review import table as review_table

if TYPE_CHECKING:

    from .adapter import Scripts, Step

SAMPLE = 1000
"""Rows copied per table to a MySQL/MariaDB scratch database, unless told otherwise."""


def sample_of(sample: int | None, full: bool) -> int | None:
    """Rows copied per table to a MySQL/MariaDB scratch database: ``sample`` (default :data:`SAMPLE`), or every row (None) with ``full``."""
    if full and sample is not None:
        raise UsageError("--sample and --full do not go together: --full copies every row.", hint="Give one.")
    if sample is not None and sample < 0:
        raise UsageError(f"--sample {sample}: a sample is a number of rows, 0 or more.")
    return None if full else SAMPLE if sample is None else sample


# =========================================================================== where it runs


@dataclass
class Target:
    """Where a rehearsal runs: the database, in words, and what that means."""

    db: Database
    how: str
    caveats: list[str] = field(default_factory=list)
    rollback: bool = False  # PostgreSQL's default: the real database, rolled back


@contextlib.contextmanager
def scratch_copy(db: Database, *, copy: bool = False, sample: int | None = SAMPLE) -> Iterator[Target]:
    """Where a dry run of ``db`` runs (see the module's docstring and :meth:`migmagic.kinds.Kind.scratch_copy`); cleaned up after.

    Scratch databases and copies that a killed rehearsal left behind are removed first.
    """
    db.remove_stale_scratch()
    with db.kind.scratch_copy(copy=copy, sample=sample) as scratch:
        yield Target(scratch.db, scratch.how, scratch.caveats, scratch.rollback)


@contextlib.contextmanager
def throwaway(db: Database) -> Iterator[Database]:
    """An empty database of ``db``'s kind, for ``verify``; deleted (dropped) after (:meth:`migmagic.kinds.Kind.throwaway`)."""
    db.remove_stale_scratch()
    with db.kind.throwaway() as scratch:
        yield scratch


# =========================================================================== capturing statements


_REFLECTION = re.compile(r"^\s*(pragma|show\b|describe\b|select\s+database\(\))|sqlite_master|sqlite_temp_master|pg_catalog\.|information_schema\.", re.I)


def statement_kind(statement: str, version_table: str = "alembic_version") -> str:
    """What a captured statement is: ``revision`` (the revision's own SQL), ``version table`` (``version_table``: the
    one the folder's env.py names), ``migmagic`` (its own bookkeeping: ledger, journal, the watch's table) or ``reflection``."""
    lowered = statement.lower()
    if _REFLECTION.search(statement):
        return "reflection"
    if "migmagic_" in lowered:
        return "migmagic"
    if "alembic_version" in lowered or re.search(rf"\b{re.escape(version_table.lower())}\b", lowered):
        return "reflection" if lowered.lstrip().startswith("select") else "version table"
    return "revision"


def _inlined(statement: str, parameters: Sequence[str]) -> str:
    """``statement`` with its positional placeholders (``?``, ``%s``) replaced by the quoted ``parameters``."""
    values = iter("'" + p.replace("'", "''") + "'" for p in parameters)
    return re.sub(r"\?|%s", lambda _: next(values, "?"), statement)


def _literal(value: Any, dialect: str) -> str | None:
    """``value`` as a SQL literal of ``dialect``; None when it has no form here."""
    import datetime
    import decimal

    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return ("TRUE" if value else "FALSE") if dialect == "postgresql" else ("1" if value else "0")
    if isinstance(value, int | decimal.Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, datetime.date | datetime.time):
        value = value.isoformat(sep=" ") if isinstance(value, datetime.datetime) else value.isoformat()
    if isinstance(value, str):
        if "\x00" in value:
            return None
        quoted = value.replace("'", "''")
        if dialect in ("mysql", "mariadb"):  # a backslash escapes there (PostgreSQL and SQLite: standard strings)
            quoted = quoted.replace("\\", "\\\\")
        return f"'{quoted}'"
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value).hex()
        return f"'\\x{data}'::bytea" if dialect == "postgresql" else f"X'{data}'"
    return None


_PLACEHOLDER = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|%%|%\((?P<name>[^)]+)\)s|%s|\?|:(?P<colon>[A-Za-z_]\w*)|\$(?P<dollar>\d+)"
)


def _inline(statement: str, parameters: Any, style: str, dialect: str) -> str | None:
    """``statement`` with the driver's placeholders (``paramstyle`` ``style``) replaced by literals; None if one has none."""
    positional = iter(parameters) if isinstance(parameters, tuple | list) else iter(())
    named = parameters if isinstance(parameters, Mapping) else {}
    missing = object()
    failed = False

    def replace(m: re.Match[str]) -> str:
        nonlocal failed
        token = m.group(0)
        if token[0] in "'\"":
            return token
        if token == "%%":
            return "%" if style in ("format", "pyformat") else token
        if token == "?" and style == "qmark" or token == "%s" and style in ("format", "pyformat"):
            value = next(positional, missing)
        elif m.group("name") is not None and style == "pyformat":
            value = named.get(m.group("name"), missing)
        elif m.group("colon") is not None and style == "named":
            value = named.get(m.group("colon"), missing)
        elif m.group("dollar") is not None and style == "numeric_dollar":  # asyncpg's $1, $2...
            index = int(m.group("dollar")) - 1
            value = parameters[index] if isinstance(parameters, tuple | list) and 0 <= index < len(parameters) else missing
        else:
            return token
        literal = None if value is missing else _literal(value, dialect)
        if literal is None:
            failed = True
            return token
        return literal

    result = _PLACEHOLDER.sub(replace, statement)
    return None if failed else result


class Capture(run.Observer):
    """A rehearsal's observer: the statements a plan's steps send, each with its step, heard through the execution's tap.

    Only statements sent while steps run are kept (not the lock, the state reads
    or the commit). Where the rehearsal is the real database's transaction rolled
    back (``rolled_back``, PostgreSQL's default), a revision that cannot run in it
    is refused before anything runs, a commit through the connection is stopped,
    and the transaction is checked to be the one it began in before it is rolled
    back (a ``COMMIT`` statement is refused by :mod:`migmagic.run` in every run).
    What the data-loss guard would find is counted on the copy, for the report.
    """

    hears_statements = True  # replay never runs under it: every statement is shown as Alembic sends it

    def __init__(self, rolled_back: bool = False, real_url: str = "", sizes_from: str | None = None) -> None:
        self.rolled_back = rolled_back
        self.real_url = real_url
        self.sizes_from = sizes_from  # MySQL/MariaDB: the real database, whose tables' sizes the review reports
        self.counted_on: Database | None = None  # a rehearsal on a sample: the real database, where the guard counts
        self._reviewer: Any = None
        self._conn: Any = None
        self.notes: list[str] = []
        self.plan: run.Plan | None = None
        self.statements: list[dict[str, Any]] = []
        self.done: list[Step] = []
        self.seen: dict[str, Any] = {}
        self._index: int | None = None
        self._listening: contextlib.ExitStack | None = None

    # ---- the moments of the run

    def planned(self, plan: run.Plan, ex: run.Execution) -> None:
        self.plan = plan
        self._conn = ex.conn
        if self.rolled_back:
            _refuse_outside_transaction(plan)
            self.seen["transaction"] = _transaction_id(ex.conn)
        if plan.command in ("upgrade", "downgrade") and plan.steps:  # what the guard would find, counted on the copy
            from . import guard

            # On a sample (MySQL/MariaDB), what is at stake is counted on the real tables (counts only), not on the sample.
            analysis = self.counted_on.read(lambda real: guard.analyse(plan, real)) if self.counted_on is not None else guard.analyse(plan, ex.conn)
            self.seen["findings"] = [f"{f.revision}: {f.words()}" for f in analysis.findings]
            self.seen["unanalysed"] = analysis.unanalysed  # notes, as the real run gives them: nothing known to be at stake
        if self._listening is None:
            from . import review

            self._reviewer = review.reviewer(ex.conn, sizes_from=self.sizes_from)
            self._listening = contextlib.ExitStack()
            self._listening.enter_context(ex.tap.subscribed(before=self._before, after=self._after, commit=self._commit if self.rolled_back else None))

    def step_started(self, step: Step) -> None:
        assert self.plan is not None
        self._index = self.plan.steps.index(step)

    def step_done(self, step: Step) -> None:
        self.done.append(step)
        self._index = None
        if self.rolled_back and self._conn is not None and _transaction_id(self._conn) != self.seen.get("transaction"):
            self._committed_by(step)

    def _committed_by(self, step: Step) -> None:
        """The real database's transaction ended during ``step`` (a commit through the driver): say exactly what was committed."""
        ran = [" ".join(s["statement"].split())[:160] for s in self.statements if s["kind"] == "revision"]
        listed = "; ".join(ran[:6]) + (f"; and {len(ran) - 6} more" if len(ran) > 6 else "")
        raise RehearsalRefused(
            f"Revision {step.revision} ({step.message!r}) ended the dry run's transaction itself (a commit through the driver), "
            f"so what ran up to then was committed to the real database, {self.real_url}: {len(ran)} statement{'s' if len(ran) != 1 else ''} "
            f"of {', '.join(dict.fromkeys(d.revision for d in self.done))}: {listed}.",
            revision=step.revision,
            hint="Check those tables on the real database; rehearse such revisions with {0}.",
            fixes=[Fix(step.direction, (step.revision,), options=(("dry_run", True), ("copy", True)))],
        )

    def finished(self, ex: run.Execution) -> None:
        if self._listening is not None:
            self._listening.close()
        if self.rolled_back:
            _still_in_transaction(ex, self.seen.get("transaction"))
        self.seen["heads"] = ex.heads()
        skip = _own_version_table(self.plan.scripts if self.plan is not None else None)
        self.seen["snapshot"], self.seen["counts"] = snapshot.take(ex.conn, skip), snapshot.row_counts(ex.conn, skip)
        self.seen["described"] = schema.describe(ex.conn, skip)

    # ---- the statements

    def _before(self, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if self._index is None or self.plan is None:
            return
        step = self.plan.steps[self._index]
        params = None if not parameters else repr(parameters)[:200]
        kind = statement_kind(statement, self.plan.scripts.environment.version_table_name)
        if kind == "version table" and isinstance(parameters, tuple | list) and all(isinstance(p, str) for p in parameters):
            statement, params = _inlined(statement, parameters), None  # revision ids: shown as the literal script would
        self.statements.append({
            "step": self._index + 1, "revision": step.revision, "kind": kind, "statement": statement.strip(), "parameters": params,
            "values": (parameters, context.dialect.paramstyle, context.dialect.name, executemany) if params and context is not None else None,
        })
        if self._reviewer is not None and kind == "revision":
            self._reviewer.before(statement)

    def _after(self, statement: str, context: Any) -> None:
        if self._index is not None and self._reviewer is not None and self.plan is not None and statement_kind(statement, self.plan.scripts.environment.version_table_name) == "revision":
            self._reviewer.after(statement)

    def _commit(self) -> None:
        if self._index is not None and self.plan is not None:
            self._refuse(self.plan.steps[self._index], "commits the transaction")

    def _refuse(self, step: Step, what: str) -> None:
        raise RehearsalRefused(
            f"Revision {step.revision} ({step.message!r}) {what}: a dry run in a transaction that is rolled back cannot run it. It was stopped before it reached the database.",
            revision=step.revision, hint="Rehearse on a clone instead ({0}). Nothing was committed.",
            fixes=[Fix(step.direction, (step.revision,), options=(("dry_run", True), ("copy", True)))],
        )

    def review(self) -> Any:
        """What each statement locked, rewrote or copied (:mod:`migmagic.review`), as a table; None before the plan ran."""
        return review_table(self._reviewer.reviews) if self._reviewer is not None else None

    def frame(self) -> Any:
        # What the plan sends: not Alembic's reads, nor migmagic's own bookkeeping (which a real run sends as well, on every database).
        rows = [{**s, "statement": " ".join(s["statement"].split())} for s in self.statements if s["kind"] not in ("reflection", "migmagic")]
        return display.table(rows, ["step", "revision", "kind", "statement", "parameters"])

    def script(self) -> str:
        """The revisions' statements and the version-table updates, as a script that runs as it reads.

        A parameterised statement gets its values written in as SQL literals (an
        ``executemany`` becomes one statement per row). A value that has no
        literal form here (a type migmagic does not know) is never left as a
        placeholder the database would bind NULL to: the statement is commented
        out and the script's first line says it is not a runnable script.
        """
        out: list[str] = []
        unrunnable: list[str] = []
        for s in self.statements:
            if s["kind"].split(" (")[0] not in ("revision", "version table"):
                continue
            statement = s["statement"].rstrip().rstrip(";")
            if s.get("values") is None:
                out.append(f"{statement};\n\n")
                continue
            parameters, style, dialect, many = s["values"]
            inlined = [_inline(statement, p, style, dialect) for p in (parameters if many else [parameters])]
            if all(i is not None for i in inlined):
                out.append("".join(f"{i};\n" for i in inlined if i is not None) + "\n")
            else:
                unrunnable.append(f"step {s['step']} ({s['revision']})")
                commented = "\n".join(f"-- {line}" for line in statement.splitlines())
                out.append(f"-- NOT RUN: its parameters have no SQL literal form: {s['parameters']}\n{commented};\n\n")
        if unrunnable:
            out.insert(0, f"-- Not a runnable script: statements of {', '.join(unrunnable)} hold values that cannot be written as SQL; they are commented out.\n\n")
        return "".join(out)


_EXECUTABLE_COMMENT = re.compile(r"/\*M?!\d*")
_COMMENT = re.compile(r"/\*.*?\*/|(?:--\s|#)[^\n]*", re.DOTALL)


class StaysOnTheScratch(run.Observer):
    """A rehearsal on a scratch database never reaches the real one (``real``) by its name.

    On PostgreSQL (``schemas=False``) only ``DATABASE app`` names it (``ALTER``, ``COMMENT ON``,
    ``GRANT ... ON``). On MySQL/MariaDB, where a schema is a database:

    Before anything runs, a revision whose traced operations name the real database
    (``schema="app"``, as autogenerate writes for models with a schema) is refused;
    while it runs, any statement that names the real database (``app.t``, ``ALTER DATABASE
    app``) or moves the connection with ``USE`` is stopped before it reaches the server (the
    revision's own SQL, a helper's, an untraced one's; what ``/*! ... */`` holds included).
    """

    hears_statements = True

    def __init__(self, real: str, *, schemas: bool = True) -> None:
        self.real = real
        self.schemas = schemas  # MySQL/MariaDB: a schema is a database (PostgreSQL: only DATABASE names it)
        self.notes: list[str] = []
        quote = "`" if schemas else '"'
        name = rf"(?:(?<![\w${quote}]){re.escape(real)}(?![\w$])|{quote}{re.escape(real)}{quote})"
        self._names = re.compile(rf"{name}`?\s*\.") if schemas else None
        # USE moves the rest of the rehearsal (the version table too) onto that database; ALTER DATABASE app changes the real one.
        self._leaves = re.compile(
            rf"(?:^|;)\s*use\b|\b(?:database|schema)\s+(?:if\s+(?:not\s+)?exists\s+)?{name}", re.IGNORECASE
        )
        self._listening: contextlib.ExitStack | None = None
        self._tap: Any = None
        self._step: Step | None = None

    def planned(self, plan: run.Plan, ex: run.Execution) -> None:
        from .adapter import trace_operations

        for traced in trace_operations(plan.scripts, plan.steps, ex.conn.dialect.name) if self.schemas else ():
            if any(op.schema == self.real for op in traced.ops):
                self._refuse(traced.revision, traced.direction, plan.scripts.info(traced.revision).message, f"schema={self.real!r}")
        if self._tap is not ex.tap:  # each run (verify makes several) has a tap of its own
            self._listening = contextlib.ExitStack()
            self._listening.enter_context(ex.tap.subscribed(before=self._before))
            self._tap = ex.tap

    def step_started(self, step: Step) -> None:
        self._step = step

    def step_done(self, step: Step) -> None:
        self._step = None

    def finished(self, ex: run.Execution) -> None:
        if self._listening is not None:
            self._listening.close()

    def _before(self, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if self._step is None:
            return
        run = _EXECUTABLE_COMMENT.sub(" ", statement)  # MySQL runs what /*! ... */ holds
        if (self._names is not None and self._names.search(run)) or self._leaves.search(_COMMENT.sub(" ", run)):
            self._refuse(self._step.revision, self._step.direction, self._step.message, " ".join(statement.split())[:120])

    def _refuse(self, revision: str, direction: str, message: str, what: str) -> None:
        if self.schemas:
            why = "on MySQL/MariaDB a schema is a database, so a rehearsal on a scratch copy would change the real one"
            hint = f"Nothing ran on {self.real}. Drop the schema= from the revision (its tables are in the database it runs on), then rehearse."
        else:
            why = "the rehearsal runs on another database of the same server, and that statement would change the real one"
            hint = f"Nothing ran on {self.real}. Rehearse the revisions before it, or run it for real when you mean to."
        raise RehearsalRefused(f"Revision {revision} ({message!r}) names the database {self.real} itself in its {direction} ({what}): {why}.", revision=revision, hint=hint)


def _scratch_only(db: Database) -> StaysOnTheScratch | None:
    """Where a revision could reach the real database ``db`` from a scratch database by its name: the observer that stops it.

    MySQL/MariaDB: any name (a schema is a database); PostgreSQL: ``ALTER``/``COMMENT ON``/``GRANT ... ON
    DATABASE app``, which work from any database of the server. SQLite has no server.
    """
    real = db.kind.real_name()
    if not real:
        return None
    return StaysOnTheScratch(real, schemas=db.kind.schemas_are_databases)


# =========================================================================== dry runs


def _refuse_outside_transaction(plan: run.Plan) -> None:
    """Refuse, before anything runs, a revision that would commit a rolled-back rehearsal."""
    for step in plan.steps:
        if step.revision not in plan.scripts:
            continue
        if profile.of(plan.scripts.info(step.revision).source, step.direction).needs_autocommit:
            what = "autocommit_block() or CONCURRENTLY"
            raise RehearsalRefused(
                f"Revision {step.revision} ({step.message!r}) uses {what}, which cannot run inside the transaction a dry run rolls back: "
                "rehearsing it there would commit it.",
                revision=step.revision, hint="Rehearse on a clone instead: {0}. Nothing ran.",
                fixes=[Fix(plan.command, (plan.target,), options=(("dry_run", True), ("copy", True)))],
            )


def _transaction_id(conn: Any) -> Any:
    from sqlalchemy import text

    return conn.execute(text("SELECT txid_current()")).scalar()


def _still_in_transaction(ex: run.Execution, began: Any) -> None:
    """Safety net: the transaction to be rolled back is still the one the plan began in (nothing committed through the driver)."""
    if _transaction_id(ex.conn) != began:
        raise RehearsalRefused(
            f"The dry run's transaction on {ex.db.masked_url} ended while the plan ran (a revision committed it): what ran before that was committed.",
            hint="Check the database; rehearse such revisions with --copy.",
        )


def _own_version_table(scripts: Scripts | None) -> tuple[str, ...]:
    """The version table the folder's own env.py names, when not Alembic's ``alembic_version`` (bookkeeping, as that one is)."""
    name = scripts.environment.version_table_name if scripts is not None else "alembic_version"
    return () if name == "alembic_version" else (name,)


def _read(db: Database, scripts: Scripts | None = None) -> tuple[snapshot.Snapshot, dict[str, int]]:
    with db.reading() as conn:
        skip = _own_version_table(scripts)
        return snapshot.take(conn, skip), snapshot.row_counts(conn, skip)


def rehearse(
    target: Target, scripts: Scripts, command: str, goal: str, real: Database, *, progress: run.OnProgress | None = None, row: str = "dry run"
) -> display.Rehearsal:
    """Run ``command`` to ``goal`` through :func:`migmagic.run.migrate` on ``target``; the report, failed or not."""
    from . import observers

    capture = Capture(rolled_back=target.rollback, real_url=real.masked_url, sizes_from=real.kind.real_name() or None if real.kind.schemas_are_databases else None)
    if target.db is not real and not real.transactional_ddl:  # a sample of the real rows: count what is at stake on the real tables
        capture.counted_on = real
    before, counts_before = _read(target.db, scripts)
    seen = capture.seen
    started = time.perf_counter()
    error: MigrationFailed | None = None
    try:
        elsewhere = None if target.rollback else _scratch_only(real)  # in the real database's rolled-back transaction, it rolls back too
        watching = observers.build(row, progress=progress, rehearsal=capture, scratch_only=elsewhere)
        run.migrate(target.db, scripts, command, goal, observers=watching, rollback=target.rollback, row=row)
    except MigrationFailed as exc:
        error = exc
    seconds = time.perf_counter() - started
    caveats = list(target.caveats) + list(seen.get("unanalysed", []))
    reads = sum(s["kind"] == "reflection" for s in capture.statements)
    if reads:
        caveats.append(f"Not listed: {reads} read{'s' if reads != 1 else ''} Alembic made to look at the schema and the version table.")
    if error is not None and not target.db.transactional_ddl:
        seen["snapshot"], seen["counts"] = _read(target.db, scripts)  # what the failed revision left: a real run would leave it too
        caveats.insert(0, "The schema difference and row counts are those the scratch database was left with at the failure.")
    elif error is not None:
        caveats.insert(0, "The rehearsal rolled back at the failure, so no schema difference or row counts after are shown.")
    changes = snapshot.compare(before, seen["snapshot"]) if "snapshot" in seen else []
    change_rows = [{"change": c.what, "table": c.table, "name": c.name, "before": c.before, "after": c.after} for c in changes]
    after_counts = seen.get("counts")
    names = sorted(set(counts_before) | set(after_counts or {}))
    count_rows = [{"table": n, "before": counts_before.get(n), "after": (after_counts or {}).get(n)} for n in names]
    steps = capture.done
    step_rows = [{"revision": s.revision, "message": s.message, "direction": s.direction, "seconds": round(s.seconds or 0.0, 4), "warnings": "; ".join(s.warnings) or None} for s in steps]
    warnings = list(dict.fromkeys(f"Alembic warned while running {s.revision} ({s.message!r}): {w}" for s in steps for w in s.warnings))
    plan = capture.plan
    planned = len(plan.steps) if plan else 0
    start_at = plan.before.where if plan else "base"
    if error is not None:
        from .errors import sentences

        failure = sentences(error.message, f"Failed statement: {' '.join(error.statement.split())[:300]}" if error.statement else None)
        summary = f"Dry run of {command} to {goal} failed after {len(steps)} of {planned} steps; {real.masked_url} was not changed."
        _mark_failed(capture.statements, error.statement)
    else:
        failure = None
        end = ", ".join(seen.get("heads", ())) or "base"
        if planned:
            summary = f"Dry run of {command} to {goal}: {planned} step{'s' if planned != 1 else ''} would take {real.masked_url} from {start_at} to {end} ({seconds:.2f} s rehearsed); nothing was changed."
        else:
            summary = f"Dry run of {command} to {goal}: nothing to {command}, {real.masked_url} is at {start_at}."
    return display.Rehearsal(
        summary=summary, how=target.how,
        steps=display.table(step_rows, ["revision", "message", "direction", "seconds", "warnings"]),
        schema_changes=display.table(change_rows, ["change", "table", "name", "before", "after"]),
        row_counts=_counts(count_rows),
        statements=capture.frame(), sql=capture.script(), warnings=warnings, caveats=caveats, findings=seen.get("findings", []),
        failure=failure, failed_revision=error.revision if error else None, failed_statement=error.statement if error else None,
        described=seen.get("described", []),
        review=capture.review(),
    )


def _counts(rows: list[dict[str, Any]]) -> Any:
    frame = display.table(rows, ["table", "before", "after"])
    for col in ("before", "after"):
        frame[col] = frame[col].astype("Int64")  # a table that is not there: blank, not NaN
    return frame


def _mark_failed(statements: list[dict[str, Any]], failed: str | None) -> None:
    """Mark the statement the database refused; what was sent after it (releasing the lock) is not the plan's."""
    if failed is None:
        return
    wanted = " ".join(failed.split())
    for i in range(len(statements) - 1, -1, -1):
        if " ".join(statements[i]["statement"].split()) == wanted:
            statements[i]["kind"] += " (failed)"
            del statements[i + 1:]
            return


def is_upgrade(plan: Callable[[str, str], run.Plan], target: str) -> bool:
    """Whether going to ``target`` is an upgrade (or nothing to do) rather than a downgrade.

    An upgrade plan with steps is an upgrade; otherwise (Alembic refuses it, or it has
    nothing to do: ``base``, an applied revision) a downgrade plan with steps is a downgrade.
    """
    try:
        if plan("upgrade", target).steps:
            return True
    except InvalidTarget:
        return False
    try:
        return not plan("downgrade", target).steps
    except InvalidTarget:
        return True


def dry_run(
    db: Database, scripts: Scripts, command: str, goal: str, *, copy: bool = False, sample: int | None = SAMPLE, progress: run.OnProgress | None = None
) -> display.Rehearsal:
    """``command`` (upgrade, downgrade) to ``goal`` rehearsed on a scratch copy of ``db``; ``db`` is not changed."""
    scripts.check_target(goal)
    if copy and db.dialect_name != "postgresql":
        raise UsageError("--copy only applies to PostgreSQL: dry runs on other databases always run on a copy.")
    with scratch_copy(db, copy=copy, sample=sample) as target:
        return rehearse(target, scripts, command, goal, db, progress=progress)


def failed(report: display.Rehearsal) -> RehearsalFailed:
    """The error a notebook cell fails with when a dry run failed; it carries (and shows) the report."""
    return RehearsalFailed(
        f"The dry run failed: {report.failure}", report=report, revision=report.failed_revision, statement=report.failed_statement,
        hint="The real database was not changed.",
    )


# =========================================================================== --sql that always works


def sql(db: Database, scripts: Scripts, upgrade: bool, start: str | None, end: str, heads: tuple[str, ...] | None) -> display.SQLScript:
    """``--sql``: the SQL from ``start`` (None: the database's ``heads``) to ``end``; one line when it cannot be rendered."""
    from .errors import sql_render_failures

    if start is None:
        if heads and len(heads) > 1:
            raise UsageError(f"The database is at {len(heads)} heads ({', '.join(heads)}).", hint="Give the start: FROM:TO --sql.")
        start = heads[0] if heads else ""
    with sql_render_failures({str(r.path): (r.id, r.message) for r in scripts.all()}, db.scrub):
        text, ran = offline_sql(db, scripts, upgrade, start or None, end)
    if not ran:
        text = f"-- Nothing to run: {start or 'base'} is already at {end}.\n"
    return display.SQLScript(text)


def offline_sql(db: Database, scripts: Scripts, upgrade: bool, start: str | None, end: str) -> tuple[str, bool]:
    """Alembic's offline SQL; when Alembic cannot render it (SQLite batch mode), the SQL a rehearsal ran.

    The rehearsal runs on a scratch copy (PostgreSQL: a clone), moved to
    ``start`` first when the database is elsewhere; the script says so in a
    comment at its top. Returns the script and whether any step is in it.
    """
    from .adapter import render_sql

    try:
        return render_sql(scripts, db.dialect_name, upgrade, start, end, transactional_ddl=db.transactional_ddl)
    except InvalidTarget as exc:
        if "live database connection" not in str(exc):
            raise
    command = "upgrade" if upgrade else "downgrade"
    with scratch_copy(db, copy=True, sample=0) as target:
        if start:
            _move_to(target.db, scripts, start, _scratch_only(db))
        report = rehearse(target, scripts, command, end, db, row="sql capture")
    if report.failed:
        raise failed(report)
    head = [
        "-- Alembic cannot render this offline: batch mode needs a live database to reflect the table.",
        f"-- Captured instead from a rehearsal on a scratch copy of {db.masked_url} (from {start or 'its current revision'}); nothing ran on it.",
        "",
    ]
    body = report.sql
    if body and upgrade and (start or "base") == "base":  # from an empty database: the version table first, as Alembic's script has it
        from .adapter import version_table_ddl

        body = f"{version_table_ddl(db.dialect_name, scripts.environment)};\n\n{body}"
    if body and db.transactional_ddl:
        body = f"BEGIN;\n\n{body}COMMIT;\n"
    return "\n".join(head) + "\n" + body, bool(len(report.steps))


def _move_to(db: Database, scripts: Scripts, start: str, guard: StaysOnTheScratch | None) -> None:
    """Bring a scratch database to revision ``start`` (up or down), through the one execution path."""
    from . import state

    with db.reading() as conn:
        st = state.of(conn, scripts, with_ledger=False)
    below = start == "base" or scripts.resolve(start).id in st.applied
    run.migrate(db, scripts, "downgrade" if below else "upgrade", start, row="scratch", observers=observers.build("scratch", scratch_only=guard))


# =========================================================================== verify


COLUMNS = ["revision", "message", "upgrade", "downgrade", "round trip", "what differs"]


def _order(scripts: Scripts, rev_range: str | None) -> list[str]:
    """Revisions oldest first (parents before children), all or those in ``FROM:TO``."""
    if not rev_range:
        return list(reversed(scripts.ids()))
    lower, sep, upper = rev_range.partition(":")
    if not sep:
        raise UsageError(f"{rev_range!r} is not a range.", hint="Use FROM:TO, e.g. base:head or abc1:.")
    return list(reversed(scripts.between(upper or "heads", lower or "base")))


def _text(exc: MigrationFailed) -> str:
    stmt = f" ({' '.join(exc.statement.split())[:120]})" if exc.statement else ""
    reason = exc.message.split(": ", 1)[-1]
    return f"{reason[:200]}{stmt}"


def _snap(db: Database) -> snapshot.Snapshot:
    with db.reading() as conn:
        return snapshot.take(conn)


def _defects(before: snapshot.Snapshot, after: snapshot.Snapshot) -> tuple[list[str], list[str]]:
    changes = snapshot.compare(before, after)
    return [c.sentence() for c in changes if not c.note], [c.sentence() for c in changes if c.note]


def verify(
    db: Database, scripts: Scripts, rev_range: str | None = None, *, metadata: Any = None, namespace: Mapping[str, Any] | None = None
) -> display.Verification:
    """Upgrade, downgrade and upgrade again each revision on a throwaway database; raise :class:`VerifyFailed` if one fails.

    Also checks that the folder has a single head and, when models are found
    (``metadata``, or the one in ``namespace``), that the schema at head matches them.
    """
    started = time.perf_counter()
    order = _order(scripts, rev_range)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    reached_end = True
    guard = _scratch_only(db)
    with throwaway(db) as tdb:
        first = scripts.info(order[0]) if order else None
        for parent in first.down_revisions if first else ():
            run.migrate(tdb, scripts, "upgrade", parent, row="verify", observers=observers.build("verify", scratch_only=guard))
        for i, rev in enumerate(order):
            row, stop, warned = _round_trip(tdb, scripts, rev, guard)
            rows.append(row)
            notes += warned
            if stop:
                reached_end = False
                for later in order[i + 1:]:
                    rows.append({"revision": later, "message": scripts.info(later).message, "upgrade": "not run", "downgrade": "not run", "round trip": "not run", "what differs": stop})
                break
        checks = [_single_head(scripts)]
        if reached_end and (not rev_range or set(order[-1:]) == set(scripts.heads)):
            model = _models_at_head(tdb, metadata, namespace)
            if model is None:
                notes.append("No models found: the schema at head was not compared with models (--metadata NAME names them).")
            else:
                checks.append(model)
    report = display.Verification(
        "", display.table(rows, COLUMNS), display.table(checks, ["check", "result", "detail"]), list(dict.fromkeys(notes))
    )
    bad = report.failures
    n = len(order)
    where = f"a throwaway {db.dialect_name} database"
    report.summary = (
        f"Verified {n} revision{'s' if n != 1 else ''} on {where} in {time.perf_counter() - started:.1f} s: "
        + (f"{len(bad)} failed." if bad else "every downgrade restores the schema.")
    )
    if bad:
        raise VerifyFailed(f"verify failed: {'; '.join(bad)[:400]}", report=report, failures=bad, hint="Fix the revisions named (usually their downgrade()).")
    return report


def _round_trip(tdb: Database, scripts: Scripts, rev: str, guard: StaysOnTheScratch | None) -> tuple[dict[str, Any], str | None, list[str]]:
    """One revision's row: from its own parents, upgrade it, downgrade it alone, compare, upgrade again; and why to stop.

    Each revision is proven from its own parents (a merge from all of them), whatever other
    branches are applied: the downgrade unapplies this revision and nothing else (Alembic's step
    for it, its version-table bookkeeping Alembic's own), so the other heads stay as they were.
    """
    info = scripts.info(rev)
    row: dict[str, Any] = {"revision": rev, "message": info.message, "upgrade": "not run", "downgrade": "not run", "round trip": "not run", "what differs": None}
    said: list[str] = []
    notes: list[str] = []

    def migrate(command: str, target: str, make_plan: run.Planner | None = None) -> list[str]:
        return run.migrate(tdb, scripts, command, target, row="verify", observers=observers.build("verify", scratch_only=guard), make_plan=make_plan).notes

    try:
        for parent in (*info.down_revisions, *info.depends_on):
            notes += migrate("upgrade", parent)
    except MigrationFailed as exc:
        row.update({"upgrade": "not run", "what differs": f"its parents did not upgrade: {_text(exc)}"})
        return row, f"not run: {rev}'s parents did not upgrade", notes
    before = _snap(tdb)
    try:
        notes += migrate("upgrade", rev)
    except MigrationFailed as exc:
        row.update({"upgrade": "failed", "what differs": f"upgrade failed: {_text(exc)}"})
        return row, f"not run: {rev} did not upgrade", notes
    row["upgrade"] = "ok"
    up = _snap(tdb)
    try:
        notes += migrate("downgrade", rev, make_plan=_alone(scripts, rev))
    except MigrationFailed as exc:
        row.update({"downgrade": "failed", "what differs": f"downgrade failed: {_text(exc)}"})
        if not tdb.transactional_ddl:
            return row, f"not run: {rev}'s failed downgrade left the throwaway database half-downgraded", notes
        return row, None, notes  # rolled back: still at rev, the next revision can go on
    defects, order_notes = _defects(before, _snap(tdb))
    row["downgrade"] = "not restored" if defects else "ok"
    said += defects + order_notes
    try:
        notes += migrate("upgrade", rev)
    except MigrationFailed as exc:
        row["round trip"] = "failed"
        row["what differs"] = "; ".join([*said, f"upgrade again failed: {_text(exc)}"])
        return row, f"not run: {rev} did not upgrade again", notes
    again, _ = _defects(up, _snap(tdb))
    row["round trip"] = "differs" if again else "ok"
    said += [f"after upgrading again: {d.replace('not restored', 'differs').replace('left behind', 'appeared')}" for d in again]
    row["what differs"] = "; ".join(said) or None
    return row, None, notes


def _alone(scripts: Scripts, rev: str) -> run.Planner:
    """The planner of the downgrade of ``rev`` alone (Alembic's step for it), wherever the other heads are."""
    from .adapter import step_of

    def make(ex: run.Execution, before: Any) -> run.Plan:
        run.refuse_untrusted(ex.conn, scripts, before)
        return run.Plan("downgrade", rev, before, [step_of(scripts, rev, "downgrade")], scripts)

    return make


def _single_head(scripts: Scripts) -> dict[str, Any]:
    heads = scripts.heads
    if len(heads) <= 1:
        return {"check": "single head", "result": "ok", "detail": heads[0] if heads else "(no revisions)"}
    return {"check": "single head", "result": "failed", "detail": f"{len(heads)} heads: {', '.join(heads)} (merge them: %migrate merge heads -m MESSAGE)"}


def _models_at_head(tdb: Database, metadata: Any, namespace: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The models compared with the schema at head, as a check row; None when there are no models to compare."""
    from . import adapter, autogen

    try:
        md = autogen.resolve_metadata(metadata, namespace if namespace is not None else {})
    except MetadataError:
        if metadata is not None:
            raise  # named on purpose: a wrong name is the user's to fix
        return None
    with tdb.reading() as conn:
        rows = autogen.diff_rows(adapter.compare_models(conn, md, include_name=autogen.TableFilter(md)), conn.dialect)
    if not rows:
        return {"check": "models match head", "result": "ok", "detail": f"{len(md.tables)} table(s)"}
    detail = "; ".join(" ".join(str(v) for v in (r["what"], r["table"], r.get("column")) if v) for r in rows)
    return {"check": "models match head", "result": "failed", "detail": detail}

