"""Everything migmagic shows a user: tables and small result objects.

Each object has a readable ``__repr__`` and a ``_repr_html_`` with no
JavaScript; every bit of text that comes from a revision (messages, ids,
labels, source) is HTML-escaped. Tables are pandas DataFrames that show
missing values as blanks. pandas is imported on first use, not on ``%load_ext``.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def short_path(path: str | os.PathLike[str]) -> str:
    """``path`` as a user reads it: relative to the working directory when it is below it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)

_TABLE_CLASS: type | None = None


def table(rows: Iterable[dict[str, Any]] | Iterable[Sequence[Any]], columns: Sequence[str]) -> pd.DataFrame:
    """A DataFrame of ``rows`` with ``columns`` that renders missing values blank."""
    cls = _table_class()
    return cls(list(rows), columns=list(columns))


def _table_class() -> type:
    global _TABLE_CLASS
    if _TABLE_CLASS is None:
        import pandas as pd

        class Table(pd.DataFrame):
            """A DataFrame whose plain and HTML forms show missing values as blanks."""

            @property
            def _constructor(self) -> type:
                return Table

            def _blanked(self) -> pd.DataFrame:
                plain = pd.DataFrame(self).astype(object)
                return plain.where(plain.notna(), "")

            def __repr__(self) -> str:
                if self.empty:
                    return "(no rows)"
                return self._blanked().to_string(index=False, max_rows=pd.get_option("display.max_rows"))

            def _repr_html_(self) -> str:
                if self.empty:
                    return "<p><em>(no rows)</em></p>"
                return self._blanked().to_html(index=False, escape=True, max_rows=pd.get_option("display.max_rows"))

        _TABLE_CLASS = Table
    return _TABLE_CLASS


def _html_table(frame: Any) -> str:
    return frame._repr_html_() if hasattr(frame, "_repr_html_") else html.escape(repr(frame))


@dataclass
class Message:
    """A sentence saying what happened."""

    text: str

    def __repr__(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(self.text)}</p>"


STEP_COLUMNS = ["revision", "message", "direction", "seconds"]


def steps_table(steps: Iterable[Any]) -> pd.DataFrame:
    """Steps (objects with revision, message, direction, seconds) as a user sees them."""
    return table(
        [{"revision": s.revision, "message": s.message, "direction": s.direction, "seconds": round(s.seconds or 0.0, 4)} for s in steps],
        STEP_COLUMNS,
    )


@dataclass
class Outcome:
    """What a command did: a summary line, and the steps as a table.

    ``steps`` is a DataFrame (revision, message, direction, seconds).
    """

    summary: str
    steps: Any = None
    notes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        parts = [self.summary]
        if self.steps is not None and len(self.steps):
            parts.append(repr(self.steps))
        parts += [f"note: {n}" for n in self.notes]
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        out = [f"<p>{html.escape(self.summary)}</p>"]
        if self.steps is not None and len(self.steps):
            out.append(_html_table(self.steps))
        out += [f"<p><em>note: {html.escape(n)}</em></p>" for n in self.notes]
        return "\n".join(out)


@dataclass
class RevisionWritten:
    """The result of ``%%revision``, ``revision`` and ``merge``."""

    action: str  # "wrote" | "rewrote" | "unchanged"
    revision: str
    message: str
    path: str
    parents: tuple[str, ...]
    applied: Outcome | None = None

    @property
    def summary(self) -> str:
        parent = ", ".join(self.parents) if self.parents else "base"
        verbs = {
            "wrote": f"Wrote revision {self.revision} ({self.message!r}) to {self.path}, on top of {parent}.",
            "rewrote": f"Rewrote revision {self.revision} ({self.message!r}) in place: {self.path}.",
            "unchanged": f"Revision {self.revision} ({self.message!r}) is unchanged: nothing written.",
        }
        return verbs[self.action]

    def __repr__(self) -> str:
        return self.summary + (f"\n{self.applied!r}" if self.applied else "")

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(self.summary)}</p>" + (self.applied._repr_html_() if self.applied else "")


@dataclass
class Current:
    """The revision(s) the database is at."""

    database: str
    revisions: list[tuple[str, str, bool]]  # (id, message, is_head)

    @property
    def ids(self) -> list[str]:
        return [r for r, _, _ in self.revisions]

    def _lines(self) -> list[str]:
        if not self.revisions:
            return [f"{self.database} is at base: no revision applied."]
        return [f"{rev}{' (head)' if head else ''}  {msg}" for rev, msg, head in self.revisions]

    def __repr__(self) -> str:
        return "\n".join(self._lines())

    def _repr_html_(self) -> str:
        return "<br>".join(f"<code>{html.escape(line)}</code>" for line in self._lines())


@dataclass
class RevisionDetails:
    """``show``: a revision's details and source."""

    revision: str
    fields: list[tuple[str, str]]
    source: str

    def __repr__(self) -> str:
        width = max(len(k) for k, _ in self.fields)
        head = "\n".join(f"{k.ljust(width)}  {v}" for k, v in self.fields)
        return f"{head}\n\n{self.source}"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in self.fields
        )
        return f"<table>{rows}</table>\n{highlight(self.source, 'python')}"


@dataclass
class Status:
    """``status``: the database, the folder and their agreement, at a glance.

    The values are data (lists of revision ids, a count, the lock holder or
    None); :attr:`fields` words them for a reader.
    """

    database: str
    folder: str
    current: list[str]
    heads: list[str]
    applied: int
    pending: list[str]
    edited: list[str]
    outside: list[str]
    lock: str | None
    missing: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """What stands in the way of the next upgrade, in sentences."""
        out = [f"Revision {r} is applied but its file is missing from {self.folder}." for r in self.missing]
        out += [f"Revision {r} was edited after it was applied: upgrade will refuse (%migrate accept {r})." for r in self.edited]
        return out

    @property
    def fields(self) -> list[tuple[str, str]]:
        """(label, text) pairs, as shown."""
        return [
            ("database", self.database),
            ("folder", self.folder),
            ("current", ", ".join(self.current) or "base (nothing applied)"),
            ("heads", ", ".join(self.heads) or "(no revisions)"),
            ("applied", str(self.applied)),
            ("pending", ", ".join(self.pending) or "none"),
            ("edited since applied", ", ".join(self.edited) or "none"),
            ("applied outside migmagic", ", ".join(self.outside) or "none"),
            ("lock", self.lock or "free"),
        ]

    def __repr__(self) -> str:
        width = max(len(k) for k, _ in self.fields)
        lines = [f"{k.ljust(width)}  {v}" for k, v in self.fields]
        lines += [f"! {p}" for p in self.problems]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in self.fields
        )
        problems = "".join(f"<p><strong>! {html.escape(p)}</strong></p>" for p in self.problems)
        return f"<table>{rows}</table>{problems}"


@dataclass
class SQLScript:
    """``--sql``: the SQL that would run; nothing was executed."""

    sql: str

    def __repr__(self) -> str:
        return self.sql

    def __str__(self) -> str:
        return self.sql

    def _repr_html_(self) -> str:
        return highlight(self.sql, "sql")


def highlight(code: str, language: str) -> str:
    """``code`` as HTML with inline colours (Pygments), or escaped plain text."""
    try:
        from pygments import highlight as _highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import get_lexer_by_name
    except ImportError:  # pragma: no cover - pygments comes with IPython
        return f"<pre>{html.escape(code)}</pre>"
    return _highlight(code, get_lexer_by_name(language), HtmlFormatter(noclasses=True, nobackground=True))


@dataclass
class ModelDiff:
    """``check`` and ``diff``: a summary line, the differences as a table, notes.

    ``table`` is a DataFrame (what, table, column, from, to).
    """

    summary: str
    table: Any
    notes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        parts = [self.summary]
        if self.table is not None and len(self.table):
            parts.append(repr(self.table))
        parts += [f"note: {n}" for n in self.notes]
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        out = [f"<p>{html.escape(self.summary)}</p>"]
        if self.table is not None and len(self.table):
            out.append(_html_table(self.table))
        out += [f"<p><em>note: {html.escape(n)}</em></p>" for n in self.notes]
        return "\n".join(out)


@dataclass
class Autogenerated:
    """``revision --autogenerate``: what was found and written.

    ``changes`` is a DataFrame (what, table, column, from, to) or None;
    ``revision`` the :class:`RevisionWritten` (None when nothing was to be
    generated); ``cell`` the generated code as a ``%%revision`` cell, when
    there is code to review.
    """

    summary: str
    changes: Any
    revision: RevisionWritten | None
    cell: str | None
    notes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        parts = [self.summary]
        if self.changes is not None and len(self.changes):
            parts.append(repr(self.changes))
        parts += [f"note: {n}" for n in self.notes]
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        out = [f"<p>{html.escape(self.summary)}</p>"]
        if self.changes is not None and len(self.changes):
            out.append(_html_table(self.changes))
        out += [f"<p><em>note: {html.escape(n)}</em></p>" for n in self.notes]
        return "\n".join(out)


@dataclass
class TableSchema:
    """``schema TABLE``: one table's columns, indexes and foreign keys, as three DataFrames."""

    name: str
    columns: Any
    indexes: Any
    foreign_keys: Any

    def _parts(self) -> list[tuple[str, Any]]:
        return [("columns", self.columns), ("indexes", self.indexes), ("foreign keys", self.foreign_keys)]

    def __repr__(self) -> str:
        out = [f"table {self.name}"]
        for title, frame in self._parts():
            out += ["", f"{title}:", repr(frame)]
        return "\n".join(out)

    def _repr_html_(self) -> str:
        out = [f"<p><strong>table {html.escape(self.name)}</strong></p>"]
        for title, frame in self._parts():
            out += [f"<p>{html.escape(title)}</p>", _html_table(frame)]
        return "\n".join(out)


@dataclass
class Restored:
    """``restore``: the database put back as restore point ``point`` had it."""

    database: str
    point: int
    taken_at: str  # UTC
    before: str  # the command the point was taken before
    revision: str  # where the database is now: as it was then
    seconds: float = 0.0

    @property
    def summary(self) -> str:
        return (
            f"Restored {self.database} to restore point {self.point} (taken {self.taken_at} UTC, before {self.before}): "
            f"schema, rows, version table and ledger are as they were; the database is at {self.revision}."
        )

    def __repr__(self) -> str:
        return self.summary

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(self.summary)}</p>"
