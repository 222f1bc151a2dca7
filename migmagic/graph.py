"""The revision graph as ``git log --graph`` draws it: lanes, joins, one row per revision.

Pure functions on plain data (no Alembic, no database): :func:`layout` places
revisions given newest first (Alembic's walk order, children before parents) in
lanes; :func:`svg` draws that as an SVG picture with the labels beside it;
:func:`text_column` gives the same lanes as one short line of text per row
(``*`` applied, ``o`` pending, ``|`` a lane passing by, ``/`` and ``\\`` lanes
joining or leaving); :func:`row_svg` draws one row's slice, for the graph column
of ``history``'s HTML table. Every name is XML-escaped.

A lane holds the revision the edge in it is heading for. A revision takes the
leftmost lane heading for it (a new lane for a head); its other lanes join it
there (it is a branch point); its first parent continues in its lane and each
further parent (a merge) gets a lane of its own, or joins the lane already
heading for that parent. Freed lanes are reused, so the width is the number of
branches open at once, not the number of revisions.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

ROW = 22
"""Row height in pixels, in the picture and in ``history``'s HTML table."""
LANE = 14
"""Horizontal distance between lanes, in pixels."""
RADIUS = 4.5
MESSAGE_CHARS = 60
"""Messages longer than this are cut (with an ellipsis) in the picture."""

APPLIED_COLOUR = "#1f6feb"
PENDING_COLOUR = "#57606a"
CURRENT_COLOUR = "#d1242f"
LANE_COLOURS = ("#1f6feb", "#8250df", "#1a7f37", "#bc4c00", "#bf3989", "#0a7ea4", "#9a6700")
FONT = "font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\" font-size=\"12\""


@dataclass(frozen=True)
class Node:
    """One revision as the picture needs it."""

    id: str
    parents: tuple[str, ...] = ()
    message: str = ""
    applied: bool = False
    is_head: bool = False
    is_current: bool = False
    branch_labels: tuple[str, ...] = ()


@dataclass
class Row:
    """A placed revision: its lane, and the lanes around it before and after it."""

    node: Node
    lane: int
    before: list[str | None]
    """What each lane is heading for just above this row (None: a free lane)."""
    after: list[str | None]
    """The same, just below this row."""
    joining: list[int] = field(default_factory=list)
    """Lanes (other than ``lane``) that end in this revision: it is a branch point."""
    opening: list[int] = field(default_factory=list)
    """Lanes this revision's further parents start (it is a merge)."""


@dataclass
class Link:
    """One parent link, child row to parent row, and the lane it runs down in between."""

    child: int
    parent: int
    lane: int


@dataclass
class Layout:
    """Rows (newest first), the parent links, and the number of lanes used."""

    rows: list[Row]
    links: list[Link]
    lanes: int
    branch_points: set[int] = field(default_factory=set)
    """Rows with more than one child link."""

    @property
    def ids(self) -> list[str]:
        return [r.node.id for r in self.rows]


def nodes(revisions: Iterable[Any], applied: Collection[str], current: Collection[str]) -> list[Node]:
    """Nodes from revision records (``id``, ``down_revisions``, ``message``, ``is_head``, ``branch_labels``)."""
    return [
        Node(r.id, tuple(r.down_revisions), r.message, r.id in applied, r.is_head, r.id in current, tuple(r.branch_labels))
        for r in revisions
    ]


def layout(nodes: Iterable[Node]) -> Layout:
    """Place ``nodes`` (newest first, every child before its parents) in lanes.

    Parents that are not among ``nodes`` (outside a history range) get no link.
    """
    nodes = list(nodes)
    index = {n.id: i for i, n in enumerate(nodes)}
    lanes: list[str | None] = []
    rows: list[Row] = []
    pending: dict[str, list[tuple[int, int]]] = {}  # parent id -> [(child row, lane)]
    links: list[Link] = []
    width = 0
    for i, node in enumerate(nodes):
        before = list(lanes)
        mine = [k for k, want in enumerate(lanes) if want == node.id]
        lane = mine[0] if mine else _free(lanes)
        for child, via in pending.pop(node.id, []):
            links.append(Link(child, i, via))
        joining = mine[1:]
        for k in mine:
            lanes[k] = None
        opening: list[int] = []
        parents = [p for p in node.parents if index.get(p, -1) > i]
        for n, parent in enumerate(parents):
            if n == 0:
                via = lane
            elif parent in lanes:
                via = lanes.index(parent)
            else:
                via = _free(lanes, start=lane + 1)
                opening.append(via)
            lanes[via] = parent
            pending.setdefault(parent, []).append((i, via))
        while lanes and lanes[-1] is None:
            lanes.pop()
        width = max(width, len(before), len(lanes), lane + 1)
        rows.append(Row(node, lane, before, list(lanes), joining, opening))
    links.sort(key=lambda link: (link.child, link.parent))
    children: dict[int, int] = {}
    for link in links:
        children[link.parent] = children.get(link.parent, 0) + 1
    return Layout(rows, links, max(width, 1), {k for k, n in children.items() if n > 1})


def _free(lanes: list[str | None], start: int = 0) -> int:
    """The first free lane at or right of ``start`` (a new one at the right if none); marked taken."""
    for k in range(start, len(lanes)):
        if lanes[k] is None:
            lanes[k] = ""  # taken; the caller sets what it heads for
            return k
    lanes.extend([None] * max(0, start - len(lanes)))
    lanes.append("")
    return len(lanes) - 1


# --------------------------------------------------------------------------- text


def text_column(graph: Layout) -> list[str]:
    """One line per row, all the same width: ``*`` applied, ``o`` pending, ``|`` passing, ``/`` ``\\`` joins."""
    lines = []
    for row in graph.rows:
        cells = [" "] * (2 * graph.lanes - 1)
        for k, want in enumerate(row.before):
            if want is not None and want != row.node.id:
                cells[2 * k] = "|"
        for k, want in enumerate(row.after):
            if want is not None and k != row.lane and k not in row.opening and cells[2 * k] == " ":
                cells[2 * k] = "|"
        for k in row.joining:  # a branch: the lane comes in from above and ends here
            cells[2 * k] = "/" if k > row.lane else "\\"
            _connect(cells, row.lane, k)
        for k in row.opening:  # a merge: a lane leaves downwards
            cells[2 * k] = "\\" if k > row.lane else "/"
            _connect(cells, row.lane, k)
        cells[2 * row.lane] = "*" if row.node.applied else "o"
        lines.append("".join(cells))
    return lines


def _connect(cells: list[str], a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    for c in range(2 * lo + 1, 2 * hi):
        if cells[c] == " ":
            cells[c] = "-"


def tags(graph: Layout, index: int) -> list[str]:
    """What a row is, as words: head, current, merge, branch point, its branch labels."""
    row = graph.rows[index]
    words = [w for w, on in (("head", row.node.is_head), ("current", row.node.is_current)) if on]
    if len(row.node.parents) > 1:
        words.append("merge")
    if index in graph.branch_points:
        words.append("branch point")
    return words + [f"@{label}" for label in row.node.branch_labels]


def text(graph: Layout) -> str:
    """The graph as text: lanes, short id, tags and message on one line per revision."""
    if not graph.rows:
        return "(no revisions)"
    column = text_column(graph)
    lines = []
    for i, (lanes, row) in enumerate(zip(column, graph.rows, strict=True)):
        marks = tags(graph, i)
        label = f" ({', '.join(marks)})" if marks else ""
        lines.append(f"{lanes}  {row.node.id[:12]}{label}  {_cut(row.node.message)}")
    return "\n".join(lines)


def _cut(message: str, limit: int = MESSAGE_CHARS) -> str:
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 1] + "…"


# --------------------------------------------------------------------------- SVG


def _x(lane: float) -> float:
    return LANE / 2 + 4 + lane * LANE


def _y(row: float) -> float:
    return ROW / 2 + row * ROW


def _colour(lane: int) -> str:
    return LANE_COLOURS[lane % len(LANE_COLOURS)]


def link_points(graph: Layout, link: Link) -> list[tuple[float, float]]:
    """The lane positions (lane, row) a link passes: from the child, down its lane, into the parent."""
    child, parent = graph.rows[link.child], graph.rows[link.parent]
    points = [(float(child.lane), float(link.child))]
    if link.parent - link.child > 1:
        points += [(float(link.lane), float(link.child + 1)), (float(link.lane), float(link.parent - 1))]
    points.append((float(parent.lane), float(link.parent)))
    return points


def _path(points: Sequence[tuple[float, float]]) -> str:
    """An SVG path through ``points``: straight down a lane, an S-curve where the lane changes."""
    x0, y0 = _x(points[0][0]), _y(points[0][1])
    parts = [f"M{x0:g},{y0:g}"]
    for lane, row in points[1:]:
        x1, y1 = _x(lane), _y(row)
        if x1 == x0:
            parts.append(f"L{x1:g},{y1:g}")
        else:
            mid = (y0 + y1) / 2 if y1 - y0 <= ROW else y0 + ROW / 2
            if y1 - y0 > ROW:  # a long diagonal: bend within the first row gap, then go straight
                parts.append(f"C{x0:g},{mid:g} {x1:g},{mid:g} {x1:g},{y0 + ROW:g}L{x1:g},{y1:g}")
            else:
                parts.append(f"C{x0:g},{mid:g} {x1:g},{mid:g} {x1:g},{y1:g}")
        x0, y0 = x1, y1
    return "".join(parts)


def _circle(row: Row, cx: float, cy: float, branch_point: bool) -> str:
    node = row.node
    colour = APPLIED_COLOUR if node.applied else PENDING_COLOUR
    fill = colour if node.applied else "#ffffff"
    title = f"<title>{escape(node.id)}{' (applied)' if node.applied else ' (pending)'}</title>"
    out = []
    if node.is_current:
        out.append(f'<circle cx="{cx:g}" cy="{cy:g}" r="{RADIUS + 3:g}" fill="none" stroke="{CURRENT_COLOUR}" stroke-width="2"/>')
    width = 2.5 if node.is_head or branch_point else 1.5
    out.append(
        f'<circle class="revision" cx="{cx:g}" cy="{cy:g}" r="{RADIUS:g}" fill="{fill}" stroke="{colour}" stroke-width="{width}">{title}</circle>'
    )
    return "".join(out)


def _edges(graph: Layout) -> list[str]:
    return [
        f'<path class="link" d="{_path(link_points(graph, link))}" fill="none" stroke="{_colour(link.lane)}" stroke-width="1.6"/>'
        for link in graph.links
    ]


def graph_width(graph: Layout) -> float:
    """The width of the lanes part, in pixels."""
    return _x(graph.lanes - 1) + LANE / 2 + 4


def svg(graph: Layout) -> str:
    """The picture: lanes and circles (filled: applied, hollow: pending; red ring: current), labels to the right.

    One ``<circle class="revision">`` per revision, one ``<path class="link">`` per parent link.
    """
    lanes_width = graph_width(graph)
    text_x = lanes_width + 6
    longest = max((len(_label(graph, i)) for i in range(len(graph.rows))), default=10)
    width = int(text_x + 7.3 * longest + 12)
    height = max(ROW * len(graph.rows), ROW)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        *_edges(graph),
    ]
    for i, row in enumerate(graph.rows):
        out.append(_circle(row, _x(row.lane), _y(i), i in graph.branch_points))
    for i, row in enumerate(graph.rows):
        marks = tags(graph, i)
        y = _y(i) + 4
        parts = [f'<tspan font-weight="bold" fill="{APPLIED_COLOUR if row.node.applied else PENDING_COLOUR}">{escape(row.node.id[:12])}</tspan>']
        if marks:
            colour = CURRENT_COLOUR if row.node.is_current else "#9a6700"
            parts.append(f' <tspan fill="{colour}">({escape(", ".join(marks))})</tspan>')
        parts.append(f' <tspan fill="#24292f">{escape(_cut(row.node.message))}</tspan>')
        out.append(f'<text x="{text_x:g}" y="{y:g}" {FONT} xml:space="preserve">{"".join(parts)}</text>')
    if not graph.rows:
        out.append(f'<text x="4" y="15" {FONT}>(no revisions)</text>')
    out.append("</svg>")
    return "\n".join(out)


def _label(graph: Layout, index: int) -> str:
    row = graph.rows[index]
    marks = tags(graph, index)
    marked = f" ({', '.join(marks)})" if marks else ""
    return f"{row.node.id[:12]}{marked} {_cut(row.node.message)}"


def row_svg(graph: Layout, index: int, segments: Sequence[Sequence[str]]) -> str:
    """Row ``index``'s slice of the lanes, ``ROW`` pixels high: for one cell of a table.

    ``segments`` comes from :func:`row_segments` (computed once for all rows).
    """
    width = graph_width(graph)
    row = graph.rows[index]
    top = index * ROW
    body = "".join(segments[index]) + _circle(row, _x(row.lane), _y(index), index in graph.branch_points)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:g}" height="{ROW}" '
        f'viewBox="0 {top} {width:g} {ROW}" style="display:block;overflow:visible">{body}</svg>'
    )


def row_segments(graph: Layout) -> list[list[str]]:
    """For each row, the pieces of link paths that cross it (each piece from one row centre to the next)."""
    pieces: list[list[str]] = [[] for _ in graph.rows]
    for link in graph.links:
        points = link_points(graph, link)
        expanded = _per_row(points)
        for a, b in zip(expanded, expanded[1:], strict=False):
            d = _path([a, b])
            piece = f'<path d="{d}" fill="none" stroke="{_colour(link.lane)}" stroke-width="1.6"/>'
            top = int(a[1])
            pieces[top].append(piece)
            if top + 1 < len(pieces):
                pieces[top + 1].append(piece)
    return pieces


def _per_row(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """``points`` with a point at every row in between, so each piece spans one row gap."""
    out = [points[0]]
    for lane, row in points[1:]:
        last_lane, last_row = out[-1]
        if lane == last_lane:
            out += [(lane, r) for r in range(int(last_row) + 1, int(row) + 1)]
        else:  # a bend happens in the first gap
            out.append((lane, last_row + 1))
            out += [(lane, r) for r in range(int(last_row) + 2, int(row) + 1)]
    return out
