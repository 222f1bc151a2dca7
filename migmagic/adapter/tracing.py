"""Recording a revision's ``op`` calls without running them, with Alembic's operation objects (the data-loss guard's input)."""

from __future__ import annotations

import contextlib
import io
import re
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from alembic.runtime.migration import MigrationContext

from .. import profile
from .scripts import Scripts, Step, _tidy, quiet

# =========================================================================== recording operations
#
# For the data-loss guard (:mod:`migmagic.guard`): a revision's ``upgrade()`` or
# ``downgrade()`` is called with Alembic's ``op`` proxy bound to an
# ``Operations`` whose ``invoke`` records each operation object instead of
# running it; ``batch_alter_table`` yields a ``BatchOperations`` that records
# the same way. The context is offline (no connection): nothing can reach a
# database. What the recorder cannot follow (``op.execute``, ``op.bulk_insert``,
# ``op.get_bind()``, ``op.get_context()``, ``op.run_async``, a custom
# operation) stops the recording of that revision and says why. Internals used:
# ``ModuleClsProxy._install_proxy`` / ``_remove_proxy`` (what
# ``Operations.context`` does, with our instance).


@dataclass(frozen=True)
class TracedOp:
    """One ``op`` call of a revision, recorded, not run.

    ``name`` is Alembic's operation (``drop_table``, ``drop_column``,
    ``alter_column``, ``create_table``, ``add_column``, ``rename_table``, ...);
    ``new_name`` is a renamed table's or column's new name; ``nullable`` the
    ``nullable=`` an ``alter_column`` sets (None: unchanged); ``length`` the
    length of the string type an ``alter_column`` sets (None: no string type
    with a length); ``type`` that type as SQL.
    """

    name: str
    table: str | None
    schema: str | None = None
    column: str | None = None
    new_name: str | None = None
    nullable: bool | None = None
    length: int | None = None
    type: str | None = None
    batch: bool = False
    using: str | None = None  # PostgreSQL: the USING expression an alter_column converts the values with
    new_type: Any = field(default=None, compare=False)  # the SQLAlchemy type an alter_column sets
    existing_type: Any = field(default=None, compare=False)  # the type it says the column has


@dataclass
class TracedStep:
    """A step's operations; ``unfollowed`` says why the recording stopped (None: every call was recorded)."""

    revision: str
    direction: str
    ops: list[TracedOp] = field(default_factory=list)
    unfollowed: str | None = None


class _Unfollowable(Exception):
    pass


_DATA_OPS = {"ExecuteSQLOp": "op.execute", "BulkInsertOp": "op.bulk_insert"}


def _as_traced(operation: Any, batch: bool, dialect_name: str) -> TracedOp:
    from alembic.operations import ops

    schema = getattr(operation, "schema", None)
    table = getattr(operation, "table_name", None)
    if isinstance(operation, ops.DropColumnOp):
        return TracedOp("drop_column", table, schema, operation.column_name, batch=batch)
    if isinstance(operation, ops.AddColumnOp):
        return TracedOp("add_column", table, schema, operation.column.name, batch=batch)
    if isinstance(operation, ops.RenameTableOp):
        return TracedOp("rename_table", table, schema, new_name=operation.new_table_name)
    if isinstance(operation, ops.AlterColumnOp):
        new_type = operation.modify_type
        if isinstance(new_type, type):  # type_=sa.Integer, not sa.Integer()
            new_type = new_type()
        length = getattr(new_type, "length", None) if new_type is not None else None
        shown = None
        if new_type is not None:
            try:
                shown = str(new_type.compile(dialect=_dialect(dialect_name)))
            except Exception:  # a type this dialect cannot render: as SQLAlchemy names it
                shown = repr(new_type)
        return TracedOp(
            "alter_column", table, schema, operation.column_name, new_name=operation.modify_name,
            nullable=operation.modify_nullable, length=length if isinstance(length, int) else None, type=shown, batch=batch,
            using=_using(operation, dialect_name), new_type=new_type, existing_type=operation.existing_type,
        )
    name = {"DropTableOp": "drop_table", "CreateTableOp": "create_table"}.get(type(operation).__name__)
    if name is None:
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", type(operation).__name__.removesuffix("Op")).lower()
    return TracedOp(name, table, schema, batch=batch)


def _using(operation: Any, dialect_name: str) -> str | None:
    """The ``postgresql_using=`` expression of an ``alter_column`` on PostgreSQL (Alembic uses it only there)."""
    using = operation.kw.get("postgresql_using") if dialect_name == "postgresql" else None
    return None if using is None else str(using)


def _dialect(name: str) -> Any:
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    return {"sqlite": sqlite, "postgresql": postgresql, "mysql": mysql, "mariadb": mysql}.get(name, sqlite).dialect()


def trace_operations(scripts: Scripts, steps: Sequence[Step], dialect_name: str) -> list[TracedStep]:
    """The ``op`` calls of each upgrade or downgrade step, recorded without running them (stamps are skipped).

    A step whose code reads or writes data itself, or raises while recorded,
    has ``unfollowed`` set and the operations recorded before that point.
    """
    from alembic.operations import BatchOperations, Operations, ops

    with quiet():  # Alembic logs the offline context it makes
        ctx = MigrationContext.configure(dialect_name=dialect_name, opts={"as_sql": True, "output_buffer": io.StringIO()})
    out: list[TracedStep] = []
    for step in steps:
        if step.direction not in ("upgrade", "downgrade") or step.revision not in scripts:
            continue
        recorded = TracedStep(step.revision, step.direction)
        out.append(recorded)

        def stop(why: str, recorded: TracedStep = recorded) -> Any:
            recorded.unfollowed = recorded.unfollowed or why
            raise _Unfollowable(why)

        def recorder(batch: bool, recorded: TracedStep = recorded) -> Callable[[Any], Any]:
            def invoke(operation: Any) -> Any:
                kind = type(operation).__name__
                if kind in _DATA_OPS:
                    stop(f"it reads or writes data itself ({_DATA_OPS[kind]})")
                if type(operation).__module__ != ops.__name__:
                    stop(f"it calls a custom operation ({kind})")
                recorded.ops.append(_as_traced(operation, batch, dialect_name))
                return operation.to_table(ctx) if isinstance(operation, ops.CreateTableOp) else None

            return invoke

        operations = Operations(ctx)

        @contextlib.contextmanager
        def batch_alter_table(table_name: str, schema: str | None = None, **kw: Any) -> Iterator[Any]:
            given = [name for name in ("copy_from", "reflect_args") if kw.get(name) is not None and not (isinstance(kw[name], tuple | list) and not kw[name])]
            if given:  # the table is made again from that definition: what it leaves out is not copied
                stop(f"its batch_alter_table({given[0]}=...) recreates {table_name} from a definition of its own")
            batch = BatchOperations(ctx, impl=types.SimpleNamespace(table_name=table_name, schema=schema))  # type: ignore[arg-type]
            batch.invoke = recorder(True)  # type: ignore[method-assign,assignment]
            yield batch

        overrides: dict[str, Any] = {
            "invoke": recorder(False),
            "batch_alter_table": batch_alter_table,
            "get_bind": lambda: stop("it reads or writes data itself (op.get_bind())"),
            "get_context": lambda: stop("it uses the migration context itself (op.get_context())"),
            "run_async": lambda *a, **k: stop("it runs code on the connection itself (op.run_async)"),
        }
        for name, value in overrides.items():
            setattr(operations, name, value)
        module = scripts.directory.revision_map.get_revision(step.revision).module  # type: ignore[union-attr]
        fn = getattr(module, step.direction, None)
        if fn is None:
            recorded.unfollowed = f"it has no {step.direction}()"
            continue
        why = profile.of(scripts.info(step.revision).source, step.direction).not_plain
        if why:  # the revision's own code is not run twice just to look at it
            recorded.unfollowed = why
            continue
        operations._install_proxy()
        try:
            with quiet(), contextlib.redirect_stdout(io.StringIO()):
                fn()
        except _Unfollowable:
            pass
        except Exception as exc:
            recorded.unfollowed = recorded.unfollowed or f"it raised {type(exc).__name__} when recorded: {_tidy(exc)}"
        finally:
            operations._remove_proxy()
    return out


