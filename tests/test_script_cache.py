"""A warm Migrator re-reads only the revision files that changed on disk, and sees every change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import EVENTS, columns, tables

from migmagic import Migrator
from migmagic.errors import RevisionChanged, ScriptDirectoryError


def _file(m: Migrator, rev: str) -> Path:
    return m.scripts().info(rev).path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    stat = path.stat()
    path.write_text(text.replace(old, new))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a new mtime, even on coarse clocks


@pytest.fixture
def two_revisions(workdir: Path, sqlite_url: str) -> Migrator:
    m = Migrator.init(sqlite_url)
    m.revision("create events table", EVENTS)
    m.revision("add index", 'def upgrade():\n    op.create_index("ix_title", "events", ["title"])\n\n\ndef downgrade():\n    op.drop_index("ix_title", table_name="events")\n')
    return m


def test_edited_body_of_unapplied_revision_runs_new_code(two_revisions: Migrator, sqlite_url: str) -> None:
    m = two_revisions
    first = m.scripts().ids()[-1]
    _edit(_file(m, first), '"events"', '"happenings"')
    _edit(_file(m, m.scripts().ids()[0]), '"events"', '"happenings"')
    assert "happenings" in m.scripts().info(first).source
    m.upgrade("head")
    assert tables(sqlite_url) == {"happenings"}


def test_edited_applied_revision_is_caught(two_revisions: Migrator, sqlite_url: str) -> None:
    m = two_revisions
    m.upgrade("head")
    head = m.scripts().ids()[0]
    m.status()  # warm
    _edit(_file(m, head), '"ix_title"', '"ix_title2"')
    assert dict(m.status().fields)["edited since applied"] == head
    with pytest.raises(RevisionChanged):
        m.upgrade("head")
    assert "title" in columns(sqlite_url, "events")


def test_changed_parent_rebuilds_the_graph(two_revisions: Migrator) -> None:
    m = two_revisions
    first, second = m.scripts().ids()[-1], m.scripts().ids()[0]
    assert m.scripts().heads == (second,)
    _edit(_file(m, second), f"down_revision = {first!r}", "down_revision = None")
    assert set(m.scripts().heads) == {first, second}


def test_broken_edit_is_refused_and_fix_is_seen(two_revisions: Migrator) -> None:
    m = two_revisions
    second = m.scripts().ids()[0]
    path = _file(m, second)
    _edit(path, "def upgrade():", "def upgrade(:")
    with pytest.raises(ScriptDirectoryError):
        m.scripts()
    _edit(path, "def upgrade(:", "def upgrade():")
    assert m.scripts().heads == (second,)


def test_rewrite_that_does_not_load_puts_the_old_bytes_back(two_revisions: Migrator) -> None:
    m = two_revisions
    head = m.scripts().ids()[0]
    path = _file(m, head)
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))  # CRLF: bytes a text round trip would change
    before = path.read_bytes()
    source = m.scripts().info(head).source
    with pytest.raises(ScriptDirectoryError, match="no_such_module_for_migmagic"):
        m.revision("add index", "import no_such_module_for_migmagic\n\n\ndef upgrade():\n    pass\n")
    assert path.read_bytes() == before
    assert not [p.name for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp file left
    assert m.scripts().info(head).source == source
