"""Two revisions with the same message: a cell or line with that message is refused, naming both."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ADD_VENUE, EVENTS, Shell

from migmagic import revisionfile
from migmagic.errors import AmbiguousMessage, RevisionNotFound


def _theirs(folder: Path, rev_id: str, message: str, down: str | None) -> Path:
    """A revision someone else wrote by hand (or with the alembic command), same message as ours."""
    path = folder / "versions" / f"{rev_id}_{revisionfile.slug(message)}_2.py"
    path.write_text(revisionfile.render(message=message, rev_id=rev_id, down_revision=down, body=ADD_VENUE))
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "versions").glob("*.py"))}


def test_a_message_naming_two_revisions_is_refused_with_both_ids(workdir: Path, sqlite_url: str) -> None:
    from migmagic import Migrator

    m = Migrator.init(sqlite_url)
    try:
        ours = m.revision("add venue", EVENTS)
        _theirs(m.folder, "bbb222", "add venue", ours.revision)
        before = _snapshot(m.folder)
        for call in (
            lambda: m.revision("add venue", EVENTS + "\n# edited\n"),  # would rewrite one of them
            lambda: m.revision("add venue"),  # %migrate revision -m: would take one for the other
            lambda: m.merge([ours.revision, "bbb222"], "add venue"),
        ):
            with pytest.raises(AmbiguousMessage) as caught:
                call()
            err = caught.value
            assert isinstance(err, RevisionNotFound)
            assert sorted(err.candidates) == sorted([ours.revision, "bbb222"])
            text = str(err)
            assert "'add venue' names 2 revisions" in text and ours.revision in text and "bbb222" in text
            assert text.endswith("Nothing was written.") and len(text.splitlines()) == 1
        assert _snapshot(m.folder) == before
        assert [r.id for r in m.scripts().by_message_all("add venue")] == ["bbb222", ours.revision]
    finally:
        m.close()


def test_revision_cell_with_an_ambiguous_message_is_one_line(ip_empty: Shell, sqlite_url: str) -> None:
    ip_empty.ok(f"%migrate init {sqlite_url}")
    ours = ip_empty.ok(f'%%revision -m "add venue"\n{EVENTS}')
    _theirs(Path("migrations"), "bbb222", "add venue", ours.revision)
    before = _snapshot(Path("migrations"))
    for src in (f'%%revision -m "add venue"\n{ADD_VENUE}', '%migrate revision -m "add venue"'):
        run = ip_empty.run(src)
        lines = [ln for ln in run.output.splitlines() if ln.strip()]
        assert run.failed and len(lines) == 1, run.output
        assert lines[0].startswith("AmbiguousMessage: The message 'add venue' names 2 revisions")
    assert _snapshot(Path("migrations")) == before
