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

The sequence (lock, plans, steps, ledger rows, commit) is :mod:`migmagic.run`'s,
run here with three acts under one lock; the file is written through
:mod:`migmagic.folder`. Nothing here knows IPython.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import display, run
from .display import short_path
from .errors import (
    DataLossRefused,
    Fix,
    InvalidTarget,
    MigmagicError,
    MigrationFailed,
    ScriptDirectoryError,
    cause,
)

if TYPE_CHECKING:
    from .adapter import RevisionInfo, Scripts, Step
    from .database import Database
    from .folder import Folder


def reapply(db: Database, folder: Folder, existing: RevisionInfo, body: str, observers: Sequence[run.Observer] = ()) -> display.RevisionWritten:
    """Re-apply ``existing`` with ``body``: see the module's docstring for what happens when it fails.

    ``observers`` (made for ``reapply`` by :func:`migmagic.observers.build`) hear both plans: the data-loss
    guard may refuse either (the old code's downgrade, the new code's upgrade) before it runs.
    """
    job = _Reapply(db, folder, existing, body, observers)
    started = time.perf_counter()
    if db.transactional_ddl:
        job.in_one_transaction()
        how = "in one transaction"
    else:
        job.step_by_step()
        how = "step by step"
    folder.drop_old(existing.path)  # committed: the new code is what is applied
    done = job.done
    seconds = time.perf_counter() - started
    summary = (
        f"Re-applied {existing.id} {how}: downgraded with the old code, upgraded with the new; "
        f"{db.masked_url} is at {_at(job.after)} ({len(done)} steps in {seconds:.2f} s)."
    )
    outcome = display.Outcome(summary, display.steps_table(done), job.notes)
    return display.RevisionWritten("rewrote", existing.id, existing.message, short_path(existing.path), existing.down_revisions, outcome)


def _at(heads: tuple[str, ...]) -> str:
    return ", ".join(heads) or "base"


class _Reapply:
    """One re-apply: its stage, the heads it started from, and the execution it ran in."""

    def __init__(self, db: Database, folder: Folder, existing: RevisionInfo, body: str, observers: Sequence[run.Observer]) -> None:
        self.db = db
        self.folder = folder
        self.existing = existing
        self.path = existing.path
        self.old_bytes = existing.path.read_bytes()
        self.text = folder.rewritten(existing, body)
        self.observers = observers
        self.stage = "lock"  # lock -> downgrade -> write -> upgrade -> commit
        self.original: tuple[str, ...] = ()  # the database's heads, read under the lock
        self.ex: run.Execution | None = None
        self.downgraded = 0  # steps the downgrade act completed
        self.done: list[Step] = []  # the steps of the re-apply (not those of a recovery)
        self.notes: list[str] = []
        self.after: tuple[str, ...] = ()

    # ------------------------------------------------------------------ the three acts

    def _downgrade(self, ex: run.Execution) -> None:
        """Downgrade below the revision with the code it was applied with."""
        self.ex = ex
        self.stage = "downgrade"
        scripts = self.folder.scripts()
        before = ex.state(scripts)
        self.original = before.heads
        run.refuse_untrusted(ex.conn, scripts, before)
        rev = self.existing.id
        if not before.is_applied(rev):
            raise InvalidTarget(
                f"Revision {rev} is no longer applied to {self.db.masked_url}.",
                hint="Nothing was run: {0} to rewrite it in place.",
                fixes=[Fix("revision", cell=True)],
            )
        ex.run(run.plan("downgrade", f"{rev}-1", scripts, before))
        self.downgraded = len(ex.done)

    def _write(self) -> Scripts:
        self.stage = "write"
        self.folder.keep_old(self.path, self.old_bytes, self.text.encode("utf-8"))  # until the commit: a kill before it leaves them to put back
        return self.folder.write(self.path, self.text)

    def _upgrade(self, ex: run.Execution, scripts: Scripts) -> None:
        """Upgrade with the new code to every head the database was at."""
        self.stage = "upgrade"
        for head in self.original:
            ex.run(run.plan("upgrade", head, scripts, ex.state(scripts)))

    def _finish(self, ex: run.Execution) -> None:
        self.after = ex.heads()
        self.done = list(ex.done)
        self.notes = ex.notes()

    # ------------------------------------------------------------------ SQLite, PostgreSQL

    def in_one_transaction(self) -> None:
        try:
            with run.locked(self.db, "reapply", self.observers) as ex:
                self._downgrade(ex)
                new = self._write()
                self._upgrade(ex, new)
                self.stage = "commit"  # the ledger rows are inserted, then the transaction commits
                self._finish(ex)
        except BaseException as exc:
            # The error is made before the old file is put back: its traceback shows the code that ran.
            error = self._error(exc, self._nothing_changed())
            self._put_back()
            if error is None:
                raise
            raise error from cause(error, exc)

    def _nothing_changed(self) -> str:
        where = f"is still at {_at(self.original)}" if self.stage != "lock" else "was not touched"
        return f"Nothing changed: the database {where}, and {short_path(self.path)} still holds its old code."

    # ------------------------------------------------------------------ MySQL, MariaDB

    def step_by_step(self) -> None:
        with run.locked(self.db, "reapply", self.observers) as ex:
            try:
                self._downgrade(ex)
                new = self._write()
                ex.conn.commit()  # a clean start for Alembic's per-step transactions
                self._upgrade(ex, new)
                self._finish(ex)
            except BaseException as exc:
                # Made before the old file is put back: its traceback shows the code that ran.
                failure = self._error(exc, "")  # a refused upgrade with the new code comes back: the old code's downgrade committed
                if failure is None:
                    self._put_back()
                    raise
                error = self._recover(ex, failure)
                raise error from cause(error, exc)

    def _recover(self, ex: run.Execution, failure: MigmagicError) -> MigmagicError:
        """Undo what committed as far as possible; the error, saying where the database ended up."""
        _rollback(ex)
        if self.stage == "lock":  # nothing ran, nothing was written
            return _with_hint(failure, f"Nothing was run, and {short_path(self.path)} still holds its old code.")
        trouble = ""
        rev = self.existing.id
        # 1. Steps the new code completed: downgrade them again, with the new code.
        if self.stage == "upgrade" and len(ex.done) > self.downgraded:
            new = ex.plans[-1].scripts
            try:
                ex.run(run.plan("downgrade", f"{rev}-1", new, ex.state(new)))
            except Exception as undo_exc:
                _rollback(ex)
                trouble = f"downgrading the new code's steps failed too ({run.describe(self.db, undo_exc, 200)})"
        # 2. The old file, byte for byte.
        self._put_back()
        # 3. The old code, up to where the database was.
        if not trouble:
            try:
                old = self.folder.scripts()
                for head in self.original:
                    ex.run(run.plan("upgrade", head, old, ex.state(old)))
            except Exception as redo_exc:
                _rollback(ex)
                trouble = f"upgrading with the old code failed too ({run.describe(self.db, redo_exc, 200)})"
        now = ex.heads()
        _rollback(ex)
        failed_rev = failure.revision if isinstance(failure, MigrationFailed) else ""
        left = f"DDL that {failed_rev} ran before it failed was not undone" if failed_rev and self.stage != "write" else ""
        dialect = self.db.dialect_name
        if not trouble and set(now) == set(self.original):
            hint = (
                f"{dialect} cannot roll back DDL, so the re-apply was undone step by step: "
                f"{short_path(self.path)} holds its old code again, and the database is back at {_at(now)}; "
                f"data the downgrades dropped is not restored" + (f", and {left}." if left else ".")
            )
            return _with_hint(failure, hint)
        trouble = trouble or f"the old code did not reach {_at(self.original)}"
        hint = (
            f"{dialect} cannot roll back DDL: {short_path(self.path)} holds its old code again, "
            f"but {trouble}: the version table is at {_at(now)}"
            + (f"; {left}" if left else "")
            + ". Fix the database by hand, then {0}."
        )
        return _with_hint(failure, hint, [Fix("upgrade", (self.original[0] if len(self.original) == 1 else "heads",))])

    # ------------------------------------------------------------------ both

    def _put_back(self) -> None:
        """The old file, byte for byte, once the new one may have been written; the cache re-reads it."""
        if self.stage in ("write", "upgrade", "commit"):
            self.folder.put_back(self.path, self.old_bytes)
            self.folder.drop_old(self.path)
            try:
                self.folder.scripts()  # warm again, with the old code
            except MigmagicError:
                pass  # the next command says what is wrong with the folder

    def _error(self, exc: BaseException, hint: str) -> MigmagicError | None:
        """The error to raise for ``exc`` at this stage, or None to raise ``exc`` itself."""
        rev, message = self.existing.id, self.existing.message
        if not isinstance(exc, Exception):
            return None  # KeyboardInterrupt and the like: as they are
        if isinstance(exc, DataLossRefused):
            act = "downgrade with the old code" if self.stage == "downgrade" else "upgrade with the new code"
            exc.retell(
                f"Could not re-apply {rev} ({message!r}): its {act} would destroy data: {exc.at_stake}.",
                (hint + " " if hint else "") + "See exactly what it changes with {0}; run it anyway by re-running the cell with --reapply --accept-data-loss.",
                [Fix(exc.command, (exc.target,), (("dry_run", True),))],
            )
            return exc if self.stage == "upgrade" and not self.db.transactional_ddl else None
        if self.stage == "write":
            if isinstance(exc, ScriptDirectoryError):
                reason = exc.message
            elif isinstance(exc, OSError):
                reason = f"cannot write {short_path(self.path)}: {exc.strerror or exc}"
            else:
                reason = f"cannot write {short_path(self.path)}: {type(exc).__name__}: {exc}"
            return ScriptDirectoryError(f"Could not re-apply {rev} ({message!r}): {reason.rstrip('.')}.", hint=hint, path=str(self.path))
        if isinstance(exc, MigmagicError):
            return None  # the lock, the checks before anything ran: they say what happened
        ex = self.ex
        done = ex.current_done if ex else []
        if self.stage == "commit":
            what, failed, statement = f"The re-apply failed when committing: {run.describe(self.db, exc)}", "", run.failed_statement(self.db, exc)
        else:
            command = {"downgrade": "downgrade with the old code", "upgrade": "upgrade with the new code"}.get(self.stage, "re-apply")
            planned = ex.current.steps if ex and ex.current else []
            what, failed, statement = run.what_failed(self.db, command, exc, planned, done)
        return MigrationFailed(
            f"Could not re-apply {rev} ({message!r}). {what}",
            revision=failed or rev,
            original=exc,
            statement=statement,
            completed=[s.revision for s in done],
            hint=(hint + run.statement_hint(statement)).strip(),
            scrub=self.db.scrub,
        )


def settle(db: Database, folder: Folder) -> list[str]:
    """Resolve what a re-apply killed part-way left behind: the revision file agrees with what is applied again.

    A re-apply keeps the old bytes beside the file until it committed. Found later,
    under the migration lock (so never while a re-apply runs): when the ledger says
    the old code is applied (SQLite and PostgreSQL rolled the re-apply back), the
    old bytes are put back; when it says the new code is, they are dropped; on
    MySQL/MariaDB, where the downgrade committed and the new code is half-applied
    (no applying ledger row), the new code is kept for ``resume``. Returns what it did.
    """
    from . import ledger
    from .errors import LockTimeout
    from .revisionfile import checksum, rev_id_of

    leftovers = folder.leftovers()
    if not leftovers:
        return []
    done: list[str] = []
    try:
        with run.locked(db, "settle") as ex:
            entries = ledger.latest(ex.conn)
            folder.scripts()
            for path, old in folder.leftovers():  # again, under the lock
                old_text = old.decode("utf-8-sig", errors="replace")
                rev = rev_id_of(old_text)
                entry = entries.get(rev) if rev else None
                now = checksum(path.read_text(encoding="utf-8-sig")) if path.exists() else None
                if entry is not None and entry.checksum == now:
                    folder.drop_old(path)
                elif (entry is not None and entry.checksum == checksum(old_text)) or (entry is None and db.transactional_ddl):
                    written, current = folder.written_by_reapply(path), path.read_bytes() if path.exists() else None
                    if written is not None and current is not None and current not in (written, old):
                        folder.drop_old(path)  # edited by hand since the killed re-apply wrote it: the edit is not undone
                        done.append(
                            f"{short_path(path)} was edited after a re-apply that did not commit wrote it: it is kept as you "
                            f"left it, and it is not the code that is applied (re-apply or accept it)."
                        )
                        continue
                    folder.put_back(path, old)
                    folder.drop_old(path)
                    done.append(f"{short_path(path)} holds its old code again: the re-apply that wrote it did not commit.")
                elif entry is None:
                    folder.drop_old(path)  # MySQL/MariaDB: the new code is the one half-applied
    except LockTimeout:
        return []  # a re-apply is running: it settles itself
    return done


def _rollback(ex: run.Execution) -> None:
    if ex.conn.in_transaction():
        ex.conn.rollback()


def _with_hint(error: MigmagicError, hint: str, fixes: list[Fix] | None = None) -> MigmagicError:
    """``error`` again (same traceback frames), with ``hint`` and its failed statement as the way forward."""
    if isinstance(error, MigrationFailed):
        return error.with_hint(hint + run.statement_hint(error.statement), fixes or [])
    if isinstance(error, ScriptDirectoryError):
        return ScriptDirectoryError(error.message, hint=hint, path=error.path, fixes=fixes or [])
    error.retell(error.message.replace(" Nothing was run.", ""), hint, fixes or [])
    return error
