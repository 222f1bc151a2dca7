"""A rehearsal killed mid-way leaves nothing behind for good (issue 21, item 11).

Scratch databases and copies are named as migmagic's, with their machine,
process and time; the next rehearsal removes those whose process is gone. Here
a real process is killed with SIGKILL while its dry run runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from conftest import EVENTS, MYSQL_ADMIN, PG_ADMIN

from migmagic import Migrator, kinds

SLOW = '''import os
import time


def upgrade():
    op.create_table("slow", sa.Column("id", sa.Integer, primary_key=True))
    if os.environ.get("MIGMAGIC_TEST_SLOW"):
        time.sleep(120)


def downgrade():
    op.drop_table("slow")
'''

CHILD = """
import sys
from migmagic import Migrator
m = Migrator(sys.argv[1], sys.argv[2])
m.dry_run("upgrade", "head", copy=sys.argv[3] == "copy")
"""


def _scratch(kind: str, pid: int) -> list[str]:
    """The scratch databases (or SQLite scratch folders) of process ``pid``."""
    mark = f"_{kinds._host()}_{pid}_"
    if kind == "sqlite":
        return [p.name for p in Path(tempfile.gettempdir()).iterdir() if p.name.startswith("migmagic-rehearse-") and mark in p.name]
    engine = sa.create_engine(PG_ADMIN if kind == "postgresql" else MYSQL_ADMIN)
    try:
        with engine.connect() as conn:
            query = "SELECT datname FROM pg_database" if kind == "postgresql" else "SHOW DATABASES"
            return [r[0] for r in conn.exec_driver_sql(query) if r[0].startswith("mm_") and mark in r[0]]
    finally:
        engine.dispose()


def test_scratch_of_a_killed_rehearsal_is_removed_by_the_next_one(workdir: Path, db_url: str) -> None:
    kind = "sqlite" if db_url.startswith("sqlite") else "postgresql" if db_url.startswith("postgresql") else "mariadb"
    m = Migrator.init(db_url)
    m.revision("create events", EVENTS)
    m.upgrade("head")
    m.revision("slow", SLOW)
    m.close()  # a clone needs no other session on the real database
    env = {**os.environ, "MIGMAGIC_TEST_SLOW": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, db_url, str(m.folder), "copy" if kind == "postgresql" else "plain"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not _scratch(kind, child.pid):
            assert child.poll() is None, child.stdout.read().decode() if child.stdout else ""
            assert time.monotonic() < deadline, "the child never made its scratch database"
            time.sleep(0.2)
        time.sleep(0.5)  # well inside the rehearsal (it sleeps in the revision)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    left = _scratch(kind, child.pid)
    assert left, "nothing was left behind: the test did not kill mid-rehearsal"
    m = Migrator(db_url)
    try:
        report = m.dry_run("upgrade", "head")  # the next rehearsal (not slow here)
        assert not report.failed
    finally:
        m.close()
    assert _scratch(kind, child.pid) == []


def test_a_live_process_scratch_is_never_taken_for_a_leftover() -> None:
    mine = kinds._scratch_name("rehearse")
    assert not kinds.stale(mine)
    other_host = mine.replace(f"_{kinds._host()}_", "_000000_") if kinds._host() != "000000" else mine.replace("_000000_", "_111111_")
    assert not kinds.stale(other_host.replace(f"_{os.getpid()}_", "_999999999_"))
    assert kinds.stale(mine.replace(f"_{os.getpid()}_", "_999999999_"))
    assert not kinds.stale("mm_0123456789ab")  # the tests' own databases, and those of older versions
