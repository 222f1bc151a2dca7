"""Restore points on SQLite: taken before each command that changes the database, put back exactly by restore."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import ADD_VENUE, EVENTS, Shell, ledger_rows, version
from snapshot import snapshot

from migmagic import Migrator
from migmagic.errors import LockTimeout, RestoreUnavailable

DROP_TITLE = '''def upgrade():
    with op.batch_alter_table("events") as batch:
        batch.drop_column("title")


def downgrade():
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("title", sa.String(100), nullable=False, server_default=""))
'''


def _file(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def _index(url: str) -> list[dict[str, Any]]:
    path = _file(url).with_name(_file(url).name + ".migmagic-restore") / "index.json"
    return json.loads(path.read_text())["points"] if path.exists() else []


def _insert(url: str, *titles: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for t in titles:
            conn.execute(sa.text("INSERT INTO events (title, event_type) VALUES (:t, 'talk')"), {"t": t})
    engine.dispose()


@pytest.fixture
def m(workdir: Any, sqlite_url: str) -> Any:
    """A Migrator on a fresh SQLite file with events (two rows) applied, and a destructive revision pending."""
    migrator = Migrator.init(sqlite_url)
    migrator.revision("create events", EVENTS)
    migrator.upgrade("head")
    _insert(sqlite_url, "PyData", "Schema review")
    migrator.revision("drop title", DROP_TITLE)
    yield migrator
    migrator.close()


def test_restore_brings_back_schema_rows_version_table_and_ledger(m: Migrator) -> None:
    url = m.db.url
    before = snapshot(url)
    cols = ("id", "revision", "direction", "applied_at", "checksum", "source")
    ledger_before = ledger_rows(url, *cols)
    outcome = m.upgrade("head", accept_data_loss=True)
    assert "title" not in [c[0] for c in snapshot(url)["events"]["columns"]]
    assert [n for n in outcome.notes if not n.startswith("Restore point 2 was taken before it")] == []  # issue 23 item 11: the way back named
    restored = m.restore()
    assert restored.point == 2 and restored.before == "upgrade head"
    after = snapshot(url)
    # Everything as it was, and one ledger row more: the restore, after the restored ledger.
    assert {k: v for k, v in after.items() if k != "migmagic_ledger"} == {k: v for k, v in before.items() if k != "migmagic_ledger"}
    assert ledger_rows(url, *cols)[:-1] == ledger_before
    rows = ledger_rows(url, "revision", "direction", "message")
    assert len(rows) == len(ledger_before) + 1
    assert rows[-1][:2] == (before["alembic_version"]["rows"][0][0], "restore")
    assert rows[-1][2].startswith("restore point 2, taken ") and rows[-1][2].endswith("before upgrade head")
    assert m.state().heads == (before["alembic_version"]["rows"][0][0],)
    assert m.state().edited == []


def test_a_restore_reaches_connections_that_have_the_file_open(m: Migrator) -> None:
    url = m.db.url
    reader = sqlite3.connect(_file(url))  # another kernel's connection, idle
    assert reader.execute("SELECT COUNT(*) FROM events").fetchone() == (2,)
    m.upgrade("head", accept_data_loss=True)
    reader.execute("DELETE FROM events")  # its own change, committed after the upgrade
    reader.commit()
    m.restore()
    assert reader.execute("SELECT title FROM events ORDER BY id").fetchall() == [("PyData",), ("Schema review",)]
    reader.close()


def test_restore_waits_for_the_lock_and_changes_nothing_when_it_times_out(m: Migrator) -> None:
    url = m.db.url
    m.upgrade("head", accept_data_loss=True)
    before = snapshot(url)
    holder = sqlite3.connect(_file(url), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # someone else is migrating
    m.lock_timeout = 0.5
    with pytest.raises(LockTimeout, match="nothing was restored"):
        m.restore()
    holder.execute("ROLLBACK")
    holder.close()
    assert snapshot(url) == before
    # Once the other is done, the restore goes through; a writer arriving meanwhile waits for it.
    release = threading.Event()
    holder = sqlite3.connect(_file(url), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, lambda: (holder.execute("ROLLBACK"), release.set())).start()
    m.lock_timeout = 10
    m.restore()
    assert release.is_set()
    holder.close()
    assert "title" in [c[0] for c in snapshot(url)["events"]["columns"]]


def test_the_last_n_are_kept_and_listed(m: Migrator) -> None:
    url = m.db.url
    m.kept_restore_points = 2
    m.upgrade("head", accept_data_loss=True)
    m.downgrade("-1")
    m.upgrade("head", accept_data_loss=True)
    listed = m.restore_points()
    assert list(listed.columns) == ["point", "taken at", "before", "revision then", "size"]
    assert list(listed["point"]) == [3, 4] and list(listed["before"]) == ["downgrade -1", "upgrade head"]
    folder = _file(url).with_name(_file(url).name + ".migmagic-restore")
    assert sorted(p.name.split("-")[0] for p in folder.glob("*.db")) == ["3", "4"]
    assert all(p["size"] > 0 for p in _index(url))


def test_a_chosen_point_is_restored_and_an_unknown_one_is_named(m: Migrator) -> None:
    url = m.db.url
    first_rev = version(url)
    m.upgrade("head", accept_data_loss=True)  # point 2: before this upgrade
    m.restore(1)  # point 1: before the first upgrade, at base
    assert version(url) == set() and "events" not in snapshot(url)
    m.restore("2")
    assert version(url) == first_rev
    with pytest.raises(RestoreUnavailable) as unknown:
        m.restore(7)
    # 3 and 4: each restore first took a point of the database as it was (issue 21 item 10: a restore can be undone)
    assert unknown.value.points == [1, 2, 3, 4] and "Its restore points are 1, 2, 3, 4" in str(unknown.value)


def test_none_is_taken_when_nothing_runs_or_they_are_off(workdir: Any, sqlite_url: str) -> None:
    m = Migrator.init(sqlite_url, restore_points=0)
    m.revision("create events", EVENTS)
    m.upgrade("head")
    assert _index(sqlite_url) == []
    with pytest.raises(RestoreUnavailable, match="has no restore points yet"):
        m.restore()
    m.kept_restore_points = 3
    m.upgrade("head")  # nothing to upgrade: nothing to keep
    assert _index(sqlite_url) == []
    m.close()


def test_stamp_and_reapply_take_one(m: Migrator) -> None:
    url = m.db.url
    m.stamp("base")
    m.stamp("head")
    m.revision("add venue", ADD_VENUE)
    m.upgrade("head", accept_data_loss=True)
    m.revision("add venue", ADD_VENUE.replace("String(100)", "String(200)"), reapply=True)
    befores = [p["before"] for p in _index(url)]
    assert befores[-3:] == ["stamp head", "upgrade head", f"--reapply {m.scripts().by_message('add venue').id}"]  # type: ignore[union-attr]


def test_a_short_disk_skips_the_point_with_a_note(m: Migrator, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    import migmagic.restore

    real = shutil.disk_usage
    monkeypatch.setattr(migmagic.restore.shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    outcome = m.upgrade("head", accept_data_loss=True)
    assert [n for n in outcome.notes if n.startswith("No restore point was taken before this upgrade head: 1.0 kB free on disk")]
    assert len(_index(m.db.url)) == 1  # only the one before the first upgrade


def test_the_magics_restore_and_list(ip_empty: Shell, sqlite_url: str) -> None:
    ip_empty.ok(f"%migrate init {sqlite_url}")
    ip_empty.ok("%config Migrate.restore_points = 1")
    ip_empty.ok(f'%%revision -m "create events" --apply\n{EVENTS}')
    _insert(sqlite_url, "PyData")
    ip_empty.ok(f'%%revision -m "drop title"\n{DROP_TITLE}')
    ip_empty.ok("%migrate upgrade head --accept-data-loss")
    listed = ip_empty.ok("%migrate restore --list")
    assert list(listed["point"]) == [2] and listed["before"][0] == "upgrade head"
    restored = ip_empty.ok("%migrate restore")
    assert repr(restored).startswith("Restored sqlite:///") and "restore point 2" in restored._repr_html_()
    bad = ip_empty.run("%migrate restore 9")
    assert bad.failed and "has no restore point 9" in "".join(bad.error._render_traceback_())  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["pg_url", "mariadb_url"])
def test_other_databases_say_there_are_no_restore_points(ip_empty: Shell, kind: str, request: pytest.FixtureRequest) -> None:
    ip_empty.ok(f"%migrate init {request.getfixturevalue(kind)}")
    ip_empty.ok(f'%%revision -m "create events" --apply\n{EVENTS}')
    for line in ("%migrate restore", "%migrate restore --list"):
        run = ip_empty.run(line)
        assert isinstance(run.error, RestoreUnavailable)
        text = run.error._render_traceback_()
        assert len(text) == 1 and "databases have no restore points: migmagic takes them on SQLite only" in text[0]
        assert "%migrate upgrade head --dry-run" in text[0] and "data-loss guard" in text[0]


def test_a_database_in_wal_mode_is_restored_while_a_reader_holds_it_open(m: Migrator) -> None:
    url = m.db.url
    setup = sqlite3.connect(_file(url))
    assert setup.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
    setup.close()
    before = snapshot(url)
    reader = sqlite3.connect(_file(url))
    m.upgrade("head", accept_data_loss=True)
    assert reader.execute("SELECT COUNT(*) FROM pragma_table_info('events') WHERE name = 'title'").fetchone() == (0,)
    m.restore()
    assert reader.execute("SELECT title FROM events ORDER BY id").fetchall() == [("PyData",), ("Schema review",)]
    reader.close()
    after = snapshot(url)
    assert {k: v for k, v in after.items() if k != "migmagic_ledger"} == {k: v for k, v in before.items() if k != "migmagic_ledger"}
