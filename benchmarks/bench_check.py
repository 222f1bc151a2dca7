"""``%migrate check`` against Alembic's own ``compare_metadata``, on the same schema, in one run.

A database of ``n_tables`` tables (five columns, an index, a foreign key on
every tenth) is created from one set of models; the models are then changed in
5% of the tables (a column added, a type widened, an index added, a nullability
or a server default changed). Both sides compare those models with that
database, alternately (which goes first alternates too), ``repeats`` times:

* migmagic: ``Migrator.check(models)`` (which raises ``PendingModelChanges``);
* Alembic: ``compare_metadata(MigrationContext.configure(conn, opts=...), models)``
  with ``compare_type`` and ``compare_server_default`` on, as migmagic compares.

The ratio is migmagic's median over Alembic's (goal: at most 1.0). Not a test:
nothing asserts on time. Run it as ``python -m benchmarks.bench_check``
(``--url postgresql+psycopg://...`` for a server; default a SQLite file).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def models(n_tables: int, changed_every: int | None = None) -> Any:
    """``n_tables`` tables; with ``changed_every``, every that many-th table is changed one way."""
    import sqlalchemy as sa

    md = sa.MetaData()
    for i in range(n_tables):
        change = (i // changed_every) % 5 if changed_every and i % changed_every == 0 else None
        cols: list[Any] = [
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(80 if change == 1 else 50), nullable=False),
            sa.Column("value", sa.Integer, nullable=change != 3),
            sa.Column("kind", sa.String(20), server_default="new" if change == 4 else "old"),
            sa.Column("created", sa.DateTime),
        ]
        if i % 10 == 1:
            cols.append(sa.Column("parent_id", sa.Integer, sa.ForeignKey(f"t{i - 1:04d}.id")))
        if change == 0:
            cols.append(sa.Column("extra", sa.Text))
        cols.append(sa.Index(f"ix_t{i:04d}_name", "name"))
        if change == 2:
            cols.append(sa.Index(f"ix_t{i:04d}_value", "value"))
        sa.Table(f"t{i:04d}", md, *cols)
    return md


def _time(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(n_tables: int = 1000, repeats: int = 5, url: str | None = None, changed_share: float = 0.05) -> dict[str, Any]:
    """Run the benchmark; returns the figures (seconds are medians) and prints a summary."""
    import sqlalchemy as sa
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from migmagic import Migrator
    from migmagic.errors import PendingModelChanges

    with tempfile.TemporaryDirectory() as tmp:
        url = url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = sa.create_engine(url)
        old = models(n_tables)
        with engine.begin() as conn:
            old.drop_all(conn)
            old.create_all(conn)
        new = models(n_tables, changed_every=max(1, round(1 / changed_share)))
        m = Migrator(url, Path(tmp) / "migrations")

        n_changes: list[int] = []

        def migmagic_check() -> None:
            try:
                m.check(new)
            except PendingModelChanges as exc:
                n_changes.append(len(exc.diffs))
            else:  # pragma: no cover - the models always differ
                n_changes.append(0)

        alembic_diffs: list[int] = []

        def alembic_compare() -> None:
            with engine.connect() as conn:
                ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
                diffs = compare_metadata(ctx, new)
                alembic_diffs.append(sum(len(d) if isinstance(d, list) else 1 for d in diffs))

        # Warm both (imports, connection pools), then alternate.
        migmagic_check()
        alembic_compare()
        ours, theirs = [], []
        for k in range(repeats):  # alternating who goes first, so a drifting machine moves both alike
            if k % 2:
                theirs.append(_time(alembic_compare))
                ours.append(_time(migmagic_check))
            else:
                ours.append(_time(migmagic_check))
                theirs.append(_time(alembic_compare))
        m.close()
        with engine.begin() as conn:
            old.drop_all(conn)
        engine.dispose()

    result = {
        "database": url.split(":")[0],
        "tables": n_tables,
        "changed_tables": len(range(0, n_tables, max(1, round(1 / changed_share)))),
        "changes_found": n_changes[-1],
        "alembic_changes_found": alembic_diffs[-1],
        "repeats": repeats,
        "migmagic_check_s": statistics.median(ours),
        "alembic_compare_metadata_s": statistics.median(theirs),
    }
    result["ratio"] = result["migmagic_check_s"] / result["alembic_compare_metadata_s"]
    print(
        f"check on {n_tables} tables ({result['changed_tables']} changed, {result['changes_found']} changes) "
        f"on {result['database']}, median of {repeats}: migmagic {result['migmagic_check_s']:.3f} s, "
        f"Alembic compare_metadata {result['alembic_compare_metadata_s']:.3f} s, ratio {result['ratio']:.3f} (goal <= 1.0)"
    )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--url", help="database URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    main(n_tables=args.tables, repeats=args.repeats, url=args.url)
