"""The execution path seen from outside: the plan is a value, warnings reach the user, state is data."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from conftest import ADD_VENUE, EVENTS, Shell, ledger_rows, tables, version

from migmagic import Migrator, run
from migmagic.errors import RevisionChanged, UsageError


def test_the_plan_is_a_value_before_anything_runs(migrator: Migrator) -> None:
    a = migrator.revision("create events", EVENTS)
    b = migrator.revision("add venue", ADD_VENUE)
    plan = migrator.plan("upgrade", "head")
    assert plan.command == "upgrade" and plan.target == "head"
    assert plan.before.heads == () and plan.before.pending == [b.revision, a.revision]
    assert [(s.revision, s.direction) for s in plan.steps] == [(a.revision, "upgrade"), (b.revision, "upgrade")]
    assert all(s.checksum == migrator.scripts().info(s.revision).checksum for s in plan.steps)
    assert [s.message for s in plan.steps] == ["create events", "add venue"]
    assert tables(migrator.db.url) == set()  # planning ran nothing


def test_a_caller_may_refuse_the_plan_under_the_lock(migrator: Migrator) -> None:
    migrator.revision("create events", EVENTS)
    seen: list[run.Plan] = []

    class Refuse(run.Observer):
        notes: list[str] = []

        def planned(self, plan: run.Plan, ex: Any) -> None:
            seen.append(plan)
            raise UsageError("Refused after looking at the plan.")

    with pytest.raises(UsageError, match="Refused after looking"):
        run.migrate(migrator.db, migrator.scripts(), "upgrade", "head", observers=[Refuse()])
    assert [s.direction for s in seen[0].steps] == ["upgrade"]
    assert tables(migrator.db.url) == set() and version(migrator.db.url) == set()
    assert ledger_rows(migrator.db.url, "revision") == []


CHECKED = '''def upgrade():
    op.create_table(
        "items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("qty", sa.Integer, nullable=False),
        sa.CheckConstraint("qty > 0"),
    )


def downgrade():
    op.drop_table("items")
'''

WIDEN = '''def upgrade():
    with op.batch_alter_table("items") as batch:
        batch.alter_column("qty", type_=sa.BigInteger(), existing_nullable=False)


def downgrade():
    with op.batch_alter_table("items") as batch:
        batch.alter_column("qty", type_=sa.Integer(), existing_nullable=False)
'''


def test_alembic_warnings_reach_the_user_once(ip_empty: Shell, sqlite_url: str) -> None:
    """Alembic warns that a SQLite batch rebuild drops an unnamed CHECK constraint: the user is told."""
    ip_empty.ok(f"%migrate init {sqlite_url}")
    ip_empty.ok(f'%%revision -m "create items"\n{CHECKED}')
    widen = ip_empty.ok(f'%%revision -m "widen qty"\n{WIDEN}')
    run_ = ip_empty.run("%migrate upgrade head")
    assert not run_.failed
    outcome = run_.result
    warned = [n for n in outcome.notes if "Unnamed CHECK constraint" in n]
    assert len(warned) == 1, outcome.notes
    assert warned[0].startswith(f"Alembic warned while running {widen.revision} ('widen qty'): Unnamed CHECK constraint on reflected table 'items'")
    assert repr(outcome).count("Unnamed CHECK constraint") == 1
    assert "Unnamed CHECK constraint" in outcome._repr_html_()
    assert "UserWarning" not in run_.output  # not Python's warning line: migmagic's note


def test_history_shows_each_revisions_own_branch_labels(migrator: Migrator) -> None:
    a = migrator.revision("create events", EVENTS, branch_label="events")
    b = migrator.revision("add venue", ADD_VENUE)
    h = migrator.history().set_index("revision")
    assert h.loc[a.revision, "branch labels"] == "events"
    assert pd.isna(h.loc[b.revision, "branch labels"])
    assert dict(migrator.show(b.revision).fields)["branch labels"] == "none"
    migrator.upgrade("events@head")  # the label still names its branch
    assert version(migrator.db.url) == {b.revision}


def test_status_holds_lists_not_joined_strings(migrator: Migrator) -> None:
    a = migrator.revision("create events", EVENTS)
    b = migrator.revision("add venue", ADD_VENUE)
    migrator.upgrade(a.revision)
    status = migrator.status()
    assert status.current == [a.revision] and status.heads == [b.revision]
    assert status.pending == [b.revision] and status.applied == 1
    assert status.edited == [] and status.outside == [] and status.missing == [] and status.lock is None
    state = migrator.state()
    assert state.applied == {a.revision} and state.pending == [b.revision]


def _python_and_notebook(error: Any) -> tuple[str, str]:
    return str(error), "\n".join(error._render_traceback_())


def test_errors_name_the_fix_in_python_terms_and_in_notebook_terms(migrator: Migrator) -> None:
    a = migrator.revision("create events", EVENTS)
    migrator.upgrade("head")
    with pytest.raises(RevisionChanged) as refused:
        migrator.revision("create events", EVENTS.replace("100", "200"))
    python, notebook = _python_and_notebook(refused.value)
    removed = [line for line in refused.value.diff.splitlines() if line.startswith("-") and "String(100)" in line]
    assert refused.value.revision == a.revision and removed
    assert f"downgrade('{a.revision}-1')" in python and "revision(reapply=True)" in python and "%migrate" not in python
    assert f"%migrate downgrade {a.revision}-1" in notebook and "re-run the cell with --reapply" in notebook
