"""The benchmark suite runs end to end with tiny workloads (so it cannot rot). No timing assertions."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import PG_ADMIN, REQUIRE_SERVERS

ROOT = Path(__file__).resolve().parent.parent

# Every measurement row of the report, by the start of its label (N is tiny with --quick).
EXPECTED_ROWS = [
    "`%load_ext migmagic`, whole `ipython -c` process",
    'reference: `ipython -c "import alembic"`',
    'reference: `python -c "import alembic"`',
    'reference: `python -c "import migmagic"`',
    "`upgrade head`, SQLite, N = 6, in-process, recordings warm",
    "`upgrade head`, SQLite, N = 6, in-process, first application",
    "reference: `upgrade head --sql`, SQLite, N = 6",
    "reference: Alembic's engine alone, SQLite, N = 6",
    "reference: Alembic in-process `command.upgrade`, SQLite, N = 6",
    "`upgrade head`, SQLite, N = 12, in-process, recordings warm",
    "`upgrade head`, SQLite, N = 12, in-process, first application",
    "reference: `upgrade head --sql`, SQLite, N = 12",
    "reference: Alembic's engine alone, SQLite, N = 12",
    "reference: Alembic in-process `command.upgrade`, SQLite, N = 12",
    "`upgrade head`, SQLite, N = 6, whole process",
    "`upgrade head`, SQLite, N = 12, whole process",
    "`upgrade head`, PostgreSQL, N = 8, in-process, recordings warm",
    "`upgrade head`, PostgreSQL, N = 8, in-process, first application",
    "reference: same SQL via psycopg as one batch",
    "reference: Alembic in-process `command.upgrade`, PostgreSQL",
    "`downgrade base`, SQLite, N = 6",
    *(f"`{cmd}`, N = 12, warm, {state}" for cmd in ("current", "history", "heads", "status") for state in ("nothing changed on disk", "one revision file changed")),
    "reference: `status`, N = 12, first command of a new Migrator",
    "reference: Alembic in-process `command.current`, N = 12",
    "reference: Alembic in-process `command.history`, N = 12",
    "`status`, N = 6, warm, after 2 downgrade/upgrade cycles",
    *(
        f"`%migrate upgrade head` in a kernel{part}"
        for n in (3, 4, 6, 12)
        for part in (
            f", progress on, SQLite, N = {n} ", f", N = {n}: per revision above the direct SQL", f", N = {n}: per revision above Alembic's engine alone",
            f", N = {n}, against Alembic's engine alone", f", N = {n}, recordings warm",
        )
    ),
    "`%migrate upgrade head` in a kernel, N = 6, collector held",
    *(f"`Migrator.upgrade('head')` in the same kernel, N = {n}," for n in (3, 4, 6, 12)),
    *(f"reference: Alembic's engine alone in the kernel, N = {n}: per revision above the direct SQL" for n in (3, 4, 6, 12)),
    "first `%migrate current` in a fresh kernel (after `%load_ext`), N = 12",
    "`%%revision` on PostgreSQL: squawk's review of a four-operation cell",
]
MACHINE = ["CPU", "cores", "Python", "Alembic", "SQLAlchemy", "SQLite", "PostgreSQL"]


def test_quick_suite_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "results.md"
    env = {**os.environ, "MIGMAGIC_BENCH_POSTGRES": PG_ADMIN}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| measurement")]
    labels = [row.split(" | ")[0][2:] for row in rows]
    for expected in EXPECTED_ROWS:
        assert sum(label.startswith(expected) for label in labels) == 1, f"no single row {expected!r} in:\n{text}"
    assert len(rows) == len(EXPECTED_ROWS)
    for row, label in zip(rows, labels, strict=True):
        cells = row.split(" | ")
        if "not measured" in row:
            assert "PostgreSQL" in label and not REQUIRE_SERVERS, row
            continue
        assert re.fullmatch(r"-?[\d.]+ (ms|s)", cells[1]), row  # a median (a per-revision difference of two timings may be below zero)
        if cells[4] != "report":  # a goal: the verdict says met or by how much it missed
            assert cells[5].startswith(("met (", "missed: ")), row
        assert re.fullmatch(r"-?[\d.]+ (ms|s)|—", cells[7]), row  # CPU time, where measured
    for name in MACHINE:
        assert re.search(rf"^- {name}: \S", text, re.MULTILINE), name
    assert "quick" in text and done.stdout.startswith("| measurement")
