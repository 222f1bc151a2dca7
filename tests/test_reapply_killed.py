"""``--reapply`` killed before its commit: the file never claims code the database did not commit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
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


def _reapply_until_it_hangs(url: str, folder: Path, workdir: Path) -> subprocess.Popen[bytes]:
    """A real process re-applying "create events" with :data:`NEW`, returned once the new code runs (its file written,
    nothing committed, the lock held). The caller kills it."""
    hanging = workdir / "hanging"
    env = {**os.environ, "MIGMAGIC_TEST_HANG_FILE": str(hanging)}
    proc = subprocess.Popen([sys.executable, "-c", REAPPLY, url, str(folder)], env=env, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(NEW.encode())
    proc.stdin.close()
    deadline = time.monotonic() + 120
    while not hanging.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            _kill(proc)
            raise AssertionError(f"the re-apply never reached the new code: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.05)
    return proc


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_a_reapply_killed_before_its_commit_leaves_the_old_code_where_the_old_code_is_applied(db: str, workdir: Path, tmp_path: Path) -> None:
    from conftest import columns, fresh_database

    for url in fresh_database(db, tmp_path):
        m = Migrator.init(url, lock_timeout=60)
        rev = m.revision("create events", OLD).revision
        m.upgrade("head")
        path = m.scripts().info(rev).path
        old_bytes = path.read_bytes()
        _kill(_reapply_until_it_hangs(url, m.folder, workdir))  # the new code ran: its file written, nothing committed
        assert "title" in path.read_text()

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


def _says_not_committed(m: Migrator, rev: str) -> None:
    status = m.status()
    shown = repr(status)
    assert status.edited == [], shown
    assert f"accept {rev}" not in shown and "was edited after it was applied" not in shown, shown
    assert status.reapplying == [rev], shown
    assert f"Revision {rev} is being re-applied, or a re-apply of it was killed" in shown, shown
    assert "the database did not commit" in shown, shown


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_status_says_a_reapply_has_not_committed_and_never_offers_accept(db: str, workdir: Path, tmp_path: Path) -> None:
    """Issue 21.13: while the re-apply runs, and after it was killed while the lock is still held elsewhere,
    ``status`` in a new kernel says the file holds code the database did not commit — never "edited: accept"."""
    from conftest import columns, fresh_database

    from migmagic.errors import LockTimeout

    for url in fresh_database(db, tmp_path):
        m = Migrator.init(url, lock_timeout=60)
        rev = m.revision("create events", OLD).revision
        m.upgrade("head")
        path = m.scripts().info(rev).path
        old_bytes = path.read_bytes()
        again = Migrator(url, m.folder, lock_timeout=1)
        holder = Migrator(url, m.folder, lock_timeout=1)
        proc = _reapply_until_it_hangs(url, m.folder, workdir)
        try:
            _says_not_committed(again, rev)  # 1. the re-apply is running: it holds the lock, its file holds the new code
            _kill(proc)
            with holder.db.migrating():  # 2. killed, and the lock is held elsewhere before the next command settles it
                _says_not_committed(again, rev)
                with pytest.raises(LockTimeout):
                    again.accept(rev)
            assert "title" in path.read_text(), "nothing settles while the lock is held"
        finally:
            _kill(proc)
        status = again.status()  # 3. the lock is free: the old code is put back, nothing is edited
        assert path.read_bytes() == old_bytes
        assert status.edited == [] and status.reapplying == [] and status.problems == [], repr(status)
        assert version(url) == {rev} and columns(url, "events") == ["id"]
        for x in (again, holder, m):
            x.close()


def _hold(m: Migrator, seconds: float, held: threading.Event, free: threading.Event) -> None:
    """Hold ``m``'s migration lock for ``seconds``."""
    with m.db.migrating():
        held.set()
        time.sleep(seconds)
    free.set()


def test_accept_refuses_the_code_of_a_reapply_that_did_not_commit(workdir: Path, tmp_path: Path) -> None:
    """Issue 21.13, the race: the lock is busy while ``accept`` reads the folder (so nothing is settled yet), then comes
    free before ``accept`` takes it. Under the lock, the file still holds a killed re-apply's code: refused, not recorded."""
    from conftest import fresh_database

    from migmagic import ledger

    for url in fresh_database("sqlite", tmp_path):
        m = Migrator.init(url)
        rev = m.revision("create events", OLD).revision
        m.upgrade("head")
        path = m.scripts().info(rev).path
        new_text = m.files.rewritten(m.scripts().info(rev), NEW)
        m.files.keep_old(path, path.read_bytes())  # what a re-apply killed after writing its file leaves
        m.files.write(path, new_text)
        again = Migrator(url, m.folder, lock_timeout=2)
        holder = Migrator(url, m.folder)
        held, free = threading.Event(), threading.Event()  # held longer than the settle's wait, shorter than that plus accept's own

        t = threading.Thread(target=_hold, args=(holder, 3.0, held, free))
        t.start()
        held.wait()
        with pytest.raises(Exception) as refused:
            again.accept(rev)
        t.join()
        assert "holds code a re-apply did not commit" in str(refused.value), refused.value
        import sqlalchemy as sa

        from migmagic.revisionfile import checksum

        old_text = m.files.kept_path(path).read_text()
        engine = sa.create_engine(url)
        with engine.connect() as conn:  # the ledger still records the old code, and no accept
            assert ledger.latest(conn)[rev].checksum == checksum(old_text)
            assert [r["direction"] for r in ledger.rows(conn)] == ["upgrade"]
        engine.dispose()
        assert free.is_set()
        again.status()  # settles: the old code is back
        assert "title" not in path.read_text()
        for x in (again, holder, m):
            x.close()


def test_a_file_edited_by_hand_after_a_killed_reapply_is_not_put_back_over(workdir: Path, sqlite_url: str) -> None:
    """Issue 21 (a hostile user's attacks): a re-apply is killed (a real process, SIGKILL) after writing its file; the
    user then edits the file by hand. The next command put the old bytes back over that edit, saying only that "the
    re-apply that wrote it did not commit": the edit was gone. Now the edit stays, and the file is said to be edited."""
    m = Migrator.init(sqlite_url, lock_timeout=60)
    rev = m.revision("create events", OLD).revision
    m.upgrade("head")
    path = m.scripts().info(rev).path
    _kill(_reapply_until_it_hangs(sqlite_url, m.folder, workdir))
    edited = path.read_text().replace("time.sleep(120)", "pass  # fixed by hand")
    path.write_text(edited)  # the user's own edit, after the kill
    again = Migrator(sqlite_url, m.folder)
    status = again.status()
    assert path.read_text() == edited, "the user's edit was put back over"
    assert status.edited == [rev], repr(status)
    assert version(sqlite_url) == {rev}
    again.close()
    m.close()
