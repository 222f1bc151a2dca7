"""``--reapply``: downgrade an applied revision with its old code, rewrite it, upgrade with the new.

What is in a transaction, per database:

* SQLite and PostgreSQL roll DDL back, so the three acts are one transaction on
  one connection, under the migration lock: the downgrade steps, the new file,
  the upgrade steps and the ledger rows of both directions commit together. If
  anything fails (the new code raises, the new file cannot be written or does
  not load, the commit fails), the transaction rolls back and the old file is
  put back byte for byte: nothing changed, and the error says so.
* MySQL/MariaDB commit DDL themselves, so each step commits on its own (version
  table and ledger row together). When one fails, migmagic undoes what it can,
  still under the lock: the steps the new code completed are downgraded with the
  new code, the old file is put back, and the old code is upgraded to where the
  database was. The error says where the database ended up. Data the downgrades
  dropped is not restored, and DDL that the failed revision ran before it failed
  is not undone.

Nothing here knows IPython; Alembic is reached through :mod:`migmagic.adapter`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import display, ledger
from .engine import Phase, Progress, _short, statement_hint, steps_table
from .errors import InvalidTarget, MigmagicError, MigrationFailed, ScriptDirectoryError, cause

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .adapter import RevisionInfo, Scripts, Step
    from .engine import Migrator


def run(m: Migrator, existing: RevisionInfo, body: str, progress: Progress | None) -> display.RevisionWritten:
    """Re-apply ``existing`` with ``body``: see the module's docstring for what happens when it fails."""
    job = _Reapply(m, existing, body, progress)
    started = time.perf_counter()
    if m.db.transactional_ddl:
        job.in_one_transaction()
        how = "in one transaction"
    else:
        job.step_by_step()
        how = "step by step"
    done = [s for phase in job.phases for s in phase.done]
    seconds = time.perf_counter() - started
    summary = (
        f"Re-applied {existing.id} {how}: downgraded with the old code, upgraded with the new; "
        f"{m.db.masked_url} is at {_at(job.after)} ({len(done)} steps in {seconds:.2f} s)."
    )
    outcome = display.Outcome(summary, steps_table(done))
    return display.RevisionWritten("rewrote", existing.id, existing.message, _short(existing.path), existing.down_revisions, outcome)


def _at(heads: tuple[str, ...]) -> str:
    return ", ".join(heads) or "base"


class _Reapply:
    """One re-apply: its stage, the heads it started from, and the phases it ran."""

    def __init__(self, m: Migrator, existing: RevisionInfo, body: str, progress: Progress | None) -> None:
        self.m = m
        self.existing = existing
        self.path = existing.path
        self.old_bytes = existing.path.read_bytes()
        self.text = m._rewritten(existing, body)
        self.progress = progress
        self.stage = "lock"  # lock -> downgrade -> write -> upgrade -> commit
        self.original: tuple[str, ...] = ()  # the database's heads, read under the lock
        self.phases: list[Phase] = []
        self.rows: list[dict[str, Any]] = []  # ledger rows not yet inserted (transactional databases)
        self.after: tuple[str, ...] = ()

    # ------------------------------------------------------------------ the three acts

    def _downgrade(self, conn: Connection, per_step: bool) -> None:
        """Downgrade below the revision with the code it was applied with."""
        self.stage = "downgrade"
        scripts = self.m.scripts()
        rev = self.existing.id

        def check(heads: tuple[str, ...]) -> None:
            self.original = heads
            self.m._verify(conn, scripts, heads)
            if rev not in scripts.applied(heads):
                raise InvalidTarget(
                    f"Revision {rev} is no longer applied to {self.m.db.masked_url}.",
                    hint="Nothing was run: run the cell again to rewrite it in place.",
                )

        self._phase(conn, scripts, per_step).run(lambda heads: scripts.downgrade_plan(f"{rev}-1", heads), check=check)

    def _write(self) -> Scripts:
        self.stage = "write"
        return self.m._write(self.path, self.text)

    def _upgrade(self, conn: Connection, scripts: Scripts, per_step: bool) -> None:
        """Upgrade with the new code to every head the database was at."""
        self.stage = "upgrade"
        for head in self.original:
            self._phase(conn, scripts, per_step).run(_upgrade_to(scripts, head))

    def _phase(self, conn: Connection, scripts: Scripts, per_step: bool) -> Phase:
        phase = Phase(conn, scripts, self.rows, per_step=per_step, progress=self.progress)
        self.phases.append(phase)
        return phase

    # ------------------------------------------------------------------ SQLite, PostgreSQL

    def in_one_transaction(self) -> None:
        m = self.m
        try:
            with m.db.migrating() as conn:
                ledger.ensure(conn)
                self._downgrade(conn, per_step=False)
                new = self._write()
                self._upgrade(conn, new, per_step=False)
                self.stage = "commit"
                ledger.insert(conn, self.rows)
                self.after = m._adapter().current_heads(conn)
        except BaseException as exc:
            # The error is made before the old file is put back: its traceback shows the code that ran.
            error = self._error(exc, self._nothing_changed())
            self._put_back()
            if error is None:
                raise
            raise error from cause(error, exc)

    def _nothing_changed(self) -> str:
        where = f"is still at {_at(self.original)}" if self.stage != "lock" else "was not touched"
        return f"Nothing changed: the database {where}, and {_short(self.path)} still holds its old code."

    # ------------------------------------------------------------------ MySQL, MariaDB

    def step_by_step(self) -> None:
        m = self.m
        with m.db.migrating() as conn:
            ledger.ensure(conn)
            conn.commit()
            try:
                self._downgrade(conn, per_step=True)
                new = self._write()
                conn.commit()  # a clean start for Alembic's per-step transactions
                self._upgrade(conn, new, per_step=True)
                self.after = m._adapter().current_heads(conn)
            except BaseException as exc:
                # Made before the old file is put back: its traceback shows the code that ran.
                failure = self._error(exc, "")
                if failure is None:
                    self._put_back()
                    raise
                error = self._recover(conn, failure)
                raise error from cause(error, exc)

    def _recover(self, conn: Connection, failure: MigmagicError) -> MigmagicError:
        """Undo what committed as far as possible; the error, saying where the database ended up."""
        m = self.m
        _rollback(conn)
        if self.stage == "lock":  # nothing ran, nothing was written
            return _with_hint(failure, f"Nothing was run, and {_short(self.path)} still holds its old code.")
        trouble = ""
        # 1. Steps the new code completed: downgrade them again, with the new code.
        if self.stage == "upgrade" and any(p.done for p in self.phases[1:]):
            new = self.phases[-1].scripts
            try:
                Phase(conn, new, [], per_step=True).run(lambda heads: new.downgrade_plan(f"{self.existing.id}-1", heads))
            except Exception as undo_exc:
                _rollback(conn)
                trouble = f"downgrading the new code's steps failed too ({m._described(undo_exc, 200)})"
        # 2. The old file, byte for byte.
        self._put_back()
        # 3. The old code, up to where the database was.
        if not trouble:
            try:
                old = m.scripts()
                for head in self.original:
                    Phase(conn, old, [], per_step=True).run(_upgrade_to(old, head))
            except Exception as redo_exc:
                _rollback(conn)
                trouble = f"upgrading with the old code failed too ({m._described(redo_exc, 200)})"
        now = m._adapter().current_heads(conn)
        _rollback(conn)
        failed_rev = failure.revision if isinstance(failure, MigrationFailed) else ""
        left = f"DDL that {failed_rev} ran before it failed was not undone" if failed_rev and self.stage != "write" else ""
        dialect = m.db.dialect_name
        if not trouble and set(now) == set(self.original):
            hint = (
                f"{dialect} cannot roll back DDL, so the re-apply was undone step by step: "
                f"{_short(self.path)} holds its old code again, and the database is back at {_at(now)}; "
                f"data the downgrades dropped is not restored" + (f", and {left}." if left else ".")
            )
        else:
            trouble = trouble or f"the old code did not reach {_at(self.original)}"
            hint = (
                f"{dialect} cannot roll back DDL: {_short(self.path)} holds its old code again, "
                f"but {trouble}: the version table is at {_at(now)}"
                + (f"; {left}" if left else "")
                + f". Fix the database by hand, then %migrate upgrade {self.original[0] if len(self.original) == 1 else 'heads'}."
            )
        return _with_hint(failure, hint)

    # ------------------------------------------------------------------ both

    def _put_back(self) -> None:
        """The old file, byte for byte, once the new one may have been written; the cache re-reads it."""
        if self.stage in ("write", "upgrade", "commit"):
            self.m._restore(self.path, self.old_bytes)
            try:
                self.m.scripts()  # warm again, with the old code
            except MigmagicError:
                pass  # the next command says what is wrong with the folder

    def _error(self, exc: BaseException, hint: str) -> MigmagicError | None:
        """The error to raise for ``exc`` at this stage, or None to raise ``exc`` itself."""
        m, rev, message = self.m, self.existing.id, self.existing.message
        if not isinstance(exc, Exception):
            return None  # KeyboardInterrupt and the like: as they are
        if self.stage == "write":
            if isinstance(exc, ScriptDirectoryError):
                reason = exc.message
            elif isinstance(exc, OSError):
                reason = f"cannot write {_short(self.path)}: {exc.strerror or exc}"
            else:
                reason = f"cannot write {_short(self.path)}: {type(exc).__name__}: {exc}"
            return ScriptDirectoryError(f"Could not re-apply {rev} ({message!r}): {reason.rstrip('.')}.", hint=hint, path=str(self.path))
        if isinstance(exc, MigmagicError):
            return None  # the lock, the checks before anything ran: they say what happened
        phase = self.phases[-1] if self.phases else None
        done: list[Step] = phase.done if phase else []
        if self.stage == "commit":
            what, failed, statement = f"The re-apply failed when committing: {m._described(exc)}", "", m._failed_statement(exc)
        else:
            command = {"downgrade": "downgrade with the old code", "upgrade": "upgrade with the new code"}.get(self.stage, "re-apply")
            what, failed, statement = m._what_failed(command, exc, phase.planned if phase else [], done)
        hint = (hint + statement_hint(statement)).strip()
        return MigrationFailed(
            f"Could not re-apply {rev} ({message!r}). {what}",
            revision=failed or rev,
            original=exc,
            statement=statement,
            completed=[s.revision for s in done],
            hint=hint,
            scrub=m._scrub,
        )


def _upgrade_to(scripts: Scripts, head: str) -> Callable[[tuple[str, ...]], list[Step]]:
    """The plan that upgrades the database's heads to ``head`` with ``scripts``."""
    return lambda heads: scripts.upgrade_plan(head, heads)


def _rollback(conn: Connection) -> None:
    if conn.in_transaction():
        conn.rollback()


def _with_hint(error: MigmagicError, hint: str) -> MigmagicError:
    """``error`` again (same traceback frames), with ``hint`` and its failed statement as the way forward."""
    if isinstance(error, MigrationFailed):
        hint += statement_hint(error.statement)
        return MigrationFailed(
            error.message, revision=error.revision, original=error.original, statement=error.statement,
            completed=error.completed, hint=hint, frames=error.frames, scrub=error._scrub,
        )
    if isinstance(error, ScriptDirectoryError):
        return ScriptDirectoryError(error.message, hint=hint, path=error.path)
    return type(error)(error.message, hint)
