"""migmagic's own files on disk: private as the database, and out of the project's version control.

Issue 21 item 4 (restore points get the database file's mode), issue 24 item 4
(no migmagic file in ``git status`` after an upgrade and a restore point).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import EVENTS, table_revision

from migmagic import Migrator


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_restore_points_are_no_wider_than_the_database_file(workdir: Path, mode: int) -> None:
    db_file = workdir / "app.db"
    m = Migrator.init(f"sqlite:///{db_file}")
    try:
        m.revision("create events", EVENTS)
        m.upgrade("head")
        os.chmod(db_file, mode)
        m.revision("more", table_revision("more"))
        m.upgrade("head")  # takes a restore point of the private file
        m.restore()  # and puts it back (a staging file in between)
    finally:
        m.close()
    folder = workdir / "app.db.migmagic-restore"
    files = [p for p in folder.iterdir()]
    assert any(p.suffix == ".db" for p in files)
    for path in files:
        assert _mode(path) & ~mode == 0, f"{path.name} is {oct(_mode(path))}, wider than the database's {oct(mode)}"
    # The folder: the database's read bits plus search bits, nothing for others who cannot read the file.
    assert _mode(folder) & ~(mode | ((mode & 0o444) >> 2) | 0o700) == 0, oct(_mode(folder))
    if mode & 0o007 == 0:
        assert _mode(folder) & 0o007 == 0


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_status_shows_no_migmagic_file_after_an_upgrade_and_a_restore_point(workdir: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=workdir, check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    m = Migrator.init("sqlite:///p.db")
    try:
        m.revision("create events", EVENTS)
        m.upgrade("head")
        m.revision("more", table_revision("more"))
        m.upgrade("head")  # a restore point is taken before it
        assert m.restore_points()["point"].tolist()
    finally:
        m.close()
    listed = git("status", "--porcelain", "--untracked-files=all", "--ignored=no")
    assert "p.db" in listed  # the user's own database is theirs to ignore or commit
    assert "migmagic" not in listed.replace("migrations/", ""), listed
    assert not (workdir / "p.db-migmagic.lock").exists()
    git("add", ".")
    staged = git("diff", "--cached", "--name-only")
    assert "migmagic-restore" not in staged and "migmagic.lock" not in staged, staged
