"""What the HTML forms look like where it matters: code and SQL set as code whatever the front end's
stylesheet, sentences broken between words, and a dry run's report that reads headline first."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Shell

from migmagic import Migrator
from migmagic.display import Rehearsal

READINGS = '''def upgrade():
    op.create_table(
        "readings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("unit", sa.String(10)),
        sa.Column("note", sa.String(200)),
    )


def downgrade():
    op.drop_table("readings")
'''
TIDY = '''def upgrade():
    with op.batch_alter_table("readings") as batch:
        batch.drop_column("note")
        batch.alter_column("unit", existing_type=sa.String(10), nullable=False)


def downgrade():
    with op.batch_alter_table("readings") as batch:
        batch.alter_column("unit", existing_type=sa.String(10), nullable=True)
        batch.add_column(sa.Column("note", sa.String(200)))
'''


class Elements(HTMLParser):
    """Each element's tag, attributes and the text inside it (its own and its children's), in document order."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.found: list[dict[str, Any]] = []
        self.open: list[dict[str, Any]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.found.append(element)
        if tag not in ("br", "img", "input", "meta"):
            self.open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self.open:
            if self.open.pop()["tag"] == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self.open:
            element["text"] += data

    def tags(self, tag: str) -> list[dict[str, Any]]:
        return [e for e in self.found if e["tag"] == tag]


def style(element: dict[str, Any]) -> str:
    return (element["attrs"].get("style") or "").replace(" ", "")


def set_as_code(element: dict[str, Any]) -> bool:
    s = style(element)
    return "monospace" in s and "white-space:pre;" in s + ";" and "word-break:normal" in s


@pytest.fixture
def tidy(workdir: Path) -> Migrator:
    """A database with readings (two without a unit, notes in all) and a pending revision that drops the notes and makes units NOT NULL."""
    m = Migrator.init(f"sqlite:///{workdir / 'app.db'}")
    m.revision("create readings", READINGS)
    m.upgrade("head")
    engine = sa.create_engine(m.db.url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO readings (unit, note) VALUES ('C', 'a'), (NULL, 'b'), (NULL, 'c')"))
    engine.dispose()
    m.revision("tidy readings", TIDY)
    return m


def test_sql_and_revision_source_are_set_as_code(tidy: Migrator) -> None:
    first = tidy.current().ids[0]
    for shown, code in ((tidy.sql("downgrade", f"{first}:base"), "DROP TABLE readings"), (tidy.show("head"), "batch.drop_column")):
        page = Elements(shown._repr_html_())
        [pre] = [p for p in page.tags("pre") if code in p["text"]]
        assert set_as_code(pre), pre["attrs"]
        # Indentation survives: the lines are in the <pre> as written.
        if code == "batch.drop_column":
            assert '        batch.drop_column("note")' in pre["text"]


def test_a_failed_dry_run_reads_headline_way_forward_then_details(tidy: Migrator) -> None:
    report = tidy.dry_run("upgrade", "head")
    assert report.failed
    page = report._repr_html_()
    assert "<script" not in page and "onclick" not in page
    elements = Elements(page)
    paragraphs = [p["text"] for p in elements.tags("p")]
    # One headline: what failed, where; then what it would have cost; then the way forward.
    assert re.match(r"The upgrade to head would fail at revision [0-9a-f]{12} \('tidy readings'\): IntegrityError: NOT NULL constraint failed", paragraphs[0])
    assert paragraphs[1].startswith("Had it run, it would have destroyed: ") and "3 values of readings.note" in paragraphs[1]
    assert "2 NULLs in readings.unit" in paragraphs[1]
    assert paragraphs[2] == "Fix the data or the revision that failed, then rehearse again: %migrate upgrade head --dry-run."
    # Sentences break between words; the details come after, each in <details>, as tables.
    assert all("word-break:normal" in style(p) for p in elements.tags("p"))
    assert page.index(paragraphs[2]) < page.index("<details")
    summaries = [s["text"] for s in elements.tags("summary")]
    assert summaries[:3] == ["The statement that failed", "Data at stake", "Rows per table"]
    assert any(s.startswith("SQL that ran") for s in summaries)
    sql = next(d for d in elements.tags("details") if d["text"].startswith("SQL that ran"))
    assert "open" not in sql["attrs"]  # long: collapsed
    statements = [p for p in elements.tags("pre") if "INSERT INTO _alembic_tmp_readings" in p["text"]]
    assert statements and all(set_as_code(p) for p in statements)
    assert len(elements.tags("table")) >= 3


def test_a_dry_run_with_data_at_stake_names_accept_data_loss(tidy: Migrator) -> None:
    engine = sa.create_engine(tidy.db.url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE readings SET unit = 'C'"))
    engine.dispose()
    report = tidy.dry_run("upgrade", "head")
    assert not report.failed
    paragraphs = [p["text"] for p in Elements(report._repr_html_()).tags("p")]
    assert paragraphs[0].startswith("Dry run of upgrade to head: 1 step would take")
    assert paragraphs[1] == "It would destroy: 3 values of readings.note."
    assert paragraphs[2] == "If losing that is the point, run it with %migrate upgrade head --accept-data-loss."
    # The plain text, for terminals, says the same in the same order.
    lines = repr(report).splitlines()
    assert lines[1:3] == paragraphs[1:3]


def test_a_failed_dry_run_cell_shows_the_report_then_one_line(ip_empty: Shell, tidy: Migrator) -> None:
    ip_empty.ok(f"%migrate init {tidy.db.url}")
    cell = ip_empty.run("%migrate upgrade head --dry-run")
    assert cell.failed
    error_lines = [line for line in cell.output.splitlines() if line.startswith("RehearsalFailed:")]
    assert error_lines == [
        f"RehearsalFailed: The dry run failed at revision {cell.error.revision}; the report above says why. The real database was not changed."
    ]
    report_at = cell.output.index("The upgrade to head would fail at revision")
    assert report_at < cell.output.index("RehearsalFailed:")
    assert cell.output.count("The upgrade to head would fail at revision") == 1


@pytest.mark.notebook
def test_in_a_kernel_the_failed_dry_run_is_html_then_a_one_line_error(tidy: Migrator, workdir: Path) -> None:
    """A real kernel: the report goes out as HTML (no JavaScript), the error as one line."""
    import nbformat
    from nbrun import execute

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f"%load_ext migmagic\n%migrate init {tidy.db.url}"),
        nbformat.v4.new_code_cell("%migrate upgrade head --dry-run", metadata={"tags": ["raises-exception"]}),
    ]
    path = workdir / "dry.ipynb"
    nbformat.write(nb, path)
    done = execute(path, workdir)
    outputs = done.cells[1].outputs
    # (A slow run may also leave the progress line's display, cleared at the end: not a report.)
    reports = [o for o in outputs if "migmagic-rehearsal" in o.get("data", {}).get("text/html", "")]
    assert len(reports) == 1 and outputs[-1].output_type == "error"
    assert outputs.index(reports[0]) < len(outputs) - 1
    report = reports[0].data["text/html"]
    assert report.startswith('<div class="migmagic-rehearsal">') and "<script" not in report
    assert len(outputs[-1].traceback) == 1 and outputs[-1].ename == "RehearsalFailed"


def test_reports_made_elsewhere_keep_their_form() -> None:
    """A report without a failure or findings (a PostgreSQL rollback, say) still reads summary first."""
    report = Rehearsal(summary="Dry run of downgrade to base: 1 step would ...", how="Rehearsed in a transaction.", steps=None, schema_changes=None, row_counts=None, statements=None)
    paragraphs = [p["text"] for p in Elements(report._repr_html_()).tags("p")]
    assert paragraphs[:2] == ["Dry run of downgrade to base: 1 step would ...", "It went through: %migrate downgrade base runs it for real."]


@pytest.mark.notebook
def test_in_a_kernel_a_long_error_breaks_between_words(tidy: Migrator, workdir: Path) -> None:
    """Front ends break a traceback's long line anywhere (word-break: break-all): the kernel breaks it at words first."""
    import nbformat
    from nbrun import execute

    from migmagic.errors import KERNEL_WIDTH

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f"%load_ext migmagic\n%migrate init {tidy.db.url}"),
        nbformat.v4.new_code_cell("%migrate upgrade head", metadata={"tags": ["raises-exception"]}),
    ]
    path = workdir / "refused.ipynb"
    nbformat.write(nb, path)
    [error] = [o for o in execute(path, workdir).cells[1].outputs if o.output_type == "error"]
    assert error.ename == "DataLossRefused"
    lines = error.traceback[0].split("\n")  # the sentence; the table of what is at stake follows, as it was
    assert len(lines) > 1 and all(len(line) <= KERNEL_WIDTH for line in lines)
    words = " ".join(lines).split()
    assert "--accept-data-loss." in words and "--dry-run," in words  # whole: no word was cut
    assert " ".join(lines).startswith("DataLossRefused: The upgrade to head would destroy data: 3 values of readings.note")
