"""Every error migmagic raises on purpose.

A :class:`MigmagicError` is something the user can fix. In a notebook it renders
as one line (IPython calls ``_render_traceback_``) and the cell fails; in the
Python API it is an ordinary exception carrying its data as attributes.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any


class MigmagicError(Exception):
    """A user error: one line that says what is wrong and what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message} {hint}")

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class UsageError(MigmagicError):
    """A magic line or Python call that does not make sense."""


class RevisionCellError(MigmagicError):
    """A ``%%revision`` cell that cannot become a revision script."""

    def __init__(self, message: str, hint: str | None = None, line: int | None = None) -> None:
        self.line = line
        super().__init__(message, hint)


class ScriptDirectoryError(MigmagicError):
    """The revision folder is broken: a bad script, an unknown parent, a cycle."""

    def __init__(self, message: str, hint: str | None = None, path: str | None = None) -> None:
        self.path = path
        super().__init__(message, hint)


class RevisionNotFound(MigmagicError):
    """A revision id, prefix or label that matches nothing, or more than one thing."""

    def __init__(self, message: str, candidates: Sequence[str] = (), hint: str | None = None) -> None:
        self.candidates = list(candidates)
        super().__init__(message, hint)


class AmbiguousMessage(RevisionNotFound):
    """A ``-m`` message that names more than one revision in the folder; ``candidates`` holds their ids."""

    def __init__(self, message: str, candidates: Sequence[str], revision_message: str, hint: str | None = None) -> None:
        self.revision_message = revision_message
        super().__init__(message, candidates, hint)


class ConfigurationError(MigmagicError):
    """A settings file (``pyproject.toml``, ``alembic.ini``) that cannot be read."""

    def __init__(self, message: str, path: str, hint: str | None = None) -> None:
        self.path = path
        super().__init__(message, hint)


class InvalidTarget(MigmagicError):
    """A target Alembic cannot reach from the current revision (below base, say)."""


class ConnectionFailed(MigmagicError):
    """The database could not be reached. The URL in the message is masked."""

    def __init__(self, message: str, url: str, hint: str | None = None) -> None:
        self.url = url
        super().__init__(message, hint)


class RevisionChanged(MigmagicError):
    """An applied revision whose source differs from what was applied."""

    def __init__(self, message: str, revision: str, diff: str, hint: str | None = None) -> None:
        self.revision = revision
        self.diff = diff
        super().__init__(message, hint)

    def _render_traceback_(self) -> list[str]:
        lines = [f"{type(self).__name__}: {self}"]
        if self.diff:
            lines.append(self.diff.rstrip("\n"))
        return lines


class RevisionMissing(MigmagicError):
    """An applied revision whose file is gone from the folder."""


class LockTimeout(MigmagicError):
    """Another kernel or process is migrating the same database."""


class PendingModelChanges(MigmagicError):
    """``check`` found differences between the models and the database."""

    def __init__(self, message: str, diffs: Any, hint: str | None = None) -> None:
        self.diffs = diffs
        super().__init__(message, hint)

    def _render_traceback_(self) -> list[str]:
        lines = [f"{type(self).__name__}: {self}"]
        if self.diffs is not None and len(self.diffs):
            lines.append(repr(self.diffs))  # a display.table: missing values blank
        return lines


class MetadataError(MigmagicError):
    """No usable SQLAlchemy ``MetaData`` for autogenerate, ``check`` or ``diff``."""


class RevisionError(Exception):
    """What a revision raised, retold with secrets scrubbed: the cause a ``MigrationFailed`` is raised from."""


def cause(error: BaseException, exc: BaseException) -> BaseException:
    """What to raise ``error`` from when ``exc`` made it: for a ``MigrationFailed``, its scrubbed retelling of ``exc``.

    A plain Python traceback prints the cause in full, and the original exception
    may quote the connection URL.
    """
    return error.cause if isinstance(error, MigrationFailed) else exc


class MigrationFailed(MigmagicError):
    """Code inside a revision raised. Renders the traceback from the revision file on.

    ``scrub`` masks secrets (the database password) in every rendered line: the
    revision's exception may quote the connection URL.
    """

    def __init__(
        self,
        message: str,
        revision: str,
        original: BaseException,
        statement: str | None = None,
        completed: Sequence[str] = (),
        hint: str | None = None,
        scrub: Callable[[str], str] | None = None,
        frames: traceback.StackSummary | None = None,
    ) -> None:
        self.revision = revision
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
        self.cause = RevisionError(self._scrub(told)).with_traceback(original.__traceback__)
        super().__init__(message, hint)

    def _render_traceback_(self) -> list[str]:
        tb = self.frames
        # Frames from the revision script onwards: that is the code the user wrote.
        start = next((i for i, f in enumerate(tb) if "/versions/" in f.filename.replace("\\", "/")), None)
        frames = tb[start:] if start is not None else tb[-1:]
        # Stop at the first frame outside the user's code after the script frames.
        user = [f for f in frames if "site-packages" not in f.filename and "/migmagic/" not in f.filename]
        shown = traceback.format_list(user or frames)
        last = traceback.format_exception_only(type(self.original), self.original)[-1].rstrip()
        lines = [f"{type(self).__name__}: {self}", "Traceback (revision code):"]
        lines += [s.rstrip("\n") for s in shown]
        lines.append(last)
        return [self._scrub(line) for line in lines]


class NotAtHead(MigmagicError):
    """Autogenerate or ``check`` against a database that is not at the folder's head."""


def _shown_path(path: str | os.PathLike[str]) -> str:
    try:
        return os.path.relpath(path) if os.path.abspath(path).startswith(os.getcwd() + os.sep) else str(path)
    except ValueError:
        return str(path)


class RevisionWriteFailed(MigmagicError):
    """A revision file could not be written (full disk, unwritable folder); the folder is as it was."""

    def __init__(self, message: str, path: str, reason: str, hint: str | None = None) -> None:
        self.path = path
        self.reason = reason
        super().__init__(message, hint)

    @classmethod
    def of(cls, path: str | os.PathLike[str], exc: OSError, existed: bool) -> RevisionWriteFailed:
        """The error for ``exc`` raised while writing ``path``: its reason, never the temporary file's name."""
        reason = exc.strerror or type(exc).__name__
        shown = _shown_path(path)
        hint = "The file was left as it was." if existed else "Nothing was written."
        return cls(f"Cannot write {shown}: {reason}.", path=str(path), reason=reason, hint=hint)


class SQLRenderFailed(MigmagicError):
    """``--sql`` could not render a revision offline; ``revision`` names it when known."""

    def __init__(self, message: str, revision: str | None, original: BaseException, hint: str | None = None) -> None:
        self.revision = revision
        self.original = original
        super().__init__(message, hint)


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
    """Add to an error of the upgrade after ``%%revision --apply`` that the file was written, and what next.

    The error keeps its type and data; its message and hint say more.
    """
    try:
        yield
    except MigmagicError as error:
        where = f"was written to {path}" if written else f"is in {path}"
        told = error.message
        if told.startswith(f"Revision {revision} (") and ") failed during upgrade: " in told:
            told = told.split(") failed during upgrade: ", 1)[1]  # the revision is named once
        extra = "Fix the cell and run it again (it rewrites the revision in place), or %migrate upgrade when fixed."
        MigmagicError.__init__(
            error, f"Revision {revision} {where}; the upgrade failed: {told}", f"{error.hint} {extra}" if error.hint else extra
        )
        raise
