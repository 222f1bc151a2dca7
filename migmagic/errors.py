"""Every error migmagic raises on purpose.

A :class:`MigmagicError` is something the user can fix. In a notebook it renders
as one line (IPython calls ``_render_traceback_``) and the cell fails; in the
Python API it is an ordinary exception carrying its data as attributes.

One constructor convention across the hierarchy: the message first, everything
else by keyword (``hint``, ``fixes``, and the data each error carries, such as
``revision``, ``candidates`` or ``holder``).

Data, then words: where the way forward is another command, the error carries it
as a :class:`Fix` and its hint names it with ``{}`` placeholders. The hint reads
in Python terms (``downgrade('abc1-1')``) in the API, and in notebook terms
(``%migrate downgrade abc1-1``) where IPython renders the error.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import textwrap
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Fix:
    """A way forward that is a migmagic command: spelled as a method call or as a magic line.

    ``options`` are keyword arguments of the method (``reapply=True``), which are
    ``--reapply`` on a magic line. With ``cell`` the command is a ``%%revision``
    cell run again rather than a ``%migrate`` line.
    """

    command: str
    args: tuple[str, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()
    cell: bool = False

    MODES = ("sql", "dry_run")
    """Options that are methods of their own in Python (``dry_run('upgrade', 'head')``), the command their first argument."""

    def python(self) -> str:
        mode = next((key for key, value in self.options if key in self.MODES and value is True), None)
        options = [(k, v) for k, v in self.options if k != mode]
        words = ([repr(self.command)] if mode else []) + [repr(a) for a in self.args] + [f"{key}={value!r}" for key, value in options]
        call = f"{mode or self.command}({', '.join(words)})"
        return f"call {call} again" if self.cell else call

    def magic(self) -> str:
        flags = [_flag(key) if value is True else f"--not-{key.replace('_', '-')}" if value is False else f"{_flag(key)} {value}" for key, value in self.options]
        if self.cell:
            return "re-run the cell with " + " ".join(flags) if flags else "re-run the cell"
        return " ".join(["%migrate", self.command, *self.args, *flags])


def _flag(key: str) -> str:
    return "-m" if key == "message" else "--" + key.replace("_", "-")


def sentences(*parts: str | None) -> str:
    """``parts`` joined as sentences: each ends with a full stop (or ?, !, :) before the next."""
    out: list[str] = []
    for part in parts:
        text = (part or "").strip()
        if not text:
            continue
        if out and not out[-1].endswith((".", "!", "?", ":", ".)", ".'", '."')):
            out[-1] += "."
        out.append(text)
    return " ".join(out)


KERNEL_WIDTH = 96
"""Where a long error line is broken, between words, in a Jupyter kernel."""


def _in_a_kernel() -> bool:
    """True in a Jupyter kernel's process (ipykernel running), without importing anything."""
    app = sys.modules.get("ipykernel.kernelapp")
    return bool(app is not None and app.IPKernelApp.initialized())


def _fitted(render: Callable[[Any], list[str]]) -> Callable[[Any], list[str]]:
    """``render`` (a ``_render_traceback_``) whose first line, the error's sentence, is broken between words in a kernel.

    Front ends set a traceback in a ``<pre>`` that breaks a long line anywhere, mid-word
    (JupyterLab's and nbconvert's ``word-break: break-all``); broken here, it breaks at words.
    The lines after the first (tables, a diff, revision code) are left as they are.
    """

    @functools.wraps(render)
    def fitted(self: Any) -> list[str]:
        lines = render(self)
        if lines and _in_a_kernel() and len(lines[0]) > KERNEL_WIDTH and "\n" not in lines[0]:
            lines = [textwrap.fill(lines[0], KERNEL_WIDTH, break_long_words=False, break_on_hyphens=False), *lines[1:]]
        return lines

    return fitted


class MigmagicError(Exception):
    """A user error: one line that says what is wrong and what to do."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("_render_traceback_")
        if own is not None:
            cls._render_traceback_ = _fitted(own)  # type: ignore[method-assign]

    def __init__(self, message: str, *, hint: str | None = None, fixes: Sequence[Fix] = ()) -> None:
        self.message = message
        self.fixes = tuple(fixes)
        self._hint = hint
        super().__init__(sentences(message, self.hint))

    @property
    def hint(self) -> str | None:
        """The way forward, in Python terms."""
        return self._spelled(Fix.python)

    def notebook_hint(self) -> str | None:
        """The way forward, in notebook terms (``%migrate ...``)."""
        return self._spelled(Fix.magic)

    def _spelled(self, spell: Callable[[Fix], str]) -> str | None:
        text = self._hint
        if text is not None:
            # str.replace, not str.format: the rest of the hint may quote user text with braces.
            for i, fix in enumerate(self.fixes):
                text = text.replace(f"{{{i}}}", spell(fix))
        return text

    def retell(self, message: str, hint: str | None, fixes: Sequence[Fix] = ()) -> None:
        """Say this error again in other words, keeping its type and data."""
        self.message, self._hint, self.fixes = message, hint, tuple(fixes)
        self.args = (sentences(message, self.hint),)

    def notebook_text(self) -> str:
        return sentences(self.message, self.notebook_hint())

    @_fitted
    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self.notebook_text()}"]


class UsageError(MigmagicError):
    """A magic line or Python call that does not make sense."""


class RevisionCellError(MigmagicError):
    """A ``%%revision`` cell that cannot become a revision script."""

    def __init__(self, message: str, *, hint: str | None = None, line: int | None = None) -> None:
        self.line = line
        super().__init__(message, hint=hint)


class ScriptDirectoryError(MigmagicError):
    """The revision folder is broken: a bad script, an unknown parent, a cycle."""

    def __init__(self, message: str, *, hint: str | None = None, path: str | None = None, fixes: Sequence[Fix] = ()) -> None:
        self.path = path
        super().__init__(message, hint=hint, fixes=fixes)


class RevisionNotFound(MigmagicError):
    """A revision id, prefix or label that matches nothing, or more than one thing."""

    def __init__(self, message: str, *, candidates: Sequence[str] = (), hint: str | None = None) -> None:
        self.candidates = list(candidates)
        super().__init__(message, hint=hint)


class AmbiguousMessage(RevisionNotFound):
    """A ``-m`` message that names more than one revision in the folder; ``candidates`` holds their ids."""

    def __init__(self, message: str, *, candidates: Sequence[str], revision_message: str, hint: str | None = None) -> None:
        self.revision_message = revision_message
        super().__init__(message, candidates=candidates, hint=hint)


class ConfigurationError(MigmagicError):
    """A settings file (``pyproject.toml``, ``alembic.ini``) that cannot be read."""

    def __init__(self, message: str, *, path: str, hint: str | None = None) -> None:
        self.path = path
        super().__init__(message, hint=hint)


class InvalidTarget(MigmagicError):
    """A target Alembic cannot reach from the current revision (below base, say)."""

    def __init__(self, message: str, *, target: str | None = None, hint: str | None = None, fixes: Sequence[Fix] = ()) -> None:
        self.target = target
        super().__init__(message, hint=hint, fixes=fixes)


class ConnectionFailed(MigmagicError):
    """The database could not be reached. The URL in the message is masked."""

    def __init__(self, message: str, *, url: str, hint: str | None = None) -> None:
        self.url = url
        super().__init__(message, hint=hint)


class RevisionChanged(MigmagicError):
    """An applied revision whose source differs from what was applied."""

    def __init__(self, message: str, *, revision: str, diff: str, hint: str | None = None, fixes: Sequence[Fix] = ()) -> None:
        self.revision = revision
        self.diff = diff
        super().__init__(message, hint=hint, fixes=fixes)

    def _render_traceback_(self) -> list[str]:
        lines = [f"{type(self).__name__}: {self.notebook_text()}"]
        if self.diff:
            lines.append(self.diff.rstrip("\n"))
        return lines


class RevisionMissing(MigmagicError):
    """Applied revisions whose files are gone from the folder."""

    def __init__(self, message: str, *, revisions: Sequence[str], hint: str | None = None) -> None:
        self.revisions = list(revisions)
        super().__init__(message, hint=hint)


class LockTimeout(MigmagicError):
    """Another kernel or process is migrating the same database."""

    def __init__(self, message: str, *, holder: str | None = None, waited: float | None = None, hint: str | None = None) -> None:
        self.holder = holder
        self.waited = waited
        super().__init__(message, hint=hint)


class PendingModelChanges(MigmagicError):
    """``check`` found differences between the models and the database."""

    def __init__(self, message: str, *, diffs: Any, hint: str | None = None, fixes: Sequence[Fix] = ()) -> None:
        self.diffs = diffs
        super().__init__(message, hint=hint, fixes=fixes)

    def _render_traceback_(self) -> list[str]:
        lines = [f"{type(self).__name__}: {self.notebook_text()}"]
        if self.diffs is not None and len(self.diffs):
            lines.append(repr(self.diffs))  # a display.table: missing values blank
        return lines


class MetadataError(MigmagicError):
    """No usable SQLAlchemy ``MetaData`` for autogenerate, ``check`` or ``diff``."""


class NotAtHead(MigmagicError):
    """Autogenerate or ``check`` against a database that is not at the folder's head."""

    def __init__(
        self, message: str, *, current: Sequence[str], heads: Sequence[str], hint: str | None = None, fixes: Sequence[Fix] = ()
    ) -> None:
        self.current = list(current)
        self.heads = list(heads)
        super().__init__(message, hint=hint, fixes=fixes)


class MigrationInterrupted(MigmagicError):
    """The user interrupted a running command (Ctrl-C, the kernel's interrupt); ``revision`` was running."""

    def __init__(self, message: str, *, revision: str, completed: Sequence[str] = (), hint: str | None = None) -> None:
        self.revision = revision
        self.completed = list(completed)
        super().__init__(message, hint=hint)


class TransactionEndRefused(Exception):
    """A revision's statement would have ended the command's transaction (``COMMIT``, ``ROLLBACK``...): refused.

    Raised inside the revision's code, so the failure names the revision and its line.
    """


class RevisionEndedTransaction(MigmagicError):
    """A revision ended the command's transaction itself (``connection.commit()``...): the command stopped after it.

    Data: ``revision``, ``committed`` (revisions now committed, in order), ``not_run``
    (the plan's steps that did not run), ``where`` (the version table now).
    """

    def __init__(
        self, message: str, *, revision: str, committed: Sequence[str], not_run: Sequence[str], where: Sequence[str],
        hint: str | None = None, fixes: Sequence[Fix] = (),
    ) -> None:
        self.revision = revision
        self.committed = list(committed)
        self.not_run = list(not_run)
        self.where = list(where)
        super().__init__(message, hint=hint, fixes=fixes)


class RevisionCodeError(Exception):
    """What a revision raised, retold with secrets scrubbed: the cause a ``MigrationFailed`` is raised from.

    (Not to be confused with Alembic's ``RevisionError``, which is about the revision graph.)
    """


def cause(error: BaseException, exc: BaseException) -> BaseException:
    """What to raise ``error`` from when ``exc`` made it: for a ``MigrationFailed``, its scrubbed retelling of ``exc``.

    A plain Python traceback prints the cause in full, and the original exception
    may quote the connection URL.
    """
    return error.cause if isinstance(error, MigrationFailed) else exc


class MigrationFailed(MigmagicError):
    """Code inside a revision raised. Renders the traceback from the revision file on.

    Data: ``revision`` (the one that failed, or "" when none ran), ``statement``
    (the SQL the database refused, scrubbed), ``completed`` (revisions whose
    steps completed before the failure) and ``original`` (the exception).
    ``scrub`` masks secrets (the database password) in every rendered line: the
    revision's exception may quote the connection URL.
    """

    def __init__(
        self,
        message: str,
        *,
        revision: str,
        original: BaseException,
        statement: str | None = None,
        completed: Sequence[str] = (),
        hint: str | None = None,
        fixes: Sequence[Fix] = (),
        scrub: Callable[[str], str] | None = None,
        frames: traceback.StackSummary | None = None,
        lock_wait: str | None = None,
    ) -> None:
        self.revision = revision
        self.lock_wait = lock_wait  # a statement gave up waiting for a lock: what waited, on what, held by whom
        self.original = original
        self.statement = statement
        self.completed = list(completed)
        self._scrub = scrub or (lambda text: text)
        # The source lines are read now, not when shown: by then the file may hold
        # other code (a failed --reapply puts the old code back).
        self.frames = frames if frames is not None else traceback.extract_tb(original.__traceback__)
        # What a plain Python traceback prints under this error: the original's type,
        # message and frames, scrubbed (``original`` itself is left as it was).
        told = "".join(traceback.format_exception_only(type(original), original)).rstrip()
        self.cause = RevisionCodeError(self._scrub(told)).with_traceback(original.__traceback__)
        super().__init__(message, hint=hint, fixes=fixes)

    def with_hint(self, hint: str, fixes: Sequence[Fix] = ()) -> MigrationFailed:
        """This error again (same data and frames) with another way forward."""
        return MigrationFailed(
            self.message, revision=self.revision, original=self.original, statement=self.statement,
            completed=self.completed, hint=hint, fixes=fixes, frames=self.frames, scrub=self._scrub, lock_wait=self.lock_wait,
        )

    def _render_traceback_(self) -> list[str]:
        if self.lock_wait:  # nothing in the revision's code to look at: what waited, on what, held by whom, what was kept, the way forward
            return [self._scrub(f"{type(self).__name__}: {self.notebook_text()}")]
        tb = self.frames
        # Frames from the revision script onwards: that is the code the user wrote.
        start = next((i for i, f in enumerate(tb) if "/versions/" in f.filename.replace("\\", "/")), None)
        if start is None:  # no revision code ran (a replayed step, migmagic's own statement): no traceback to show
            return [self._scrub(f"{type(self).__name__}: {self.notebook_text()}")]
        frames = tb[start:]
        # Stop at the first frame outside the user's code after the script frames.
        user = [f for f in frames if "site-packages" not in f.filename and "/migmagic/" not in f.filename]
        shown = traceback.format_list(user or frames)
        last = traceback.format_exception_only(type(self.original), self.original)[-1].rstrip()
        lines = [f"{type(self).__name__}: {self.notebook_text()}", "Traceback (revision code):"]
        lines += [s.rstrip("\n") for s in shown]
        lines.append(last)
        return [self._scrub(line) for line in lines]


class DiagramError(MigmagicError):
    """The schema diagram could not be drawn: Graphviz's ``dot`` failed or took too long."""


class GraphvizMissing(DiagramError):
    """Neither ``graphviz-pure`` (``pip install 'migmagic[diagrams]'``) nor a ``dot`` command is installed."""




class RevisionWriteFailed(MigmagicError):
    """A revision file could not be written (full disk, unwritable folder); the folder is as it was."""

    def __init__(self, message: str, *, path: str, reason: str, hint: str | None = None) -> None:
        self.path = path
        self.reason = reason
        super().__init__(message, hint=hint)

    @classmethod
    def of(cls, path: str | os.PathLike[str], exc: OSError, existed: bool) -> RevisionWriteFailed:
        """The error for ``exc`` raised while writing ``path``: its reason, never the temporary file's name."""
        reason = exc.strerror or type(exc).__name__
        from .display import short_path

        shown = short_path(path)
        hint = "The file was left as it was." if existed else "Nothing was written."
        return cls(f"Cannot write {shown}: {reason}.", path=str(path), reason=reason, hint=hint)


class SQLRenderFailed(MigmagicError):
    """``--sql`` could not render a revision offline; ``revision`` names it when known."""

    def __init__(self, message: str, *, revision: str | None, original: BaseException, hint: str | None = None) -> None:
        self.revision = revision
        self.original = original
        super().__init__(message, hint=hint)


@contextlib.contextmanager
def sql_render_failures(revisions: Mapping[str, tuple[str, str]], scrub: Callable[[str], str] = lambda t: t) -> Iterator[None]:
    """Turn an exception raised while rendering ``--sql`` into one :class:`SQLRenderFailed` line.

    ``revisions`` maps a revision file's path to its id and message: the
    innermost frame in one of them names the revision. Migmagic's own errors pass.
    """
    try:
        yield
    except MigmagicError:
        raise
    except Exception as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        hit = next(((revisions[f.filename], f.lineno) for f in reversed(frames) if f.filename in revisions), None)
        reason = scrub(" ".join(f"{type(exc).__name__}: {exc}".split()))[:300]
        if hit:
            (rev, message), line = hit
            what = f"Cannot render the SQL of revision {rev} ({message!r}), line {line}: {reason.rstrip('.')}."
        else:
            rev, what = None, f"Cannot render the SQL: {reason.rstrip('.')}."
        raise SQLRenderFailed(
            what, revision=rev, original=exc,
            hint="A revision that reads from the database cannot run offline. Nothing was run.",
        ) from None


@contextlib.contextmanager
def upgrade_after_write(revision: str, path: str, written: bool = True) -> Iterator[None]:
    """Add to an error of the upgrade after ``revision(..., apply=True)`` that the file was written, and what next.

    The error keeps its type and data; its message and hint say more.
    """
    try:
        yield
    except MigmagicError as error:
        where = f"was written to {path}" if written else f"is in {path}"
        told = error.message
        if told.startswith(f"Revision {revision} (") and ") failed during upgrade: " in told:
            told = told.split(") failed during upgrade: ", 1)[1]  # the revision is named once
        n = len(error.fixes)
        extra = f"Fix it and {{{n}}} (the revision is rewritten in place), or {{{n + 1}}} when fixed."
        fixes = [*error.fixes, Fix("revision", cell=True), Fix("upgrade")]
        error.retell(f"Revision {revision} {where}; the upgrade failed: {told}", sentences(error._hint, extra), fixes)
        raise


class RehearsalFailed(MigmagicError):
    """A dry run's plan failed on the scratch copy (the real database untouched): ``report`` is the :class:`~migmagic.display.Rehearsal`."""

    def __init__(self, message: str, *, report: Any, revision: str | None = None, statement: str | None = None, hint: str | None = None) -> None:
        self.report = report
        self.revision = revision
        self.statement = statement
        self.shown = False
        """True once the report was displayed on its own (as HTML where the front end can): then the error is one line."""
        super().__init__(message, hint=hint)

    def _render_traceback_(self) -> list[str]:
        if self.shown:  # the report above says what failed and why: the error only names it
            where = f" at revision {self.revision}" if self.revision else ""
            return [f"{type(self).__name__}: " + sentences(f"The dry run failed{where}; the report above says why", self.notebook_hint())]
        return [f"{type(self).__name__}: {self.notebook_text()}", repr(self.report)]


class RehearsalRefused(MigmagicError):
    """A dry run that cannot be made safely (a revision that commits, no scratch database): nothing ran.

    ``revision`` names the revision at fault, ``privilege`` the database privilege missing.
    """

    def __init__(
        self, message: str, *, revision: str | None = None, privilege: str | None = None, hint: str | None = None, fixes: Sequence[Fix] = ()
    ) -> None:
        self.revision = revision
        self.privilege = privilege
        super().__init__(message, hint=hint, fixes=fixes)


class VerifyFailed(MigmagicError):
    """``verify`` found a revision whose upgrade, downgrade or round trip fails: ``report`` is the :class:`~migmagic.display.Verification`."""

    def __init__(self, message: str, *, report: Any, failures: Sequence[str] = (), hint: str | None = None) -> None:
        self.report = report
        self.failures = list(failures)
        super().__init__(message, hint=hint)

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self.notebook_text()}", repr(self.report)]


class RevisionHalfApplied(MigmagicError):
    """MySQL/MariaDB: a revision whose step started and never finished; some of its statements committed.

    Data: ``revision``, ``direction`` (of the step that stopped) and ``committed``
    (the first characters of each statement that committed).
    """

    def __init__(
        self, message: str, *, revision: str, direction: str, committed: Sequence[str], hint: str | None = None, fixes: Sequence[Fix] = ()
    ) -> None:
        self.revision = revision
        self.direction = direction
        self.committed = list(committed)
        super().__init__(message, hint=hint, fixes=fixes)


class ResumeRefused(MigmagicError):
    """``resume``: the revision's code no longer emits the statement that committed at ``position`` (from 0)."""

    def __init__(
        self, message: str, *, revision: str, position: int, recorded: str, now: str, hint: str | None = None, fixes: Sequence[Fix] = ()
    ) -> None:
        self.revision = revision
        self.position = position
        self.recorded = recorded
        self.now = now


class DataLossRefused(MigmagicError):
    """``upgrade`` or ``downgrade`` would destroy data: refused before any step ran.

    Data: ``command`` and ``target`` (what was refused), ``findings`` (a table:
    revision, operation, table, column, rows at stake) and ``unanalysed`` (one
    sentence per step the guard could not follow).
    """

    def __init__(
        self, message: str, *, command: str, target: str, findings: Any, unanalysed: Sequence[str] = (),
        hint: str | None = None, fixes: Sequence[Fix] = (), at_stake: str = "",
    ) -> None:
        self.command = command
        self.target = target
        self.at_stake = at_stake  # what would be destroyed, in words
        self.findings = findings
        self.unanalysed = list(unanalysed)
        super().__init__(message, hint=hint, fixes=fixes)

    def _render_traceback_(self) -> list[str]:
        lines = [f"{type(self).__name__}: {self.notebook_text()}"]
        if self.findings is not None and len(self.findings):
            lines.append(repr(self.findings))  # a display.table: missing values blank
        lines += [f"note: {sentence}" for sentence in self.unanalysed]
        return lines


class RestoreUnavailable(MigmagicError):
    """No restore point to put back: not a SQLite file, none taken yet, or an unknown point.

    Data: ``database`` (the URL, masked) and ``points`` (the points there are).
    """

    def __init__(
        self, message: str, *, database: str, points: Sequence[int] = (), hint: str | None = None, fixes: Sequence[Fix] = ()
    ) -> None:
        self.database = database
        self.points = list(points)
        super().__init__(message, hint=hint, fixes=fixes)
