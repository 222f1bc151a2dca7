"""``--reapply`` killed before its commit: the file never claims code the database did not commit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import version

from migmagic import Migrator
from migmagic.errors import RevisionChanged

OLD = '''def upgrade():
    op.create_table("events", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("events")
'''

NEW = '''def upgrade():
    import os
    import pathlib
    import time

    op.create_table("events", sa.Column("id", sa.Integer, primary_key=True), sa.Column("title", sa.String(100)))
    pathlib.Path(os.environ["MIGMAGIC_TEST_HANG_FILE"]).touch()
    time.sleep(120)


def downgrade():
    op.drop_table("events")
'''

REAPPLY = """
import sys
from migmagic import Migrator
Migrator(sys.argv[1], sys.argv[2]).revision("create events", sys.stdin.read(), reapply=True)
"""


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_a_reapply_killed_before_its_commit_leaves_the_old_code_where_the_old_code_is_applied(db: str, workdir: Path, tmp_path: Path) -> None:
    from conftest import columns, fresh_database

    for url in fresh_database(db, tmp_path):
        m = Migrator.init(url, lock_timeout=60)
        rev = m.revision("create events", OLD).revision
        m.upgrade("head")
        path = m.scripts().info(rev).path
        old_bytes = path.read_bytes()
        hanging = workdir / "hanging"
        env = {**os.environ, "MIGMAGIC_TEST_HANG_FILE": str(hanging)}
        proc = subprocess.Popen(
            [sys.executable, "-c", REAPPLY, url, str(m.folder)], env=env, stdin=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert proc.stdin is not None
        proc.stdin.write(NEW.encode())
        proc.stdin.close()
        try:
            deadline = time.monotonic() + 120
            while not hanging.exists():  # the new code runs: its file is written, nothing is committed
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "the re-apply never reached the new code"
                time.sleep(0.05)
            assert "title" in path.read_text()
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

        again = Migrator(url, m.folder)
        status = again.status()  # the next command finds the leftover and settles it
        assert path.read_bytes() == old_bytes, "the file claims code the database did not commit"
        assert status.edited == [] and status.problems == []
        assert version(url) == {rev} and columns(url, "events") == ["id"]
        # Re-running the cell with the new code is judged against what was applied: it is a change.
        with pytest.raises(RevisionChanged):
            again.revision("create events", NEW.replace("time.sleep(120)", "pass"))
        again.close()
        m.close()


def test_a_cell_equal_to_the_file_but_not_to_what_was_applied_is_not_unchanged(workdir: Path, sqlite_url: str) -> None:
    """The file was edited by hand after it was applied; the cell matches the file, not the database."""
    m = Migrator.init(sqlite_url)
    rev = m.revision("create events", OLD).revision
    m.upgrade("head")
    path = m.scripts().info(rev).path
    path.write_text(path.read_text().replace('sa.Integer, primary_key=True)', 'sa.Integer, primary_key=True), sa.Column("x", sa.Integer)'))
    edited = OLD.replace('sa.Integer, primary_key=True)', 'sa.Integer, primary_key=True), sa.Column("x", sa.Integer)')
    with pytest.raises(RevisionChanged) as refused:
        m.revision("create events", edited)
    assert '+    op.create_table("events", sa.Column("id", sa.Integer, primary_key=True), sa.Column("x"' in refused.value.diff
