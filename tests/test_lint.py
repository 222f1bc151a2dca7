"""Review at the cell: a revision's PostgreSQL SQL goes through squawk where it is written.

The expectations are squawk's own rule names: migmagic decides only which SQL
squawk reads (the cell's, rendered offline, in one transaction) and which line
of the cell each finding points at.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Shell

from migmagic import Migrator
from migmagic.errors import RevisionCellError, UsageError

BASE = '''def upgrade():
    op.create_table("owners", sa.Column("id", sa.BigInteger, primary_key=True))
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("title", sa.Text),
        sa.Column("owner_id", sa.BigInteger),
    )


def downgrade():
    op.drop_table("events")
    op.drop_table("owners")
'''

# Each hazard of issue 22 as one op call on line 3 of the cell (the %%revision line is line 1).
HAZARDS = {
    "require-concurrent-index-creation": 'op.create_index("ix_events_title", "events", ["title"])',
    "adding-field-with-default": (
        'op.add_column("events", sa.Column("seen", sa.DateTime(timezone=True), '
        'server_default=sa.text("clock_timestamp()"), nullable=False))'
    ),
    "changing-column-type": 'op.alter_column("events", "title", type_=sa.Integer, postgresql_using="length(title)")',
    "adding-foreign-key-constraint": 'op.create_foreign_key("fk_events_owner", "events", "owners", ["owner_id"], ["id"])',
    "adding-not-nullable-field": 'op.alter_column("events", "title", nullable=False)',
}

SAFE = '''def upgrade():
    op.create_table("tags", sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("name", sa.Text, nullable=False))
    op.add_column("events", sa.Column("note", sa.Text))
    op.add_column("events", sa.Column("kind", sa.Text, server_default="talk", nullable=False))
    with op.get_context().autocommit_block():
        op.create_index("ix_events_note", "events", ["note"], postgresql_concurrently=True, if_not_exists=True)


def downgrade():
    op.drop_table("tags")
'''


def cell(*calls: str) -> str:
    return "def upgrade():\n" + "".join(f"    {c}\n" for c in calls) + "\n\ndef downgrade():\n    pass\n"


@pytest.fixture
def pg(workdir: Path, pg_url: str) -> Iterator[Migrator]:
    """A Migrator on a fresh PostgreSQL database whose head has ``owners`` and ``events`` (3,000 rows)."""
    m = Migrator.init(pg_url)
    m.revision("create events", BASE, apply=True)
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO owners (id) SELECT g FROM generate_series(1, 10) g"))
        conn.execute(sa.text("INSERT INTO events (id, title, owner_id) SELECT g, 'event ' || g, 1 + g % 10 FROM generate_series(1, 3000) g"))
    engine.dispose()
    yield m
    m.close()


def _files() -> list[Path]:
    return sorted(Path("migrations/versions").glob("*.py"))


@pytest.mark.parametrize("rule", list(HAZARDS))
def test_each_hazard_is_flagged_at_the_cell_with_its_squawk_rule_and_the_revision_is_still_written(pg: Migrator, rule: str) -> None:
    written = pg.revision("hazard", cell(HAZARDS[rule]))
    assert written.action == "wrote" and Path(written.path).exists()
    assert written.findings is not None
    flagged = [f for f in written.findings.findings if f.rule == rule]
    assert flagged, [f.rule for f in written.findings.findings]
    assert flagged[0].line == 3  # the %%revision line is 1, "def upgrade():" is 2
    assert flagged[0].why and flagged[0].safer
    assert rule in repr(written) and rule in written._repr_html_()


def test_a_revision_with_none_of_them_gets_no_finding(pg: Migrator) -> None:
    written = pg.revision("safe", SAFE)
    assert written.action == "wrote" and written.findings is None
    assert "squawk" not in repr(written)


def test_a_squawk_toml_that_excludes_a_rule_is_respected(pg: Migrator, workdir: Path) -> None:
    body = cell(HAZARDS["require-concurrent-index-creation"])
    assert "require-concurrent-index-creation" in {f.rule for f in pg.revision("index one", body).findings.findings}
    (workdir / ".squawk.toml").write_text('excluded_rules = ["require-concurrent-index-creation", "require-statement-timeout"]\n')
    again = pg.revision("index two", body.replace("ix_events_title", "ix_events_title_2"))
    assert again.findings is None


def test_a_broken_squawk_toml_is_said_not_taken_for_no_finding(pg: Migrator, workdir: Path) -> None:
    (workdir / ".squawk.toml").write_text("excluded_rules = [oops\n")
    body = cell(HAZARDS["require-concurrent-index-creation"])
    written = pg.revision("index", body)
    assert written.action == "wrote" and written.findings is not None and not written.findings.findings
    (note,) = written.findings.notes
    assert note.startswith("Not linted: squawk failed: Configuration error: ") and str(workdir / ".squawk.toml") in note
    before = _files()
    with pytest.raises(UsageError, match="squawk failed"):  # --strict: not linted is not passed
        pg.revision("index two", body, strict=True)
    assert _files() == before
    with pytest.raises(UsageError, match="squawk failed"):
        pg.lint()


def test_the_squawk_toml_above_the_revision_folder_is_found(tmp_path: Path) -> None:
    from migmagic.lint import config_file

    (tmp_path / "project" / "db" / "migrations").mkdir(parents=True)
    (tmp_path / "project" / ".squawk.toml").write_text("excluded_rules = []\n")
    assert config_file(tmp_path / "project" / "db" / "migrations", cwd=tmp_path) == tmp_path / "project" / ".squawk.toml"
    assert config_file(tmp_path, cwd=tmp_path) is None


def test_a_squawk_ignore_comment_above_the_call_is_respected(pg: Migrator) -> None:
    body = cell("# squawk-ignore require-concurrent-index-creation", HAZARDS["require-concurrent-index-creation"])
    assert pg.revision("ignored index", body).findings is None
    whole = cell("# squawk-ignore-file require-concurrent-index-creation", "pass", HAZARDS["require-concurrent-index-creation"])
    assert pg.revision("ignored in the cell", whole).findings is None
    sql_comment = cell('op.execute("-- squawk-ignore adding-not-nullable-field\\nALTER TABLE events ALTER COLUMN title SET NOT NULL")')
    assert pg.revision("ignored in sql", sql_comment).findings is None


def test_strict_refuses_the_write_in_one_line_naming_the_rules(pg: Migrator) -> None:
    before = _files()
    with pytest.raises(RevisionCellError) as caught:
        pg.revision("strict index", cell(HAZARDS["require-concurrent-index-creation"]), strict=True)
    assert "require-concurrent-index-creation" in str(caught.value) and "nothing was written" in str(caught.value)
    assert "\n" not in str(caught.value) and caught.value.line == 3
    assert _files() == before
    assert pg.revision("strict safe", SAFE, strict=True).findings is None


@pytest.mark.parametrize("rule", ["require-concurrent-index-creation", "adding-foreign-key-constraint", "adding-not-nullable-field"])
def test_the_safer_revision_has_none_of_the_finding_and_runs_on_the_seeded_table(pg: Migrator, pg_url: str, rule: str) -> None:
    written = pg.revision("fixable", cell(HAZARDS[rule]))
    safer = written.findings.cell
    assert safer is not None and safer.startswith('%%revision -m "fixable"\n')
    rewritten = pg.revision("fixable", safer.split("\n", 1)[1], strict=True)  # same message: rewritten in place
    assert rewritten.action == "rewrote" and rewritten.findings is None
    pg.upgrade("head")
    inspector = sa.inspect(engine := sa.create_engine(pg_url))
    if rule == "require-concurrent-index-creation":
        assert "ix_events_title" in {i["name"] for i in inspector.get_indexes("events")}
    elif rule == "adding-foreign-key-constraint":
        assert "fk_events_owner" in {f["name"] for f in inspector.get_foreign_keys("events")}
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT convalidated FROM pg_constraint WHERE conname = 'fk_events_owner'")).scalar() is True
    else:
        assert {c["name"]: c["nullable"] for c in inspector.get_columns("events")}["title"] is False
        assert not inspector.get_check_constraints("events")
    engine.dispose()


def test_a_cell_that_runs_more_than_op_calls_is_not_linted_at_the_cell_and_says_so(pg: Migrator) -> None:
    body = cell("for name in ('title', 'owner_id'):", "    op.create_index(f'ix_events_{name}', 'events', [name])")
    written = pg.revision("loop", body)
    assert written.action == "wrote" and written.findings is not None and not written.findings.findings
    assert written.findings.notes == [
        "Not linted at the cell: it runs code besides op calls (line 3); %migrate lint renders it as --sql would, now that it is written."
    ]
    assert "note: Not linted at the cell" in repr(written)
    assert list(pg.lint()["rule"]) == ["require-concurrent-index-creation"] * 2
    with pytest.raises(RevisionCellError, match=r"could not be linted at the cell \(it runs code besides op calls \(line 3\)\) and --strict is on"):
        pg.revision("loop two", body.replace("ix_events", "ix2_events"), strict=True)


def test_hazards_without_a_standard_fix_offer_no_cell(pg: Migrator) -> None:
    written = pg.revision("rewrite", cell(HAZARDS["changing-column-type"]))
    assert written.findings is not None and written.findings.cell is None


def test_lint_lists_existing_revisions_findings_with_their_file_lines(pg: Migrator) -> None:
    pg.revision("index", cell(HAZARDS["require-concurrent-index-creation"]))
    pg.revision("reads the database", cell("sa.inspect(op.get_bind()).get_table_names()"))
    pg.revision("a loop", cell('for name in ("title", "owner_id"):', '    op.create_index(f"ix_events_{name}_2", "events", [name])'))
    table = pg.lint()
    assert list(table.columns) == ["revision", "rule", "statement", "line", "why", "safer way"]
    index = table[table["rule"] == "require-concurrent-index-creation"].iloc[0]
    path = next(p for p in _files() if p.name.startswith(index["revision"]))
    assert "op.create_index(" in path.read_text().splitlines()[index["line"] - 1]
    not_linted = table[table["rule"] == "not linted"]
    assert len(not_linted) == 1 and "when rendered offline" in not_linted.iloc[0]["why"]
    looped = table[table["statement"].str.contains("_2 ON", regex=False)]  # code besides op calls: rendered as --sql does
    assert list(looped["rule"]) == ["require-concurrent-index-creation"] * 2 and set(looped["line"]) == {21}
    first = pg.scripts().by_message("create events")
    assert first is not None
    assert pg.lint(f"base:{first.id}").empty


def test_lint_on_a_sqlite_session_renders_for_postgresql_and_the_cell_is_not_linted(workdir: Path, sqlite_url: str) -> None:
    m = Migrator.init(sqlite_url)
    m.revision("create events", BASE)
    written = m.revision("index", cell(HAZARDS["require-concurrent-index-creation"]))
    assert written.findings is None  # squawk reads PostgreSQL: nothing at a SQLite cell
    assert "require-concurrent-index-creation" in set(m.lint()["rule"])
    m.close()


def test_names_from_the_revision_are_escaped_in_html(pg: Migrator) -> None:
    written = pg.revision("escaped", cell('op.create_index("ix_<b>x</b>", "events", ["title"])'))
    html = written._repr_html_()
    assert "ix_&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html and "<script" not in html


def test_squawk_is_found_through_its_package() -> None:
    from migmagic.lint import squawk_binary

    path = squawk_binary()
    assert path.exists() and path.name.startswith("squawk")


# ---------------------------------------------------------------------- the magics


@pytest.fixture
def ip_pg(ip_empty: Shell, pg_url: str) -> Iterator[Shell]:
    ip_empty.ok(f"%migrate init {pg_url}")
    ip_empty.ok(f'%%revision -m "create events" --apply\n{BASE}')
    yield ip_empty


def test_findings_show_under_the_cell_and_strict_refuses(ip_pg: Shell) -> None:
    result: Any = ip_pg.ok(f'%%revision -m "index"\n{cell(HAZARDS["require-concurrent-index-creation"])}')
    assert result.action == "wrote" and "require-concurrent-index-creation" in repr(result)
    run = ip_pg.run(f'%%revision -m "index two" --strict\n{cell(HAZARDS["require-concurrent-index-creation"])}')
    lines = [line for line in run.output.strip().splitlines() if line.strip()]
    assert run.failed and len(lines) == 1 and lines[0].startswith("RevisionCellError: squawk found require-concurrent-index-creation")
    ip_pg.ok("%config Migrate.strict_lint = True")
    assert ip_pg.run(f'%%revision -m "index three"\n{cell(HAZARDS["require-concurrent-index-creation"])}').failed
    table = ip_pg.ok("%migrate lint")
    assert list(table["rule"]) == ["require-concurrent-index-creation"]


def test_the_safer_revision_goes_to_the_next_cell_and_running_it_rewrites_the_revision(ip_pg: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    cells: list[str] = []
    monkeypatch.setattr("migmagic.frontend.will_place_next_cell", lambda shell: True)
    monkeypatch.setattr(ip_pg.ip, "set_next_input", lambda text, replace=False: cells.append(text), raising=False)
    written: Any = ip_pg.ok(f'%%revision -m "index"\n{cell(HAZARDS["require-concurrent-index-creation"])}')
    assert len(cells) == 1 and cells[0].startswith('%%revision -m "index"\n') and "postgresql_concurrently=True" in cells[0]
    assert "The safer way is in the next cell" in repr(written)
    rewritten: Any = ip_pg.ok(cells[0])
    assert rewritten.action == "rewrote" and rewritten.findings is None and len(cells) == 1
    ip_pg.ok("%migrate upgrade head")
