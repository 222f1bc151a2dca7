"""``schema``: what the database holds, read with SQLAlchemy's inspector.

The notebook counterpart of ``sqlite3 .tables`` / ``.schema``, on every database:
the tables (name, columns, rows), or one table's columns, indexes and foreign
keys. Alembic's and migmagic's bookkeeping tables are left out of the list (ask
for them by name to see them). SQLAlchemy is imported inside functions.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import display
from .errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Collection

    import pandas as pd
    from sqlalchemy.engine import Connection

BOOKKEEPING = ("alembic_version", "migmagic_ledger", "migmagic_journal", "migmagic_version_changes")


def tables(conn: Connection) -> pd.DataFrame:
    """The database's tables: name, columns (count), rows (count), by name."""
    import sqlalchemy as sa

    insp = sa.inspect(conn)
    names = sorted(n for n in insp.get_table_names() if n not in BOOKKEEPING)
    columns = insp.get_multi_columns(filter_names=names) if names else {}
    counts = {key[1]: len(cols) for key, cols in columns.items()}
    rows = []
    for name in names:
        n_rows = conn.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar()
        rows.append({"name": name, "columns": counts.get(name, 0), "rows": n_rows})
    return display.table(rows, ["name", "columns", "rows"], "No tables yet.")


def table(conn: Connection, name: str, url: str = "the database") -> display.TableSchema:
    """One table: columns (name, type, nullable, default, primary key), indexes, foreign keys."""
    import sqlalchemy as sa

    insp = sa.inspect(conn)
    existing = insp.get_table_names()
    if name not in existing:
        close = difflib.get_close_matches(name, existing, n=5, cutoff=0.5)
        known = close or sorted(n for n in existing if n not in BOOKKEEPING)[:10]
        hint = ("Did you mean: " if close else "Tables: ") + (", ".join(known) or "(none)") + "?" * bool(close)
        raise UsageError(f"No table {name!r} in {url}.", hint=hint if known else "The database has no tables yet.")
    pk = set(insp.get_pk_constraint(name).get("constrained_columns") or [])
    cols = [
        {
            "name": c["name"],
            "type": type_text(c["type"], conn.dialect),
            "nullable": bool(c.get("nullable", True)),
            "default": None if c.get("default") is None else str(c["default"]),
            "primary key": c["name"] in pk,
        }
        for c in insp.get_columns(name)
    ]
    index_rows: dict[str, dict[str, Any]] = {}
    for ix in insp.get_indexes(name):
        key = ix.get("name") or f"(unnamed {len(index_rows) + 1})"
        index_rows[key] = {"name": ix.get("name"), "columns": ", ".join(str(c) for c in ix["column_names"]), "unique": bool(ix.get("unique"))}
    for uq in insp.get_unique_constraints(name):
        key = uq.get("name") or f"(unnamed {len(index_rows) + 1})"
        index_rows.setdefault(key, {"name": uq.get("name"), "columns": ", ".join(uq["column_names"]), "unique": True})
    fks = [
        {
            "name": fk.get("name"),
            "columns": ", ".join(fk["constrained_columns"]),
            "references": f"{fk['referred_table']}({', '.join(fk['referred_columns'])})",
            "on delete": (fk.get("options") or {}).get("ondelete"),
        }
        for fk in insp.get_foreign_keys(name)
    ]
    return display.TableSchema(
        name,
        display.table(cols, ["name", "type", "nullable", "default", "primary key"], "No columns."),
        display.table(sorted(index_rows.values(), key=lambda r: r["name"] or ""), ["name", "columns", "unique"], "No indexes."),
        display.table(fks, ["name", "columns", "references", "on delete"], "No foreign keys."),
    )


@dataclass(frozen=True)
class Column:
    """A column as a diagram shows it."""

    name: str
    type: str
    nullable: bool = True
    primary_key: bool = False


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key: ``columns`` of the table refer to ``referred_columns`` of ``referred_table``."""

    columns: tuple[str, ...]
    referred_table: str
    referred_columns: tuple[str, ...] = ()
    name: str | None = None


@dataclass(frozen=True)
class Table:
    """A table's columns (in order) and foreign keys: the plain data :mod:`migmagic.diagram` draws."""

    name: str
    columns: tuple[Column, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = field(default=())


def describe(conn: Connection, skip: Collection[str] = ()) -> list[Table]:
    """Every table but the bookkeeping ones (and those in ``skip``), by name: columns (type, nullable, primary key) and foreign keys.

    Read in a few queries (SQLAlchemy's ``get_multi_*``), not a few per table.
    """
    import sqlalchemy as sa

    insp = sa.inspect(conn)
    names = sorted(n for n in insp.get_table_names() if n not in BOOKKEEPING and n not in skip)
    if not names:
        return []
    # Keyed by (schema, table); the default schema only, so by table name.
    columns = {key[1]: value for key, value in insp.get_multi_columns(filter_names=names).items()}
    pks: dict[str, Any] = {key[1]: value for key, value in insp.get_multi_pk_constraint(filter_names=names).items()}
    fks = {key[1]: value for key, value in insp.get_multi_foreign_keys(filter_names=names).items()}
    out = []
    for name in names:
        pk = set((pks.get(name) or {}).get("constrained_columns") or [])
        cols = tuple(
            Column(c["name"], type_text(c["type"], conn.dialect), bool(c.get("nullable", True)), c["name"] in pk)
            for c in columns.get(name, [])
        )
        keys = tuple(
            ForeignKey(tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]), fk.get("name"))
            for fk in fks.get(name, [])
        )
        out.append(Table(name, cols, keys))
    return out


def type_text(type_: Any, dialect: Any) -> str:
    """A column type as the dialect writes it in DDL (its repr when it does not compile there)."""
    try:
        return str(type_.compile(dialect=dialect))
    except Exception:
        return repr(type_)
