"""The tutorial notebooks/review-before-you-run.ipynb shows a hazardous revision, squawk's findings,
what the rehearsal saw it lock or copy, and the safer revision applied: on its own SQLite file, and
on PostgreSQL through MIGMAGIC_TUTORIAL_URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from nbrun import NOTEBOOKS, copy_to, execute

NOTEBOOK = NOTEBOOKS / "review-before-you-run.ipynb"
HAZARD = 'op.create_index("ix_events_starts", "events", ["starts"])'
SAFER = 'if op.get_context().dialect.name == "postgresql":'


def _shown(nb: Any) -> list[tuple[str, str]]:
    """Each code cell's source and what it showed (streams and text/plain results), in order."""
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        parts = [o.text if o.output_type == "stream" else o.get("data", {}).get("text/plain", "") for o in cell.get("outputs", [])]
        out.append((cell.source, "\n".join(parts)))
    return out


def _cell(shown: list[tuple[str, str]], marker: str) -> str:
    """The output of the first cell whose source contains ``marker``."""
    return next(out for source, out in shown if marker in source)


def _after(shown: list[tuple[str, str]], marker: str, command: str) -> str:
    """The output of the first cell whose source is ``command`` after the cell containing ``marker``."""
    start = next(i for i, (source, _) in enumerate(shown) if marker in source)
    return next(out for source, out in shown[start:] if source.strip() == command)


def _database(url: str) -> tuple[bool, list[str], int]:
    """events.title nullable?, events' index names, its rows: read from the database itself."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        title = next(c for c in inspector.get_columns("events") if c["name"] == "title")
        indexes = sorted(i["name"] or "" for i in inspector.get_indexes("events"))
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
    finally:
        engine.dispose()
    return bool(title["nullable"]), indexes, rows


@pytest.mark.notebook
def test_review_tutorial_on_sqlite_shows_findings_the_batch_copy_and_the_safer_revision(tmp_path: Path) -> None:
    work = tmp_path / "review"
    nb = execute(copy_to(NOTEBOOK, work), work)
    shown = _shown(nb)
    hazard = _cell(shown, HAZARD)
    assert "Wrote revision" in hazard and "squawk" not in hazard  # on SQLite, no review at the cell
    # squawk's findings, the revision's SQL rendered for PostgreSQL, whatever the session's database.
    findings = _after(shown, HAZARD, "%migrate lint")
    assert "require-concurrent-index-creation" in findings and "adding-not-nullable-field" in findings
    assert "CREATE INDEX ix_events_starts ON events (starts);" in findings
    assert "ALTER TABLE events ALTER COLUMN title SET NOT NULL;" in findings
    # The rehearsal: batch mode copies the 5,000 rows under SQLite's write lock; the real database untouched.
    rehearsal = _after(shown, HAZARD, "%migrate upgrade head --dry-run")
    assert "It went through" in rehearsal and "locks, rewrites and copies:" in rehearsal
    assert "copies events (5,000 rows)" in rehearsal and "SQLite holds its write lock on the whole database" in rehearsal
    # The safer revision rewrites the same revision; squawk finds nothing in it; it is applied.
    safer = _cell(shown, SAFER)
    assert "Rewrote revision" in safer and "in place" in safer
    assert _after(shown, SAFER, "%migrate lint") == "squawk found nothing in 2 revision(s)."
    applied = _after(shown, SAFER, "%migrate upgrade head")
    assert "Upgraded sqlite:///review-before-you-run.db to" in applied and "ran an autocommit block" in applied
    assert _database(f"sqlite:///{work / 'review-before-you-run.db'}") == (False, ["ix_events_starts"], 5000)


@pytest.mark.notebook
@pytest.mark.servers
def test_review_tutorial_on_postgresql_shows_the_review_at_the_cell_and_the_locks(pg_url: str, tmp_path: Path) -> None:
    """What the tutorial says PostgreSQL shows, it shows: the findings under the cell with the safer
    cell offered, SHARE and ACCESS EXCLUSIVE on the 5,000-row table, and the safer revision applied,
    twice in a row on the same database."""
    work = tmp_path / "review"
    path = copy_to(NOTEBOOK, work)
    for _run in ("first", "second"):
        shown = _shown(execute(path, work, env={"MIGMAGIC_TUTORIAL_URL": pg_url}))
        hazard = _cell(shown, HAZARD)
        assert "squawk: 2 finding(s) in its PostgreSQL SQL (require-concurrent-index-creation, adding-not-nullable-field)" in hazard
        assert "The safer way, as a %%revision cell:" in hazard and "postgresql_concurrently=True" in hazard
        rehearsal = _after(shown, HAZARD, "%migrate upgrade head --dry-run")
        assert "SHARE on events (5,000 rows" in rehearsal and "blocks writes; reads go on" in rehearsal
        assert "ACCESS EXCLUSIVE on events (5,000 rows" in rehearsal and "blocks reads and writes" in rehearsal
        assert _after(shown, SAFER, "%migrate lint") == "squawk found nothing in 2 revision(s)."
        assert _database(pg_url) == (False, ["ix_events_starts"], 5000)
    engine = sa.create_engine(pg_url)
    try:  # the helper CHECK is gone, and the index built CONCURRENTLY is valid
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM pg_constraint WHERE conname = 'ck_events_title_not_null'")).scalar_one() == 0
            assert conn.execute(sa.text("SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_events_starts'::regclass")).scalar_one()
    finally:
        engine.dispose()
    assert not (work / "review-before-you-run.db").exists()
