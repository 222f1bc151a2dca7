"""A cell that cannot compile on the session's database is refused when it runs, not at upgrade."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Shell

NO_LENGTH = '''def upgrade():
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("title", sa.String(), nullable=False),
    )


def downgrade():
    op.drop_table("events")
'''


def _revision_files() -> list[Path]:
    return sorted(Path("migrations/versions").glob("*.py"))


def test_a_string_without_a_length_is_refused_on_mariadb_with_nothing_written(ip_empty: Shell, mariadb_url: str) -> None:
    ip_empty.ok(f"%migrate init {mariadb_url}")
    run = ip_empty.run(f'%%revision -m "create events"\n{NO_LENGTH}')
    lines = [line for line in run.output.strip().splitlines() if line.strip()]
    assert run.failed and len(lines) == 1, run.output
    assert lines[0].startswith("RevisionCellError: The revision does not compile for mysql: (in table 'events', column 'title'): VARCHAR requires a length on dialect mysql.")
    assert "sa.String(255)" in lines[0] and lines[0].endswith("Nothing was written.")
    assert _revision_files() == []
    fixed = ip_empty.ok(f'%%revision -m "create events" --apply\n{NO_LENGTH.replace("sa.String()", "sa.String(200)")}')
    assert fixed.action == "wrote" and fixed.applied is not None


@pytest.mark.parametrize("kind", ["sqlite_url", "pg_url"])
def test_the_same_cell_is_fine_where_it_compiles(ip_empty: Shell, kind: str, request: pytest.FixtureRequest) -> None:
    ip_empty.ok(f"%migrate init {request.getfixturevalue(kind)}")
    assert ip_empty.ok(f'%%revision -m "create events" --apply\n{NO_LENGTH}').action == "wrote"


def test_a_cell_that_works_with_data_is_not_rendered_ahead(ip_empty: Shell, mariadb_url: str) -> None:
    """Only plain op calls are rendered offline; code that reads the database is left to the real run."""
    ip_empty.ok(f"%migrate init {mariadb_url}")
    body = NO_LENGTH.replace('    op.create_table(', '    op.get_bind()\n    op.create_table(', 1)
    run = ip_empty.run(f'%%revision -m "create events"\n{body}')
    assert not run.failed and len(_revision_files()) == 1
