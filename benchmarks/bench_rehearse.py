"""What rehearsing costs: a dry run and ``verify`` beside a real upgrade of the same plan.

``python -m benchmarks.bench_rehearse [--rows N] [--repeats K] [--no-postgres]``

The database holds one table of N rows (default 1,000,000: about 100 MB on
SQLite) created by revision 1; the plan is revision 2, which adds a column and
an index on the big table. Each figure is a median of K runs; ratios divide by
the real upgrade's median measured in the same run. Setup (restoring the
database for the next real upgrade) is not timed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from .timing import Sample, repeat

POSTGRES_ADMIN = os.environ.get("MIGMAGIC_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

CREATE = '''def upgrade():
    op.create_table(
        "big",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("email", sa.String(60)),
        sa.Column("amount", sa.Numeric(12, 2)),
        sa.Column("notes", sa.Text),
    )


def downgrade():
    op.drop_table("big")
'''

CHANGE = '''def upgrade():
    op.add_column("big", sa.Column("status", sa.String(10)))
    op.create_index("ix_big_name", "big", ["name"])


def downgrade():
    op.drop_index("ix_big_name", table_name="big")
    with op.batch_alter_table("big") as batch:
        batch.drop_column("status")
'''


def _fill_sqlite(path: Path, rows: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute(
        "INSERT INTO big (id, name, email, amount, notes) "
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
        "SELECT i, 'name ' || i, 'user' || i || '@example.com', i * 1.5, hex(randomblob(24)) FROM n",
        (rows,),
    )
    conn.commit()
    conn.close()


def _fill_postgres(url: str, rows: int) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO big (id, name, email, amount, notes) SELECT i, 'name ' || i, 'user' || i || '@example.com', i * 1.5, "
            f"md5(i::text) || md5((i + 1)::text) FROM generate_series(1, {int(rows)}) AS i"
        )
    engine.dispose()


def _line(name: str, sample: Sample, base: Sample | None) -> str:
    ratio = f"{sample.median / base.median:.2f}" if base and base.median else "—"
    return f"| {name} | {sample.median:.3f} s | {ratio} |"


def _bench(label: str, m: object, real_setup: Callable[[], None], repeats: int, extra: dict[str, Callable[[], object]]) -> list[str]:
    from migmagic import Migrator

    assert isinstance(m, Migrator)
    real = repeat(lambda: m.upgrade("head"), repeats, setup=real_setup)
    real_setup()
    lines = [_line(f"{label}: real `upgrade head`", real, None)]
    for name, fn in extra.items():
        lines.append(_line(f"{label}: {name}", repeat(fn, repeats), real))
    return lines


def sqlite(rows: int, repeats: int, tmp: Path) -> list[str]:
    from migmagic import Migrator

    os.chdir(tmp)
    path = tmp / "big.db"
    m = Migrator.init(f"sqlite:///{path}")
    first = m.revision("create big", CREATE)
    m.revision("add status", CHANGE)
    m.upgrade(first.revision)
    _fill_sqlite(path, rows)
    pristine = tmp / "pristine.db"
    shutil.copyfile(path, pristine)
    size = path.stat().st_size / 1e6

    def restore() -> None:
        m.close()
        shutil.copyfile(pristine, path)

    lines = _bench(f"SQLite, {rows:,} rows ({size:.0f} MB)", m, restore, repeats, {
        "`upgrade head --dry-run`": lambda: m.dry_run("upgrade", "head"),
        "`verify` (2 revisions, throwaway database)": m.verify,
    })
    m.close()
    return lines


def postgres(rows: int, repeats: int, tmp: Path, admin: str) -> list[str]:
    import sqlalchemy as sa

    from migmagic import Migrator

    os.chdir(tmp)
    name = f"mm_bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = sa.engine.make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        m = Migrator.init(url)
        first = m.revision("create big", CREATE)
        m.revision("add status", CHANGE)
        m.upgrade(first.revision)
        _fill_postgres(url, rows)

        def back() -> None:
            if m.current().ids != [first.revision]:
                m.downgrade(first.revision)
            m.close()

        lines = _bench(f"PostgreSQL, {rows:,} rows", m, back, repeats, {
            "`upgrade head --dry-run` (rolled-back transaction)": lambda: m.dry_run("upgrade", "head"),
            "`upgrade head --dry-run --copy` (template clone)": lambda: m.dry_run("upgrade", "head", copy=True),
            "`verify` (2 revisions, throwaway database)": m.verify,
        })
        m.close()
        return lines
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_rehearse", description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--postgres", default=POSTGRES_ADMIN)
    p.add_argument("--no-postgres", action="store_true")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="migmagic-bench-rehearse-"))
    cwd = Path.cwd()
    try:
        lines = ["| measurement | median | ratio to the real upgrade |", "|---|---|---|"]
        (tmp / "sqlite").mkdir()
        lines += sqlite(args.rows, args.repeats, tmp / "sqlite")
        if not args.no_postgres:
            (tmp / "pg").mkdir()
            lines += postgres(args.rows, args.repeats, tmp / "pg", args.postgres)
        print("\n".join(lines))
    finally:
        os.chdir(cwd)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
