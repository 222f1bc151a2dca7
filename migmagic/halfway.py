"""``resume`` and ``repair``: the two ways out of a half-applied revision (MySQL/MariaDB).

A revision is half-applied when its step started and some of its statements
committed, but the step never finished: the process was killed, the server went
away, or the revision failed after a DDL statement (see :mod:`migmagic.journal`,
which records each statement as it commits). ``upgrade`` and ``downgrade``
refuse to run past it. Then:

* :func:`resume` runs the step again through the one sequence
  (:func:`migmagic.run.migrate`, with a planner of its own): each statement the journal recorded as
  committed is checked against what the revision's code emits now (SHA-256 of
  the text) and skipped; the first one that differs stops the resume before it
  runs. The rest runs and is recorded as usual; the version table, the ledger
  row (noting the resume) and the journal's forgetting commit together.
* :func:`repair` changes the bookkeeping only (nothing runs on the schema): the
  revision is recorded as applied or not applied, after the user put the
  database right by hand. The version table, a ``repair`` ledger row and the
  journal's forgetting commit together.

On SQLite and PostgreSQL nothing is ever half-applied: a failed command rolls
back whole. There :func:`resume` says there is nothing to resume.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from . import display, journal, ledger, run
from .errors import Fix, InvalidTarget

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .adapter import Scripts
    from .database import Database
    from .state import State


def resume(db: Database, scripts: Scripts, observers: Sequence[run.Observer] = ()) -> display.Outcome:
    """Finish the half-applied revision, skipping the statements that committed (checked against the file)."""
    found: dict[str, Any] = {}

    def make_plan(ex: run.Execution, before: State) -> run.Plan:
        if not before.half_applied:
            found["nothing"] = before.where
            return run.Plan("resume", "", before, [], scripts, bookkeeping=lambda ex: None)
        half = found["half"] = before.half_applied[0]
        if half.revision not in scripts:
            raise InvalidTarget(
                f"Revision {half.revision} is half-applied, and its file is not in the folder: it cannot be resumed.",
                target=half.revision,
                hint="Restore the file; or put the database right by hand and record it with {0} or {1}.",
                fixes=journal.ways_out(half.revision)[1:],
            )
        run.refuse_untrusted(ex.conn, scripts, replace(before, half_applied=[]))
        target = half.revision if half.direction == "upgrade" else f"{half.revision}-1"
        the_plan = run.plan(half.direction, target, scripts, before)
        if [(s.revision, s.direction) for s in the_plan.steps] != [(half.revision, half.direction)]:
            raise InvalidTarget(
                f"{half.sentence()}, but the version table ({before.where}) is no longer where that step left it: it cannot be resumed.",
                target=half.revision,
                hint="Put the database right by hand and record it with {0} or {1}.",
                fixes=journal.ways_out(half.revision)[1:],
            )
        assert ex.journal is not None  # half-applied only where DDL commits itself
        ex.journal.resuming(half)
        found["journal"] = ex.journal
        return the_plan

    started = time.perf_counter()
    outcome = run.migrate(db, scripts, "resume", "", observers=observers, make_plan=make_plan)
    if "nothing" in found:
        return display.Outcome(f"Nothing to resume: no revision is half-applied on {db.masked_url} (at {found['nothing']}).")
    half, recorder = found["half"], found["journal"]
    n = len(half.statements)
    ran = recorder.position - n
    with db.reading() as conn:
        from .adapter import current_heads

        after = current_heads(conn, scripts.environment)
    outcome.summary = (
        f"Resumed {half.revision} ({half.message!r}): skipped {n} statement{'s' if n != 1 else ''} that had committed, "
        f"ran {ran}; {db.masked_url} is at {', '.join(after) or 'base'} ({time.perf_counter() - started:.2f} s)."
    )
    return outcome


def repair(db: Database, scripts: Scripts, rev: str, applied: bool, observers: Sequence[run.Observer] = ()) -> display.Message:
    """Record the half-applied revision ``rev`` as applied or not applied; nothing runs on the schema.

    The version table is set to what Alembic's own bookkeeping would hold had the
    step completed (``applied`` matching its direction) or never run.
    """
    from .adapter import ALEMBIC_VERSION, heads_after, step_of, version_statements

    rev_id = rev if rev in scripts else scripts.resolve(rev).id
    message = scripts.info(rev_id).message
    said: dict[str, Any] = {}

    def make_plan(ex: run.Execution, before: State) -> run.Plan:
        half = next((h for h in before.half_applied if h.revision == rev_id), None)
        if half is None:
            raise InvalidTarget(
                f"Revision {rev_id} ({message!r}) is not half-applied: there is nothing to repair.",
                target=rev_id,
                hint="Nothing was changed. To set the version table without running revisions, use {0}.",
                fixes=[Fix("stamp", (rev_id,))],
            )
        completed = applied == (half.direction == "upgrade")
        heads = heads_after(before.heads, [step_of(scripts, rev_id, half.direction)]) if completed else before.heads
        word = "applied" if applied else "not applied"
        note = f"marked {word} by hand: its {half.direction} had stopped after {half.committed}"
        source = scripts.info(rev_id).source if applied else None
        row = ledger.row(revision=rev_id, direction="repair", message=message, seconds=None, source=source, alembic_version=ALEMBIC_VERSION, note=note)
        said.update(word=word, heads=heads)

        def books(ex: run.Execution) -> None:
            version_statements(ex.conn, before.heads, heads, scripts.environment)
            _forget(ex.conn, half)
            ex.ledger_row(row)

        return run.Plan("repair", rev_id, before, [], scripts, bookkeeping=books)

    run.migrate(db, scripts, "repair", rev_id, observers=observers, make_plan=make_plan)
    return display.Message(
        f"Recorded {rev_id} ({message!r}) as {said['word']}; the version table is at {', '.join(said['heads']) or 'base'}. Nothing was run on the schema."
    )


def _forget(conn: Connection, half: Any) -> None:
    t = journal.table()
    conn.execute(t.delete().where(t.c.revision == half.revision, t.c.direction == half.direction))
