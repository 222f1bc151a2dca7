"""``%migrate status`` at a glance: applied, pending, edited, outside migmagic, missing, lock holder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import ADD_VENUE, EVENTS, Shell
from test_ledger import RENAME, _alembic_command

from migmagic.database import Database


def test_status_summarises_everything_at_a_glance(ip_with_db: Shell) -> None:
    url = ip_with_db.ns["TEST_DB_URL"]
    a = ip_with_db.ok(f'%%revision -m "create events table"\n{EVENTS}')
    b = ip_with_db.ok(f'%%revision -m "add venue"\n{ADD_VENUE}')
    c = ip_with_db.ok(f'%%revision -m "create tags"\n{RENAME}')
    _alembic_command("upgrade", a.revision, url=url)
    ip_with_db.ok(f"%migrate upgrade {b.revision}")
    path = Path("migrations/versions") / f"{b.revision}_add_venue.py"
    path.write_text(path.read_text().replace("String(100)", "String(101)"))

    other = Database(url)
    try:
        with other.migrating():
            status = ip_with_db.ok("%migrate")
    finally:
        other.dispose()
    fields = dict(status.fields)
    assert fields["current"] == b.revision
    assert fields["heads"] == c.revision
    assert fields["applied"] == "2"
    assert fields["pending"] == c.revision
    assert fields["edited since applied"] == b.revision
    assert fields["applied outside migmagic"] == a.revision
    assert fields["lock"] != "free"
    assert status.problems == [f"Revision {b.revision} was edited after it was applied: upgrade will refuse (%migrate accept {b.revision})."]
    text = repr(status)
    assert f"edited since applied      {b.revision}" in text
    assert text.endswith(status.problems[0])
    assert "<th style='text-align:left'>lock</th>" in status._repr_html_()


def test_status_reports_a_missing_applied_revision(migrator: Any) -> None:
    a = migrator.revision("create events table", EVENTS)
    migrator.upgrade("head")
    Path(migrator.scripts().info(a.revision).path).unlink()
    status = migrator.status()
    fields = dict(status.fields)
    assert fields["current"] == a.revision and fields["applied"] == "0" and fields["lock"] == "free"
    assert status.problems == [f"Revision {a.revision} is applied but its file is missing from migrations."]
