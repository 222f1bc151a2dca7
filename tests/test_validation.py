"""A broken revision folder is reported before any connection is opened, on each database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import EVENTS, Shell

import migmagic.magics
from migmagic.errors import ScriptDirectoryError


def _script(rev: str, down: str | None, body: str) -> str:
    return (
        f'"""{rev}\n"""\nfrom alembic import op\nimport sqlalchemy as sa\n\n'
        f"revision = {rev!r}\ndown_revision = {down!r}\nbranch_labels = None\ndepends_on = None\n\n\n{body}"
    )


GOOD = "def upgrade():\n    pass\n"
BROKEN = {
    "syntax error": ({"aaa": (None, "def upgrade(:\n    pass\n")}, "aaa_x.py, line 12: invalid syntax."),
    "missing upgrade": ({"aaa": (None, "def downgrade():\n    pass\n")}, "aaa_x.py defines no upgrade() function."),
    "unknown parent": ({"aaa": (None, GOOD), "bbb": ("zzz", GOOD)}, "bbb_x.py revises zzz, which is not in the folder."),
    "cycle": ({"aaa": (None, GOOD), "bbb": ("ccc", GOOD), "ccc": ("bbb", GOOD)}, "The revisions form a cycle: "),
    "duplicate id": ({"aaa": (None, GOOD), "aaa2": (None, GOOD)}, "Two revisions have the id aaa: "),
    "unknown dependency": (
        {"aaa": (None, GOOD), "bbb": ("aaa", "depends_on = 'zzz'\n\n\n" + GOOD)},
        "bbb_x.py depends on zzz, which is not in the folder.",
    ),
    "async upgrade": (
        {"aaa": (None, "async def upgrade():\n    pass\n")},
        "aaa_x.py: upgrade() is async; Alembic calls it without awaiting it, so it would run nothing. Use def upgrade():",
    ),
}


@pytest.fixture
def connections() -> Iterator[list[Any]]:
    """Every DBAPI connection any engine opens while the test runs."""
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    opened: list[Any] = []

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        opened.append(dbapi_connection)

    event.listen(Pool, "connect", on_connect)
    yield opened
    event.remove(Pool, "connect", on_connect)


def _write(folder: Path, case: str) -> None:
    files, _ = BROKEN[case]
    for name, (down, body) in files.items():
        rev = "aaa" if case == "duplicate id" else name
        (folder / "versions" / f"{name}_x.py").write_text(_script(rev, down, body))


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_folder_is_refused_before_any_connection(ip_with_db: Shell, connections: list[Any], case: str) -> None:
    url = ip_with_db.ns["TEST_DB_URL"]
    if url.startswith("sqlite"):
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)  # %migrate init's status made it
    _write(Path("migrations"), case)
    # A new session: no engine (and no pooled connection) left from the fixture's init.
    migmagic.magics.unload(ip_with_db.ip)
    migmagic.magics.load(ip_with_db.ip)
    connections.clear()
    _, expected = BROKEN[case]
    lines = [
        f"%migrate init {url}",
        "%migrate status",
        "%migrate upgrade head",
        "%migrate downgrade base",
        "%migrate stamp head",
        "%migrate current",
        "%migrate history",
        "%migrate accept aaa",
        f'%%revision -m "create events table" --apply\n{EVENTS}',
    ]
    for line in lines:
        run = ip_with_db.run(line)
        assert run.failed, line
        assert isinstance(run.error, ScriptDirectoryError), (line, run.output)
        assert expected in run.output, (line, run.output)
        assert "Traceback" not in run.output
        assert len(run.output.strip().splitlines()) == 1, run.output
    assert connections == []
    if url.startswith("sqlite"):
        assert not Path(url.removeprefix("sqlite:///")).exists()
    else:
        from conftest import tables, version

        assert tables(url) == set() and version(url) == set()
    assert sorted(p.name for p in Path("migrations/versions").glob("*.py")) == sorted(f"{n}_x.py" for n in BROKEN[case][0])


def test_the_connection_counter_sees_connections(ip_with_db: Shell, connections: list[Any]) -> None:
    # The control for the test above: a sound folder does reach the database.
    migmagic.magics.unload(ip_with_db.ip)
    migmagic.magics.load(ip_with_db.ip)
    ip_with_db.ok(f"%migrate init {ip_with_db.ns['TEST_DB_URL']}")
    connections.clear()
    migmagic.magics._loaded[id(ip_with_db.ip)].migrator.close()
    ip_with_db.ok("%migrate status")
    assert connections


def test_async_upgrade_in_a_cell_is_refused(ip_with_db: Shell) -> None:
    run = ip_with_db.run('%%revision -m "async"\nasync def upgrade():\n    op.execute("SELECT 1")\n')
    lines = [ln for ln in run.output.splitlines() if ln.strip()]
    assert run.failed and len(lines) == 1, run.output
    assert lines[0] == (
        "RevisionCellError: upgrade() is async; Alembic calls it without awaiting it, so it would run nothing. "
        "Use def upgrade(): Nothing was written."
    )
    assert list(Path("migrations/versions").glob("*.py")) == []


def test_dependency_on_a_branch_label_is_fine(ip_with_db: Shell) -> None:
    ip_with_db.ok('%migrate revision -m "tags root" --head base --branch-label tags')
    ip_with_db.ok('%migrate revision -m "events root" --head base --branch-label events')
    ip_with_db.ok('%migrate revision -m "needs tags" --head events@head --depends-on tags')
    ip_with_db.ok("%migrate upgrade heads")
    ip_with_db.ok("%migrate history")
