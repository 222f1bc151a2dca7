"""Everything migmagic shows a user: tables and small result objects.

Each object has a readable ``__repr__`` and a ``_repr_html_`` with no
JavaScript; every bit of text that comes from a revision (messages, ids,
labels, source) is HTML-escaped. Tables are pandas DataFrames that show
missing values as blanks. pandas is imported on first use, not on ``%load_ext``.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
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
_SHORT_COLUMNS = {"checksum": 12}
"""Columns whose values show as a prefix of this many characters (the DataFrame keeps them whole)."""
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S.%f%z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S")


def timestamp(value: Any) -> datetime | None:
    """``value`` as a naive UTC datetime: a datetime, or text as Alembic and migmagic write it.

    Reads ``2026-12-01 14:22:51.821686+0000`` (a revision's ``Create Date``) and
    ``2026-12-01 14:13:09`` alike; an aware time is converted to UTC. None, blank
    or unreadable text gives None (shown blank).
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        for fmt in _TIME_FORMATS:
            try:
                moment = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def table(
    rows: Iterable[dict[str, Any]] | Iterable[Sequence[Any]],
    columns: Sequence[str],
    empty_text: str = "No rows.",
    times: Sequence[str] = (),
) -> pd.DataFrame:
    """A DataFrame of ``rows`` with ``columns`` that renders missing values blank.

    Columns holding datetimes become datetime64 columns, shown to the second;
    text is left-aligned; a ``checksum`` shows its first 12 characters. A table
    with no rows shows ``empty_text``, a sentence. ``times`` names columns that
    are datetime64 even when every value is missing.
    """
    import pandas as pd

    cls = _table_class()
    frame = cls(list(rows), columns=list(columns))
    for name in frame.columns:
        values = frame[name].dropna()
        if name in times or (frame[name].dtype == object and len(values) and all(isinstance(v, datetime) for v in values)):
            frame[name] = pd.to_datetime(frame[name])
    frame.empty_text = empty_text
    return frame


def _table_class() -> type:
    global _TABLE_CLASS
    if _TABLE_CLASS is None:
        import pandas as pd

        class Table(pd.DataFrame):
            """A DataFrame whose plain and HTML forms show missing values as blanks, times to the second."""

            _metadata = ["empty_text"]
            empty_text = "No rows."

            @property
            def _constructor(self) -> type:
                return Table

            def _text_columns(self) -> list[str]:
                return [
                    c for c in self.columns
                    if not pd.api.types.is_numeric_dtype(self[c]) and not pd.api.types.is_datetime64_any_dtype(self[c])
                    and not pd.api.types.is_bool_dtype(self[c])
                ]

            def _blanked(self) -> pd.DataFrame:
                """The values as shown: strings, missing ones blank, times to the second, checksums short."""
                plain = pd.DataFrame(self).astype(object)
                for name in plain.columns:
                    limit = _SHORT_COLUMNS.get(str(name))
                    if pd.api.types.is_datetime64_any_dtype(self[name]):
                        plain[name] = [v.strftime(_TIME_FORMAT) if pd.notna(v) else None for v in self[name]]
                    elif limit:
                        plain[name] = [v[:limit] if isinstance(v, str) else v for v in plain[name]]
                return plain.where(plain.notna(), "")

            def to_string(self, *args: Any, **kwargs: Any) -> str:  # type: ignore[override]
                """As :meth:`pandas.DataFrame.to_string`, missing values blank, text left-aligned, no index."""
                if self.empty:
                    return self.empty_text
                kwargs.setdefault("index", False)
                shown = self._blanked()
                headers = {}
                for name in self._text_columns():
                    width = max([len(str(name)), *(len(str(v)) for v in shown[name])])
                    shown[name] = [str(v).ljust(width) for v in shown[name]]
                    headers[name] = str(name).ljust(width)  # the same width: left-aligned too
                text: str = shown.rename(columns=headers).to_string(*args, **kwargs)
                return "\n".join(line.rstrip() for line in text.split("\n"))

            def __repr__(self) -> str:
                return self.to_string(max_rows=pd.get_option("display.max_rows"))

            def _repr_html_(self) -> str:
                if self.empty:
                    return f"<p><em>{html.escape(self.empty_text)}</em></p>"
                shown = self._blanked()
                text = set(self._text_columns())
                align = {c: "left" if c in text else "right" for c in shown.columns}
                head = "".join(f"<th style='text-align:{align[c]}'>{html.escape(str(c))}</th>" for c in shown.columns)
                limit = pd.get_option("display.max_rows") or len(shown)
                positions = list(range(len(shown)))
                if len(shown) > limit:
                    half = max(limit // 2, 1)
                    positions = [*positions[:half], -1, *positions[-half:]]
                body = []
                for i in positions:
                    if i < 0:
                        body.append(f"<tr><td colspan='{len(shown.columns)}'>…</td></tr>")
                        continue
                    cells = "".join(
                        f"<td style='text-align:{align[c]}'>{html.escape(str(v))}</td>" for c, v in zip(shown.columns, shown.iloc[i], strict=True)
                    )
                    body.append(f"<tr>{cells}</tr>")
                return f"<table class='dataframe'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

        Table.__qualname__ = "Table"  # pickle finds it as migmagic.display.Table (the module's __getattr__)
        _TABLE_CLASS = Table
    return _TABLE_CLASS


def __getattr__(name: str) -> type:
    """``Table`` and ``History``, the DataFrame classes of every table shown, made on first use.

    They subclass ``pandas.DataFrame``, so they are made when a table is first made (pandas is
    not imported on ``%load_ext``); asked for by name here, as pickle does when it loads one,
    they are made then. So a returned table pickles (``to_pickle``, ``%store``, joblib).
    """
    if name == "Table":
        return _table_class()
    if name == "History":
        return _history_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


LOG_COLUMNS = ["id", "revision", "direction", "message", "applied_at", "seconds", "checksum", "checksum_version", "migmagic_version", "alembic_version", "note"]


def log_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """``log``: ledger rows (and the revisions applied outside migmagic) as a table."""
    frame = table(rows, LOG_COLUMNS, "Nothing applied by migmagic yet.")
    for col in ("id", "checksum_version"):
        frame[col] = frame[col].astype("Int64")  # blank, not NaN, on the outside rows
    return frame


STEP_COLUMNS = ["revision", "message", "direction", "seconds"]


def steps_table(steps: Iterable[Any]) -> pd.DataFrame:
    """Steps (objects with revision, message, direction, seconds) as a user sees them."""
    return table(
        [{"revision": s.revision, "message": s.message, "direction": s.direction, "seconds": round(s.seconds or 0.0, 4)} for s in steps],
        STEP_COLUMNS,
        "No steps.",
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
    findings: Findings | None = None  # squawk's, at the cell (PostgreSQL)

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
        return self.summary + (f"\n{self.applied!r}" if self.applied else "") + (f"\n{self.findings!r}" if self.findings else "")

    def _repr_html_(self) -> str:
        shown = f"<p>{html.escape(self.summary)}</p>" + (self.applied._repr_html_() if self.applied else "")
        return shown + (self.findings._repr_html_() if self.findings else "")


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
        return "<br>".join(f'<code style="{CODE_STYLE}">{html.escape(line)}</code>' for line in self._lines())


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
    half_applied: list[Any] = field(default_factory=list)
    """MySQL/MariaDB: steps that stopped half-way (:class:`migmagic.journal.HalfApplied`: revision, direction, statements)."""
    notes: list[str] = field(default_factory=list)
    """About the folder itself (an env.py from an older migmagic), one line each."""
    reapplying: list[str] = field(default_factory=list)
    """Applied revisions whose file holds the code of a re-apply that has not committed (:attr:`migmagic.state.State.reapplying`)."""

    @property
    def problems(self) -> list[str]:
        """What stands in the way of the next upgrade, in sentences."""
        out = [
            f"{h.sentence()}: %migrate resume, or %migrate repair {h.revision} --applied / --not-applied."
            + (" (The lock is held: it may still be running.)" if self.lock else "")
            for h in self.half_applied
        ]
        out += [f"Revision {r} is applied but its file is missing from {self.folder}." for r in self.missing]
        out += [f"Revision {r} was edited after it was applied: upgrade will refuse (%migrate accept {r})." for r in self.edited]
        out += [
            f"Revision {r} is being re-applied, or a re-apply of it was killed: its file holds new code the database did not commit. "
            "The next command once the lock is free puts the old code back; re-run the --reapply cell then."
            for r in self.reapplying
        ]
        return out + self.notes

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
            *([("re-apply not committed", ", ".join(self.reapplying))] if self.reapplying else []),
            ("applied outside migmagic", ", ".join(self.outside) or "none"),
            *([("half-applied", ", ".join(h.summary for h in self.half_applied))] if self.half_applied else []),
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


CODE_STYLE = (
    "font-family:SFMono-Regular,Menlo,Consolas,'DejaVu Sans Mono','Liberation Mono',monospace;"
    "white-space:pre;word-break:normal;overflow-wrap:normal;overflow-x:auto;line-height:1.3"
)
"""How code and SQL are set in every HTML form: monospace, lines kept as they are (a long line
scrolls), whatever the front end's stylesheet does to ``<pre>`` (nbconvert's breaks words)."""
TEXT_STYLE = "white-space:normal;word-break:normal;overflow-wrap:break-word"
"""How sentences are set: broken at spaces between words, never inside one."""


_INNER_CODE = "font-family:inherit;white-space:inherit;word-break:inherit;background:none;padding:0"


def code_block(code: str) -> str:
    """``code`` as a monospace block, escaped, not highlighted."""
    return f'<pre style="{CODE_STYLE}"><code style="{_INNER_CODE}">{html.escape(code)}</code></pre>'


def sentence(text: str, tag: str = "p", style: str = "") -> str:
    """``text`` escaped in a ``<tag>`` that breaks lines between words only."""
    return f'<{tag} style="{TEXT_STYLE};{style}">{html.escape(text)}</{tag}>'


def highlight(code: str, language: str) -> str:
    """``code`` as HTML with inline colours (Pygments) in a monospace ``<pre>``, or escaped plain text."""
    try:
        from pygments import highlight as _highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import get_lexer_by_name
    except ImportError:  # pragma: no cover - pygments comes with IPython
        return code_block(code)
    formatter = HtmlFormatter(noclasses=True, nobackground=True, prestyles=CODE_STYLE)
    return _highlight(code, get_lexer_by_name(language), formatter)


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


# --------------------------------------------------------------------------- pictures


@dataclass
class Graph:
    """``graph``: the revision graph as an SVG picture (``_repr_svg_``) and as text (``repr``).

    ``layout`` is a :class:`migmagic.graph.Layout`: rows newest first, lanes, parent links.
    """

    layout: Any

    @property
    def svg(self) -> str:
        from . import graph

        return graph.svg(self.layout)

    def __repr__(self) -> str:
        from . import graph

        return graph.text(self.layout)

    def _repr_svg_(self) -> str:
        return self.svg

    def _repr_html_(self) -> str:
        return f'<div style="overflow:auto">{self.svg}</div>'


@dataclass
class Diagram:
    """``diagram``: the schema as an entity-relationship picture (``_repr_svg_``) and as text (``repr``).

    ``svg`` is what Graphviz's ``dot`` drew from ``dot`` (the DOT text), cleaned of
    scripts, links and comments; ``text`` lists tables, columns and foreign keys.
    """

    svg: str
    text: str
    dot: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return self.text

    def _repr_svg_(self) -> str:
        return self.svg

    def _repr_html_(self) -> str:
        return f'<div style="overflow:auto">{self.svg}</div>'


_HISTORY_CLASS: type | None = None


def history(rows: Iterable[dict[str, Any]], columns: Sequence[str], layout: Any, times: Sequence[str] = ()) -> pd.DataFrame:
    """A :func:`table` of ``rows`` that shows the revision graph ``layout`` beside them.

    The plain form has a text graph column first (``*`` applied, ``o`` pending);
    the HTML form draws the lanes in a first column, one slice per row. A frame
    filtered or sorted so its revisions no longer match ``layout`` shows without it.
    """
    import pandas as pd

    frame = _history_class()(list(rows), columns=list(columns))
    for name in times:
        frame[name] = pd.to_datetime(frame[name])
    frame.empty_text = "No revisions yet."
    frame._graph = layout
    return frame


def _history_class() -> type:
    global _HISTORY_CLASS
    if _HISTORY_CLASS is None:
        import pandas as pd

        shown = _table_class().__dict__

        class History(pd.DataFrame):
            """``history``: a :func:`table` with the revision graph beside it (a DataFrame's direct subclass)."""

            _metadata = ["empty_text", "_graph"]
            _graph: Any = None
            empty_text = "No revisions yet."
            # Shown as every table is: missing values blank, times to the second, text left-aligned.
            _text_columns = shown["_text_columns"]
            _blanked = shown["_blanked"]
            to_string = shown["to_string"]
            _table_html = shown["_repr_html_"]

            @property
            def _constructor(self) -> type:
                return History

            def _aligned(self) -> Any:
                """The layout, if this frame still lists exactly its revisions in its order."""
                layout = getattr(self, "_graph", None)
                if layout is None or "revision" not in self.columns:
                    return None
                return layout if list(self["revision"]) == layout.ids else None

            def __repr__(self) -> str:
                text: str = self.to_string(max_rows=pd.get_option("display.max_rows"))
                layout = self._aligned()
                lines = text.split("\n")
                if layout is None or self.empty:
                    return text
                from . import graph

                column = graph.text_column(layout)
                if len(lines) != len(column) + 1:  # rows left out (max_rows): no graph rather than a wrong one
                    return text
                width = max(len(c) for c in column)
                return "\n".join([" " * width + "  " + lines[0], *(f"{c.ljust(width)}  {line}" for c, line in zip(column, lines[1:], strict=True))])

            def _repr_html_(self) -> str:
                layout = self._aligned()
                if layout is None or self.empty:
                    return str(self._table_html())
                return _history_html(self._blanked(), layout, pd.get_option("display.max_rows"))

        History.__qualname__ = "History"  # pickle finds it as migmagic.display.History
        _HISTORY_CLASS = History
    return _HISTORY_CLASS


def _history_html(frame: Any, layout: Any, max_rows: int | None) -> str:
    """The table with the graph drawn in its first column, one fixed-height slice per row."""
    from . import graph

    n = len(frame)
    shown: list[int | None] = list(range(n))
    if max_rows and n > max_rows:
        half = max(max_rows // 2, 1)
        shown = [*range(half), None, *range(n - half, n)]
    segments = graph.row_segments(layout)
    cell = f"height:{graph.ROW}px;line-height:{graph.ROW}px;padding:0 8px;white-space:nowrap;text-align:left;vertical-align:middle"
    lanes = f"height:{graph.ROW}px;padding:0 2px;vertical-align:middle"
    head = "".join(f'<th style="text-align:left;padding:0 8px;white-space:nowrap">{html.escape(str(c))}</th>' for c in frame.columns)
    body = []
    for i in shown:
        if i is None:
            body.append(f'<tr><td style="{lanes}">⋮</td>' + f'<td style="{cell}">…</td>' * len(frame.columns) + "</tr>")
            continue
        values = "".join(f'<td style="{cell}">{html.escape(str(v))}</td>' for v in frame.iloc[i])
        body.append(f'<tr><td style="{lanes}">{graph.row_svg(layout, i, segments)}</td>{values}</tr>')
    return (
        '<table class="dataframe migmagic-history" style="border-collapse:collapse;border-spacing:0">'
        f'<thead><tr><th style="padding:0 2px"></th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _frame_text(title: str, frame: Any) -> list[str]:
    return [] if frame is None or not len(frame) else ["", f"{title}:", repr(frame)]


def _frame_html(title: str, frame: Any) -> list[str]:
    return [] if frame is None or not len(frame) else [f"<p><strong>{html.escape(title)}</strong></p>", _html_table(frame)]


@dataclass
class Rehearsal:
    """``upgrade``/``downgrade --dry-run``: the plan as it ran on a scratch copy; the real database untouched.

    ``how`` says where it ran (a backup copy, a rolled-back transaction, a
    template clone, a sample) and ``caveats`` what that means. The tables are
    DataFrames: ``schema_changes`` (change, table, name, before, after),
    ``row_counts`` (table, before, after), ``statements`` (step, revision, kind,
    statement), ``steps`` (revision, message, direction, seconds, warnings).
    ``findings`` is the data-loss guard's slot (empty until it reports).
    ``failure`` says which revision and statement failed, or is None.
    """

    summary: str
    how: str
    steps: Any
    schema_changes: Any
    row_counts: Any
    statements: Any
    warnings: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    findings: list[Any] = field(default_factory=list)
    failure: str | None = None
    failed_revision: str | None = None
    failed_statement: str | None = None
    sql: str = ""
    """The statements the revisions ran and the version-table updates, as a script."""
    described: list[Any] = field(default_factory=list, repr=False)
    """The schema of the copy after the plan, as :func:`migmagic.schema.describe` reads it (for ``diagram --dry-run``)."""
    review: Any = None
    """What each statement locked, rewrote or copied, and the real tables' sizes (:mod:`migmagic.review`): a DataFrame."""

    @property
    def failed(self) -> bool:
        return self.failure is not None

    def _parts(self) -> list[tuple[str, Any]]:
        return [
            ("steps", self.steps),
            ("schema difference", self.schema_changes),
            ("rows per table", self.row_counts),
            ("locks, rewrites and copies", self.review),
            ("SQL that ran", self.statements),
        ]

    @property
    def command(self) -> tuple[str, str] | None:
        """(``upgrade`` or ``downgrade``, the target), as the summary names them."""
        m = re.match(r"Dry run of (upgrade|downgrade) to (\S+?):? ", self.summary)
        return (m.group(1), m.group(2)) if m else None

    @property
    def headline(self) -> str:
        """The one sentence to read first: what failed and where, or what the plan would do."""
        if not self.failure:
            return self.summary
        what = self.failure.split(" Failed statement:", 1)[0].rstrip(".")
        command = self.command
        where = re.match(r"Revision (\S+ \(.*?\)) failed during \w+: (.*)", what, re.DOTALL)
        if command and where:
            return f"The {command[0]} to {command[1]} would fail at revision {where.group(1)}: {where.group(2)}."
        return f"The {command[0]} to {command[1]} would fail: {what}." if command else f"The dry run failed: {what}."

    @property
    def at_stake(self) -> str | None:
        """What the plan would destroy (the data-loss guard's findings), in one sentence, or None."""
        if not self.findings:
            return None
        items = [str(f).split(": ", 1)[-1] for f in self.findings]
        return ("Had it run, it would have destroyed: " if self.failed else "It would destroy: ") + "; ".join(items) + "."

    @property
    def way_forward(self) -> str:
        """What to do next, in one sentence."""
        command = self.command
        line = f"%migrate {command[0]} {command[1]}" if command else None
        if self.failed:
            again = f", then rehearse again: {line} --dry-run" if line else ", then rehearse again"
            return f"Fix the data or the revision that failed{again}."
        if self.findings:
            return f"If losing that is the point, run it with {line} --accept-data-loss." if line else "If losing that is the point, run it with --accept-data-loss."
        return f"It went through: {line} runs it for real." if line else "It went through."

    def __repr__(self) -> str:
        out = [self.headline]
        if self.at_stake:
            out.append(self.at_stake)
        out.append(self.way_forward)
        out.append(self.how)
        if self.failed_statement:
            out += ["", "failed statement:", self.failed_statement]
        for title, frame in self._parts():
            out += _frame_text(title, frame)
        out += [f"warning: {w}" for w in self.warnings]
        out += [f"note: {c}" for c in self.caveats]
        return "\n".join(out)

    def _repr_html_(self) -> str:
        colour = "#b00020" if self.failed else ("#8a5300" if self.findings else "#1b5e20")
        out = [sentence(self.headline, style=f"font-weight:bold;color:{colour}")]
        if self.at_stake:
            out.append(sentence(self.at_stake, style="font-weight:bold"))
        out.append(sentence(self.way_forward))
        out.append(sentence(self.how, style="font-style:italic"))
        if self.failed_statement:
            out.append(_details("The statement that failed", code_block(self.failed_statement), opened=True))
        if self.findings:
            rows = "".join(
                f'<tr><td style="text-align:left">{html.escape(rev)}</td><td style="text-align:left">{html.escape(what)}</td></tr>'
                for rev, _, what in (str(f).partition(": ") for f in self.findings)
            )
            head = "<tr><th style='text-align:left'>revision</th><th style='text-align:left'>what would be lost</th></tr>"
            out.append(_details("Data at stake", f"<table><thead>{head}</thead><tbody>{rows}</tbody></table>", opened=True))
        if self.row_counts is not None and len(self.row_counts):
            out.append(_details("Rows per table", _html_table(self.row_counts), opened=len(self.row_counts) <= _SHORT))
        if self.schema_changes is not None and len(self.schema_changes):
            out.append(_details("Schema difference", _html_table(self.schema_changes), opened=len(self.schema_changes) <= _SHORT))
        if self.review is not None and len(self.review):
            out.append(_details("Locks, rewrites and copies (what each statement did to the real tables' size)", _html_table(self.review), opened=True))
        if self.statements is not None and len(self.statements):
            out.append(_details(f"SQL that ran ({len(self.statements)} statements)", _statements_html(self.statements), opened=False))
        if self.steps is not None and len(self.steps):
            out.append(_details("Steps", _html_table(self.steps), opened=False))
        notes = [f"warning: {w}" for w in self.warnings] + list(self.caveats)
        if notes:
            out.append("<ul>" + "".join(sentence(n, tag="li") for n in notes) + "</ul>")
        return '<div class="migmagic-rehearsal">' + "\n".join(out) + "</div>"


_SHORT = 8
"""Tables of a report with more rows than this start collapsed."""


def _details(title: str, body: str, *, opened: bool) -> str:
    """A section a reader can fold (``<details>``: no JavaScript)."""
    return f"<details{' open' if opened else ''}><summary><strong>{html.escape(title)}</strong></summary>{body}</details>"


def _statements_html(frame: Any) -> str:
    """The statements of a rehearsal as a table whose SQL is set as code."""
    columns = [c for c in frame.columns if str(c) != "parameters" or any(isinstance(v, str) and v for v in frame[c])]
    head = "".join(f"<th style='text-align:left'>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for _, row in frame.iterrows():
        cells = []
        for c in columns:
            value = row[c]
            text = "" if value is None or (isinstance(value, float) and value != value) else str(value)
            if str(c) in ("statement", "parameters"):
                cells.append(f"<td style='text-align:left'>{code_block(text)}</td>")
            else:
                cells.append(f"<td style='text-align:left;vertical-align:top;white-space:nowrap'>{html.escape(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table class='dataframe'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


@dataclass
class Verification:
    """``verify``: a row per revision (revision, message, upgrade, downgrade, round trip, what differs) and the folder's checks.

    ``revisions`` and ``checks`` (check, result, detail) are DataFrames; a row
    fails when its upgrade, downgrade or round trip says ``failed``, ``not
    restored`` or ``differs``; a check when its result is ``failed``.
    """

    summary: str
    revisions: Any
    checks: Any
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        """The revisions and checks that failed, in words."""
        out = []
        frame = self.revisions
        if frame is not None and len(frame):
            for _, row in frame.iterrows():
                if {row["upgrade"], row["downgrade"], row["round trip"]} & {"failed", "not restored", "differs"}:
                    out.append(f"{row['revision']}: {row['what differs'] or 'failed'}")
        if self.checks is not None and len(self.checks):
            out += [f"{row['check']}: {row['detail']}" for _, row in self.checks.iterrows() if row["result"] == "failed"]
        return out

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    def __repr__(self) -> str:
        out = [self.summary]
        out += _frame_text("revisions", self.revisions)
        out += _frame_text("checks", self.checks)
        out += [f"note: {n}" for n in self.notes]
        return "\n".join(out)

    def _repr_html_(self) -> str:
        out = [f"<p>{html.escape(self.summary)}</p>"]
        out += _frame_html("revisions", self.revisions)
        out += _frame_html("checks", self.checks)
        out += [f"<p><em>note: {html.escape(n)}</em></p>" for n in self.notes]
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


# =========================================================================== review at the cell (lint)


@dataclass
class Findings:
    """squawk's findings for a ``%%revision`` cell, shown under the written revision (advice).

    ``findings`` are :class:`migmagic.lint.Finding` values (rule, statement, line,
    why, safer); ``cell`` is the safer revision as a ``%%revision`` cell, when a
    finding has a standard fix; ``notes`` say what was not linted and why.
    """

    findings: list[Any]
    cell: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        if not self.findings:
            return ""
        rules = ", ".join(dict.fromkeys(f.rule for f in self.findings))
        return f"squawk: {len(self.findings)} finding(s) in its PostgreSQL SQL ({rules}); advice, the revision is written."

    def table(self) -> pd.DataFrame:
        rows = [{k: v for k, v in f.row().items() if k != "revision"} for f in self.findings]
        frame = table(rows, ["rule", "statement", "line", "why", "safer way"], "No findings.")
        frame["line"] = frame["line"].astype("Int64")
        return frame

    def __bool__(self) -> bool:
        return bool(self.findings or self.notes)

    def __repr__(self) -> str:
        out = [self.summary, repr(self.table())] if self.findings else []
        if self.cell:
            out.append("The safer way, as a %%revision cell:\n" + self.cell)
        return "\n".join(out + [f"note: {n}" for n in self.notes])

    def _repr_html_(self) -> str:
        out = [f"<p>{html.escape(self.summary)}</p>", _html_table(self.table())] if self.findings else []
        if self.cell:
            out.append(f"<p>The safer way, as a %%revision cell:</p>{highlight(self.cell, 'python')}")
        return "\n".join(out + [f"<p><em>note: {html.escape(n)}</em></p>" for n in self.notes])


@dataclass
class NextCell:
    """A ``%%revision`` cell for the front end to place next (``edit``): its text, and what to say once it is there."""

    cell: str
    message: str

    def __repr__(self) -> str:
        return self.cell
