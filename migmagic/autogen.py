"""From models to migrations: ``revision --autogenerate``, ``check`` and ``diff``.

The database is compared with the SQLAlchemy metadata of the notebook: the one
``MetaData`` (or declarative base, Flask-SQLAlchemy ``db``, SQLModel) in the user
namespace, or the one named with ``--metadata`` (found by :mod:`migmagic.models`). Alembic's autogenerate does the comparing and rendering
(through :mod:`migmagic.adapter`); this module decides what is compared and
how the generated code names things:

* ``alembic_version``, ``migmagic_ledger`` and ``migmagic_journal`` are never compared;
* tables the metadata does not know (say, written by ``DataFrame.to_sql``) are
  left alone, and said to be, unless ``include_unmanaged`` asks to drop them;
* on SQLite the code uses batch operations, and constraints the models leave
  unnamed get deterministic names (``fk_<table>_<columns>_<referred table>``,
  ``uq_<table>_<columns>``, ``ck_<table>_<n>``) so batch mode can create and
  later drop them; on every database a constraint added to an existing table
  gets such a name, so the downgrade can drop it. A naming convention on the
  metadata rules over all of this.

SQLAlchemy is imported inside functions: nothing here loads on ``%load_ext``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import display, models, revisionfile, state
from .errors import Fix, MetadataError, NotAtHead, PendingModelChanges
from .folder import unchanged
from .schema import BOOKKEEPING, type_text

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import MetaData

    from .adapter import Scripts
    from .database import Database
    from .folder import Folder

SKIPPED_TABLES = frozenset(BOOKKEEPING)
"""Bookkeeping tables: never compared, never proposed for dropping."""

DIFF_COLUMNS = ["what", "table", "column", "from", "to"]

# --------------------------------------------------------------------------- finding the metadata


def resolve_metadata(metadata: Any, namespace: Mapping[str, Any] | None, folder: Folder | None = None) -> MetaData:
    """The models to compare with: ``metadata`` (an object, a notebook name, ``module:attribute``),
    else the models the folder names (``%migrate init --metadata myapp.models:Base``), else the one
    in ``namespace``; see :mod:`migmagic.models`."""
    from .settings import folder_metadata

    spec = folder_metadata(folder.path) if metadata is None and folder is not None else None
    return models.resolve(metadata, namespace, spec)


# --------------------------------------------------------------------------- what is compared


class TableFilter:
    """Alembic's ``include_name`` hook: which database tables take part in the comparison.

    Tables the metadata knows always do; bookkeeping tables never; other tables
    only with ``include_unmanaged`` (otherwise they are noted in :attr:`left_alone`).
    """

    def __init__(self, metadata: MetaData, include_unmanaged: bool = False) -> None:
        self.known = set(metadata.tables)
        self.include_unmanaged = include_unmanaged
        self.left_alone: list[str] = []

    def __call__(self, name: Any, type_: str, parent_names: Mapping[str, Any]) -> bool:
        if type_ != "table":
            return True
        if name in SKIPPED_TABLES:
            return False
        schema = parent_names.get("schema_name")
        key = f"{schema}.{name}" if schema else name
        if key in self.known or self.include_unmanaged:
            return True
        self.left_alone.append(str(name))
        return False

    def note(self) -> str | None:
        if not self.left_alone:
            return None
        names = sorted(set(self.left_alone))
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        what = "table the models do not know" if len(names) == 1 else "tables the models do not know"
        return f"Left alone {len(names)} {what}: {shown} (--include-unmanaged proposes dropping them)."


_CONVENTION_KEYS = {"foreign_key": ("fk", "ForeignKeyConstraint"), "unique": ("uq", "UniqueConstraint"), "check": ("ck", "CheckConstraint")}
_PREFIX = {"foreign_key": "fk", "unique": "uq", "check": "ck"}


def constraint_namer(metadata: MetaData, dialect_name: str, max_length: int = 63) -> Any:
    """The names generated code gives unnamed constraints (see the module docstring)."""
    convention = metadata.naming_convention or {}
    keys = {k if isinstance(k, str) else getattr(k, "__name__", str(k)) for k in convention}

    def namer(kind: str, table: str, columns: Sequence[str], referred: str | None, in_new_table: bool) -> str | None:
        if keys & set(_CONVENTION_KEYS[kind]):
            return None  # SQLAlchemy names it by the convention
        if in_new_table and dialect_name != "sqlite":
            return None  # the database names it, and reflects that name for a later drop
        parts = [_PREFIX[kind], table, *columns] + ([referred] if referred else [])
        return _fit("_".join(parts), max_length)

    return namer


def _fit(name: str, limit: int) -> str:
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    return f"{name[: limit - 9]}_{digest}"


# --------------------------------------------------------------------------- diffs as rows


def _default_text(value: Any) -> str | None:
    if value is None or value is False:
        return None
    arg = getattr(value, "arg", value)
    text = getattr(arg, "text", arg)
    return str(text)


def _column_text(column: Any, dialect: Any) -> str:
    text = type_text(column.type, dialect)
    if not column.nullable:
        text += " NOT NULL"
    default = _default_text(column.server_default)
    if default is not None:
        text += f" DEFAULT {default}"
    return text


def _cols(names: Sequence[Any]) -> str:
    return ", ".join(str(getattr(c, "name", c)) for c in names)


def _fk_target(fk: Any) -> str:
    return ", ".join(e.target_fullname for e in fk.elements)


def _row(diff: Any, dialect: Any) -> dict[str, Any]:
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        t = diff[1]
        cols = ", ".join(c.name for c in t.columns)
        return {"what": "add table" if kind == "add_table" else "drop table", "table": t.name, "from": None if kind == "add_table" else cols, "to": cols if kind == "add_table" else None}
    if kind in ("add_column", "remove_column"):
        _, _schema, table, column = diff
        text = _column_text(column, dialect)
        add = kind == "add_column"
        return {"what": "add column" if add else "drop column", "table": table, "column": column.name, "from": None if add else text, "to": text if add else None}
    if kind in ("add_index", "remove_index"):
        index = diff[1]
        text = f"{index.name}{' (unique)' if index.unique else ''}"
        add = kind == "add_index"
        return {"what": "add index" if add else "drop index", "table": index.table.name, "column": _cols(index.expressions), "from": None if add else text, "to": text if add else None}
    if kind in ("add_constraint", "remove_constraint"):
        c = diff[1]
        label = {"UniqueConstraint": "unique constraint", "CheckConstraint": "check constraint"}.get(type(c).__name__, "constraint")
        add = kind == "add_constraint"
        text = c.name or "(unnamed)"
        return {"what": f"{'add' if add else 'drop'} {label}", "table": c.table.name, "column": _cols(c.columns), "from": None if add else text, "to": text if add else None}
    if kind in ("add_fk", "remove_fk"):
        fk = diff[1]
        add = kind == "add_fk"
        text = _fk_target(fk)
        return {"what": "add foreign key" if add else "drop foreign key", "table": fk.table.name, "column": _cols(fk.column_keys), "from": None if add else text, "to": text if add else None}
    if kind in ("add_table_comment", "remove_table_comment"):
        t = diff[1]
        old = diff[2] if len(diff) > 2 else t.comment
        return {"what": "change table comment", "table": t.name, "from": old if kind == "add_table_comment" else t.comment, "to": t.comment if kind == "add_table_comment" else None}
    if kind.startswith("modify_"):
        _, _schema, table, column, _existing, old, new = diff
        what = {"modify_type": "change type", "modify_nullable": "change nullable", "modify_default": "change server default", "modify_comment": "change comment"}.get(kind, kind.replace("_", " "))
        if kind == "modify_type":
            old, new = type_text(old, dialect), type_text(new, dialect)
        elif kind == "modify_nullable":
            old, new = ("NULL" if old else "NOT NULL"), ("NULL" if new else "NOT NULL")
        elif kind == "modify_default":
            old, new = _default_text(old), _default_text(new)
        return {"what": what, "table": table, "column": column, "from": old, "to": new}
    return {"what": kind.replace("_", " "), "table": None, "column": None, "from": None, "to": str(diff[1:])}


def diff_rows(diffs: Sequence[Any], dialect: Any) -> list[dict[str, Any]]:
    """Alembic's diff tuples as rows: what, table, column, from, to."""
    rows: list[dict[str, Any]] = []
    for diff in diffs:
        for item in diff if isinstance(diff, list) else [diff]:
            rows.append(_row(item, dialect))
    return rows


def diff_table(diffs: Sequence[Any], dialect: Any) -> pd.DataFrame:
    return display.table(diff_rows(diffs, dialect), DIFF_COLUMNS, "No differences.")


# --------------------------------------------------------------------------- models that do not compile


def _short_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = re.sub(r"Compiler <[^>]*> ", "", text)
    text = re.sub(r"\(Background on this error at: [^)]*\)", "", text).strip()
    return text[:200].rstrip(".")


def check_compiles(metadata: MetaData, dialect: Any) -> None:
    """Refuse models whose tables or indexes cannot be written as DDL for ``dialect``."""
    from sqlalchemy.schema import CreateIndex, CreateTable

    for table in metadata.sorted_tables:
        try:
            CreateTable(table).compile(dialect=dialect)
            for index in table.indexes:
                CreateIndex(index).compile(dialect=dialect)
        except Exception as exc:
            raise MetadataError(
                f"Table {table.name!r} does not compile for {dialect.name}: {_short_error(exc)}.",
                hint=f"Use a type {dialect.name} has, or a variant: sa.JSON().with_variant(...). Nothing was written.",
            ) from None


# --------------------------------------------------------------------------- the commands


def _not_at_head(db: Database, db_heads: Sequence[str], wanted: Sequence[str], action: str) -> NotAtHead:
    where = ", ".join(db_heads) or "base"
    target = ", ".join(wanted) or "base"
    return NotAtHead(
        f"Target database is not up to date: {db.masked_url} is at {where}, the folder's head is {target}; {action} compares with the head.",
        current=db_heads,
        heads=wanted,
        hint="Run {0} first (or name the parent with --head).",
        fixes=[Fix("upgrade", ("head",))],
    )


def revision(
    db: Database,
    folder: Folder,
    message: str,
    *,
    metadata: Any = None,
    namespace: Mapping[str, Any] | None = None,
    include_unmanaged: bool = False,
    head: str | None = None,
    branch_label: str | None = None,
    depends_on: str | None = None,
    rev_id: str | None = None,
) -> display.Autogenerated:
    """``revision --autogenerate``: write the revision that brings the database to the models.

    A revision with this message already in the folder is never overwritten: when
    it is applied, or generates the same code, nothing is written; when the models
    now generate different code, that code is offered (``.cell``) to rewrite it.
    When the models match the database, nothing is written.
    """
    from . import adapter

    message = revisionfile.check_message(message, hint='For example %migrate revision --autogenerate -m "add venues".')
    md = resolve_metadata(metadata, namespace, folder)
    folder.ensure(db.url)
    scripts = folder.scripts()
    existing = scripts.by_message(message)
    parents = existing.down_revisions if existing is not None else folder.parents_for(scripts, head)
    with db.reading() as conn:
        st = state.of(conn, scripts, with_ledger=False)
        at_parents = set(st.heads) == set(parents)
        if existing is None and not at_parents:
            raise _not_at_head(db, st.heads, parents, "autogenerate")
        dialect = conn.dialect
        if existing is not None and st.is_applied(existing.id) and existing.id not in st.heads:
            # Applied, with later revisions on top: Run All passing by. Nothing to compare.
            return display.Autogenerated(f"Revision {existing.id} ({message!r}) is already applied: nothing written.", None, unchanged(existing), None, [])
        check_compiles(md, dialect)
        where = TableFilter(md, include_unmanaged)
        gen = adapter.generate(
            conn, md, include_name=where, render_as_batch=dialect.name == "sqlite", namer=constraint_namer(md, dialect.name, dialect.max_identifier_length or 63)
        )
    notes = [n for n in [where.note()] if n]
    changes = diff_table(gen.diffs, dialect) if gen.diffs else None

    if existing is not None:
        same = unchanged(existing)
        if st.is_applied(existing.id):
            if gen.diffs:
                notes.insert(0, f"The models differ from the database in {len(changes)} way(s) beyond it: autogenerate a new revision with a new message.")  # type: ignore[arg-type]
            return display.Autogenerated(f"Revision {existing.id} ({message!r}) is already applied: nothing written.", changes, same, None, notes)
        if not at_parents:
            return display.Autogenerated(f"Revision {existing.id} ({message!r}) exists: nothing written.", None, same, None, notes)
        body = _body(gen)
        if gen.diffs and not folder.same_body(existing, body):
            notes.insert(0, f"The models now generate different code for {existing.id}: run the %%revision cell with it to rewrite the revision.")
            return display.Autogenerated(f"Revision {existing.id} ({message!r}) exists and was kept: nothing written.", changes, same, revisionfile.cell(message, body), notes)
        return display.Autogenerated(f"Revision {existing.id} ({message!r}) is unchanged: nothing written.", changes, same, None, notes)

    if not gen.diffs:
        return display.Autogenerated(f"No changes: the models match {db.masked_url}. Nothing to generate, nothing written.", None, None, None, notes)
    body = _body(gen)
    written = folder.write_new(scripts, message, body, head=head, branch_label=branch_label, depends_on=depends_on, rev_id=rev_id)
    n = len(changes)  # type: ignore[arg-type]
    summary = f"Wrote revision {written.revision} ({message!r}) to {written.path}: {n} change{'s' if n != 1 else ''} detected."
    return display.Autogenerated(summary, changes, written, revisionfile.cell(message, body), notes)


def _body(gen: Any) -> str:
    """The revision body for what autogenerate rendered: the imports its code needs, then the two functions.

    Alembic collects some imports itself (``from sqlalchemy.dialects import
    postgresql``); the rest are read off the rendered code, since a type from
    another package renders by its module's path without adding one
    (``sqlmodel.sql.sqltypes.AutoString()``). A name no import can bring (a type
    defined in the notebook) is refused: the revision would fail when it runs.
    """
    functions = "\n".join(["def upgrade():", gen.upgrade, "", "", "def downgrade():", gen.downgrade, ""])
    imports = list(dict.fromkeys([*gen.imports, *_missing_imports(functions), *_module_imports(functions)]))
    body = "\n".join([*imports, "", functions]) if imports else functions
    unbound = revisionfile.unbound_name(body)
    if unbound is not None:
        name, line = unbound
        named = re.search(rf"\b{re.escape(name)}(\.\w+)*", body.splitlines()[line - 1])
        what = named.group(0) if named else name
        where = "a type defined in the notebook" if name == "__main__" else "a name no import brings"
        raise MetadataError(
            f"The generated code names {what}, {where}: a revision file cannot import it.",
            hint="Define the type in a module of the project and import it in the notebook from there. Nothing was written.",
        )
    return body


def _missing_imports(code: str) -> list[str]:
    """Imports for names Alembic's renderer leaves unqualified (``Text()`` inside a variant, say)."""
    import sqlalchemy

    known = [name for name in _free_names(code) if hasattr(sqlalchemy, name)]
    return [f"from sqlalchemy import {', '.join(known)}"] if known else []


def _free_names(code: str) -> list[str]:
    import ast
    import builtins

    tree = ast.parse(code)
    bound = {"op", "sa"} | set(dir(builtins))
    bound |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - bound)


def _module_imports(code: str) -> list[str]:
    """``import a.b.c`` for each dotted path ``a.b.c.Name`` the code names whose head ``a`` is a module it never imports.

    The deepest module of the path is imported (``import sqlmodel.sql.sqltypes``
    for ``sqlmodel.sql.sqltypes.AutoString()``), so the name resolves in a fresh
    process whatever the package's ``__init__`` imports.
    """
    import ast
    import sys

    free = set(_free_names(code))
    out: list[str] = []
    for node in ast.walk(ast.parse(code)):
        if not isinstance(node, ast.Attribute):
            continue
        path: list[str] = []
        inner: ast.expr = node
        while isinstance(inner, ast.Attribute):
            path.insert(0, inner.attr)
            inner = inner.value
        if not isinstance(inner, ast.Name) or inner.id not in free:
            continue
        parts = [inner.id, *path]
        modules = [".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in sys.modules]
        if modules and modules[0] == inner.id and inner.id != "__main__":
            out.append(f"import {modules[-1]}")
    # Only the deepest of nested paths: import a.b.c also binds a.
    deepest = sorted(set(out), key=len, reverse=True)
    return sorted(i for i in deepest if not any(o.startswith(i + ".") for o in deepest))


def _compare(db: Database, scripts: Scripts | None, md: MetaData, include_unmanaged: bool) -> tuple[pd.DataFrame, list[str], int]:
    """The differences as a table, the notes, and the number of model tables; with ``scripts``, the database must be at head."""
    from . import adapter

    where = TableFilter(md, include_unmanaged)
    with db.reading() as conn:
        if scripts is not None:
            db_heads = adapter.current_heads(conn, scripts.environment)
            if set(db_heads) != set(scripts.heads):
                raise _not_at_head(db, db_heads, scripts.heads, "check")
        try:
            diffs = adapter.compare_models(conn, md, include_name=where)
        except MetadataError:
            raise
        except Exception as exc:
            from sqlalchemy.exc import CompileError

            if not isinstance(exc, CompileError):
                raise
            raise MetadataError(f"The models do not compile for {conn.dialect.name}: {_short_error(exc)}.") from None
        table = diff_table(diffs, conn.dialect)
    notes = [n for n in [where.note()] if n]
    return table, notes, len(md.tables)


def check(db: Database, folder: Folder, metadata: Any = None, namespace: Mapping[str, Any] | None = None, include_unmanaged: bool = False) -> display.ModelDiff:
    """``check``: pending model changes; raises :class:`PendingModelChanges` when there are any."""
    md = resolve_metadata(metadata, namespace, folder)
    table, notes, n_tables = _compare(db, folder.scripts(), md, include_unmanaged)
    if len(table):
        n = len(table)
        raise PendingModelChanges(
            f"{n} pending model change{'s' if n != 1 else ''}: the models differ from {db.masked_url}.",
            diffs=table,
            hint="Write a revision for them: {0}.",
            fixes=[Fix("revision", options=(("autogenerate", True), ("message", "MESSAGE")))],
        )
    summary = f"No pending model changes: {db.masked_url} matches the models ({n_tables} table{'s' if n_tables != 1 else ''})."
    return display.ModelDiff(summary, table, notes)


def diff(
    db: Database, folder: Folder, metadata: Any = None, namespace: Mapping[str, Any] | None = None, include_unmanaged: bool = False
) -> display.ModelDiff:
    """``diff``: model-versus-database differences as a table; writes nothing."""
    md = resolve_metadata(metadata, namespace, folder)
    table, notes, _ = _compare(db, None, md, include_unmanaged)
    n = len(table)
    if n:
        summary = f"{n} difference{'s' if n != 1 else ''} between the models and {db.masked_url} (nothing written)."
    else:
        summary = f"No differences: {db.masked_url} matches the models."
    return display.ModelDiff(summary, table, notes)
