"""Issue 11, item 5: on MariaDB, a half-applied revision is visible, blocks upgrades, and is resumable.

Faults for real: a process killed with SIGKILL between two DDL statements of a
revision, a revision that raises half-way, a statement changed before resume.
SQLite and PostgreSQL roll back, so they never have a half-applied revision and
never write a journal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Shell, ledger_rows, tables, version
from faults import FAULT_HELPER

from migmagic import Migrator
from migmagic.errors import MigrationFailed, ResumeRefused, RevisionHalfApplied

KEEP = "def upgrade():\n    op.create_table('keep', sa.Column('id', sa.Integer, primary_key=True))\n\n\ndef downgrade():\n    op.drop_table('keep')\n"

TWO = FAULT_HELPER + '''
def upgrade():
    op.create_table("first", sa.Column("id", sa.Integer, primary_key=True))
    _fault("two.up.1")
    op.create_table("second", sa.Column("id", sa.Integer, primary_key=True))
    _fault("two.up.2")


def downgrade():
    op.drop_table("second")
    _fault("two.down.1")
    op.drop_table("first")
'''

KILLED = """
import sys
from migmagic import Migrator
Migrator(sys.argv[1], sys.argv[2]).upgrade("head")
"""


def _journal(url: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("migmagic_journal"):
                return []
            return [tuple(r) for r in conn.execute(sa.text("SELECT revision, kind, position FROM migmagic_journal ORDER BY id"))]
    finally:
        engine.dispose()


def _kill_between_the_two_statements(m: Migrator, url: str, workdir: Path) -> None:
    """Run ``upgrade head`` in another process and SIGKILL it while it sleeps after the first CREATE TABLE."""
    hanging = workdir / "hanging"
    env = {**os.environ, "MIGMAGIC_TEST_FAULT": "two.up.1.hang", "MIGMAGIC_TEST_HANG_FILE": str(hanging)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED, url, str(m.folder)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not hanging.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the migrating process never reached the sleep"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture
def killed(workdir: Path, mariadb_url: str) -> Any:
    """A MariaDB database where ``two`` was killed after its first statement committed: (migrator, url, keep, two)."""
    m = Migrator.init(mariadb_url, lock_timeout=60)
    keep = m.revision("keep", KEEP).revision
    m.upgrade("head")
    two = m.revision("two tables", TWO).revision
    _kill_between_the_two_statements(m, mariadb_url, workdir)
    yield m, mariadb_url, keep, two
    m.close()


def test_a_killed_revision_shows_as_half_applied_blocks_upgrade_and_resumes(killed: Any) -> None:
    m, url, keep, two = killed
    assert tables(url) == {"keep", "first"} and version(url) == {keep}

    status = m.status()
    (half,) = status.half_applied
    assert half.revision == two and half.direction == "upgrade"
    assert [s.text for s in half.statements] == ["CREATE TABLE first ( id INTEGER NOT NULL AUTO_INCREMENT, PRIMARY KEY (id) )"]
    assert dict(status.fields)["half-applied"] == f"{two} (upgrade stopped after 1 committed statement)"
    assert status.problems == [
        f"Revision {two} ('two tables') is half-applied: its upgrade stopped after 1 committed statement "
        "(CREATE TABLE first ( id INTEGER NOT NULL AUTO_INCREMENT, PRIMARY KEY (id) )): "
        f"%migrate resume, or %migrate repair {two} --applied / --not-applied."
    ]

    for call in (lambda: m.upgrade("head"), lambda: m.downgrade("base")):
        with pytest.raises(RevisionHalfApplied) as caught:
            call()
        err = caught.value
        assert err.revision == two and err.direction == "upgrade" and err.committed == [half.statements[0].text]
        assert str(err) == (
            f"Revision {two} ('two tables') is half-applied: its upgrade stopped after 1 committed statement "
            "(CREATE TABLE first ( id INTEGER NOT NULL AUTO_INCREMENT, PRIMARY KEY (id) )). Nothing was run. "
            f"Finish it with resume(), or put the database right by hand and record it with "
            f"repair('{two}', applied=True) or repair('{two}', applied=False)."
        )
    assert tables(url) == {"keep", "first"} and version(url) == {keep}

    done = m.resume()
    assert list(done.steps["revision"]) == [two]
    assert done.summary.startswith(f"Resumed {two} ('two tables'): skipped 1 statement that had committed, ran 1; ")
    assert tables(url) == {"keep", "first", "second"} and version(url) == {two}
    assert m.status().half_applied == [] and m.status().problems == []
    assert _journal(url) == []
    rows = ledger_rows(url, "revision", "direction", "note")
    assert rows == [(keep, "upgrade", None), (two, "upgrade", "resumed: 1 statement had committed before")]
    assert list(m.log()["note"])[-1] == "resumed: 1 statement had committed before"
    assert m.status().edited == []
    m.downgrade("base")
    assert tables(url) == set()


def test_repair_not_applied_after_dropping_the_half_by_hand(killed: Any) -> None:
    m, url, keep, two = killed
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE first"))
    engine.dispose()
    said = m.repair(two, applied=False)
    assert str(said) == f"Recorded {two} ('two tables') as not applied; the version table is at {keep}. Nothing was run on the schema."
    assert m.status().half_applied == [] and _journal(url) == []
    assert version(url) == {keep}
    assert ledger_rows(url, "revision", "direction") == [(keep, "upgrade"), (two, "repair")]
    assert ledger_rows(url, "note")[-1] == ("marked not applied by hand: its upgrade had stopped after 1 committed statement",)
    m.upgrade("head")
    assert tables(url) == {"keep", "first", "second"} and version(url) == {two}


def test_repair_applied_after_finishing_by_hand(killed: Any) -> None:
    m, url, keep, two = killed
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE second (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    m.repair(two, applied=True)
    assert version(url) == {two} and m.status().half_applied == [] and m.status().outside == []
    assert ledger_rows(url, "revision", "direction")[-1] == (two, "repair")
    m.downgrade("base")
    assert tables(url) == set() and version(url) == set()


def test_a_revision_that_fails_half_way_is_half_applied_and_resumes_once_fixed(workdir: Path, mariadb_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    m = Migrator.init(mariadb_url)
    try:
        keep = m.revision("keep", KEEP).revision
        two = m.revision("two tables", TWO).revision
        monkeypatch.setenv("MIGMAGIC_TEST_FAULT", "two.up.1.sql")
        with pytest.raises(MigrationFailed) as caught:
            m.upgrade("head")
        err = caught.value
        assert err.revision == two and err.completed == [keep]
        assert f"the version table is at {keep}; {two} is half-applied: 1 statement committed (CREATE TABLE first" in str(err)
        assert "resume()" in str(err) and f"repair('{two}', applied=False)" in str(err)
        assert [h.revision for h in m.status().half_applied] == [two]
        monkeypatch.delenv("MIGMAGIC_TEST_FAULT")

        # The committed statement's code changed: resume refuses, and nothing runs.
        path = Path(m.scripts().info(two).path)
        original = path.read_text()
        path.write_text(original.replace('op.create_table("first", sa.Column("id", sa.Integer, primary_key=True))', 'op.create_table("first", sa.Column("id", sa.BigInteger, primary_key=True))'))
        with pytest.raises(ResumeRefused) as refused:
            m.resume()
        assert refused.value.revision == two and refused.value.position == 0
        assert str(refused.value).startswith(f"Cannot resume {two} ('two tables'): its statement 1 is not the one that committed.")
        assert "committed: CREATE TABLE first ( id INTEGER NOT NULL AUTO_INCREMENT" in str(refused.value)
        assert "now: CREATE TABLE first ( id BIGINT NOT NULL AUTO_INCREMENT" in str(refused.value)
        assert tables(mariadb_url) == {"keep", "first"} and version(mariadb_url) == {keep}
        assert [h.revision for h in m.status().half_applied] == [two]

        # A fix after the committed statements is fine.
        path.write_text(original)
        m.resume()
        assert tables(mariadb_url) == {"keep", "first", "second"} and version(mariadb_url) == {two}
        assert m.status().half_applied == []
    finally:
        m.close()


def test_a_revision_that_fails_before_anything_committed_is_not_half_applied(workdir: Path, mariadb_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    m = Migrator.init(mariadb_url)
    try:
        m.revision("two tables", FAULT_HELPER + "def upgrade():\n    _fault('x.up.0')\n    op.create_table('t', sa.Column('id', sa.Integer, primary_key=True))\n")
        monkeypatch.setenv("MIGMAGIC_TEST_FAULT", "x.up.0.sql")
        with pytest.raises(MigrationFailed):
            m.upgrade("head")
        assert m.status().half_applied == [] and _journal(mariadb_url) == []
        monkeypatch.delenv("MIGMAGIC_TEST_FAULT")
        m.upgrade("head")
        assert tables(mariadb_url) == {"t"}
    finally:
        m.close()


def test_a_half_applied_downgrade_resumes(workdir: Path, mariadb_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    m = Migrator.init(mariadb_url)
    try:
        keep = m.revision("keep", KEEP).revision
        two = m.revision("two tables", TWO).revision
        m.upgrade("head")
        monkeypatch.setenv("MIGMAGIC_TEST_FAULT", "two.down.1.python")
        with pytest.raises(MigrationFailed):
            m.downgrade("base")
        monkeypatch.delenv("MIGMAGIC_TEST_FAULT")
        (half,) = m.status().half_applied
        assert half.direction == "downgrade" and tables(mariadb_url) == {"keep", "first"} and version(mariadb_url) == {two}
        m.resume()
        assert tables(mariadb_url) == {"keep"} and version(mariadb_url) == {keep}
        assert ledger_rows(mariadb_url, "revision", "direction")[-1] == (two, "downgrade")
    finally:
        m.close()


def test_nothing_to_resume_or_repair(migrator: Any, db_url: str) -> None:
    """On every database: resume with nothing half-applied says so; repair of a revision that is not half-applied is refused."""
    a = migrator.revision("keep", KEEP).revision
    migrator.upgrade("head")
    assert str(migrator.resume()).startswith("Nothing to resume: no revision is half-applied")
    with pytest.raises(Exception) as caught:
        migrator.repair(a, applied=False)
    assert str(caught.value).startswith(f"Revision {a} ('keep') is not half-applied: there is nothing to repair.")
    assert version(db_url) == {a}


def test_transactional_databases_write_no_journal(rollback_migrator: tuple[Any, str], monkeypatch: pytest.MonkeyPatch) -> None:
    m, url = rollback_migrator
    m.revision("keep", KEEP)
    m.revision("two tables", TWO)
    m.upgrade("head")
    m.downgrade("base")
    monkeypatch.setenv("MIGMAGIC_TEST_FAULT", "two.up.1.sql")
    with pytest.raises(MigrationFailed):
        m.upgrade("head")
    assert m.status().half_applied == [] and "half-applied" not in dict(m.status().fields)
    engine = sa.create_engine(url)
    try:
        assert not sa.inspect(engine).has_table("migmagic_journal")
    finally:
        engine.dispose()


def test_resume_and_repair_as_magics(ip_empty: Shell, mariadb_url: str, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ip_empty.ok(f"%migrate init {mariadb_url}")
    two = ip_empty.ok(f'%%revision -m "two tables"\n{TWO}').revision
    monkeypatch.setenv("MIGMAGIC_TEST_FAULT", "two.up.1.python")
    assert ip_empty.run("%migrate upgrade head").failed
    monkeypatch.delenv("MIGMAGIC_TEST_FAULT")
    refused = ip_empty.run("%migrate upgrade head")
    assert isinstance(refused.error, RevisionHalfApplied)
    assert len(refused.output.strip().splitlines()) == 1, refused.output
    assert refused.output.strip().endswith(
        f"Finish it with %migrate resume, or put the database right by hand and record it with "
        f"%migrate repair {two} --applied or %migrate repair {two} --not-applied."
    )
    assert "repair" in ip_empty.run("%migrate repair -h").output
    ip_empty.ok(f"%migrate repair {two} --not-applied")
    assert version(mariadb_url) == set()
    assert ip_empty.run(f"%migrate repair {two}").failed  # one of --applied / --not-applied is required
    engine = sa.create_engine(mariadb_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE first"))
    engine.dispose()
    monkeypatch.setenv("MIGMAGIC_TEST_FAULT", "two.up.1.python")
    assert ip_empty.run("%migrate upgrade head").failed
    monkeypatch.delenv("MIGMAGIC_TEST_FAULT")
    out = ip_empty.ok("%migrate resume")
    assert repr(out).startswith(f"Resumed {two} ('two tables'): skipped 1 statement that had committed, ran 1; ")
    assert version(mariadb_url) == {two}


def test_a_resume_whose_code_now_drops_data_gets_the_data_loss_guard(workdir: Path, mariadb_url: str) -> None:
    """Issue 21 (a hostile user's attacks): the revision is fixed after it failed half-way, and the fix drops a table
    with rows. resume ran it with no guard and no note (the guard had counted the old code): the rows were gone.
    Now resume is refused like an upgrade would be, and --accept-data-loss runs it."""
    import sqlalchemy as sa

    from migmagic import Migrator
    from migmagic.errors import DataLossRefused, MigrationFailed

    m = Migrator.init(mariadb_url)
    try:
        create = 'def upgrade():\n    op.create_table("customers", sa.Column("id", sa.Integer, primary_key=True))\n    op.create_table("events", sa.Column("id", sa.Integer, primary_key=True))\n\n\ndef downgrade():\n    pass\n'
        m.revision("create", create, apply=True)
        engine = sa.create_engine(mariadb_url)
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO customers (id) VALUES (1), (2), (3)"))
        venue = 'def upgrade():\n    op.add_column("events", sa.Column("venue", sa.String(50)))\n    {then}\n\n\ndef downgrade():\n    pass\n'
        m.revision("venue", venue.format(then='op.execute("SELECT * FROM no_such_table")'))
        with pytest.raises(MigrationFailed):
            m.upgrade("head")  # half-applied: venue's column committed
        m.revision("venue", venue.format(then='op.drop_table("customers")'))  # "fixed"
        with pytest.raises(DataLossRefused) as refused:
            m.resume()
        assert "3 rows of table customers" in str(refused.value) and "resume(accept_data_loss=True)" in str(refused.value)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM customers")).scalar() == 3
        assert m.status().half_applied
        m.resume(accept_data_loss=True)
        assert "customers" not in sa.inspect(engine).get_table_names()
        engine.dispose()
    finally:
        m.close()
