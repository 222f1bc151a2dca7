"""Alembic's autogenerate: the models compared with the database, and the revision code it renders."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from alembic.runtime.migration import MigrationContext

from .scripts import quiet

# =========================================================================== autogenerate
#
# Alembic's autogenerate, for ``revision --autogenerate``, ``check`` and
# ``diff``. Only this section touches ``alembic.autogenerate``; the decisions
# (which metadata, which tables, which constraint names) are made in
# :mod:`migmagic.autogen` and passed in as plain callables. Internals used:
# ``AutogenContext``, ``compare._produce_net_changes`` (the comparison without
# building the downgrade) and ``render._render_cmd_body`` (the renderer, so the
# imports the rendered code needs are kept).

NameFilter = Callable[[Any, str, Any], bool]
"""Alembic's ``include_name(name, type_, parent_names)`` hook."""

Namer = Callable[[str, str, Sequence[str], "str | None", bool], "str | None"]
"""``namer(kind, table, columns, referred_table, in_new_table)``: a name for an unnamed
``foreign_key``/``unique``/``check`` constraint the generated code creates, or None."""


@dataclass
class Generated:
    """What autogenerate found and the code it wrote for it."""

    diffs: list[Any]  # Alembic's diff tuples, as compare_metadata returns them
    upgrade: str  # the body of upgrade(), indented by four spaces
    downgrade: str
    imports: list[str]

    @property
    def empty(self) -> bool:
        return not self.diffs


def _autogen_opts(include_name: NameFilter | None, render_as_batch: bool) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "compare_type": True,
        "compare_server_default": True,
        "render_as_batch": render_as_batch,
        "sqlalchemy_module_prefix": "sa.",
        "alembic_module_prefix": "op.",
        "user_module_prefix": None,
    }
    if include_name is not None:
        opts["include_name"] = include_name
    return opts


def _net_changes(connection: Any, metadata: Any, opts: dict[str, Any]) -> tuple[Any, Any]:
    from alembic.autogenerate import compare
    from alembic.autogenerate.api import AutogenContext
    from alembic.operations import ops

    ctx = MigrationContext.configure(connection, opts=opts)
    autogen_context = AutogenContext(ctx, metadata=metadata)
    upgrade_ops = ops.UpgradeOps([])
    compare._produce_net_changes(autogen_context, upgrade_ops)
    return autogen_context, upgrade_ops


def compare_models(connection: Any, metadata: Any, *, include_name: NameFilter | None = None) -> list[Any]:
    """The differences between ``metadata`` and the database, as Alembic's diff tuples.

    Types and server defaults are compared. Same result as ``compare_metadata``
    with those options, without building the downgrade that nobody reads.
    """
    with quiet(), _no_gc_pauses():
        _, upgrade_ops = _net_changes(connection, metadata, _autogen_opts(include_name, False))
        return list(upgrade_ops.as_diffs())


@contextlib.contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector while reflecting.

    Reflection allocates many small objects, which triggers full collections
    that walk the whole kernel heap (models, DataFrames...) again and again;
    the cycles it leaves are collected as usual afterwards.
    """
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def generate(
    connection: Any,
    metadata: Any,
    *,
    include_name: NameFilter | None = None,
    render_as_batch: bool = False,
    namer: Namer | None = None,
) -> Generated:
    """Compare, then render ``upgrade()`` and ``downgrade()`` bodies the way ``alembic revision --autogenerate`` does.

    Unnamed constraints the code creates get the names ``namer`` gives them; the
    downgrade is derived after naming, so it drops them by the same names. The
    user's metadata is left as it was.
    """
    from alembic.autogenerate import render

    with quiet(), _no_gc_pauses():
        autogen_context, upgrade_ops = _net_changes(connection, metadata, _autogen_opts(include_name, render_as_batch))
        diffs = list(upgrade_ops.as_diffs())
        if not diffs:
            return Generated([], "", "", [])
        restore = _name_constraints(upgrade_ops, namer) if namer else []
        try:
            downgrade_ops = upgrade_ops.reverse()
            autogen_context.imports = set()
            up = render._indent(render._render_cmd_body(upgrade_ops, autogen_context))
            down = render._indent(render._render_cmd_body(downgrade_ops, autogen_context))
        finally:
            for constraint, old in restore:
                constraint.name = old
        return Generated(diffs, "    " + up, "    " + down, sorted(autogen_context.imports))


def _walk_ops(container: Any) -> Iterator[Any]:
    for op in container.ops:
        if hasattr(op, "ops"):
            yield from _walk_ops(op)
        else:
            yield op


def _name_constraints(upgrade_ops: Any, namer: Namer) -> list[tuple[Any, Any]]:
    """Give unnamed constraints names, in place; returns what to restore on user objects."""
    import sqlalchemy as sa
    from alembic.operations import ops

    restore: list[tuple[Any, Any]] = []
    op: Any
    for op in _walk_ops(upgrade_ops):
        if isinstance(op, ops.CreateTableOp):
            checks = 0
            for item in op.columns:
                if not isinstance(item, sa.ForeignKeyConstraint | sa.UniqueConstraint | sa.CheckConstraint):
                    continue
                if isinstance(item, sa.CheckConstraint):
                    checks += 1
                if item.name is not None:
                    continue
                if isinstance(item, sa.ForeignKeyConstraint):
                    name = namer("foreign_key", op.table_name, list(item.column_keys), item.referred_table.name, True)
                elif isinstance(item, sa.UniqueConstraint):
                    name = namer("unique", op.table_name, [c.name for c in item.columns], None, True)
                else:
                    name = namer("check", op.table_name, [str(checks)], None, True)
                if name:
                    restore.append((item, item.name))
                    item.name = name
        elif isinstance(op, ops.AddConstraintOp) and getattr(op, "constraint_name", None) is None:
            if isinstance(op, ops.CreateForeignKeyOp):
                name = namer("foreign_key", op.source_table, list(op.local_cols), op.referent_table, False)
            elif isinstance(op, ops.CreateUniqueConstraintOp):
                name = namer("unique", op.table_name, list(op.columns), None, False)
            elif isinstance(op, ops.CreateCheckConstraintOp):
                name = namer("check", op.table_name, ["1"], None, False)
            else:  # pragma: no cover - every AddConstraintOp Alembic produces is above
                name = None
            if name:
                unnamed: Any = op
                unnamed.constraint_name = name
    return restore


