"""Pictures: the revision graph beside history and alone, the schema diagram; on each database, from magics."""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import Shell, version

from migmagic import diagram
from migmagic.errors import DiagramError, GraphvizMissing, UsageError
from migmagic.schema import Column, ForeignKey, Table

SVG = "{http://www.w3.org/2000/svg}"
NASTY = "<script>alert(1)</script>"

LIBRARY = '''def upgrade():
    op.create_table("authors", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(100), nullable=False))
    op.create_table(
        "books",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("author_id", sa.Integer, sa.ForeignKey("authors.id", name="fk_books_author"), nullable=False),
    )
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("book_id", sa.Integer, sa.ForeignKey("books.id", name="fk_reviews_book")),
        sa.Column("reviewer_id", sa.Integer, sa.ForeignKey("authors.id", name="fk_reviews_reviewer")),
        sa.Column("stars", sa.Integer),
    )


def downgrade():
    op.drop_table("reviews")
    op.drop_table("books")
    op.drop_table("authors")
'''

EMPTY = "def upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n"


def assert_inert(svg: str) -> ET.Element:
    """``svg`` is well-formed XML with nothing that runs or loads: no script, event attribute, link."""
    root = ET.fromstring(svg)
    assert "<script" not in svg.lower() and "javascript:" not in svg.lower()
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        assert tag not in ("script", "foreignObject", "a", "iframe"), tag
        for name, value in element.attrib.items():
            local = name.rsplit("}", 1)[-1].lower()
            assert not local.startswith("on"), (tag, name)
            assert local != "href", (tag, name, value)
    assert not re.search(r"<[^>]*\son\w+\s*=", svg)
    return root


def text_of(root: ET.Element) -> str:
    return "".join(root.itertext())


def groups(root: ET.Element, kind: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == kind]


def branched_history(m: Any) -> dict[str, str]:
    """base <- a <- (b1, b2) merged by m; b1 applied; returns the ids by name."""
    a = m.revision("create authors", EMPTY).revision
    b1 = m.revision("branch one", EMPTY, head=a).revision
    b2 = m.revision("branch two " + NASTY, EMPTY, head=a).revision
    m.upgrade(b1)
    merged = m.merge("heads", "join the branches").revision
    return {"a": a, "b1": b1, "b2": b2, "m": merged}


# ---------------------------------------------------------------------- the revision graph


def test_history_stays_a_dataframe_with_the_graph_beside_it(migrator: Any) -> None:
    ids = branched_history(migrator)
    h = migrator.history()
    assert isinstance(h, pd.DataFrame) and pd.DataFrame in type(h).__mro__
    assert list(h.columns) == ["revision", "parent", "message", "created", "applied", "markers", "branch labels"]
    lines = repr(h).splitlines()
    assert [line[:3] for line in lines[1:]] == ["o-\\", "* |", "| o", "*-/"], repr(h)
    assert lines[1].split()[1] == ids["m"]
    html = h._repr_html_()
    table = ET.fromstring(html)  # well-formed: the SVG slices are inline XML
    slices = list(table.iter(f"{SVG}svg"))
    assert len(slices) == len(h) == 4
    assert len([c for c in table.iter(f"{SVG}circle") if c.get("class") == "revision"]) == 4
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and NASTY not in html
    for rev in ids.values():
        assert rev in html
    assert_inert(html)


def test_a_filtered_history_shows_without_the_graph(migrator: Any) -> None:
    branched_history(migrator)
    h = migrator.history()
    applied = h[h["applied"].notna()]
    assert "<svg" not in applied._repr_html_()
    assert not repr(applied).splitlines()[1].startswith("*")


def test_graph_counts_revisions_and_parent_links(migrator: Any) -> None:
    ids = branched_history(migrator)
    g = migrator.graph()
    root = assert_inert(g._repr_svg_())
    assert len([c for c in root.iter(f"{SVG}circle") if c.get("class") == "revision"]) == 4
    assert len([p for p in root.iter(f"{SVG}path") if p.get("class") == "link"]) == 4  # a<-b1, a<-b2, b1<-m, b2<-m
    shown = text_of(root)
    for rev in ids.values():
        assert rev[:12] in shown
    assert "branch two " + NASTY in shown  # as text
    assert "(head, merge)" in shown and "(branch point)" in shown and "(current)" in shown
    filled = {c.get("fill") for c in root.iter(f"{SVG}circle") if c.get("class") == "revision"}
    assert "#ffffff" in filled and len(filled) == 2  # applied filled, pending hollow
    text = repr(g)
    assert text.splitlines()[0].startswith("o-\\") and ids["m"] in text
    assert g._repr_html_().startswith("<div") and "<svg" in g._repr_html_()


def test_graph_of_a_range(migrator: Any) -> None:
    ids = branched_history(migrator)
    g = migrator.graph(f"{ids['b1']}:")
    assert set(g.layout.ids) == {ids["b1"], ids["m"]}
    assert len(g.layout.links) == 1


def test_graph_magic(ip_with_db: Shell) -> None:
    ip_with_db.ok('%migrate revision -m "first"')
    ip_with_db.ok('%migrate revision -m "second"')
    ip_with_db.ok("%migrate upgrade +1")
    g = ip_with_db.ok("%migrate graph")
    assert repr(g).splitlines()[0].startswith("o  ") and repr(g).splitlines()[1].startswith("*  ")
    root = assert_inert(g._repr_svg_())
    assert len([c for c in root.iter(f"{SVG}circle") if c.get("class") == "revision"]) == 2
    assert not ip_with_db.run("%migrate graph -h").failed


# ---------------------------------------------------------------------- the schema diagram


def test_diagram_of_three_tables(migrator: Any) -> None:
    migrator.revision("create the library", LIBRARY)
    migrator.upgrade("head")
    d = migrator.diagram()
    root = assert_inert(d._repr_svg_())
    nodes, edges = groups(root, "node"), groups(root, "edge")
    assert len(nodes) == 3 and len(edges) == 3  # one box per table, one edge per foreign key
    shown = text_of(root)
    for name in ("authors", "books", "reviews", "author_id", "book_id", "reviewer_id", "PK", "FK", "NOT NULL", "NULL"):
        assert name in shown, name
    assert "alembic_version" not in shown and "migmagic_ledger" not in shown
    assert "<title>" not in d.svg and "<!--" not in d.svg
    assert "books.author_id -> authors.id" in repr(d)
    assert d.dot.startswith("digraph schema {") and "t1:c2:e -> t0" in d.dot


def test_diagram_of_named_tables_and_their_neighbours(migrator: Any) -> None:
    migrator.revision("create the library", LIBRARY)
    migrator.upgrade("head")
    only_reviews = ET.fromstring(migrator.diagram(["reviews"]).svg)
    assert len(groups(only_reviews, "node")) == 3  # reviews refers to books and authors
    books = migrator.diagram(["books"])
    assert "reviews(" in repr(books) and "authors(" in repr(books)
    assert len(groups(ET.fromstring(books.svg), "edge")) == 3
    with pytest.raises(UsageError, match="No table 'book'") as caught:
        migrator.diagram(["book"])
    assert "books" in str(caught.value)


def test_diagram_magic(ip_with_db: Shell) -> None:
    ip_with_db.ns["LIBRARY"] = LIBRARY
    ip_with_db.ok('m = %migrate status')
    ip_with_db.ip.run_cell(f'%%revision -m "create the library" --apply\n{LIBRARY}')
    d = ip_with_db.ok("%migrate diagram")
    assert len(groups(ET.fromstring(d.svg), "node")) == 3
    d = ip_with_db.ok("%migrate diagram authors")
    assert len(groups(ET.fromstring(d.svg), "node")) == 3  # books and reviews refer to authors
    run = ip_with_db.run("%migrate diagram nosuch")
    assert run.failed and "UsageError: No table 'nosuch'" in run.output


def test_a_table_named_script_is_text(workdir: Path, sqlite_url: str) -> None:
    from migmagic import Migrator

    body = f'''def upgrade():
    op.create_table("parents", sa.Column("id", sa.Integer, primary_key=True))
    op.create_table({NASTY!r}, sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("a&b <q>", sa.Integer, sa.ForeignKey("parents.id")))


def downgrade():
    pass
'''
    m = Migrator.init(sqlite_url)
    try:
        m.revision(NASTY, body)
        m.upgrade("head")
        d = m.diagram()
        g = m.graph()
    finally:
        m.close()
    root = assert_inert(d.svg)
    assert NASTY in text_of(root) and "a&b <q>" in text_of(root)
    assert "&lt;script&gt;" in d.svg and len(groups(root, "edge")) == 1
    assert NASTY in text_of(assert_inert(g.svg))


def test_added_and_removed_are_marked() -> None:
    tables = [
        Table("users", (Column("id", "INTEGER", False, True), Column("email", "VARCHAR(200)"))),
        Table("orders", (Column("id", "INTEGER", False, True), Column("user_id", "INTEGER"), Column("note", "TEXT")), (ForeignKey(("user_id",), "users", ("id",)),)),
        Table("coupons", (Column("id", "INTEGER", False, True),)),
    ]
    text = diagram.dot(tables, added={"coupons", ("orders", "note")}, removed={("users", "email")})
    root = assert_inert(diagram.render_svg(text))
    texts = {"".join(t.itertext()): t for t in root.iter(f"{SVG}text")}
    assert texts["note"].get("fill") == diagram.ADDED[0] and texts["coupons"].get("fill") == diagram.ADDED[0]
    assert texts["email"].get("fill") == diagram.REMOVED[0] and texts["email"].get("text-decoration") == "line-through"
    assert texts["user_id"].get("fill") is None and texts["users"].get("fill") is None
    fills = {p.get("fill") for p in root.iter(f"{SVG}polygon")}
    assert diagram.ADDED[1] in fills and diagram.REMOVED[1] in fills


def test_clean_svg_drops_scripts_events_links_and_comments() -> None:
    dirty = (
        '<?xml version="1.0"?><!-- users --><svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" onload="x()">'
        '<title>t</title><script>alert(1)</script><g class="node" onclick="y()"><a xlink:href="http://example.com" href="javascript:z()">'
        '<text>kept</text></a></g><foreignObject><div/></foreignObject></svg>'
    )
    clean = diagram.clean_svg(dirty)
    root = assert_inert(clean)
    assert text_of(root) == "kept" and "<!--" not in clean and "<title>" not in clean


def test_without_graphviz_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ip_with_db: Shell) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GraphvizMissing) as caught:
        diagram.render_svg("digraph { a }")
    assert "pip install 'migmagic[diagrams]'" in str(caught.value)
    run = ip_with_db.run("%migrate diagram")
    assert run.failed and isinstance(run.error, GraphvizMissing)
    assert run.error._render_traceback_() == [f"GraphvizMissing: {run.error}"]


def test_a_dot_failure_is_one_line() -> None:
    with pytest.raises(DiagramError) as caught:
        diagram.render_svg("digraph { this is not dot")
    assert caught.value._render_traceback_()[0].startswith("DiagramError: Graphviz's dot failed")
    assert "\n" not in str(caught.value)


def test_an_empty_database_draws_a_note(workdir: Path, sqlite_url: str) -> None:
    from migmagic import Migrator

    m = Migrator.init(sqlite_url)
    try:
        d = m.diagram()
    finally:
        m.close()
    assert "(no tables)" in text_of(assert_inert(d.svg)) and repr(d) == "(no tables)"


def test_diagram_dry_run_marks_what_the_plan_adds_and_removes(workdir: Any, sqlite_url: str) -> None:
    """``%migrate diagram --dry-run TARGET``: the schema after the plan, rehearsed on a copy, changes marked."""
    from migmagic import Migrator
    from migmagic.diagram import ADDED, REMOVED

    m = Migrator.init(sqlite_url)
    m.revision("create events", '''def upgrade():
    op.create_table("events", sa.Column("id", sa.Integer, primary_key=True), sa.Column("old_note", sa.String(50)))
''')
    m.upgrade("head")
    m.revision("venues", '''def upgrade():
    op.create_table("venues", sa.Column("id", sa.Integer, primary_key=True))
    with op.batch_alter_table("events") as batch:
        batch.drop_column("old_note")
        batch.add_column(sa.Column("venue_id", sa.Integer, sa.ForeignKey("venues.id", name="fk_events_venue")))
''')
    before = version(sqlite_url)
    picture = m.diagram(dry_run="head")
    assert version(sqlite_url) == before  # rehearsed: the real database is where it was
    ET.fromstring(picture.svg)
    assert f'<font color="{ADDED[0]}">venue_id' in picture.dot or f'color="{ADDED[0]}"' in picture.dot
    assert REMOVED[0] in picture.dot and "old_note" in picture.dot and "venues" in picture.dot
    assert picture.dot.count("->") == 1  # the new foreign key, drawn


@pytest.mark.parametrize("target", ["base", "-1", "first"])
def test_diagram_dry_run_of_a_downgrade_marks_what_it_removes(target: str, workdir: Any, sqlite_url: str) -> None:
    """Issue 23 item 3: ``diagram --dry-run`` to a target below the database draws the downgrade, its removals marked."""
    from migmagic import Migrator
    from migmagic.diagram import REMOVED

    m = Migrator.init(sqlite_url)
    first = m.revision("create events", '''def upgrade():
    op.create_table("events", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("events")
''').revision
    m.revision("venues", '''def upgrade():
    op.create_table("venues", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("venues")
''')
    m.upgrade("head")
    before = version(sqlite_url)
    picture = m.diagram(dry_run=first if target == "first" else target)
    assert version(sqlite_url) == before
    assert REMOVED[0] in picture.dot and "venues" in picture.dot, picture.dot
    m.close()
