"""One clear line instead of a traceback: a revision folder that cannot be written, a revision that
exits or fails to import, ``--sql`` that cannot render, a SQLite URL that would open another file;
a BOM accepted; a failed ``--apply`` says the file was written and what to do next."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import EVENTS, Shell, tables, version

from migmagic.errors import MigmagicError, MigrationFailed, ScriptDirectoryError, UsageError


def _one_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture
def immutable_versions(workdir: Path, sqlite_url: str) -> Iterator[Any]:
    """A Migrator whose ``versions/`` holds one revision and cannot be written (``chattr +i``: root too)."""
    from migmagic import Migrator

    m = Migrator.init(sqlite_url)
    m.revision("root")
    versions = m.folder / "versions"
    if subprocess.run(["chattr", "+i", str(versions)], capture_output=True).returncode != 0:
        m.close()
        pytest.skip("chattr +i is not available here")
    try:
        yield m
    finally:
        subprocess.run(["chattr", "-i", str(versions)], check=True)
        m.close()


def test_unwritable_versions_folder_is_one_line_and_writes_nothing(immutable_versions: Any) -> None:
    m = immutable_versions
    before = sorted(p.name for p in (m.folder / "versions").iterdir())
    with pytest.raises(MigmagicError) as caught:
        m.revision("create events table", EVENTS)
    text = str(caught.value)
    assert text.startswith("Cannot write migrations/versions/") and "_create_events_table.py: " in text
    assert "Operation not permitted" in text and text.endswith("Nothing was written.")
    assert ".tmp" not in text and len(text.splitlines()) == 1
    assert sorted(p.name for p in (m.folder / "versions").iterdir()) == before
    assert len(m.scripts()) == 1


@pytest.fixture
def full_disk_versions(workdir: Path, sqlite_url: str) -> Iterator[Any]:
    """A Migrator whose ``versions/`` is a full 64 KiB tmpfs."""
    from migmagic import Migrator

    m = Migrator.init(sqlite_url)
    versions = m.folder / "versions"
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(versions)], capture_output=True).returncode != 0:
        m.close()
        pytest.skip("cannot mount a tmpfs here")
    try:
        m.revision("root")
        subprocess.run(["dd", "if=/dev/zero", f"of={versions / 'filler.bin'}", "bs=4k"], capture_output=True)
        yield m
    finally:
        m.close()
        subprocess.run(["umount", str(versions)], check=True)


def test_full_disk_is_one_line_and_leaves_no_half_written_file(full_disk_versions: Any) -> None:
    m = full_disk_versions
    before = sorted(p.name for p in (m.folder / "versions").iterdir())
    big = EVENTS + "\n\n" + "\n".join(f"# padding line {i} " + "x" * 80 for i in range(2000)) + "\n"
    with pytest.raises(MigmagicError) as caught:
        m.revision("create events table", big)
    text = str(caught.value)
    assert text.startswith("Cannot write migrations/versions/") and "No space left on device" in text
    assert ".tmp" not in text and len(text.splitlines()) == 1
    assert sorted(p.name for p in (m.folder / "versions").iterdir()) == before
    # A rewrite of an existing revision that does not fit leaves the old file as it was.
    root = m.scripts().by_message("root")
    old = root.path.read_bytes()
    with pytest.raises(MigmagicError, match="Cannot write .*No space left on device"):
        m.revision("root", big)
    assert root.path.read_bytes() == old and len(m.scripts()) == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("import sys\nsys.exit(3)\n\n\ndef upgrade():\n    pass\n", "raised SystemExit when loaded: 3."),
        ("import no_such_module_xyz\n\n\ndef upgrade():\n    pass\n", "raised ModuleNotFoundError when loaded: No module named 'no_such_module_xyz'."),
    ],
    ids=["sys.exit", "missing import"],
)
def test_revision_that_exits_or_fails_to_import_names_the_file(ip_empty: Shell, sqlite_url: str, body: str, expected: str) -> None:
    from migmagic import revisionfile

    ip_empty.ok(f"%migrate init {sqlite_url}")
    path = Path("migrations/versions/aaa_bad.py")
    path.write_text(revisionfile.render(message="bad", rev_id="aaa", down_revision=None, body=body))
    for line in ("%migrate status", "%migrate upgrade head", "%migrate history"):
        run = ip_empty.run(line)
        assert isinstance(run.error, ScriptDirectoryError), (line, run.output)
        shown = _one_line(run.output)
        assert shown.startswith("ScriptDirectoryError: migrations/versions/aaa_bad.py, line ") and expected in shown, shown
    assert tables(sqlite_url) == set()


def test_utf8_bom_is_accepted_and_keeps_the_checksum(workdir: Path, db_url: str) -> None:
    from migmagic import Migrator

    m = Migrator.init(db_url)
    try:
        written = m.revision("create events table", EVENTS, apply=True)
        path = m.scripts().info(written.revision).path
        checksum = m.scripts().info(written.revision).checksum
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
        info = m.scripts().info(written.revision)
        assert info.checksum == checksum and not info.source.startswith("\ufeff")
        assert "edited since applied" not in " ".join(m.status().problems)
        m.downgrade("base")
        m.upgrade("head")
        assert version(db_url) == {written.revision}
    finally:
        m.close()


READS_ROWS = '''def upgrade():
    rows = op.get_bind().execute(sa.text("SELECT 1")).fetchall()
    op.execute(f"SELECT {len(rows)}")
'''


def test_sql_that_cannot_render_is_one_line_naming_the_revision(workdir: Path, db_url: str) -> None:
    from migmagic import Migrator

    m = Migrator.init(db_url)
    try:
        m.revision("create events table", EVENTS, apply=True)
        bad = m.revision("count rows", READS_ROWS)
        with pytest.raises(MigmagicError) as caught:
            m.sql("upgrade", "head")
        text = str(caught.value)
        assert text.startswith(f"Cannot render the SQL of revision {bad.revision} ('count rows'), line ")
        assert ": AttributeError: 'NoneType' object has no attribute 'fetchall'. A revision that reads" in text
        assert text.endswith("Nothing was run.") and len(text.splitlines()) == 1
        assert caught.value._render_traceback_() == [f"{type(caught.value).__name__}: {text}"]
        assert version(db_url) != {bad.revision}
    finally:
        m.close()


def test_sqlite_path_with_question_mark_is_refused_not_opened_elsewhere(workdir: Path) -> None:
    from migmagic import Migrator

    folder = workdir / "dir with ?"
    folder.mkdir()
    with pytest.raises(UsageError) as caught:
        Migrator.init(f"sqlite:///{folder}/x.db").status()
    text = _one_line(str(caught.value))
    assert "holds '?'" in text and "%3F" in text
    assert not (workdir / "dir with ").exists()
    # Written as the URL syntax asks, it works.
    m = Migrator.init(f"sqlite:///{workdir}/dir with %3F/x.db")
    try:
        m.revision("create events table", EVENTS, apply=True)
    finally:
        m.close()
    assert (folder / "x.db").exists()


def test_failed_apply_says_the_revision_was_written_and_what_next(ip_empty: Shell, db_url: str) -> None:
    ip_empty.ok(f"%migrate init {db_url}")
    body = 'def upgrade():\n    op.execute("SELECT * FROM no_such_table")\n'
    run = ip_empty.run(f'%%revision -m "broken" --apply\n{body}')
    assert isinstance(run.error, MigrationFailed), run.output
    first = run.output.strip().splitlines()[0]
    path = next(Path("migrations/versions").glob("*_broken.py"))
    assert first.startswith(f"MigrationFailed: Revision {run.error.revision} was written to {path}; the upgrade failed: ")
    assert first.endswith("Fix it and re-run the cell (the revision is rewritten in place), or %migrate upgrade when fixed.")
    assert str(run.error).endswith("Fix it and call revision() again (the revision is rewritten in place), or upgrade() when fixed.")
    fixed = ip_empty.ok('%%revision -m "broken" --apply\ndef upgrade():\n    op.execute("SELECT 1")\n')
    assert fixed.action == "rewrote" and version(db_url) == {fixed.revision}


@pytest.mark.parametrize("name", ["pct%25dir", "new\nline"], ids=["percent", "newline"])
def test_sqlite_path_with_percent_or_newline_works(workdir: Path, name: str) -> None:
    from migmagic import Migrator

    real = name.replace("%25", "%")
    (workdir / real).mkdir()
    m = Migrator.init(f"sqlite:///{workdir}/{name}/x.db")
    try:
        m.revision("create events table", EVENTS, apply=True)
    finally:
        m.close()
    assert (workdir / real / "x.db").exists()


def test_sqlite_database_in_a_read_only_folder_is_one_line(ip_empty: Shell, workdir: Path) -> None:
    folder = workdir / "ro"
    folder.mkdir()
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        run = ip_empty.run(f"%migrate init sqlite:///{folder}/x.db")
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    line = _one_line(run.output)
    assert line.startswith(f"ConnectionFailed: Cannot connect to sqlite:///{folder}/x.db: unable to open database file")
