"""A SQLite file is bound once, when the session binds its URL (issue 21, item 9).

After ``%cd`` (``os.chdir``), a relative ``sqlite:///p.db`` must still mean the
file it meant at binding: for new connections, for restore points, for restore;
and it is still shown as typed.
"""

from __future__ import annotations

import os
from pathlib import Path

from conftest import EVENTS, Shell, table_revision

from migmagic import Migrator


def test_a_relative_sqlite_file_is_bound_once_and_shown_as_typed(workdir: Path) -> None:
    m = Migrator.init("sqlite:///p.db")
    try:
        m.revision("create events", EVENTS)
        m.revision("more", table_revision("more"))
        m.upgrade("head")
        heads = list(m.scripts().heads)
        elsewhere = workdir / "elsewhere"
        elsewhere.mkdir()
        os.chdir(elsewhere)
        m.db.dispose()  # new connections from here on
        assert m.db.masked_url == "sqlite:///p.db" and "sqlite:///p.db" in repr(m)
        assert [r for r in m.state().heads] == heads
        assert len(m.restore_points()) == 1  # found where they were taken
        m.downgrade("-1", accept_data_loss=True)
        m.restore()  # the point taken before that downgrade: back at head
        assert list(m.state().heads) == heads
        assert not (elsewhere / "p.db").exists(), "a second, empty database was made after %cd"
        assert not (elsewhere / "p.db.migmagic-restore").exists()
    finally:
        m.close()


def test_config_after_cd_keeps_the_bound_file(ip_empty: Shell, workdir: Path) -> None:
    ip_empty.ok("%migrate init sqlite:///p.db")
    ip_empty.ok('%%revision -m "create events" --apply\n' + EVENTS)
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    ip_empty.ok("%config Migrate.lock_timeout = 5")
    status = ip_empty.ok("%migrate status")
    assert "sqlite:///p.db" in str(status)
    assert not (elsewhere / "p.db").exists(), "after %cd and %config the session switched to a new, empty database"
    assert ip_empty.ok("%migrate current") is not None
    assert not (elsewhere / "p.db").exists()
