"""What a database holds, as one comparable value: schema, rows of every table, version table and ledger."""

from __future__ import annotations

from typing import Any


def snapshot(url: str) -> dict[str, Any]:
    """Every table (Alembic's and migmagic's included): its columns (name, type, nullable) and all its rows, sorted."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            out: dict[str, Any] = {}
            for name in sorted(inspector.get_table_names()):
                cols = inspector.get_columns(name)
                rows = conn.execute(sa.text(f"SELECT * FROM {conn.dialect.identifier_preparer.quote(name)}")).fetchall()
                out[name] = {
                    "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in cols],
                    "indexes": sorted((i["name"] or "", tuple(i["column_names"])) for i in inspector.get_indexes(name)),
                    "rows": sorted((tuple(r) for r in rows), key=repr),
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
