"""``--rev-id`` is checked before anything is written: Alembic's characters, 32 at most, no reserved names, no paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import EVENTS, Shell, version

from migmagic.errors import UsageError

BAD_IDS = {
    "abc-1": "letters, digits and _",
    "a+b": "letters, digits and _",
    "a@b": "letters, digits and _",
    "a:b": "letters, digits and _",
    "a,b": "letters, digits and _",
    "a b": "letters, digits and _",
    "a.b": "letters, digits and _",
    "../../x": "letters, digits and _",
    ".hidden": "letters, digits and _",
    "a/b": "letters, digits and _",
    "a\\b": "letters, digits and _",
    "ünï": "letters, digits and _",
    "base": "reserved",
    "head": "reserved",
    "heads": "reserved",
    "HEAD": "reserved",
    "x" * 33: "at most 32",
    "": "empty",
}


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix == ".py" and p.parent.name != "migrations")


@pytest.mark.parametrize("rev_id", list(BAD_IDS), ids=[repr(i)[:20] for i in BAD_IDS])
def test_bad_rev_id_is_refused_before_anything_is_written(workdir: Path, sqlite_url: str, rev_id: str) -> None:
    from migmagic import Migrator

    m = Migrator.init(sqlite_url)
    try:
        root = m.revision("root")
        before = _files(workdir)
        with pytest.raises(UsageError) as caught:
            m.revision("create events table", EVENTS, rev_id=rev_id)
        assert BAD_IDS[rev_id] in str(caught.value) and str(caught.value).endswith("Nothing was written.")
        assert len(str(caught.value).splitlines()) == 1
        m.revision("other root", head="base")
        with pytest.raises(UsageError) as merged:
            m.merge("heads", "join", rev_id=rev_id)
        assert BAD_IDS[rev_id] in str(merged.value)
        assert [p for p in _files(workdir) if p not in before and "other_root" not in p.name] == []
        assert root.revision in m.scripts()  # the folder still loads
        m.upgrade("heads")
    finally:
        m.close()


def test_32_characters_is_fine_and_33_is_refused_on_each_database(workdir: Path, db_url: str) -> None:
    from migmagic import Migrator

    m = Migrator.init(db_url)
    try:
        with pytest.raises(UsageError, match="at most 32"):
            m.revision("create events table", EVENTS, rev_id="a" * 40, apply=True)
        assert list((workdir / "migrations" / "versions").glob("*.py")) == []
        assert version(db_url) == set()
        written = m.revision("create events table", EVENTS, rev_id="a" * 32, apply=True)
        assert version(db_url) == {"a" * 32} and written.revision == "a" * 32
    finally:
        m.close()


def test_revision_cell_with_bad_rev_id_is_one_line_and_writes_nothing(ip_empty: Shell, sqlite_url: str) -> None:
    ip_empty.ok(f"%migrate init {sqlite_url}")
    run = ip_empty.run(f'%%revision -m "create events table" --rev-id ../../x\n{EVENTS}')
    assert run.failed
    lines = [ln for ln in run.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("UsageError: --rev-id '../../x'"), run.output
    assert not Path("x_create_events_table.py").exists() and not list(Path(".").rglob("x_*.py"))
    assert list(Path("migrations/versions").glob("*.py")) == []
    run = ip_empty.run('%migrate revision -m "one" --rev-id abc-1')
    assert run.failed and "UsageError: --rev-id 'abc-1'" in run.output
    ip_empty.ok("%migrate history")
