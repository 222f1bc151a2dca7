"""The revision graph's lane layout, text column and SVG, from plain data (no database)."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

from migmagic import graph
from migmagic.graph import Node

SVG = "{http://www.w3.org/2000/svg}"


def linear(n: int, applied: int) -> list[Node]:
    """``n`` revisions in a line, newest first; the oldest ``applied`` are applied, the newest is the head."""
    return [
        Node(f"{i:012x}", (f"{i - 1:012x}",) if i else (), f"revision {i}", i < applied, i == n - 1, i == applied - 1)
        for i in reversed(range(n))
    ]


def branched() -> list[Node]:
    """a <- p <- (b1, b2); m merges b1 and b2; h2 is a second head on b1. Newest first."""
    return [
        Node("m", ("b1", "b2"), "merge heads", is_head=True),
        Node("h2", ("b1",), "another head", is_head=True),
        Node("b2", ("p",), "branch two", applied=True, is_current=True),
        Node("b1", ("p",), "branch one", applied=True, branch_labels=("feature",)),
        Node("p", ("a",), "branch point", applied=True),
        Node("a", (), "create events table", applied=True),
    ]


def random_history(n: int, seed: int = 7) -> list[Node]:
    """``n`` revisions with branches and merges, newest first (children before parents)."""
    rnd = random.Random(seed)
    made: list[tuple[str, tuple[str, ...]]] = []
    heads: list[str] = []
    for i in range(n):
        rev = f"{i:04d}{rnd.getrandbits(32):08x}"
        if not made:
            parents: tuple[str, ...] = ()
        elif rnd.random() < 0.07 and len(heads) > 1:
            parents = tuple(rnd.sample(heads, 2))
        elif rnd.random() < 0.08:
            parents = (made[max(0, len(made) - rnd.randint(1, 8))][0],)
        else:
            parents = (rnd.choice(heads),)
        heads = [h for h in heads if h not in parents] + [rev]
        made.append((rev, parents))
    return [Node(rev, parents, f"change {i}", i < n // 2, rev in heads) for i, (rev, parents) in reversed(list(enumerate(made)))]


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def circles(root: ET.Element) -> list[ET.Element]:
    return [c for c in root.iter(f"{SVG}circle") if c.get("class") == "revision"]


def links(root: ET.Element) -> list[ET.Element]:
    return [p for p in root.iter(f"{SVG}path") if p.get("class") == "link"]


def test_a_line_is_one_lane_applied_filled_pending_hollow() -> None:
    layout = graph.layout(linear(5, applied=3))
    assert layout.lanes == 1 and [r.lane for r in layout.rows] == [0] * 5
    assert graph.text_column(layout) == ["o", "o", "*", "*", "*"]
    root = parse(graph.svg(layout))
    dots = circles(root)
    assert len(dots) == 5 and len(links(root)) == 4
    assert [d.get("fill") == "#ffffff" for d in dots] == [True, True, False, False, False]
    assert int(root.get("height", "0")) == 5 * graph.ROW


def test_branches_and_a_merge_draw_like_git_log_graph() -> None:
    layout = graph.layout(branched())
    assert graph.text_column(layout) == ["o-\\  ", "| | o", "| * |", "*-|-/", "*-/  ", "*    "]
    assert layout.lanes == 3
    assert len(layout.links) == 6  # one per parent link
    assert {layout.rows[i].node.id for i in layout.branch_points} == {"p", "b1"}
    text = graph.text(layout)
    assert "m (head, merge)  merge heads" in text
    assert "b2 (current)  branch two" in text and "b1 (branch point, @feature)" in text
    root = parse(graph.svg(layout))
    assert len(circles(root)) == 6 and len(links(root)) == 6
    assert sum(1 for c in root.iter(f"{SVG}circle") if c.get("stroke") == graph.CURRENT_COLOUR) == 1
    shown = "".join(root.itertext())
    for node in branched():
        assert node.id in shown and node.message in shown


def test_parents_outside_the_rows_get_no_link() -> None:
    layout = graph.layout(linear(5, applied=0)[:3])  # a range: the last row's parent is not shown
    assert len(layout.links) == 2 and graph.text_column(layout) == ["o", "o", "o"]


def test_names_are_text_in_the_svg() -> None:
    nasty = "<script>alert(1)</script> & \"co\""
    layout = graph.layout([Node("x<b>&y", ("a",), nasty, is_head=True), Node("a", (), "first", applied=True)])
    svg = graph.svg(layout)
    assert "<script" not in svg and "&lt;script&gt;" in svg
    root = parse(svg)
    assert not list(root.iter(f"{SVG}script"))
    texts = "".join(root.itertext())
    assert nasty in texts and "x<b>&y" in texts


def test_a_thousand_revisions_stay_narrow_and_well_formed() -> None:
    nodes = random_history(1000)
    layout = graph.layout(nodes)
    index = {n.id: i for i, n in enumerate(nodes)}
    expected = sum(1 for n in nodes for p in n.parents if p in index)
    assert len(layout.links) == expected
    assert all(link.child < link.parent for link in layout.links)
    open_at_once = max(len(r.after) for r in layout.rows)
    assert layout.lanes <= open_at_once + 1 < 40
    root = parse(graph.svg(layout))
    assert len(circles(root)) == 1000 and len(links(root)) == expected
    assert int(root.get("height", "0")) == 1000 * graph.ROW
    assert int(root.get("width", "0")) < 1000  # labels cut, lanes bounded
    column = graph.text_column(layout)
    assert len({len(line) for line in column}) == 1


def test_row_slices_are_well_formed_and_hold_their_revision() -> None:
    layout = graph.layout(branched())
    segments = graph.row_segments(layout)
    for i in range(len(layout.rows)):
        root = parse(graph.row_svg(layout, i, segments))
        assert root.get("viewBox", "").startswith(f"0 {i * graph.ROW} ")
        assert len(circles(root)) == 1
        assert list(root.iter(f"{SVG}path"))  # every row here has a lane through it


def test_labels_have_the_short_id_and_a_cut_message_the_tooltip_the_full_id() -> None:
    long = "x" * 200
    layout = graph.layout([Node("abcdef1234567890", (), long)])
    root = parse(graph.svg(layout))
    texts = "".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))
    assert "abcdef123456" in texts and "abcdef1234567" not in texts
    assert [t.text for t in root.iter(f"{SVG}title")] == ["abcdef1234567890 (pending)"]
    assert "x" * (graph.MESSAGE_CHARS - 1) + "…" in texts and long not in texts
