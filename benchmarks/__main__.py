"""``python -m benchmarks``: run the suite and write ``benchmarks/results.md``."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import machine, report, suite
from .suite import Config, Row

DEFAULT_OUT = Path(__file__).resolve().parent / "results.md"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure migmagic against the alembic command and against the same SQL run directly.",
    )
    p.add_argument("--quick", action="store_true", help="tiny workloads and one repeat: checks the suite runs")
    p.add_argument("--long", action="store_true", help="also the largest workloads (kernel upgrade with N = 3,000)")
    p.add_argument("--only", action="append", metavar="NAME", help="run only this measurement (repeatable, or comma-separated): " + ", ".join(suite.MEASUREMENTS))
    p.add_argument("--repeats", type=int, default=None, metavar="K", help="runs per measurement (default 5, 1 with --quick)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where to write the report (default {DEFAULT_OUT.name} next to this package)")
    p.add_argument("--postgres", default=suite.POSTGRES_ADMIN, metavar="URL", help="a PostgreSQL URL whose server may create databases (default: $MIGMAGIC_BENCH_POSTGRES or the local test server)")
    p.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL measurement")
    return p


def _names(only: Sequence[str] | None) -> list[str]:
    if not only:
        return list(suite.MEASUREMENTS)
    wanted = [n.strip() for item in only for n in item.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in suite.MEASUREMENTS]
    if unknown:
        raise SystemExit(f"Unknown measurement {', '.join(unknown)}; choose from {', '.join(suite.MEASUREMENTS)}.")
    return [n for n in suite.MEASUREMENTS if n in wanted]


def main(argv: Sequence[str] | None = None) -> list[Row]:
    args = _parser().parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 5)
    postgres = None if args.no_postgres else args.postgres
    names = _names(args.only)
    skipped: dict[str, list[Row]] = {}
    if "upgrade_postgres" in names:
        reason = "skipped (--no-postgres)" if postgres is None else machine.postgres_version(postgres)
        if postgres is None or reason.startswith("unavailable"):
            skipped["upgrade_postgres"] = [Row("upgrade_postgres", "`upgrade head`, PostgreSQL, N = 500", None, goal="≤ 1.2", goal_ratio=1.2, note=f"PostgreSQL {reason}")]
    cfg = Config(quick=args.quick, repeats=repeats, postgres_admin=postgres, long=args.long)
    details = machine.details(postgres)  # before the run: the load average is the machine's, not ours
    started = time.perf_counter()
    rows = suite.run(names, cfg, skipped, progress=lambda name: print(f"benchmarks: {name} ...", file=sys.stderr, flush=True))
    seconds = time.perf_counter() - started
    command = "python -m benchmarks" + ("" if argv is None and len(sys.argv) <= 1 else " " + shlex.join(list(argv) if argv is not None else sys.argv[1:]))
    text = report.render(rows, cfg, details, command, seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(report.table(rows))
    print(f"\nWrote {args.out}", file=sys.stderr)
    return rows



if __name__ == "__main__":
    main()
