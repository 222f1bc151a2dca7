"""The ledger and checksums: one row per step, edits of applied revisions caught, on each database."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import alembic
import pytest
from conftest import ADD_VENUE, EVENTS, Shell, columns, tables, version, without_migmagic

import migmagic
from migmagic import revisionfile
from migmagic.errors import RevisionChanged, RevisionMissing

RENAME = '''def upgrade():
    op.create_table("tags", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("tags")
'''


def _path(m: Any, rev: str) -> Path:
    return Path(m.scripts().info(rev).path)


def _alembic_command(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    """The plain ``alembic`` command from this venv, with the URL in DATABASE_URL."""
    exe = Path(sys.executable).with_name("alembic")
    env = without_migmagic({**os.environ, "DATABASE_URL": url}, Path.cwd().parent)
    done = subprocess.run([str(exe), "-c", "migrations/alembic.ini", *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


def test_one_ledger_row_per_step(migrator: Any, db_url: str) -> None:
    a = migrator.revision("create events table", EVENTS)
    b = migrator.revision("add venue", ADD_VENUE)
    migrator.upgrade("head")
    migrator.downgrade("-1")
    log = migrator.log()
    assert type(log).__mro__[1].__name__ == "DataFrame"
    assert list(log["revision"]) == [a.revision, b.revision, b.revision]
    assert list(log["direction"]) == ["upgrade", "upgrade", "downgrade"]
    assert list(log["message"]) == ["create events table", "add venue", "add venue"]
    expected = hashlib.sha256(revisionfile.normalize(_path(migrator, a.revision).read_text()).encode()).hexdigest()
    assert log.loc[0, "checksum"] == expected
    assert set(log["checksum_version"]) == {revisionfile.CHECKSUM_VERSION}
    assert set(log["migmagic_version"]) == {migmagic.__version__}
    assert set(log["alembic_version"]) == {alembic.__version__}
    assert all(s >= 0 for s in log["seconds"])
    assert log["applied_at"].is_monotonic_increasing
    assert "NaN" not in repr(log) and "None" not in repr(log)


def test_revisions_applied_by_the_alembic_command_are_shown_as_such(migrator: Any, db_url: str) -> None:
    a = migrator.revision("create events table", EVENTS)
    b = migrator.revision("add venue", ADD_VENUE)
    c = migrator.revision("create tags", RENAME)
    _alembic_command("upgrade", b.revision, url=db_url)
    assert version(db_url) == {b.revision}

    status = dict(migrator.status().fields)
    assert status["applied outside migmagic"] == ", ".join(sorted([a.revision, b.revision]))
    assert status["edited since applied"] == "none"
    assert migrator.status().problems == []
    log = migrator.log()
    assert list(log["revision"]) == [a.revision, b.revision]
    assert list(log["direction"]) == ["applied outside migmagic"] * 2
    assert repr(log).splitlines()[1].split() == [a.revision, "applied", "outside", "migmagic", "create", "events", "table"]

    up = migrator.upgrade("head")
    assert list(up.steps["revision"]) == [c.revision]
    log = migrator.log()
    assert list(log["direction"]) == ["applied outside migmagic"] * 2 + ["upgrade"]
    assert "NaN" not in repr(log) and "<NA>" not in repr(log) and " 1.0 " not in repr(log)
    h = migrator.history()
    assert "applied outside migmagic" in h.set_index("revision").loc[a.revision, "markers"]


def test_a_revision_edited_while_unapplied_then_applied_by_alembic_is_not_edited(migrator: Any, db_url: str) -> None:
    a = migrator.revision("create events table", EVENTS)
    migrator.upgrade("head")
    migrator.downgrade("base")
    path = _path(migrator, a.revision)
    path.write_text(path.read_text().replace("String(100)", "String(120)"))
    _alembic_command("upgrade", "head", url=db_url)
    status = migrator.status()
    assert dict(status.fields)["edited since applied"] == "none", status
    assert dict(status.fields)["applied outside migmagic"] == a.revision


def test_edited_applied_revision_is_refused_with_the_difference(ip_with_db: Shell) -> None:
    url = ip_with_db.ns["TEST_DB_URL"]
    a = ip_with_db.ok(f'%%revision -m "create events table" --apply\n{EVENTS}')
    b = ip_with_db.ok(f'%%revision -m "add venue"\n{ADD_VENUE}')
    path = Path("migrations/versions") / f"{a.revision}_create_events_table.py"
    original = path.read_text()
    # A real change of the same size, written right after the folder was read.
    ip_with_db.ok("%migrate status")
    path.write_text(original.replace("String(50)", "String(60)"))

    for line in ("%migrate upgrade head", "%migrate downgrade base"):
        refused = ip_with_db.run(line)
        assert refused.failed, line
        assert isinstance(refused.error, RevisionChanged)
        assert f"RevisionChanged: Revision {a.revision} ('create events table') was edited after it was applied." in refused.output
        assert '-        sa.Column("event_type", sa.String(50), nullable=False),' in refused.output
        assert '+        sa.Column("event_type", sa.String(60), nullable=False),' in refused.output
        assert f"%migrate accept {a.revision}" in refused.output
        assert "Traceback" not in refused.output
    assert version(url) == {a.revision} and tables(url) == {"events"}

    status = ip_with_db.ok("%migrate status")
    assert dict(status.fields)["edited since applied"] == a.revision
    assert any("was edited after it was applied" in p for p in status.problems)

    # The same edit with the file's old mtime (cp -p, tar, rsync -a keep it) is caught too.
    path.write_text(original)
    ip_with_db.ok("%migrate status")
    stat = path.stat()
    path.write_text(original.replace("String(50)", "String(70)"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    refused = ip_with_db.run("%migrate upgrade head")
    assert isinstance(refused.error, RevisionChanged), refused.output
    assert '+        sa.Column("event_type", sa.String(70), nullable=False),' in refused.output

    # Line endings, trailing whitespace and trailing blank lines do not count.
    path.write_bytes(original.replace("\n", "   \r\n").encode() + b"\r\n\r\n")
    assert dict(ip_with_db.ok("%migrate status").fields)["edited since applied"] == "none"
    ip_with_db.ok("%migrate upgrade head")
    assert "venue" in columns(url, "events")
    ip_with_db.ok("%migrate downgrade -1")

    # Accepting a real edit on purpose is recorded, and then it runs.
    path.write_text(original.replace("String(50)", "String(60)"))
    accepted = ip_with_db.ok(f"%migrate accept {a.revision}")
    assert repr(accepted) == f"Accepted the current source of {a.revision} ('create events table') as applied."
    log = ip_with_db.ok("%migrate log")
    assert list(log["direction"]) == ["upgrade", "upgrade", "downgrade", "accept"]
    assert log.iloc[-1]["checksum"] == revisionfile.checksum(path.read_text())
    assert log.iloc[0]["checksum"] == revisionfile.checksum(original)
    ip_with_db.ok("%migrate upgrade head")
    assert version(url) == {b.revision}
    assert dict(ip_with_db.ok("%migrate status").fields)["edited since applied"] == "none"


def test_applied_revision_whose_file_is_gone_blocks_upgrade(migrator: Any, db_url: str) -> None:
    a = migrator.revision("create events table", EVENTS)
    b = migrator.revision("add venue", ADD_VENUE)
    migrator.upgrade("head")
    _path(migrator, b.revision).unlink()
    migrator.revision("create tags", RENAME, head=a.revision)

    status = migrator.status()
    assert status.problems == [f"Revision {b.revision} is applied but its file is missing from migrations."]
    assert dict(status.fields)["current"] == b.revision
    for call in (lambda: migrator.upgrade("head"), lambda: migrator.downgrade("base")):
        with pytest.raises(RevisionMissing) as caught:
            call()
        assert str(caught.value).startswith(f"The database is at {b.revision}, which is not in migrations.")
    assert version(db_url) == {b.revision}
    assert tables(db_url) == {"events"}
