"""Bad input: one line that says what is wrong, the cell fails, nothing written or applied."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ADD_VENUE, EVENTS, CellRun, Shell, columns, tables, version


def one_line(run: CellRun) -> str:
    assert run.failed, "the cell should have failed"
    lines = [line for line in run.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{run.output}"
    return lines[0]


def revision_files() -> list[Path]:
    return sorted(Path("migrations/versions").glob("*.py"))


@pytest.fixture
def ip_sqlite(ip_empty: Shell, sqlite_url: str) -> Shell:
    ip_empty.ns["TEST_DB_URL"] = sqlite_url
    ip_empty.ok(f"%migrate init {sqlite_url}")
    return ip_empty


def test_syntax_error_names_the_line(ip_sqlite: Shell) -> None:
    line = one_line(ip_sqlite.run('%%revision -m "broken"\ndef upgrade():\n    op.create_table("x"\n'))
    assert line.startswith("RevisionCellError: Line 2 of the cell") or line.startswith("RevisionCellError: Line 3 of the cell")
    assert "Nothing was written" in line
    assert revision_files() == []


def test_cell_without_upgrade(ip_sqlite: Shell) -> None:
    line = one_line(ip_sqlite.run('%%revision -m "no upgrade"\ndef downgrade():\n    pass\n'))
    assert "defines no upgrade() function" in line
    assert revision_files() == []


def test_missing_message(ip_sqlite: Shell) -> None:
    line = one_line(ip_sqlite.run(f"%%revision\n{EVENTS}"))
    assert "needs a message: -m MESSAGE" in line
    assert revision_files() == []
    line = one_line(ip_sqlite.run("%migrate revision"))
    assert "needs a message" in line


@pytest.mark.parametrize("option", ["--metadata Base", "--include-unmanaged"])
def test_autogenerate_option_without_autogenerate(ip_sqlite: Shell, option: str) -> None:
    line = one_line(ip_sqlite.run(f'%migrate revision -m "add venues" {option}'))
    assert line == (
        f"UsageError: {option.split()[0]} only applies to revision --autogenerate. Add --autogenerate, or leave the option out."
    )
    assert revision_files() == []


def test_empty_cell(ip_sqlite: Shell) -> None:
    line = one_line(ip_sqlite.run('%%revision -m "empty"\n\n   \n'))
    assert "cell is empty" in line
    assert revision_files() == []


def test_revision_used_as_line_magic(ip_sqlite: Shell) -> None:
    line = one_line(ip_sqlite.run('%revision -m "x"'))
    assert "%%revision is a cell magic" in line and "%migrate revision" in line


def test_migrate_used_as_cell_magic(ip_sqlite: Shell) -> None:
    line = one_line(ip_sqlite.run("%%migrate upgrade head\nprint(1)\n"))
    assert "%migrate is a line magic" in line and "%%revision" in line


def test_unknown_command_lists_commands(ip_sqlite: Shell) -> None:
    line = one_line(ip_sqlite.run("%migrate frobnicate head"))
    assert "Unknown command 'frobnicate'" in line
    assert "upgrade" in line and "downgrade" in line and "history" in line


def test_unknown_option(ip_sqlite: Shell) -> None:
    line = one_line(ip_sqlite.run("%migrate upgrade head --fast"))
    assert "unknown option '--fast'" in line and "%migrate upgrade -h" in line


def test_unknown_revision_names_candidates(ip_sqlite: Shell) -> None:
    first = ip_sqlite.ok(f'%%revision -m "create events table"\n{EVENTS}')
    line = one_line(ip_sqlite.run("%migrate upgrade nosuchrev"))
    assert "No revision 'nosuchrev'" in line and first.revision in line
    line = one_line(ip_sqlite.run(f"%migrate show {first.revision[:-1]}x"))
    assert f"Did you mean: {first.revision}" in line
    assert tables(ip_sqlite.ns["TEST_DB_URL"]) == set()


def test_ambiguous_prefix_names_candidates(ip_sqlite: Shell) -> None:
    a = ip_sqlite.ok('%migrate revision -m "one" --rev-id abc111')
    b = ip_sqlite.ok('%migrate revision -m "two" --rev-id abc222')
    line = one_line(ip_sqlite.run("%migrate upgrade abc"))
    assert "ambiguous" in line and a.revision in line and b.revision in line
    assert version(ip_sqlite.ns["TEST_DB_URL"]) == set()


def test_downgrade_below_base_runs_nothing(ip_sqlite: Shell) -> None:
    url = ip_sqlite.ns["TEST_DB_URL"]
    ip_sqlite.ok(f'%%revision -m "create events table" --apply\n{EVENTS}')
    second = ip_sqlite.ok(f'%%revision -m "add venue" --apply\n{ADD_VENUE}')
    line = one_line(ip_sqlite.run("%migrate downgrade -3"))
    assert line.startswith("InvalidTarget: Cannot downgrade to -3") and "Nothing was run" in line
    assert version(url) == {second.revision}
    assert tables(url) == {"events"}


def test_unreachable_database_masks_the_password(ip_empty: Shell) -> None:
    run = ip_empty.run("%migrate init postgresql+psycopg://app:s3cr3t-pw@127.0.0.1:1/nowhere")
    assert run.failed
    assert "s3cr3t-pw" not in run.output
    lines = [ln for ln in run.output.splitlines() if ln.startswith("ConnectionFailed")]
    assert len(lines) == 1
    assert "Cannot connect to postgresql+psycopg://app:***@127.0.0.1:1/nowhere" in lines[0]
    # The literal password on the line earned a warning pointing at DATABASE_URL.
    assert "DATABASE_URL" in run.output


def test_exception_in_upgrade_points_at_the_revision_file(ip_sqlite: Shell) -> None:
    url = ip_sqlite.ns["TEST_DB_URL"]
    ip_sqlite.ok(f'%%revision -m "create events table" --apply\n{EVENTS}')
    body = (
        "def upgrade():\n"
        '    op.add_column("events", sa.Column("venue", sa.String()))\n'
        '    raise ValueError("venue data is not ready")\n'
        "\n\ndef downgrade():\n    pass\n"
    )
    written = ip_sqlite.ok(f'%%revision -m "add venue"\n{body}')
    run = ip_sqlite.run("%migrate upgrade head")
    assert run.failed
    assert f"MigrationFailed: Revision {written.revision} ('add venue') failed during upgrade" in run.output
    source = Path(written.path).read_text().splitlines()
    raise_line = next(n for n, text in enumerate(source, 1) if "raise ValueError" in text)
    assert f'File "{Path(written.path).resolve()}", line {raise_line}, in upgrade' in run.output
    assert "ValueError: venue data is not ready" in run.output
    assert "site-packages" not in run.output
    # All or nothing: the column added before the exception was rolled back.
    assert "venue" not in columns(url, "events")


def test_revision_error_shows_the_code_that_ran_after_the_file_changed(workdir: Path, sqlite_url: str) -> None:
    from migmagic import Migrator
    from migmagic.errors import MigrationFailed

    m = Migrator.init(sqlite_url)
    try:
        done = m.revision("fails", 'def upgrade():\n    raise RuntimeError("as it ran")\n')
        with pytest.raises(MigrationFailed) as caught:
            m.upgrade("head")
        path = m.scripts().info(done.revision).path
        path.write_text(path.read_text().replace('raise RuntimeError("as it ran")', 'pass  # fixed since'))
        shown = "\n".join(caught.value._render_traceback_())
        assert 'raise RuntimeError("as it ran")' in shown and "fixed since" not in shown
    finally:
        m.close()
