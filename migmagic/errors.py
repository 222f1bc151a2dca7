"""Every error migmagic raises on purpose.

A :class:`MigmagicError` is something the user can fix. In a notebook it renders
as one line (IPython calls ``_render_traceback_``) and the cell fails; in the
Python API it is an ordinary exception carrying its data as attributes.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from typing import Any


class MigmagicError(Exception):
    """A user error: one line that says what is wrong and what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(_sentences(message, hint))

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


def _sentences(message: str, hint: str | None) -> str:
    """``message`` and ``hint`` as two sentences: a full stop between them unless one is there.

    A database's error quoted at the end of ``message`` ("...no such table: x")
    gets its sentence end here, so the hint never runs on from it.
    """
    if not hint:
        return message
    message = message.rstrip()
    end = "" if message.endswith((".", "!", "?", ".)", ".'", '."')) else "."
    return f"{message}{end} {hint.strip()}"


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
