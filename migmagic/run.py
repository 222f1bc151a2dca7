"""The execution path: every change migmagic makes to a database goes through here.

One sequence, written once::

    lock -> ledger table -> read the state -> plan -> verify -> steps -> ledger rows -> commit
                                                                      (or roll back and report)

* :func:`locked` takes the migration lock on a connection (see
  :mod:`migmagic.database`) and yields an :class:`Execution`; when the block
  ends normally the ledger rows are inserted and the transaction commits.
* :func:`plan` makes a :class:`Plan`, a value: the command, the target, the
  :class:`~migmagic.state.State` before, and the ordered steps (revision,
  direction, checksum, message). Nothing has run when a caller looks at it.
* :meth:`Execution.run` runs a plan's steps on the locked connection through
  :func:`migmagic.adapter.run_steps`, times them and makes their ledger rows.
* :func:`failure` turns whatever went wrong into a :class:`MigrationFailed`
  that says truthfully what is applied.

:func:`migrate` is that sequence for one plan (``upgrade``, ``downgrade``,
``stamp``); :mod:`migmagic.reapply` runs it with three acts under one lock.

What is in a transaction, per database: SQLite and PostgreSQL roll DDL back, so
a whole command is one transaction and the ledger rows are inserted just before
it commits; a failure leaves schema, version table and ledger as they were.
MySQL/MariaDB commit DDL themselves, so each step commits on its own, with its
version-table update and its ledger row together.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import collector, display, ledger, replay, state
from .display import short_path
from .errors import Fix, MigmagicError, MigrationFailed, RevisionChanged, RevisionMissing

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .adapter import Scripts, Step
    from .database import Database
    from .state import State

Progress = Callable[[int, int, "Step | None"], None]
"""Called as ``progress(done, total, step)``: before the first step of a plan (``step`` None) and after each."""

PAST = {"upgrade": "Upgraded", "downgrade": "Downgraded", "stamp": "Stamped"}


# --------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    """What a command will do, computed under the lock before anything runs."""

    command: str  # "upgrade" | "downgrade" | "stamp"
    target: str
    before: State
    steps: list[Step]
    scripts: Scripts = field(repr=False)
    purge: bool = False

    @property
    def revisions(self) -> list[str]:
        return [s.revision for s in self.steps]


def plan(command: str, target: str, scripts: Scripts, before: State, *, purge: bool = False) -> Plan:
    """The plan of ``command`` to ``target`` for a database in state ``before``."""
    heads = () if purge else before.heads
    return Plan(command, target, before, scripts.plan(command, target, heads), scripts, purge)


def verify(conn: Connection, scripts: Scripts, before: State) -> None:
    """Refuse to run when an applied revision is missing from the folder or was edited since it was applied."""
    if before.missing:
        raise RevisionMissing(
            f"The database is at {', '.join(before.missing)}, which is not in {short_path(scripts.folder)}.",
            revisions=before.missing,
            hint="Restore the revision file, or point migmagic at the folder that has it.",
        )
    for rev in before.edited:
        info = scripts.info(rev)
        raise RevisionChanged(
            f"Revision {rev} ({info.message!r}) was edited after it was applied.",
            revision=rev,
            diff=diff_text(ledger.applied_source(conn, rev) or "", info.source, "as applied", short_path(info.path)),
            hint="Undo the edit, or record it on purpose with {0}. Nothing was run.",
            fixes=[Fix("accept", (rev,))],
        )


def diff_text(old: str, new: str, old_name: str, new_name: str) -> str:
    """A unified diff of two revision sources, as compared (normalized)."""
    import difflib

    from .revisionfile import normalize

    lines = difflib.unified_diff(
        normalize(old).splitlines(keepends=True), normalize(new).splitlines(keepends=True), fromfile=old_name, tofile=new_name
    )
    return "".join(lines)


# --------------------------------------------------------------------------- running plans


class Execution:
    """One command's connection under the migration lock: runs plans, keeps the ledger rows.

    Where DDL rolls back, the ledger rows wait in :attr:`rows` to be inserted
    just before the transaction commits. Where it does not (MySQL/MariaDB), each
    step's row is inserted and committed with that step's version-table update.
    """

    def __init__(self, db: Database, conn: Connection, progress: Progress | None = None) -> None:
        self.db = db
        self.conn = conn
        self.per_step = not db.transactional_ddl
        self.progress = progress
        self.rows: list[dict[str, Any]] = []
        self.plans: list[Plan] = []
        self.done: list[Step] = []  # every step done, across plans
        self.stage = "lock"  # what the command was doing: lock, plan, run, commit, or a caller's own word
        self._plan_done: list[Step] = []
        self._position: tuple[str, ...] | None = None
        self.replayed = 0  # steps whose recorded SQL ran in place of the revision's function (see migmagic.replay)

    def state(self, scripts: Scripts) -> State:
        """The database's state on this connection."""
        self.stage = "plan"
        return state.of(self.conn, scripts)

    @property
    def current(self) -> Plan | None:
        """The plan running (or last run)."""
        return self.plans[-1] if self.plans else None

    @property
    def current_done(self) -> list[Step]:
        """The steps of :attr:`current` that completed."""
        return self._plan_done

    @property
    def where(self) -> tuple[str, ...]:
        """The version table's revisions after the steps done so far."""
        if self._position is not None:
            return self._position
        return self.plans[0].before.heads if self.plans else ()

    def run(self, plan: Plan) -> list[Step]:
        """Run ``plan``'s steps on this connection; returns them once done."""
        from . import adapter

        self.stage = "run"
        self.plans.append(plan)
        self._plan_done = []
        if self._position is None:
            self._position = plan.before.heads
        if self.progress:
            self.progress(0, len(plan.steps), None)
        clock = time.perf_counter()

        def finished(step: Step) -> None:
            nonlocal clock
            now = time.perf_counter()
            step.seconds, clock = now - clock, now
            source = plan.scripts.info(step.revision).source if step.revision in plan.scripts else None
            self.record(ledger.row(revision=step.revision, direction=step.direction, message=step.message, seconds=step.seconds, source=source, alembic_version=adapter.ALEMBIC_VERSION))
            self._position = position_after(self.where, step, plan.scripts)
            self._plan_done.append(step)
            self.done.append(step)
            if self.progress:
                self.progress(len(self._plan_done), len(plan.steps), step)

        replayer = replay.Replayer(self.conn, plan.scripts, plan.steps, per_step=self.per_step, alembic_version=adapter.ALEMBIC_VERSION) if self.db.replay else None
        try:
            with collector.held():
                adapter.run_steps(self.conn, plan.scripts, plan.steps, on_step=finished, transaction_per_migration=self.per_step, purge=plan.purge, replay=replayer)
        finally:
            if replayer is not None:  # a recording holds what Alembic sent for its revision, whatever came after
                self.replayed += replayer.replayed
                replayer.save()
        return list(self._plan_done)

    def record(self, row: dict[str, Any]) -> None:
        """A ledger row: kept for the commit, or (per step) inserted and committed now."""
        self.rows.append(row)
        if self.per_step:
            ledger.insert(self.conn, self.rows)
            self.rows.clear()
            self.conn.commit()

    def heads(self) -> tuple[str, ...]:
        """The version table, read on this connection."""
        from .adapter import current_heads

        return current_heads(self.conn)

    def warnings(self) -> list[str]:
        """What Alembic warned about while the steps ran, in migmagic's words, each once."""
        notes = [f"Alembic warned while running {s.revision} ({s.message!r}): {w}" for s in self.done for w in s.warnings]
        return list(dict.fromkeys(notes))


@contextlib.contextmanager
def locked(db: Database, progress: Progress | None = None) -> Iterator[Execution]:
    """A connection holding the migration lock, with the ledger table there, as an :class:`Execution`.

    When the block ends normally, the ledger rows are inserted and the command
    commits; on an exception it rolls back (what MySQL/MariaDB committed per step
    stays).
    """
    with db.migrating() as conn:
        ledger.ensure(conn)
        if not db.transactional_ddl:
            conn.commit()
        ex = Execution(db, conn, progress)
        yield ex
        ex.stage = "commit"
        ledger.insert(conn, ex.rows)  # one statement, in the command's transaction
        ex.rows.clear()


def position_after(heads: tuple[str, ...], step: Step, scripts: Scripts) -> tuple[str, ...]:
    """The version table's revisions after ``step`` ran on a database at ``heads``."""
    if step.direction not in ("upgrade", "downgrade") or step.revision not in scripts:
        return heads
    info = scripts.info(step.revision)
    if step.direction == "upgrade":
        kept = [h for h in heads if h not in info.down_revisions]
        return (*kept, step.revision)
    kept = [h for h in heads if h != step.revision]
    return tuple(kept) + tuple(d for d in info.down_revisions if d not in kept)


# --------------------------------------------------------------------------- one command, one plan


def migrate(
    db: Database,
    scripts: Scripts,
    command: str,
    target: str,
    *,
    progress: Progress | None = None,
    purge: bool = False,
    inspect: Callable[[Plan], None] | None = None,
) -> display.Outcome:
    """``upgrade``, ``downgrade`` or ``stamp`` to ``target``: the whole sequence for one plan.

    ``inspect`` sees the plan under the lock before any step runs, and may
    refuse it by raising.
    """
    started = time.perf_counter()
    scripts.check_target(target)  # unknown or ambiguous revisions are named before any connection is made
    ex: Execution | None = None
    try:
        with locked(db, progress) as ex:
            before = ex.state(scripts)
            if command != "stamp":
                verify(ex.conn, scripts, before)  # before planning: a plan from a missing head is Alembic's error, not ours
            the_plan = plan(command, target, scripts, before, purge=purge)
            if inspect is not None:
                inspect(the_plan)
            done = ex.run(the_plan)
            after = ex.heads()
    except MigmagicError:
        raise
    except Exception as exc:
        error = failure(db, command, exc, ex)
        raise error from error.cause
    seconds = time.perf_counter() - started
    where = ", ".join(after) or "base"
    if not done:
        summary = f"Nothing to {command}: {db.masked_url} is at {where}."
    else:
        n = len(done)
        replayed = f" ({ex.replayed} replayed from recorded SQL)" if ex.replayed else ""
        summary = f"{PAST[command]} {db.masked_url} to {where}: {n} step{'s' if n != 1 else ''}{replayed} in {seconds:.2f} s."
    return display.Outcome(summary, display.steps_table(done), ex.warnings())


# --------------------------------------------------------------------------- saying what went wrong


def failure(db: Database, command: str, exc: BaseException, ex: Execution | None, *, hint: str | None = None) -> MigrationFailed:
    """What went wrong during ``command``, with what is applied now (``hint`` overrides that part)."""
    current = ex.current if ex else None
    planned, done = (current.steps, ex.current_done) if current is not None and ex is not None else ([], [])
    what, rev, statement = what_failed(db, command, exc, planned, done, committing=bool(ex and ex.stage == "commit"))
    if hint is None:
        if db.transactional_ddl:
            before = ex.plans[0].before.where if ex and ex.plans else None
            hint = f"Nothing was applied: the database is still at {before}." if before else "Nothing was applied."
        else:
            # DDL commits itself here: completed steps stay, and so does any DDL
            # the failed revision ran before it failed.
            kept = f"{', '.join(s.revision for s in done)} stayed applied and " if done else ""
            where = ", ".join(ex.where if ex else ()) or "base"
            hint = (
                f"{db.dialect_name} cannot roll back DDL: {kept}the version table is at {where}; "
                f"DDL that {rev} ran before it failed was not undone."
            )
    return MigrationFailed(
        what, revision=rev, original=exc, statement=statement, completed=[s.revision for s in done],
        hint=hint + statement_hint(statement), scrub=db.scrub,
    )


def what_failed(
    db: Database, command: str, exc: BaseException, planned: list[Step], done: list[Step], *, committing: bool = False
) -> tuple[str, str, str | None]:
    """What went wrong during ``command`` (a sentence), the revision it names, and the failed SQL statement."""
    described, statement = describe(db, exc), failed_statement(db, exc)
    if len(done) < len(planned) and not committing:
        failed = planned[len(done)]
        return f"Revision {failed.revision} ({failed.message!r}) failed during {command}: {described}", failed.revision, statement
    if planned or committing:
        return f"The {command} failed when committing: {described}", planned[-1].revision if planned else "", statement
    return f"The {command} failed before any revision ran: {described}", "", statement


def describe(db: Database, exc: BaseException, limit: int = 300) -> str:
    """``exc`` as ``Type: reason`` on one line, the password scrubbed, the reason cut at ``limit``."""
    # Scrubbed before and after the whitespace is folded: a password may hold spaces.
    reason = db.scrub(" ".join(db.scrub(str(getattr(exc, "orig", None) or exc)).split()))
    return f"{type(exc).__name__}: {reason[:limit]}"


def failed_statement(db: Database, exc: BaseException) -> str | None:
    """The SQL statement the database refused, scrubbed (None when ``exc`` is not a database error)."""
    from sqlalchemy.exc import DBAPIError

    statement = getattr(exc, "statement", None) if isinstance(exc, DBAPIError) else None
    return db.scrub(statement) if statement else None


def statement_hint(statement: str | None) -> str:
    """The failed SQL statement as the end of a hint (nothing without one)."""
    return f" Failed statement: {' '.join(statement.split())[:200]}" if statement else ""
