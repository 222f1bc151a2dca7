"""The schema as an entity-relationship diagram: DOT text built here, laid out by Graphviz's ``dot``.

Pure functions on plain data (:class:`migmagic.schema.Table`): :func:`dot` makes
the DOT text (each table a box, an HTML-like label listing its columns with
type, nullability and key markers; an edge per foreign key, from the column's
port to the referred table); :func:`render_svg` runs ``dot`` on it and returns
the SVG, cleaned (no ``<title>``, comments, links or scripts). Every name is
escaped for DOT's HTML-like labels (``&``, ``<``, ``>``, ``"``, ``'``).

``dot`` is the one from the ``graphviz-pure`` package (``pip install
'migmagic[diagrams]'``, a console script beside the interpreter), else a
``dot`` on PATH.
"""

from __future__ import annotations

import difflib
import shutil
import subprocess
import sys
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import DiagramError, GraphvizMissing, UsageError
from .schema import Table

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

    from .display import Diagram

FONT = "Helvetica"
"""Graphviz knows Helvetica's metrics; browsers without it use a metric-compatible font (Liberation Sans, Arial)."""
WIDE = 12
"""Up to this many tables are laid out left to right, more top down."""
TIMEOUT = 60.0
"""Seconds ``dot`` may take."""

HEADER = "#dbe9ff"
FOCUS_HEADER = "#9ec5fe"
ADDED = ("#1a7f37", "#dafbe1")  # (text and border, background)
REMOVED = ("#cf222e", "#ffebe9")
MUTED = "#6e7781"

Mark = str | tuple[str, str]
"""A table name, or a (table, column) pair."""


def select(tables: Sequence[Table], focus: Iterable[str] | None) -> list[Table]:
    """The ``focus`` tables and their direct neighbours (tables they refer to or that refer to them).

    All tables when ``focus`` is empty or None. An unknown name is a :class:`UsageError`.
    """
    wanted = list(focus or ())
    if not wanted:
        return list(tables)
    by_name = {t.name: t for t in tables}
    for name in wanted:
        if name not in by_name:
            close = difflib.get_close_matches(name, list(by_name), n=5, cutoff=0.5)
            known = close or sorted(by_name)[:10]
            hint = ("Did you mean: " + ", ".join(known) + "?") if close else ("Tables: " + ", ".join(known) + "." if known else "The database has no tables yet.")
            raise UsageError(f"No table {name!r} to draw.", hint=hint)
    keep = set(wanted)
    for t in tables:
        refers = {fk.referred_table for fk in t.foreign_keys}
        if t.name in wanted:
            keep |= refers
        elif refers & set(wanted):
            keep.add(t.name)
    return [t for t in tables if t.name in keep]


def dot(
    tables: Sequence[Table],
    focus: Iterable[str] | None = None,
    *,
    added: Collection[Mark] = (),
    removed: Collection[Mark] = (),
) -> str:
    """The DOT text of the diagram of ``tables`` (or of ``focus`` and its neighbours).

    ``added`` and ``removed`` name tables or (table, column) pairs to mark: added
    ones green, removed ones red and struck through (for a dry run to show what
    a migration would do). Foreign keys to tables not drawn get no edge.
    """
    focus = list(focus or ())
    shown = select(tables, focus)
    node_ids = {t.name: f"t{i}" for i, t in enumerate(shown)}
    lines = [
        "digraph schema {",
        # Few tables read best left to right; many would make a picture too wide to scroll, so top down.
        f'  graph [rankdir={"LR" if len(shown) <= WIDE else "TB"}, nodesep=0.35, ranksep=0.9, bgcolor="white", fontname="{FONT}"];',
        f'  node [shape=plaintext, margin=0, fontname="{FONT}", fontsize=11];',
        f'  edge [color="{MUTED}", arrowsize=0.7, penwidth=1.2, fontname="{FONT}"];',
    ]
    if not shown:
        lines.append(f'  empty [label=<<font color="{MUTED}">(no tables)</font>>];')
    for t in shown:
        lines.append(f"  {node_ids[t.name]} [label=<{_label(t, t.name in focus, added, removed)}>];")
    for t in shown:
        columns = [c.name for c in t.columns]
        for fk in t.foreign_keys:
            if fk.referred_table not in node_ids or not fk.columns:
                continue
            port = f":c{columns.index(fk.columns[0])}:e" if fk.columns[0] in columns else ""
            colour = ""
            if t.name in removed or fk.referred_table in removed or (t.name, fk.columns[0]) in removed:
                colour = f' [color="{REMOVED[0]}", style=dashed]'
            elif t.name in added or (t.name, fk.columns[0]) in added:
                colour = f' [color="{ADDED[0]}"]'
            lines.append(f"  {node_ids[t.name]}{port} -> {node_ids[fk.referred_table]}{colour};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _label(t: Table, focused: bool, added: Collection[Mark], removed: Collection[Mark]) -> str:
    """A table's HTML-like label: a header row, then one row per column (key, name, type, nullability)."""
    table_state = "added" if t.name in added else "removed" if t.name in removed else None
    border = {"added": ADDED[0], "removed": REMOVED[0]}.get(table_state or "", "#57606a")
    header_bg = {"added": ADDED[1], "removed": REMOVED[1]}.get(table_state or "", FOCUS_HEADER if focused else HEADER)
    fk_columns = {c for fk in t.foreign_keys for c in fk.columns}
    rows = [
        f'<tr><td colspan="4" bgcolor="{header_bg}" cellpadding="5">'
        f"{_styled(f'<b>{escape(t.name)}</b>', table_state)}</td></tr>"
    ]
    for i, c in enumerate(t.columns):
        state = table_state or ("added" if (t.name, c.name) in added else "removed" if (t.name, c.name) in removed else None)
        keys = " ".join(k for k, on in (("PK", c.primary_key), ("FK", c.name in fk_columns)) if on)
        null = "NULL" if c.nullable else "NOT NULL"
        bg = {"added": f' bgcolor="{ADDED[1]}"', "removed": f' bgcolor="{REMOVED[1]}"'}.get(state or "", "")
        plain = state is not None  # added or removed: the whole row in that colour
        cells = [
            keys if plain or not keys else f'<font color="#9a6700">{keys}</font>',
            escape(c.name),
            escape(_short(c.type)) if plain else f'<font color="{MUTED}">{escape(_short(c.type))}</font>',
            f'<font point-size="9">{null}</font>' if plain else f'<font color="{MUTED}" point-size="9">{null}</font>',
        ]
        ports = ["", "", "", f' port="c{i}"']
        rows.append("<tr>" + "".join(f'<td align="left"{bg}{port}>{_styled(cell, state)}</td>' for cell, port in zip(cells, ports, strict=True)) + "</tr>")
    if not t.columns:
        rows.append(f'<tr><td colspan="4"><font color="{MUTED}">(no columns)</font></td></tr>')
    width = "2" if focused or table_state else "1"
    return (
        f'<table border="{width}" cellborder="0" cellspacing="0" cellpadding="3" color="{border}" bgcolor="white">'
        + "".join(rows)
        + "</table>"
    )


def _styled(content: str, state: str | None) -> str:
    if not content or state is None:
        return content
    if state == "removed":
        return f'<font color="{REMOVED[0]}"><s>{content}</s></font>'
    return f'<font color="{ADDED[0]}">{content}</font>'


def _short(type_text: str, limit: int = 40) -> str:
    text = " ".join(type_text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text: str) -> str:
    """``text`` for DOT's HTML-like labels: markup characters as entities, whitespace as single spaces."""
    text = " ".join(str(text).split())
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;").replace("'", "&#39;")
    )


def text(tables: Sequence[Table], focus: Iterable[str] | None = None) -> str:
    """The diagram in words: one line per table (columns with markers), then the foreign keys."""
    shown = select(tables, focus)
    if not shown:
        return "(no tables)"
    lines = []
    for t in shown:
        fk_columns = {c for fk in t.foreign_keys for c in fk.columns}
        cols = [
            c.name + "".join(m for m, on in ((" PK", c.primary_key), (" FK", c.name in fk_columns), ("?", c.nullable and not c.primary_key)) if on)
            for c in t.columns
        ]
        lines.append(f"{t.name}({', '.join(cols)})")
    names = {t.name for t in shown}
    for t in shown:
        for fk in t.foreign_keys:
            if fk.referred_table in names:
                lines.append(f"{t.name}.{','.join(fk.columns)} -> {fk.referred_table}.{','.join(fk.referred_columns)}")
    return "\n".join(lines)


def draw(
    tables: Sequence[Table], focus: Iterable[str] | None = None, *, added: Collection[Mark] = (), removed: Collection[Mark] = ()
) -> Diagram:
    """The diagram of ``tables`` (or of ``focus`` and its neighbours) as a display value: SVG and text."""
    from .display import Diagram

    focus = list(focus or ())
    text_form = dot(tables, focus, added=added, removed=removed)
    return Diagram(render_svg(text_form), text(tables, focus), text_form)


def changes(before: Sequence[Table], after: Sequence[Table]) -> tuple[list[Table], set[Mark], set[Mark]]:
    """What a plan does to the schema, to draw: the tables after it (those it removes kept, with removed
    columns too), and the tables and (table, column) pairs it adds and removes."""
    old = {t.name: t for t in before}
    new = {t.name: t for t in after}
    added: set[Mark] = {name for name in new if name not in old}
    removed: set[Mark] = {name for name in old if name not in new}
    drawn = []
    for name, table in new.items():
        if name in old:
            kept = {c.name for c in table.columns}
            gone = [c for c in old[name].columns if c.name not in kept]
            added |= {(name, c.name) for c in table.columns if c.name not in {x.name for x in old[name].columns}}
            removed |= {(name, c.name) for c in gone}
            table = Table(name, (*table.columns, *gone), table.foreign_keys)
        drawn.append(table)
    drawn += [old[name] for name in old if name not in new]
    return sorted(drawn, key=lambda t: t.name), added, removed


# --------------------------------------------------------------------------- rendering


def dot_command() -> list[str]:
    """The command that lays out DOT as SVG: graphviz-pure beside the interpreter or on PATH, else ``dot``."""
    beside = Path(sys.executable).parent
    for candidate in (beside / "graphviz-pure", beside / "graphviz-pure.exe"):
        if candidate.is_file():
            return [str(candidate), "-Tsvg"]
    for name in ("graphviz-pure", "dot"):
        found = shutil.which(name)
        if found:
            return [found, "-Tsvg"]
    raise GraphvizMissing(
        "Drawing the schema needs Graphviz's dot, which is not installed.",
        hint="pip install 'migmagic[diagrams]'",
    )


def render_svg(dot_text: str, timeout: float = TIMEOUT) -> str:
    """``dot_text`` laid out by ``dot`` as SVG, cleaned for showing inline (see :func:`clean_svg`)."""
    command = dot_command()
    try:
        done = subprocess.run(command, input=dot_text.encode(), capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DiagramError(f"Graphviz's dot took longer than {timeout:g} s to lay out the diagram.", hint="Name fewer tables.") from None
    except OSError as exc:
        raise DiagramError(f"Graphviz's dot could not run: {exc}.", hint="pip install 'migmagic[diagrams]'") from None
    if done.returncode != 0 or not done.stdout.strip():
        reason = " ".join(done.stderr.decode(errors="replace").split())[:300] or f"exit status {done.returncode}"
        raise DiagramError(f"Graphviz's dot failed: {reason}")
    return clean_svg(done.stdout.decode())


SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"


def clean_svg(svg: str) -> str:
    """``svg`` without what inline display does not need or should not run.

    Gone: the XML declaration, DOCTYPE and comments (they repeat names), ``<title>``
    tooltips, ``<a>`` wrappers (their children kept), ``<script>`` and
    ``<foreignObject>``, and every ``on*`` event or ``href`` attribute.
    """
    import xml.etree.ElementTree as ET

    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", XLINK_NS)
    root = ET.fromstring(svg.encode())
    _strip_attributes(root)
    _clean(root)
    return ET.tostring(root, encoding="unicode")


_DROPPED = {"title", "script", "foreignObject", "desc", "metadata"}


def _strip_attributes(element: ET.Element) -> None:
    """Drop event handlers (``on*``), links (``href``, ``xlink:href``) and tooltips (``xlink:title``)."""
    for name in list(element.attrib):
        local = name.rsplit("}", 1)[-1].lower()
        if local.startswith("on") or local == "href" or (local == "title" and name.startswith("{")):
            del element.attrib[name]


def _clean(element: ET.Element) -> None:
    for child in list(element):
        tag = child.tag.rsplit("}", 1)[-1] if isinstance(child.tag, str) else ""
        if tag in _DROPPED or not isinstance(child.tag, str):
            element.remove(child)
            continue
        _strip_attributes(child)
        _clean(child)
        if tag == "a":  # unwrap: keep what it holds, in place
            position = list(element).index(child)
            element.remove(child)
            for offset, grandchild in enumerate(list(child)):
                element.insert(position + offset, grandchild)
