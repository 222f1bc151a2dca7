"""Which observers each command gets: one table, in one place.

An observer hears a command's run at named moments (see
:class:`migmagic.run.Observer`): the plan made, each step started and done, the
run finished. What a careful user is promised around a run — the data-loss guard,
a restore point, the progress line, a dry run's capture — is an observer, and
:data:`TABLE` says which command gets which. :func:`build` is the only way to
make them, so a command cannot get a different set by accident; a test holds the
table to what the README promises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .run import Observer

if TYPE_CHECKING:
    from .adapter import Step
    from .run import Execution, OnProgress, Plan

TABLE: dict[str, tuple[str, ...]] = {
    # command       observers, in the order they hear a plan (the guard first: a refused plan needs no restore point)
    "upgrade": ("data-loss guard", "restore point", "progress"),
    "downgrade": ("data-loss guard", "restore point", "progress"),
    "reapply": ("data-loss guard", "restore point", "progress"),  # both of its plans: the old code's downgrade, the new code's upgrade
    "stamp": ("restore point",),  # no revision runs: nothing for the guard to count
    "resume": ("data-loss guard", "progress"),  # MySQL/MariaDB only (no restore points there); the code may have changed since the step first ran
    "repair": (),  # bookkeeping only: the version table, a ledger row
    "accept": (),  # a ledger row
    "settle": (),  # a re-apply killed part-way: the file put back, nothing runs
    "dry run": ("rehearsal", "scratch only", "progress"),  # on a scratch copy: the guard's findings are in the report, never a refusal
    "verify": ("scratch only",),  # a throwaway database
    "scratch": ("scratch only",),  # a scratch copy moved to where --sql starts, before its capture
    "sql capture": ("rehearsal", "scratch only"),  # --sql where Alembic cannot render offline: a rehearsal on a scratch copy
}
"""command -> the observers it gets. ``--accept-data-loss`` leaves out the data-loss guard; nothing else changes the set."""


def build(
    command: str,
    *,
    progress: OnProgress | None = None,
    accept_data_loss: bool = False,
    restore_points: int = 0,
    wait: float = 30.0,
    label: str | None = None,
    rehearsal: Observer | None = None,
    scratch_only: Observer | None = None,
) -> list[Observer]:
    """The observers :data:`TABLE` gives ``command``, made with what the command was asked."""
    made: list[Observer] = []
    for name in TABLE[command]:
        if name == "data-loss guard" and not accept_data_loss:
            from .guard import Guard

            made.append(Guard(command if command == "resume" else None))
        elif name == "restore point" and restore_points > 0:
            made.append(RestorePoint(restore_points, wait=wait, label=label, say=accept_data_loss))
        elif name == "progress" and progress is not None:
            made.append(ProgressLine(progress))
        elif name == "scratch only" and scratch_only is not None:  # MySQL/MariaDB: the real database is not reached by name
            made.append(scratch_only)
        elif name == "rehearsal":
            if rehearsal is None:
                raise ValueError(f"{command} needs its rehearsal observer")
            made.append(rehearsal)
    if rehearsal is not None and "rehearsal" not in TABLE[command]:
        raise ValueError(f"{command} does not rehearse")
    if scratch_only is not None and "scratch only" not in TABLE[command]:
        raise ValueError(f"{command} runs on no scratch database")
    return made


class RestorePoint(Observer):
    """SQLite: a restore point of the database file before the command's first step (see :mod:`migmagic.restore`)."""

    def __init__(self, keep: int, *, wait: float, label: str | None, say: bool = False) -> None:
        from .restore import Taker

        self.taker = Taker(keep, wait=wait, label=label)
        self.notes = self.taker.notes
        self.say = say  # --accept-data-loss: the way back is named in the result
        self._tried = False

    def planned(self, plan: Plan, ex: Execution) -> None:
        if self._tried or not (plan.steps or plan.purge):
            return
        self._tried = True
        self.taker(plan, ex.conn)
        taken = self.taker.taken
        if self.say and taken is not None:
            self.notes.append(
                f"Restore point {taken.point} was taken before it: %migrate restore {taken.point} "
                f"(restore({taken.point}) in Python) puts the database back as it was, the data it destroyed included."
            )


class ProgressLine(Observer):
    """The progress line (see :mod:`migmagic.progress`): each plan's steps named before they run, then one tick per step."""

    def __init__(self, progress: OnProgress) -> None:
        self.progress = progress
        self.notes: list[str] = []
        self._steps: Sequence[Step] = ()
        self._done = 0

    def planned(self, plan: Plan, ex: Execution) -> None:
        self._steps, self._done = plan.steps, 0
        begin: Any = getattr(self.progress, "begin", None)
        if begin is not None:
            begin(plan.steps)
        self.progress(0, len(plan.steps), None)

    def step_done(self, step: Step) -> None:
        self._done += 1
        self.progress(self._done, len(self._steps), step)
