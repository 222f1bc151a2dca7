"""The migration lock, with real concurrent processes, on each database.

Processes racing on a barrier apply each revision exactly once; a held lock
means a bounded wait and a one-line error; a process killed while migrating
leaves no stale lock.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import EVENTS, Shell, own_schema, tables, version
from faults import FAULTY, write_revisions

import migmagic.magics
from migmagic.database import Database
from migmagic.errors import LockTimeout

WORKERS = 3
ROUNDS = 8
PER_ROUND = 2


def _ledger_counts(url: str) -> dict[str, int]:
    import sqlalchemy as sa

    where = f"{own_schema(url)}." if own_schema(url) else ""

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(f"SELECT revision, COUNT(*) FROM {where}migmagic_ledger WHERE direction = 'upgrade' GROUP BY revision")
            )
            return {r: n for r, n in rows}
    finally:
        engine.dispose()


def _applied_once(url: str) -> list[str]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [r for (r,) in conn.execute(sa.text("SELECT step FROM applied_once"))]
    finally:
        engine.dispose()


def _racer(url: str, folder: str, barrier: Any, results: Any) -> None:
    """One process: at each round, wait for the others, then upgrade head."""
    from migmagic import Migrator

    m = Migrator(url, folder, lock_timeout=120)
    for _ in range(ROUNDS):
        barrier.wait()
        try:
            out = m.upgrade("head")
            results.put(("ok", list(out.steps["revision"])))
        except BaseException as exc:  # reported to the test, which fails on it
            results.put(("error", f"{type(exc).__name__}: {exc}"))
        barrier.wait()
    m.close()


def _step_body(name: str, first: bool) -> str:
    create = 'op.create_table("applied_once", sa.Column("step", sa.String(20), primary_key=True))\n    ' if first else ""
    return (
        f"def upgrade():\n    {create}"
        f'op.create_table("t_{name}", sa.Column("id", sa.Integer, primary_key=True))\n'
        f"    op.execute(\"INSERT INTO applied_once (step) VALUES ('{name}')\")\n"
    )


def test_racing_processes_apply_each_revision_once(workdir: Path, db_url: str) -> None:
    from migmagic import Migrator

    author = Migrator.init(db_url)  # writes revisions; never connects
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(WORKERS + 1, timeout=300)
    results = ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(db_url, str(author.folder), barrier, results)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    try:
        written: list[str] = []
        steps: list[str] = []
        for r in range(ROUNDS):
            new = []
            for i in range(PER_ROUND):
                name = f"r{r}s{i}"
                new.append(author.revision(name, _step_body(name, not written and not new)).revision)
                steps.append(name)
            written += new
            barrier.wait()  # go: all processes upgrade head at once
            barrier.wait()  # all done
            outs = [results.get(timeout=60) for _ in range(WORKERS)]
            errors = [o for kind, o in outs if kind == "error"]
            assert not errors, errors
            applied = [rev for _, revs in outs for rev in revs]
            assert sorted(applied) == sorted(new), f"round {r}: {outs}"
            assert version(db_url) == {new[-1]}
            assert _ledger_counts(db_url) == {rev: 1 for rev in written}
            assert sorted(_applied_once(db_url)) == sorted(steps)
            assert tables(db_url) == {"applied_once", *(f"t_{s}" for s in steps)}
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0] * WORKERS


def test_held_lock_means_a_bounded_wait_and_a_one_line_error(workdir: Path, db_url: str) -> None:
    from migmagic import Migrator

    m = Migrator.init(db_url, lock_timeout=1)
    m.revision("create events table", EVENTS)
    assert dict(m.status().fields)["lock"] == "free"
    other = Database(db_url)
    try:
        with other.migrating():
            assert dict(m.status().fields)["lock"] != "free"
            with pytest.raises(LockTimeout) as caught:
                m.upgrade("head")
            holder = dict(m.status().fields)["lock"]
            assert caught.value.holder == holder  # named, as status names it
            assert str(caught.value) == (
                f"{m.db.masked_url} is being migrated by someone else ({holder}; waited 1 s). "
                "Try again when the other upgrade is done, or raise %config Migrate.lock_timeout."
            )
            assert caught.value._render_traceback_() == [f"LockTimeout: {caught.value}"]
        assert tables(db_url) == set()
        assert dict(m.status().fields)["lock"] == "free"
        m.upgrade("head")
        assert tables(db_url) == {"events"}
    finally:
        other.dispose()
        m.close()


def test_lock_timeout_from_config_and_lock_holder_in_status(ip_with_db: Shell) -> None:
    url = ip_with_db.ns["TEST_DB_URL"]
    ip_with_db.ok(f'%%revision -m "create events table"\n{EVENTS}')
    ip_with_db.ok("%config Migrate.lock_timeout = 0.5")
    # The configured value also holds for an extension loaded after it was set.
    migmagic.magics.unload(ip_with_db.ip)
    migmagic.magics.load(ip_with_db.ip)
    ip_with_db.ok(f"%migrate init {url}")
    assert migmagic.magics._loaded[id(ip_with_db.ip)].migrator.lock_timeout == 0.5
    other = Database(url)
    try:
        with other.migrating() as conn:
            status = ip_with_db.ok("%migrate status")
            holder = dict(status.fields)["lock"]
            if url.startswith("postgresql"):
                pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
                assert holder == f"PostgreSQL backend pid {pid}"
            elif url.startswith("mysql"):
                cid = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
                assert holder == f"MySQL connection {cid}"
            else:
                assert holder == "another connection (SQLite write lock)"
            run = ip_with_db.run("%migrate upgrade head")
            assert run.failed
            assert f"is being migrated by someone else ({holder}; waited 0.5 s)" in run.output
            assert len(run.output.strip().splitlines()) == 1, run.output
    finally:
        other.dispose()
        del ip_with_db.ip.config.Migrate["lock_timeout"]
    assert version(url) == set()
    ip_with_db.ok("%migrate upgrade head")
    assert tables(url) == {"events"}


KILLED = """
import sys
from migmagic import Migrator
Migrator(sys.argv[1], sys.argv[2]).upgrade("head")
"""


def test_a_killed_migration_leaves_no_stale_lock(workdir: Path, db_url: str) -> None:
    from migmagic import Migrator

    m = Migrator.init(db_url, lock_timeout=60)
    ids = write_revisions(m)
    m.upgrade(ids["keep"])
    hanging = workdir / "hanging"
    env = {**os.environ, "MIGMAGIC_TEST_FAULT": "child.up.0.hang", "MIGMAGIC_TEST_HANG_FILE": str(hanging)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED, db_url, str(m.folder)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not hanging.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the migrating process never reached the fault point"
            time.sleep(0.05)
        assert dict(m.status().fields)["lock"] != "free"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    done = m.upgrade("head")
    if db_url.startswith("mysql"):  # 'parent' was committed before the kill
        assert list(done.steps["revision"]) == [ids["child"], ids["widen"]]
    else:
        assert list(done.steps["revision"]) == [ids[n] for n in FAULTY]
    assert version(db_url) == {ids["widen"]}
    assert _ledger_counts(db_url) == {ids[n]: 1 for n in ["keep", *FAULTY]}
    assert dict(m.status().fields)["lock"] == "free"
    m.close()


@pytest.mark.servers
def test_mariadb_databases_whose_long_names_share_a_prefix_do_not_share_a_lock(workdir: Path, tmp_path: Path) -> None:
    """GET_LOCK names are at most 64 characters: cut from "migmagic:<database>", two 60-character database names
    that differ only at the end took the same lock, and one's upgrade waited for the other's ("being migrated by
    someone else"). A long name now ends in a digest of the whole name."""
    import uuid

    from conftest import fresh_database, table_revision

    from migmagic import Migrator

    stem = f"mm_{uuid.uuid4().hex[:12]}_" + "x" * 44  # 60 characters with the last letter
    one, other = fresh_database("mariadb", tmp_path / "a", f"{stem}a"), fresh_database("mariadb", tmp_path / "b", f"{stem}b")
    try:
        a = Migrator.init(next(one), tmp_path / "a-migrations", lock_timeout=1)
        b = Migrator.init(next(other), tmp_path / "b-migrations", lock_timeout=1)
        b.revision("create events", table_revision("events"))
        with a.db.migrating():  # a migration of the first database holds its lock
            b.upgrade("head")  # the second is another database: it does not wait
        assert b.status().current != []
        a.close()
        b.close()
    finally:
        for gen in (one, other):
            next(gen, None)
