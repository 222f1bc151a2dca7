"""A session's binding (init, %config, DATABASE_URL) and what reaches the cell."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from conftest import ADD_VENUE, EVENTS, Shell, tables, version


def test_alembic_log_lines_never_reach_the_cell(ip_empty: Shell, sqlite_url: str) -> None:
    logging.basicConfig(level=logging.INFO, force=True)
    try:
        ip_empty.ns["TEST_DB_URL"] = sqlite_url
        ip_empty.ok(f"%migrate init {sqlite_url}")
        ip_empty.ok(f'%%revision -m "create events table"\n{EVENTS}')
        run = ip_empty.run("%migrate upgrade head")
        assert not run.failed
        assert "alembic.runtime.migration" not in run.output
        assert "Context impl" not in run.output and "Running upgrade" not in run.output
    finally:
        logging.basicConfig(level=logging.WARNING, force=True)


def test_config_url_binds_the_session(ip_empty: Shell, sqlite_url: str) -> None:
    ip_empty.ok(f"%config Migrate.url = {sqlite_url!r}")
    ip_empty.ok(f'%%revision -m "create events table" --apply\n{EVENTS}')
    assert tables(sqlite_url) == {"events"}
    status = ip_empty.ok("%migrate")
    assert ("database", sqlite_url) in status.fields


def test_database_url_is_the_default(ip_empty: Shell, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    ip_empty.ok(f'%%revision -m "create events table" --apply\n{EVENTS}')
    assert tables(sqlite_url) == {"events"}


def test_without_init_the_defaults_apply(ip_empty: Shell, workdir: Path) -> None:
    ip_empty.ok(f'%%revision -m "create events table" --apply\n{EVENTS}')
    assert (workdir / "migrations" / "env.py").is_file()
    assert tables(f"sqlite:///{workdir / 'migmagic.db'}") == {"events"}


def test_init_with_dir(ip_empty: Shell, sqlite_url: str, workdir: Path) -> None:
    ip_empty.ns["TEST_DB_URL"] = sqlite_url
    status = ip_empty.ok(f"%migrate init {sqlite_url} --dir db/revisions")
    assert ("folder", "db/revisions") in status.fields
    written = ip_empty.ok(f'%%revision -m "create events table"\n{EVENTS}')
    assert written.path.startswith("db/revisions/versions/")


def test_status_reports_pending_and_applied(ip_with_db: Shell) -> None:
    first = ip_with_db.ok(f'%%revision -m "create events table" --apply\n{EVENTS}')
    second = ip_with_db.ok(f'%%revision -m "add venue"\n{ADD_VENUE}')
    status = ip_with_db.ok("%migrate status")
    fields = dict(status.fields)
    assert fields["current"] == first.revision
    assert fields["pending"] == second.revision
    assert fields["applied"] == "1"
    assert fields["lock"] == "free"
    assert "<table>" in status._repr_html_()


def test_depends_on_across_branches(ip_with_db: Shell) -> None:
    url = ip_with_db.ns["TEST_DB_URL"]
    events = ip_with_db.ok(f'%%revision -m "create events table" --branch-label events\n{EVENTS}')
    body = (
        "def upgrade():\n"
        '    op.create_table("tags", sa.Column("id", sa.Integer, primary_key=True))\n\n\n'
        "def downgrade():\n"
        '    op.drop_table("tags")\n'
    )
    tags = ip_with_db.ok(f'%%revision -m "create tags table" --head base --branch-label tags --depends-on {events.revision}\n{body}')
    assert tags.parents == ()
    ip_with_db.ok("%migrate upgrade tags@head")
    # The dependency came along.
    assert tables(url) == {"events", "tags"}
    # As in Alembic, the version table holds the dependent; the dependency is implied.
    assert version(url) == {tags.revision}
    history = ip_with_db.ok("%migrate history")
    assert history["applied"].astype(bool).tolist() == [True, True]


def test_upgrade_result_is_a_value(ip_with_db: Shell) -> None:
    ip_with_db.ok(f'%%revision -m "create events table"\n{EVENTS}')
    ip_with_db.ok("r = %migrate upgrade head")
    r: Any = ip_with_db.ns["r"]
    assert list(r.steps.columns) == ["revision", "message", "direction", "seconds"]
    assert r.summary.startswith("Upgraded ")
