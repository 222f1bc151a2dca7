"""What the data-loss guard and restore points cost, on SQLite, measured beside the upgrade they guard.

* Guard: a table of ``rows`` rows (``readings``: sensor, unit, note) and a
  revision that, in a batch block, drops ``note``, makes ``unit`` NOT NULL and
  narrows ``sensor`` (no NULLs: the upgrade must succeed), and drops a
  second table of ``rows`` rows. Measured:
  recording the plan's ``op`` calls, counting what is at stake (both under the
  lock, as the guard runs), and ``upgrade head --accept-data-loss`` (restore
  points off) on a fresh copy.
* Restore point: a database of about ``megabytes`` MB; ``upgrade head`` of one
  revision with restore points off and on (a fresh copy each time), and the
  restore point alone. Two revisions: ``add_column`` (SQLite changes only the
  schema) and a batch ``alter_column`` that rebuilds the big table.

Medians of ``repeats`` runs. Not a test: run it as ``python -m benchmarks.bench_guard``.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

GUARDED = '''def upgrade():
    with op.batch_alter_table("readings") as batch:
        batch.drop_column("note")
        batch.alter_column("unit", existing_type=sa.String(20), nullable=False)
        batch.alter_column("sensor", existing_type=sa.String(50), type_=sa.String(8))
    op.drop_table("archive")


def downgrade():
    pass
'''

ADD_COLUMN = '''def upgrade():
    op.add_column("readings", sa.Column("checked", sa.Boolean))


def downgrade():
    pass
'''

REBUILD = '''def upgrade():
    with op.batch_alter_table("readings") as batch:
        batch.alter_column("unit", existing_type=sa.String(20), type_=sa.String(40))


def downgrade():
    pass
'''

BASE = '''def upgrade():
    op.create_table("readings", sa.Column("id", sa.Integer, primary_key=True), sa.Column("sensor", sa.String(50)),
                    sa.Column("unit", sa.String(20)), sa.Column("note", sa.String(200)))
    op.create_table("archive", sa.Column("id", sa.Integer, primary_key=True), sa.Column("payload", sa.String(200)))


def downgrade():
    pass
'''


def _median(fn: Callable[[], float], repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def _build(work: Path, rows: int, note_size: int) -> tuple[Path, Path]:
    """A database at the base revision with ``rows`` rows in readings and archive; returns (db, folder)."""
    from migmagic import Migrator

    db = work / "base.db"
    m = Migrator.init(f"sqlite:///{db}", work / "migrations", restore_points=0)
    m.revision("base", BASE)
    m.upgrade("head")
    m.close()
    conn = sqlite3.connect(db)
    note = "n" * note_size
    conn.executemany(
        "INSERT INTO readings (sensor, unit, note) VALUES (?, ?, ?)",
        ((f"sensor-{i % 1000}", "C", note if i % 3 else None) for i in range(rows)),
    )
    conn.executemany("INSERT INTO archive (payload) VALUES (?)", ((note,) for _ in range(rows)))
    conn.commit()
    conn.close()
    return db, work / "migrations"


def _fresh(base: Path, folder: Path, work: Path, body: str, message: str, keep: int) -> Any:
    from migmagic import Migrator

    db = work / "run.db"
    shutil.rmtree(work / "run.db.migmagic-restore", ignore_errors=True)
    shutil.copy(base, db)
    run_folder = work / "run-migrations"
    shutil.rmtree(run_folder, ignore_errors=True)
    shutil.copytree(folder, run_folder)
    m = Migrator(f"sqlite:///{db}", run_folder, restore_points=keep)
    m.revision(message, body)
    return m


def guard(rows: int, repeats: int) -> dict[str, float]:
    from migmagic import guard as g
    from migmagic import run
    from migmagic.adapter import trace_operations

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base, folder = _build(work, rows, 20)
        m = _fresh(base, folder, work, GUARDED, "guarded", 0)
        plan = m.plan("upgrade", "head")
        times: dict[str, list[float]] = {"record": [], "analyse": [], "upgrade": []}
        findings: list[Any] = []
        for _ in range(repeats):
            with run.locked(m.db, "upgrade") as ex:
                t0 = time.perf_counter()
                trace_operations(plan.scripts, plan.steps, "sqlite")
                t1 = time.perf_counter()
                findings = g.analyse(plan, ex.conn).findings
                t2 = time.perf_counter()
                ex.conn.rollback()
            times["record"].append(t1 - t0)
            times["analyse"].append(t2 - t1)
        m.close()
        for _ in range(repeats):
            m = _fresh(base, folder, work, GUARDED, "guarded", 0)
            t0 = time.perf_counter()
            m.upgrade("head", accept_data_loss=True)
            times["upgrade"].append(time.perf_counter() - t0)
            m.close()
        print(f"guard, {rows:,} rows: findings {[(f.operation, f.table, f.column, f.rows) for f in findings]}")
        return {k: statistics.median(v) for k, v in times.items()}


def restore_point(megabytes: int, repeats: int) -> dict[str, float]:
    from migmagic import restore

    rows = megabytes * 1_000_000 // 190
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base, folder = _build(work, rows // 2, 200)
        out: dict[str, float] = {"size_mb": base.stat().st_size / 1e6}
        out["take"] = _median(lambda: _time_take(base, work, restore), repeats)
        for name, body in (("add_column", ADD_COLUMN), ("rebuild", REBUILD)):
            for keep in (0, 3):
                def once(body: str = body, keep: int = keep, name: str = name) -> float:
                    m = _fresh(base, folder, work, body, name, keep)
                    t0 = time.perf_counter()
                    m.upgrade("head", accept_data_loss=True)
                    seconds = time.perf_counter() - t0
                    m.close()
                    return seconds

                out[f"{name}_{'on' if keep else 'off'}"] = _median(once, repeats)
        return out


def _time_take(base: Path, work: Path, restore: Any) -> float:
    db = work / "take.db"
    shutil.copy(base, db)
    shutil.rmtree(work / "take.db.migmagic-restore", ignore_errors=True)
    t0 = time.perf_counter()
    restore.take(db, "upgrade head", "base", 3)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=["guard", "restore"], help="one of the two measurements")
    args = parser.parse_args()
    if args.only != "restore":
        _report_guard(args.rows, args.repeats)
    if args.only != "guard":
        _report_restore(args.megabytes, args.repeats)


def _report_guard(rows: int, repeats: int) -> None:
    g = guard(rows, repeats)
    print(
        f"guard, {rows:,} rows in each of two tables: recording {g['record'] * 1000:.1f} ms, "
        f"recording + counting {g['analyse']:.3f} s; upgrade itself {g['upgrade']:.3f} s "
        f"(guard / upgrade = {g['analyse'] / g['upgrade']:.2f})"
    )


def _report_restore(megabytes: int, repeats: int) -> None:
    r = restore_point(megabytes, repeats)
    print(f"restore point of a {r['size_mb']:.0f} MB database: {r['take']:.3f} s")
    for name in ("add_column", "rebuild"):
        off, on = r[f"{name}_off"], r[f"{name}_on"]
        print(f"  upgrade ({name}): {off:.3f} s without, {on:.3f} s with a restore point: x{on / off:.2f}; point / upgrade = {r['take'] / off:.2f}")


if __name__ == "__main__":
    main()
