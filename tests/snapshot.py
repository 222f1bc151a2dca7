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
            from migmagic import ledger

            insp = sa.inspect(conn)
            out: dict[str, Any] = {}
            own = ledger.schema(conn)  # PostgreSQL: migmagic's tables in a schema of their own, listed by their names
            places = [(None, t) for t in insp.get_table_names()]
            if own is not None and insp.has_schema(own):
                places += [(own, t) for t in insp.get_table_names(schema=own)]
            for schema, t in sorted(places, key=lambda p: p[1]):
                quoted = conn.dialect.identifier_preparer.quote(t)
                if schema is not None:
                    quoted = f"{conn.dialect.identifier_preparer.quote(schema)}.{quoted}"
                out[t] = {
                    "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t, schema=schema)],
                    "pk": insp.get_pk_constraint(t, schema=schema)["constrained_columns"],
                    "fks": sorted((fk["name"] or "", tuple(fk["constrained_columns"]), fk["referred_table"]) for fk in insp.get_foreign_keys(t, schema=schema)),
                    "indexes": sorted((ix["name"] or "", tuple(ix["column_names"]), bool(ix["unique"])) for ix in insp.get_indexes(t, schema=schema)),
                    "uniques": sorted((u["name"] or "", tuple(u["column_names"])) for u in insp.get_unique_constraints(t, schema=schema)),
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
