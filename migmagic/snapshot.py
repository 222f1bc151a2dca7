"""A database's schema as a value, normalised per dialect, and the difference of two.

:func:`take` reads tables, columns (type, nullability, default), the primary
key, indexes, unique constraints, foreign keys and CHECK constraints with
SQLAlchemy's inspector, and :func:`compare` says what differs, one
:class:`Change` per thing. What the databases report differently for the same
schema is normalised away, so a round trip that restored the schema compares
equal:

* defaults: SQLite's extra parentheses (``('0')``), PostgreSQL's ``::type``
  casts (``'a'::character varying``), MariaDB's ``current_timestamp()`` and
  quoted ``NULL`` are stripped; keywords compare case-insensitively;
* indexes that only back a unique constraint (MariaDB, PostgreSQL) are dropped:
  the constraint is compared;
* indexes, constraints and foreign keys are compared as sets (sorted);
* column order is reported as its own change, a note rather than a defect.

Alembic's and migmagic's bookkeeping tables are left out. Nothing here imports
Alembic; SQLAlchemy is imported inside functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .schema import BOOKKEEPING, type_text

if TYPE_CHECKING:
    from collections.abc import Collection

    from sqlalchemy.engine import Connection

Column = tuple[str, bool, "str | None"]  # type, nullable, default (normalised)
Index = tuple[str, tuple[str, ...], bool]  # name, columns, unique
Unique = tuple[str, tuple[str, ...]]
ForeignKey = tuple[str, tuple[str, ...], str, tuple[str, ...], str]  # name, columns, referred table, referred columns, options
Check = tuple[str, str]  # name, normalised SQL


@dataclass(frozen=True)
class TableShape:
    """One table as compared: everything :func:`compare` looks at."""

    columns: dict[str, Column]
    order: tuple[str, ...]
    primary_key: tuple[str, ...]
    indexes: frozenset[Index]
    uniques: frozenset[Unique]
    foreign_keys: frozenset[ForeignKey]
    checks: frozenset[Check]


@dataclass(frozen=True)
class Snapshot:
    """A database's schema: its tables (bookkeeping left out) and, on PostgreSQL, its enum types."""

    dialect: str
    tables: dict[str, TableShape]
    types: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Change:
    """One difference: ``what`` changed (``add column``...), where, from what to what.

    ``note`` marks a difference that is not a defect of a round trip (column order).
    """

    what: str
    table: str
    name: str | None
    before: str | None
    after: str | None
    note: bool = False

    def sentence(self) -> str:
        """The change as ``verify`` words it (``before`` is the schema a downgrade should restore).

        For example ``unique constraint uq_x on t not restored``, ``index ix_y on t
        left behind``, ``default of created_at on t lost``.
        """
        where = f" on {self.table}" if self.table and not self.what.startswith("table") else ""
        kind, _, verb = self.what.rpartition(" ")
        if verb == "removed":
            return f"{kind} {self.name}{where} not restored"
        if verb == "added":
            return f"{kind} {self.name}{where} left behind"
        if self.what == "column order":
            return f"column order of {self.table} not restored: {self.after} instead of {self.before}"
        if self.what == "default of column" and self.after is None:
            return f"default of {self.name}{where} lost (was {self.before})"
        what = kind if verb == "changed" else self.what
        subject = f"{what} {self.name}" if self.name else what
        return f"{subject}{where} not restored: {self.after} instead of {self.before}"


# --------------------------------------------------------------------------- reading


def take(conn: Connection, skip: Collection[str] = ()) -> Snapshot:
    """The schema of the database on ``conn`` (inside the caller's transaction); ``skip``: bookkeeping tables of the folder's own (its version table)."""
    import sqlalchemy as sa

    insp = sa.inspect(conn)
    dialect = conn.dialect
    names = sorted(n for n in insp.get_table_names() if n not in BOOKKEEPING and n not in skip)
    tables: dict[str, TableShape] = {}
    for name in names:
        cols = insp.get_columns(name)
        uniques = insp.get_unique_constraints(name)
        unique_names = {u.get("name") for u in uniques}
        indexes = [
            ix for ix in insp.get_indexes(name)
            if not ix.get("duplicates_constraint") and not (ix.get("unique") and ix.get("name") in unique_names and dialect.name != "sqlite")
        ]
        try:
            checks = insp.get_check_constraints(name)
        except NotImplementedError:  # pragma: no cover - every supported dialect reflects them
            checks = []
        tables[name] = TableShape(
            columns={c["name"]: (type_text(c["type"], dialect).lower(), bool(c.get("nullable", True)), normal_default(c.get("default"))) for c in cols},
            order=tuple(c["name"] for c in cols),
            primary_key=tuple(insp.get_pk_constraint(name).get("constrained_columns") or ()),
            indexes=frozenset((ix.get("name") or "", tuple(str(c) for c in ix["column_names"]), bool(ix.get("unique"))) for ix in indexes),
            uniques=frozenset((u.get("name") or "", tuple(u["column_names"])) for u in uniques),
            foreign_keys=frozenset(
                (fk.get("name") or "", tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]), _options(fk.get("options")))
                for fk in insp.get_foreign_keys(name)
            ),
            checks=frozenset((c.get("name") or "", normal_sql(c.get("sqltext") or "")) for c in checks if not _is_implicit_check(c, dialect.name)),
        )
    types: frozenset[str] = frozenset()
    if dialect.name == "postgresql":
        types = frozenset(e["name"] for e in insp.get_enums())  # type: ignore[attr-defined]
    return Snapshot(dialect.name, tables, types)


def _options(options: Any) -> str:
    shown = {k: str(v).upper() for k, v in (options or {}).items() if v and str(v).upper() not in ("NO ACTION", "RESTRICT")}
    return ", ".join(f"{k} {v}" for k, v in sorted(shown.items()))


def _is_implicit_check(check: Any, dialect: str) -> bool:
    """MariaDB reports a JSON column's ``json_valid`` check as a constraint of its own."""
    return dialect in ("mysql", "mariadb") and "json_valid" in str(check.get("sqltext", "")).lower()


_QUOTED = re.compile(r"('(?:[^']|'')*')")


def _outside_quotes(text: str, fn: Any) -> str:
    parts = _QUOTED.split(text)
    return "".join(p if i % 2 else fn(p) for i, p in enumerate(parts))


def normal_default(default: Any) -> str | None:
    """A column default as reflected, normalised so the same default compares equal on one database."""
    if default is None:
        return None
    text = str(default).strip()
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    text = _outside_quotes(text, lambda p: re.sub(r"::[a-z_ ]+(\(\d+(,\s*\d+)?\))?(\[\])?", "", p.lower()))
    text = re.sub(r"\bcurrent_timestamp\(\)", "current_timestamp", text)
    text = re.sub(r"\bnow\(\)", "current_timestamp", text)
    if text.lower() == "null":
        return None
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for ch in _QUOTED.sub("", text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def normal_sql(text: str) -> str:
    """A CHECK's SQL with whitespace, outer parentheses, casts and backquotes normalised."""
    text = " ".join(str(text).replace("`", "").replace('"', "").split())
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return _outside_quotes(text, lambda p: re.sub(r"::[a-z_ ]+", "", p.lower()))


# --------------------------------------------------------------------------- comparing


def compare(before: Snapshot, after: Snapshot) -> list[Change]:
    """What differs from ``before`` to ``after``, table by table (notes last within a table)."""
    changes: list[Change] = []
    for name in sorted(set(before.tables) | set(after.tables)):
        old, new = before.tables.get(name), after.tables.get(name)
        if old is None:
            assert new is not None
            changes.append(Change("table added", name, name, None, ", ".join(new.order)))
        elif new is None:
            changes.append(Change("table removed", name, name, ", ".join(old.order), None))
        else:
            changes += _table_changes(name, old, new)
    for t in sorted(before.types - after.types):
        changes.append(Change("type removed", "", t, t, None))
    for t in sorted(after.types - before.types):
        changes.append(Change("type added", "", t, None, t))
    return changes


def _column_text(col: Column) -> str:
    type_, nullable, default = col
    return type_ + ("" if nullable else " NOT NULL") + (f" DEFAULT {default}" if default is not None else "")


def _table_changes(table: str, old: TableShape, new: TableShape) -> list[Change]:
    out: list[Change] = []
    for col in old.order:
        if col not in new.columns:
            out.append(Change("column removed", table, col, _column_text(old.columns[col]), None))
    for col in new.order:
        if col not in old.columns:
            out.append(Change("column added", table, col, None, _column_text(new.columns[col])))
    for col in old.order:
        if col not in new.columns:
            continue
        (t0, n0, d0), (t1, n1, d1) = old.columns[col], new.columns[col]
        if t0 != t1:
            out.append(Change("type of column", table, col, t0, t1))
        if n0 != n1:
            out.append(Change("nullability of column", table, col, "NULL" if n0 else "NOT NULL", "NULL" if n1 else "NOT NULL"))
        if d0 != d1:
            out.append(Change("default of column", table, col, d0, d1))
    if old.primary_key != new.primary_key:
        out.append(Change("primary key", table, None, ", ".join(old.primary_key), ", ".join(new.primary_key)))
    out += _set_changes("index", table, old.indexes, new.indexes, lambda i: f"({', '.join(i[1])})" + (" unique" if i[2] else ""))
    out += _set_changes("unique constraint", table, old.uniques, new.uniques, lambda u: f"({', '.join(u[1])})")
    out += _set_changes("foreign key", table, old.foreign_keys, new.foreign_keys, lambda f: f"({', '.join(f[1])}) -> {f[2]}({', '.join(f[3])})" + (f" {f[4]}" if f[4] else ""))
    out += _set_changes("check constraint", table, old.checks, new.checks, lambda c: c[1])
    kept_old = [c for c in old.order if c in new.columns]
    kept_new = [c for c in new.order if c in old.columns]
    if kept_old != kept_new:
        out.append(Change("column order", table, None, ", ".join(kept_old), ", ".join(kept_new), note=True))
    return out


def _set_changes(kind: str, table: str, old: frozenset[Any], new: frozenset[Any], text: Any) -> list[Change]:
    """Items of a set that appear, disappear, or keep their name and change."""
    out: list[Change] = []
    old_by = {_key(i): i for i in old}
    new_by = {_key(i): i for i in new}
    for key in sorted(old_by.keys() | new_by.keys()):
        a, b = old_by.get(key), new_by.get(key)
        label = a[0] if a is not None else b[0] if b is not None else ""
        shown = label or None
        if a is not None and b is None:
            out.append(Change(f"{kind} removed", table, shown or text(a), text(a), None))
        elif b is not None and a is None:
            out.append(Change(f"{kind} added", table, shown or text(b), None, text(b)))
        elif a != b:
            out.append(Change(f"{kind} changed", table, shown, text(a), text(b)))
    return out


def _key(item: tuple[Any, ...]) -> tuple[Any, ...]:
    """Named items are matched by name; unnamed ones by what they are."""
    return (item[0],) if item[0] else ("", *item[1:])


# --------------------------------------------------------------------------- rows


def row_counts(conn: Connection, skip: Collection[str] = ()) -> dict[str, int]:
    """Rows per table (bookkeeping tables left out, and those in ``skip``)."""
    import sqlalchemy as sa

    names = sorted(n for n in sa.inspect(conn).get_table_names() if n not in BOOKKEEPING and n not in skip)
    return {n: int(conn.execute(sa.select(sa.func.count()).select_from(sa.table(n))).scalar() or 0) for n in names}
