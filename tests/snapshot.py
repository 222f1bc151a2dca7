"""What a database holds, as one comparable value: schema, rows of every table, version table and ledger."""

from __future__ import annotations

from typing import Any


def snapshot(url: str, *, ledger_count: bool = False) -> dict[str, Any]:
    """Every table (Alembic's and migmagic's included): columns (name, type, nullable), keys, indexes and all its rows, sorted.

    ``ledger_count``: the ledger as its number of rows (its times differ from run to run).
    """
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            insp = sa.inspect(conn)
            out: dict[str, Any] = {}
            for t in sorted(insp.get_table_names()):
                quoted = conn.dialect.identifier_preparer.quote(t)
                out[t] = {
                    "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)],
                    "pk": insp.get_pk_constraint(t)["constrained_columns"],
                    "fks": sorted((fk["name"] or "", tuple(fk["constrained_columns"]), fk["referred_table"]) for fk in insp.get_foreign_keys(t)),
                    "indexes": sorted((ix["name"] or "", tuple(ix["column_names"]), bool(ix["unique"])) for ix in insp.get_indexes(t)),
                    "uniques": sorted((u["name"] or "", tuple(u["column_names"])) for u in insp.get_unique_constraints(t)),
                    "rows": conn.execute(sa.text(f"SELECT COUNT(*) FROM {quoted}")).scalar()
                    if ledger_count and t == "migmagic_ledger"
                    else sorted(map(tuple, conn.execute(sa.text(f"SELECT * FROM {quoted}")).fetchall()), key=repr),
                }
            return out
    finally:
        engine.dispose()


def sqlite_bytes(url: str) -> bytes:
    """The SQLite file's bytes (b'' for other databases)."""
    from pathlib import Path

    if not url.startswith("sqlite:///"):
        return b""
    return Path(url.removeprefix("sqlite:///")).read_bytes()
