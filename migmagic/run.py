"""The execution path: every change migmagic makes to a database goes through here.

One sequence, written once, that every command drives (:func:`migrate`)::

    lock -> ledger table -> read the state -> the command's planner -> observers' planned
         -> steps (Alembic, or the plan's recording) -> observers' finished -> ledger rows -> commit
                                                                      (or roll back and report)

* :func:`locked` takes the migration lock on a connection (see
  :mod:`migmagic.database`) and yields an :class:`Execution` of a command, with the
  observers :mod:`migmagic.observers` made for it and one :class:`Tap` on the
  connection's statements; when the block ends normally the observers see it
  finished, the ledger rows are inserted and the transaction commits.
* A *planner* is what differs between commands: :func:`planner` for
  ``upgrade``/``downgrade``/``stamp`` (refuse what cannot be trusted, then
  :func:`plan`); ``resume``, ``repair``, ``accept`` and verify's single steps bring
  their own. A :class:`Plan` is a value: the command, the target, the
  :class:`~migmagic.state.State` before, the ordered steps, and who runs them
  (``executor``: Alembic, or the recording of this very plan, see :mod:`migmagic.replay`).
* :meth:`Execution.run` tells the observers the plan (they may refuse it), runs its
  steps on the locked connection, times them, makes their ledger rows, and tells the
  observers each step; where the database stands after each step is what Alembic's
  own bookkeeping left.
* :func:`failure` turns whatever went wrong into a :class:`MigrationFailed`
  that says truthfully what is applied.

What is in a transaction, per database: SQLite and PostgreSQL roll DDL back, so
a whole command is one transaction and the ledger rows are inserted just before
it commits; a failure leaves schema, version table and ledger as they were.
MySQL/MariaDB commit DDL themselves, so each step commits on its own, with its
version-table update and its ledger row together.
"""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import collector, display, journal, ledger, replay, state, watch
from .display import short_path
from .errors import (
    Fix,
    MigmagicError,
    MigrationFailed,
    MigrationInterrupted,
    RevisionChanged,
    RevisionEndedTransaction,
    RevisionMissing,
    TransactionEndRefused,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .adapter import Scripts, Step
    from .database import Database
    from .state import State

OnProgress = Callable[[int, int, "Step | None"], None]
"""Called as ``progress(done, total, step)``: before the first step of a plan (``step`` None) and after each.

A progress object may also have ``begin(steps)``: it is given each plan's steps
before the first one runs, so it can name the step that is running
(:class:`migmagic.progress.Progress` does).
"""


class Observer:
    """What a command gets told as it runs, at four named moments; each may be left as it is here (nothing).

    Which observers each command gets is one table, :data:`migmagic.observers.TABLE`;
    :func:`locked` takes them and :class:`Execution` tells them:

    * ``planned(plan, ex)``: a plan is about to run, under the lock, on the connection
      that will run it (nothing of it has run); may refuse it by raising;
    * ``step_started(step)`` / ``step_done(step)``: around each step;
    * ``finished(ex)``: every plan ran, still under the lock, before the commit.

    ``notes`` are sentences for the command's result.
    """

    notes: list[str]

    def planned(self, plan: Plan, ex: Execution) -> None:
        pass

    def step_started(self, step: Step) -> None:
        pass

    def step_done(self, step: Step) -> None:
        pass

    def finished(self, ex: Execution) -> None:
        pass

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
    executor: str = "alembic"  # who runs the steps: "alembic" (its runtime), or "recorded" (a recording of this very plan, see migmagic.replay)
    recording: replay.Recording | None = field(default=None, repr=False)  # what "recorded" replays
    bookkeeping: Callable[[Execution], None] | None = field(default=None, repr=False)  # accept, repair: no step runs, this writes the books

    @property
    def revisions(self) -> list[str]:
        return [s.revision for s in self.steps]


def plan(command: str, target: str, scripts: Scripts, before: State, *, purge: bool = False) -> Plan:
    """The plan of ``command`` to ``target`` for a database in state ``before``."""
    heads = () if purge else before.heads
    return Plan(command, target, before, scripts.plan(command, target, heads), scripts, purge)


def refuse_untrusted(conn: Connection, scripts: Scripts, before: State) -> None:
    """Refuse to run when a revision is half-applied, or an applied one is missing from the folder or was edited since it was applied."""
    if before.half_applied:
        raise journal.refusal(before.half_applied[0])
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


class Stage(str, enum.Enum):
    """What a command was doing when it stopped (a failure report reads it)."""

    LOCK = "lock"
    PLAN = "plan"
    RUN = "run"
    LEDGER = "ledger"  # migmagic's own bookkeeping, after the revisions' statements ran
    COMMIT = "commit"
    ROLLBACK = "rollback"


class Tap:
    """The one listener on a locked connection's statements: the transaction keeper, MySQL/MariaDB's journal,
    replay's recording and a dry run's capture subscribe to it; none of them listens on its own.

    ``before(statement, parameters)`` subscribers may refuse a statement (raise) or replace it (return a
    ``(statement, parameters)`` pair); ``after(statement, context)`` ones see it done; ``commit()`` ones see a
    commit through the connection. Subscribers are called in the order they subscribed.
    """

    def __init__(self, conn: Connection) -> None:
        from sqlalchemy import event

        self.conn = conn
        self._before: list[Callable[..., Any]] = []
        self._after: list[Callable[..., Any]] = []
        self._commit: list[Callable[[], None]] = []
        event.listen(conn, "before_cursor_execute", self._on_before, retval=True)
        event.listen(conn, "after_cursor_execute", self._on_after)
        event.listen(conn, "commit", self._on_commit)

    def close(self) -> None:
        from sqlalchemy import event

        event.remove(self.conn, "before_cursor_execute", self._on_before)
        event.remove(self.conn, "after_cursor_execute", self._on_after)
        event.remove(self.conn, "commit", self._on_commit)

    @contextlib.contextmanager
    def subscribed(
        self, before: Callable[..., Any] | None = None, after: Callable[..., Any] | None = None, commit: Callable[[], None] | None = None
    ) -> Iterator[None]:
        """``before``/``after``/``commit`` hear the connection's statements while the block runs."""
        pairs = [(lst, fn) for lst, fn in ((self._before, before), (self._after, after), (self._commit, commit)) if fn is not None]
        for lst, fn in pairs:
            lst.append(fn)
        try:
            yield
        finally:
            for lst, fn in pairs:
                lst.remove(fn)

    def _on_before(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> tuple[str, Any]:
        for fn in list(self._before):
            replaced = fn(statement, parameters, context, executemany)
            if replaced is not None:
                statement, parameters = replaced
        return statement, parameters

    def _on_after(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        for fn in list(self._after):
            fn(statement, context)

    def _on_commit(self, conn: Any) -> None:
        for fn in list(self._commit):
            fn()


class Execution:
    """One command's connection under the migration lock: runs plans, tells its observers, keeps the ledger rows.

    Where DDL rolls back, the ledger rows wait in :attr:`rows` to be inserted
    just before the transaction commits. Where it does not (MySQL/MariaDB), each
    step's row is inserted and committed with that step's version-table update.
    """

    def __init__(self, db: Database, conn: Connection, command: str, observers: Sequence[Observer] = ()) -> None:
        self.db = db
        self.conn = conn
        self.command = command
        self.observers = list(observers)
        self.per_step = not db.transactional_ddl
        self.tap = Tap(conn)
        self.rows: list[dict[str, Any]] = []
        self.plans: list[Plan] = []
        self.done: list[Step] = []  # every step done, across plans
        self.stage: str = Stage.LOCK  # what the command was doing: a Stage, or a caller's own word (reapply's acts)
        self._plan_done: list[Step] = []
        self._position: tuple[str, ...] | None = None
        self.journal = journal.Recorder(conn) if self.per_step else None  # where DDL commits itself
        # Where DDL rolls back: the points where the command's transaction committed before its end
        # (a revision's autocommit_block), as (steps done then, the step whose block it was).
        self.commits: list[tuple[list[Step], Step]] = []
        self._keeper: _TransactionKeeper | None = None
        self.replayed = 0  # steps run from a recording of their plan (see migmagic.replay)
        self.recordings: list[replay.Recording] = []  # made by this command's runs: stored once it committed

    def state(self, scripts: Scripts) -> State:
        """The database's state on this connection; what was done outside migmagic since its last command goes into the ledger first."""
        self.stage = Stage.PLAN
        if self.done:  # the version table's watch saw this command's own steps: not outside
            watch.forget(self.conn)
        st = state.of(self.conn, scripts)
        if st.unrecorded:
            self._insert(watch.ledger_rows(scripts, st.unrecorded))
        return st

    def notes(self) -> list[str]:
        """The observers' notes and the run's warnings, each once."""
        return list(dict.fromkeys([*self.warnings(), *(n for o in self.observers for n in o.notes)]))

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
        """The version table's revisions after the steps done so far (as Alembic's bookkeeping left it)."""
        if self._position is not None:
            return self._position
        return self.plans[0].before.heads if self.plans else ()

    def run(self, plan: Plan) -> list[Step]:
        """Tell the observers ``plan`` is planned (they may refuse it), then run its steps on this connection; returns them once done."""
        from . import adapter

        self.plans.append(plan)
        self._plan_done = []
        if self._position is None:
            self._position = plan.before.heads
        for observer in self.observers:
            observer.planned(plan, self)
        self.stage = Stage.RUN
        if plan.bookkeeping is not None:
            plan.bookkeeping(self)
            return []
        clock = time.perf_counter()

        def started(step: Step) -> None:
            if self.journal is not None:
                self.journal.start(step)
            for observer in self.observers:
                observer.step_started(step)

        def finished(step: Step) -> None:
            nonlocal clock
            now = time.perf_counter()
            step.seconds, clock = now - clock, now
            source = plan.scripts.info(step.revision).source if step.revision in plan.scripts else None
            note = self.journal.finish(step) if self.journal else None
            self.ledger_row(ledger.row(revision=step.revision, direction=step.direction, message=step.message, seconds=step.seconds, source=source, alembic_version=adapter.ALEMBIC_VERSION, note=note))
            if self.journal:
                self.journal.forget()
            if step.heads_after is not None:
                self._position = step.heads_after
            self._plan_done.append(step)
            self.done.append(step)
            for observer in self.observers:
                observer.step_done(step)

        with collector.held():
            if plan.executor == "recorded":
                assert plan.recording is not None  # chosen with it (replay.choose)
                with _TransactionKeeper(self, plan) as self._keeper:
                    plan.recording.play(self.conn, plan.steps, started, self._checked(finished, plan))
                self.replayed += len(plan.steps)
            elif self.journal is None:
                recorder = replay.Recorder(replay.key_of(plan.scripts, plan.steps, self.conn), len(plan.steps)) if _worth_recording(plan, self) else None
                listening = self.tap.subscribed(before=recorder.before) if recorder else contextlib.nullcontext()
                with _TransactionKeeper(self, plan) as self._keeper, listening:
                    adapter.run_steps(
                        self.conn, plan.scripts, plan.steps, on_step=self._checked(recorder.paused(finished) if recorder else finished, plan),
                        on_start=recorder.starting(started) if recorder else started,
                        transaction_per_migration=False, purge=plan.purge, on_autocommit=self._keeper.autocommit,
                    )
                made = recorder.recording() if recorder is not None else None
                if made is not None:
                    self.recordings.append(made)
            else:
                with self.tap.subscribed(self.journal.before, self.journal.after):
                    try:
                        adapter.run_steps(
                            self.conn, plan.scripts, plan.steps, on_step=finished, on_start=started,
                            transaction_per_migration=True, purge=plan.purge,
                        )
                    except BaseException:
                        self.journal.abandon()
                        raise
        return list(self._plan_done)

    def finish(self) -> None:
        """Every plan ran: the observers' last look, under the lock, before the commit."""
        for observer in self.observers:
            observer.finished(self)

    def _checked(self, finished: Callable[[Step], None], plan: Plan) -> Callable[[Step], None]:
        """``finished``, then: did the step end the command's transaction behind migmagic's back?"""

        def after(step: Step) -> None:
            finished(step)
            keeper = self._keeper
            if keeper is not None and (keeper.ended or not self.db.in_transaction(self.conn)):
                self._stop_after(step, plan, keeper.ended or "through the driver")

        return after

    def _stop_after(self, step: Step, plan: Plan, how: str) -> None:
        """A revision committed: commit what is now in progress too, with its ledger rows, and stop, saying so."""
        self.flush()
        if self.conn.in_transaction():
            self.conn.commit()
        not_run = [s.revision for s in plan.steps[len(self._plan_done):]]
        committed = [s.revision for s in self.done]
        where = self.where
        rest = f"Not run: {', '.join(not_run)}. " if not_run else ""
        raise RevisionEndedTransaction(
            f"Revision {step.revision} ({step.message!r}) ended migmagic's transaction itself ({how}), so the "
            f"{plan.command} stopped after it: {', '.join(committed)} {'is' if len(committed) == 1 else 'are'} committed, "
            f"and the version table ({', '.join(where) or 'base'}) and the ledger say so.",
            revision=step.revision, committed=committed, not_run=not_run, where=where,
            hint=rest + "For statements that cannot run in a transaction, use op.get_context().autocommit_block(); "
            + ("then {0} runs the rest." if not_run else "nothing was left to run."),
            fixes=[Fix(plan.command, (plan.target,))] if not_run else [],
        )

    def flush(self) -> None:
        """Insert the ledger rows kept so far, in the transaction in progress."""
        self._insert(self.rows)
        self.rows.clear()

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        """Ledger rows in; the version-table changes they account for (the watch's rows) out, in one transaction."""
        if rows:
            ledger.insert(self.conn, rows)
            watch.forget(self.conn)

    def ledger_row(self, row: dict[str, Any]) -> None:
        """A ledger row: kept for the commit, or (per step) inserted and committed now."""
        self.rows.append(row)
        if self.per_step:
            stage, self.stage = self.stage, Stage.LEDGER
            self.flush()
            self.conn.commit()
            self.stage = stage

    def heads(self) -> tuple[str, ...]:
        """The version table, read on this connection."""
        from .adapter import current_heads

        return current_heads(self.conn, self.plans[-1].scripts.environment if self.plans else None)

    def warnings(self) -> list[str]:
        """What Alembic warned about while the steps ran, and where the transaction committed part-way, each once."""
        notes = [f"Alembic warned while running {s.revision} ({s.message!r}): {w}" for s in self.done for w in s.warnings]
        notes += [
            f"{block.revision} ran an autocommit block: everything before it was committed there, so this "
            f"{self.plans[0].command if self.plans else 'command'} was not one transaction."
            for _, block in self.commits
        ]
        return list(dict.fromkeys(notes))


@contextlib.contextmanager
def locked(db: Database, command: str, observers: Sequence[Observer] = (), *, rollback: bool = False) -> Iterator[Execution]:
    """A connection holding the migration lock, with the ledger table there, as an :class:`Execution` of ``command``.

    ``observers`` are the ones :func:`migmagic.observers.build` made for ``command``.
    When the block ends normally, the observers see it finished, the ledger rows are
    inserted and the command commits; on an exception it rolls back (what
    MySQL/MariaDB committed per step stays). With ``rollback`` (a rehearsal, where
    DDL rolls back) it always rolls back: no ledger row is written and nothing the
    block ran stays. Recordings the runs made (see :mod:`migmagic.replay`) are
    stored only once the command committed.
    """
    if rollback and not db.transactional_ddl:
        raise ValueError(f"{db.dialect_name} cannot roll DDL back: rehearse on a copy instead")
    with db.migrating() as conn:
        ledger.ensure(conn)
        watch.ensure(conn)
        if not db.transactional_ddl:
            journal.ensure(conn)
            conn.commit()
        ex = Execution(db, conn, command, observers)
        try:
            yield ex
            ex.finish()
            if rollback:
                ex.stage = Stage.ROLLBACK
                ex.rows.clear()
                ex.recordings.clear()
                conn.rollback()
                return
            ex.stage = Stage.LEDGER
            watch.install(conn)  # once the version table exists; MySQL/MariaDB: everything before has committed
            ex.flush()  # one statement, in the command's transaction
            ex.stage = Stage.COMMIT
        finally:
            ex.tap.close()
    # Committed (db.migrating commits on the way out): the recordings may be stored now.
    replay.store(ex.recordings)


def ends_transaction(statement: str) -> str | None:
    """The command (``COMMIT``, ``END``, ...) by which ``statement`` ends the transaction it runs in: see :mod:`.sqltext`."""
    from .sqltext import transaction_end

    return transaction_end(statement)


class _TransactionKeeper:
    """While a plan runs where DDL rolls back: the command's transaction ends only where migmagic says (the *transaction keeper*).

    A statement that would end it (``op.execute("COMMIT")``, the usual workaround for
    PostgreSQL's ``ALTER TYPE ... ADD VALUE``) is refused before it reaches the
    database: the revision fails and nothing is applied. A commit through
    SQLAlchemy (``op.get_bind().commit()``) cannot be refused safely: the ledger
    rows so far go in first, so they commit with it, and the command stops after
    that step (:meth:`Execution._checked`). Alembic's ``autocommit_block()`` is
    the supported way: its commit is let through and recorded in
    :attr:`Execution.commits`. It hears the connection through the :class:`Tap`.
    """

    def __init__(self, ex: Execution, plan: Plan) -> None:
        self.ex = ex
        self.plan = plan
        self.in_block = False
        self.ended: str | None = None  # how a revision ended the transaction, when one did
        self._subscription: contextlib.AbstractContextManager[None] | None = None

    def __enter__(self) -> _TransactionKeeper:
        self._subscription = self.ex.tap.subscribed(before=self._statement, commit=self._commit)
        self._subscription.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._subscription is not None
        self._subscription.__exit__(None, None, None)

    def _running(self) -> Step:
        return self.plan.steps[min(len(self.ex.current_done), len(self.plan.steps) - 1)]

    def _statement(self, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        found = None if self.in_block else ends_transaction(statement)
        if found:
            raise TransactionEndRefused(
                f"{found} would end migmagic's transaction, so it was not run. For statements "
                "that cannot run in a transaction, use op.get_context().autocommit_block()."
            )
        if not self.in_block and not self.ended and not statement.lstrip()[:5].upper() == "BEGIN" and not self.ex.db.in_transaction(self.ex.conn):
            self._ended_through_the_driver()

    def _ended_through_the_driver(self) -> None:
        """SQLite: the revision committed or rolled back on the driver's connection; what follows would run in autocommit.

        The database tells which (:meth:`migmagic.kinds.SQLite.committed_through_the_driver`).
        After a rollback this statement is refused: nothing is applied. After a commit the
        ledger rows of the steps done are committed too, and a new transaction begins, so a
        later failure rolls back only what follows.
        """
        kind = self.ex.db.kind
        if not kind.committed_through_the_driver(self.ex.conn):
            raise TransactionEndRefused(
                "The revision rolled back migmagic's transaction through the driver (a rollback on its DBAPI connection), "
                "so the statements after it were not run."
            )
        self.ended = "through the driver: a commit on its DBAPI connection"
        kind.begin_again(self.ex.conn)
        self.ex.flush()  # the rows of the steps done, which that commit made applied
        kind.begin_again(self.ex.conn, commit_first=True)

    def _commit(self) -> None:
        if self.in_block:
            return
        self.ended = "it committed through the connection"
        self.ex.flush()  # the rows of the steps done commit with them

    def autocommit(self, entering: bool) -> None:
        """Alembic's ``autocommit_block()``: entering it commits the transaction so far (ledger rows included)."""
        self.in_block = entering
        if entering:
            self.ex.flush()
            self.ex.commits.append((list(self.ex.done), self._running()))


# --------------------------------------------------------------------------- who runs a plan


def _replayable(plan: Plan, ex: Execution) -> bool:
    """Whether ``plan`` is one replay may record or replay (see :mod:`migmagic.replay`), short of its recording.

    An ``upgrade`` (the user's own: not a dry run's, nor verify's) from an empty database
    where DDL rolls back, replay on, and nobody listening to every statement.
    """
    return (
        ex.db.replay
        and ex.db.transactional_ddl
        and ex.command == "upgrade"
        and plan.command == "upgrade"
        and not plan.purge
        and bool(plan.steps)
        and not plan.before.heads
        and all(s.direction == "upgrade" and s.revision in plan.scripts for s in plan.steps)
        and not any(getattr(o, "hears_statements", False) for o in ex.observers)
        and replay.empty(ex.conn)
    )


def _choose_executor(plan: Plan, ex: Execution) -> None:
    """Decide who runs ``plan``, before it runs: a recording of this very plan when there is one, else Alembic."""
    if _replayable(plan, ex):
        plan.recording = replay.find(replay.key_of(plan.scripts, plan.steps, ex.conn))
        plan.executor = "recorded" if plan.recording is not None else "alembic"


def _worth_recording(plan: Plan, ex: Execution) -> bool:
    """Whether Alembic's run of ``plan`` is recorded: a replayable plan whose every revision is proven pure."""
    return plan.executor == "alembic" and _replayable(plan, ex) and replay.proven(plan.scripts, plan.steps, batch=ex.conn.dialect.name != "sqlite")


# --------------------------------------------------------------------------- one command, one sequence

Planner = Callable[[Execution, "State"], Plan]
"""The part of a command that differs: from the state read under the lock, the plan to run (refusing by raising)."""


def planner(command: str, target: str, scripts: Scripts, *, purge: bool = False) -> Planner:
    """The planner of ``upgrade``, ``downgrade`` or ``stamp`` to ``target``: refuse a database that cannot be trusted, then plan."""

    def make(ex: Execution, before: State) -> Plan:
        if command != "stamp":
            refuse_untrusted(ex.conn, scripts, before)  # before planning: a plan from a missing head is Alembic's error, not ours
        the_plan = plan(command, target, scripts, before, purge=purge)
        _choose_executor(the_plan, ex)
        return the_plan

    return make


def migrate(
    db: Database,
    scripts: Scripts,
    command: str,
    target: str,
    *,
    observers: Sequence[Observer] = (),
    purge: bool = False,
    rollback: bool = False,
    make_plan: Planner | None = None,
    row: str | None = None,
) -> display.Outcome:
    """The one sequence every command that changes a database runs: lock, state, plan, run, finish, commit — or the one failure report.

    ``command`` names it; ``row``, when the user's command runs another's plans (a dry
    run's upgrade, verify's), names the user's (the row of :data:`migmagic.observers.TABLE`
    its ``observers`` come from). ``make_plan`` is what differs between commands
    (default: :func:`planner` of ``command`` to ``target``). With ``rollback`` the
    command always rolls back (see :func:`locked`): a rehearsal.
    """
    started = time.perf_counter()
    if target:
        scripts.check_target(target)  # unknown or ambiguous revisions are named before any connection is made
    ex: Execution | None = None
    try:
        with locked(db, row or command, observers, rollback=rollback) as ex:
            before = ex.state(scripts)
            the_plan = (make_plan or planner(command, target, scripts, purge=purge))(ex, before)
            done = ex.run(the_plan)
            heads = ex.heads()
    except MigmagicError:
        raise
    except Exception as exc:
        error = failure(db, command, exc, ex)
        raise error from error.cause
    except KeyboardInterrupt as exc:  # the transaction rolled back on the way out, as for any failure
        error = failure(db, command, exc, ex)
        during = f"during revision {error.revision}" if error.revision else "before any revision ran"
        raise MigrationInterrupted(
            f"The {command} was interrupted {during}.", revision=error.revision, completed=error.completed, hint=error.hint
        ) from None
    seconds = time.perf_counter() - started
    where = ", ".join(heads) or "base"
    if the_plan.bookkeeping is not None:
        summary = ""
    elif not done:
        summary = f"Nothing to {command}: {db.masked_url} is at {where}."
    else:
        n = len(done)
        replayed = f" ({ex.replayed} replayed from recorded SQL)" if ex.replayed else ""
        summary = f"{PAST.get(command, command)} {db.masked_url} to {where}: {n} step{'s' if n != 1 else ''}{replayed} in {seconds:.2f} s."
        if command == "stamp":
            summary += f" It was at {the_plan.before.where}."
    return display.Outcome(summary, display.steps_table(done), ex.notes())


# --------------------------------------------------------------------------- saying what went wrong


def failure(db: Database, command: str, exc: BaseException, ex: Execution | None, *, hint: str | None = None) -> MigrationFailed:
    """What went wrong during ``command``, with what is applied now (``hint`` overrides that part)."""
    current = ex.current if ex else None
    planned, done = (current.steps, ex.current_done) if current is not None and ex is not None else ([], [])
    what, rev, statement = what_failed(db, command, exc, planned, done, committing=bool(ex and ex.stage == "commit"))
    waited = db.lock_wait(exc, statement)
    if waited and len(done) < len(planned):
        failed = planned[len(done)]
        what = f"Revision {failed.revision} ({failed.message!r}) {waited}, and gave up"
    fixes: list[Fix] = []
    stopped = ex.journal.stopped if ex and ex.journal else None
    if ex is not None and ex.stage == "ledger":  # migmagic's own bookkeeping, after the revisions' statements ran
        unrecorded = ([s for s in planned if s not in done] or planned[-1:]) if ex.per_step else planned
        rev = unrecorded[-1].revision if unrecorded else ""
        what = f"migmagic could not record the {command} of {', '.join(s.revision for s in unrecorded)} in its ledger ({ledger.TABLE_NAME}): {describe(db, exc)}"
        if hint is None and db.transactional_ddl:
            was = ex.plans[0].before.where if ex.plans else "base"
            hint = f"Nothing was applied: the database is still at {was}. This is migmagic's failure, not the revision's fault."
    if hint is None and stopped is not None:
        fixes = journal.ways_out(stopped.revision)
        kept = f"{', '.join(s.revision for s in done)} stayed applied and " if done else ""
        whose = "this is migmagic's failure, not the revision's fault; " if ex and ex.stage == "ledger" else ""
        hint = (
            f"{db.dialect_name} cannot roll back DDL: {kept}the version table is at {', '.join(ex.where if ex else ()) or 'base'}; "
            f"{whose}{stopped.sentence(short=True)}. Once the cause is fixed, {{0}} finishes it; "
            "or put the database right by hand and {1} or {2}."
        )
    if hint is None:
        ended = ex._keeper.ended if ex and ex._keeper else None
        if db.transactional_ddl and ex and (ex.commits or ended):
            hint = _committed_before(ex, rev, ended)
        elif db.transactional_ddl:
            before = ex.plans[0].before.where if ex and ex.plans else None
            hint = f"Nothing was applied: the database is still at {before}." if before else "Nothing was applied."
        else:
            # DDL commits itself here: completed steps stay, and so does any DDL
            # the failed revision ran before it failed.
            kept = f"{', '.join(s.revision for s in done)} stayed applied and " if done else ""
            where = ", ".join(ex.where if ex else ()) or "base"
            left = f"none of {rev}'s statements had committed" if ex and ex.journal and rev else f"DDL that {rev} ran before it failed was not undone"
            hint = (
                f"{db.dialect_name} cannot roll back DDL: {kept}the version table is at {where}; "
                f"{left}."
            )
    if waited:
        hint += " Finish or roll back the other transaction (in another cell, say), or raise the lock timeout."
    if current is not None and current.executor == "recorded":  # no code of the revision ran: its statements came from the recording of this plan
        hint += " The steps ran from the recording of this plan (see migmagic.replay): the statement is the one the revision sent when Alembic ran it."
    return MigrationFailed(
        what, revision=rev, original=exc, statement=statement, completed=[s.revision for s in done],
        hint=hint + statement_hint(statement), fixes=fixes, scrub=db.scrub, lock_wait=waited,
    )


def _committed_before(ex: Execution, failed: str, ended: str | None) -> str:
    """What stayed committed when a command whose transaction committed part-way then failed."""
    if ended:
        done = [s.revision for s in ex.done]
        kept = f"{', '.join(done)} and " if done else ""
        return (
            f"Revision {failed} ended migmagic's transaction ({ended}) before it failed: {kept}its statements "
            f"up to then stayed committed; the version table is at {', '.join(ex.where) or 'base'}, and the ledger agrees."
        )
    done_then, block = ex.commits[-1]
    kept = f"{', '.join(s.revision for s in done_then)} and " if done_then else ""
    at = done_then[-1].heads_after if done_then and done_then[-1].heads_after is not None else ex.plans[0].before.heads
    where = ", ".join(at) or "base"
    return (
        f"Committed before the failure, at the autocommit block of {block.revision}: {kept}the statements of "
        f"{block.revision} up to and in that block. Everything after it was rolled back: the version table is at "
        f"{where}, and the ledger agrees."
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
