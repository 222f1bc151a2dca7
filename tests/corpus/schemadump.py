"""A database's schema as one comparable value: what plain Alembic and migmagic must both build.

Tables, columns (name, type as the database reports it, nullable, default), primary
keys, foreign keys, indexes, unique and check constraints, views, triggers, enum types
(PostgreSQL), the version table's rows and each table's row count. migmagic's own
``migmagic_*`` tables are left out.
"""

from __future__ import annotations

from typing import Any


def _type(column: dict[str, Any], dialect: Any) -> str:
    try:
        return str(column["type"].compile(dialect=dialect))
    except Exception:
        return repr(column["type"])


def _triggers(conn: Any) -> list[str]:
    import sqlalchemy as sa

    name = conn.dialect.name
    if name == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    elif name == "postgresql":
        sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    else:
        sql = "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"
    return sorted(r[0] for r in conn.execute(sa.text(sql)) if not r[0].startswith("migmagic"))


def schema_of(url: str) -> dict[str, Any]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            insp = sa.inspect(conn)
            dialect = conn.dialect
            out: dict[str, Any] = {"tables": {}, "views": sorted(insp.get_view_names()), "triggers": _triggers(conn)}
            if dialect.name == "postgresql":
                out["enums"] = sorted((e["name"], tuple(e["labels"])) for e in insp.get_enums())  # type: ignore[attr-defined]
            for t in sorted(insp.get_table_names()):
                if t.startswith("migmagic_"):
                    continue
                quoted = dialect.identifier_preparer.quote(t)
                try:
                    checks = sorted((c.get("name") or "", " ".join(str(c["sqltext"]).split())) for c in insp.get_check_constraints(t))
                except NotImplementedError:
                    checks = []
                out["tables"][t] = {
                    "columns": [
                        (c["name"], _type(c, dialect), c["nullable"], str(c.get("default"))) for c in insp.get_columns(t)
                    ],
                    "pk": (insp.get_pk_constraint(t).get("name"), insp.get_pk_constraint(t)["constrained_columns"]),
                    "fks": sorted(
                        (fk["name"] or "", tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]), repr(sorted(fk.get("options", {}).items())))
                        for fk in insp.get_foreign_keys(t)
                    ),
                    "indexes": sorted(
                        (ix["name"] or "", repr(ix["column_names"]), bool(ix["unique"]), repr(ix.get("expressions"))) for ix in insp.get_indexes(t)
                    ),
                    "uniques": sorted((u["name"] or "", tuple(u["column_names"])) for u in insp.get_unique_constraints(t)),
                    "checks": checks,
                    "rows": conn.execute(sa.text(f"SELECT COUNT(*) FROM {quoted}")).scalar(),
                }
            if "alembic_version" in out["tables"]:
                out["version"] = sorted(r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version")))
            return out
    finally:
        engine.dispose()
