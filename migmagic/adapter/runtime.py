"""Alembic's runtime: running a plan's steps on a connection, and the version table by Alembic's own bookkeeping."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import HeadMaintainer, MigrationContext
from alembic.util import CommandError

from .configured import Environment
from .scripts import Scripts, Step, _config, quiet

# --------------------------------------------------------------------------- running


def current_heads(connection: Any, environment: Environment | None = None) -> tuple[str, ...]:
    """The revisions in the database's version table (empty when there is none); ``environment``: the folder's (its version table)."""
    with quiet():
        ctx = MigrationContext.configure(connection, opts=environment.version_opts if environment else {})
        return tuple(ctx.get_current_heads())


def run_steps(
    connection: Any,
    scripts: Scripts,
    steps: Sequence[Step],
    *,
    on_step: Callable[[Step], None],
    transaction_per_migration: bool,
    purge: bool = False,
    on_start: Callable[[Step], None] | None = None,
    on_autocommit: Callable[[bool], None] | None = None,
) -> None:
    """Run ``steps`` (a plan made by :meth:`Scripts.plan`) on ``connection``, the way ``env.py`` would.

    ``on_start`` is called before each step's first statement (before Alembic
    begins its per-step transaction); ``on_step`` on the same connection right
    after each step's version-table update, with the step's ``warnings`` and
    ``heads_after`` (the version table then, as Alembic's own bookkeeping left it)
    filled in. Transactions are the caller's, except that with
    ``transaction_per_migration`` Alembic commits after every step.

    Where the caller's transaction holds the whole command, a revision's
    ``op.get_context().autocommit_block()`` works as in Alembic: the transaction
    so far commits, the block's statements run in autocommit mode, and a new
    transaction begins after it. ``on_autocommit(True)`` is called just before
    that commit, ``on_autocommit(False)`` once the new transaction has begun.
    """
    done = 0
    seen = 0

    def fn(_heads: Any, _ctx: Any) -> Iterator[Any]:
        for s in steps:  # Alembic takes each step when the one before is done
            if on_start is not None:
                on_start(s)
            yield s._alembic

    def on_version_apply(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        nonlocal done, seen
        step = steps[done]
        done += 1
        step.warnings = list(dict.fromkeys(" ".join(str(w.message).split()) for w in warned[seen:]))
        step.heads_after = _ordered(heads, step)
        seen = len(warned)
        on_step(step)

    with quiet() as warned, _bound_version_statements():
        if steps or purge:
            with EnvironmentContext(_config(scripts.folder), scripts.directory, fn=fn, purge=purge) as env:
                env.configure(
                    **scripts.environment.applied,  # what the folder's own env.py configures, where migmagic applies it
                    connection=connection,
                    transactional_ddl=None if transaction_per_migration else True,
                    transaction_per_migration=transaction_per_migration,
                    on_version_apply=on_version_apply,
                    render_as_batch=connection.dialect.name == "sqlite",
                )
                if not transaction_per_migration and connection.in_transaction():
                    _own_transaction(env.get_context(), connection, on_autocommit)
                with env.begin_transaction():
                    env.run_migrations()


def _ordered(heads: Any, step: Step) -> tuple[str, ...]:
    """Alembic's set of heads as a tuple in a stable order (the step's own revision last)."""
    rest = sorted(h for h in heads if h != step.revision)
    return (*rest, step.revision) if step.revision in heads else tuple(rest)


class _Counted(HeadMaintainer):
    """Alembic's version-table bookkeeping, counting instead of executing: what the table holds after some steps."""

    def _insert_version(self, version: str) -> None:
        assert version not in self.heads
        self.heads.add(version)

    def _delete_version(self, version: str) -> None:
        self.heads.remove(version)

    def _update_version(self, from_: str, to_: str) -> None:
        assert to_ not in self.heads
        self.heads.remove(from_)
        self.heads.add(to_)


def heads_after(heads: Sequence[str], steps: Sequence[Step]) -> tuple[str, ...]:
    """The version table after ``steps`` ran on a database at ``heads``, by Alembic's own rules (its ``HeadMaintainer``).

    migmagic never decides what the version table holds: failure reports, ``repair``
    and the position of a run are all this, or what Alembic's runtime reported.
    """
    counted = _Counted(None, heads)  # type: ignore[arg-type]  # the context is only used to execute, which this does not
    result: tuple[str, ...] = tuple(heads)
    for step in steps:
        if step._alembic is None:
            continue
        counted.update_to_step(step._alembic)
        result = _ordered(counted.heads, step)
    return result


def step_of(scripts: Scripts, rev: str, direction: str) -> Step:
    """A :class:`Step` of ``rev`` in ``direction`` that is not part of a plan (``repair`` records it as done)."""
    from alembic.runtime.migration import RevisionStep

    info = scripts.info(rev)
    alembic_step = RevisionStep(scripts.directory.revision_map, scripts.directory.get_revision(rev), direction == "upgrade")
    return Step(info.id, info.message, direction, info.checksum, _alembic=alembic_step)


def version_statements(connection: Any, heads: Sequence[str], target: Sequence[str], environment: Environment | None = None) -> None:
    """Set the version table from ``heads`` to ``target`` with the statements Alembic's bookkeeping uses (one row per head)."""
    with quiet():
        ctx = MigrationContext.configure(connection, opts=environment.version_opts if environment else {})
        compiled = _version_statements(ctx)
        for gone in [h for h in heads if h not in target]:
            connection.exec_driver_sql(*_version_call(compiled["delete"], {"old": gone}))
        for added in [h for h in target if h not in heads]:
            connection.exec_driver_sql(*_version_call(compiled["insert"], {"new": added}))


def _version_statements(ctx: MigrationContext) -> dict[str, Any]:
    """The version table's three statements, compiled once for ``ctx``'s dialect, the ids as parameters."""
    import sqlalchemy as sa

    t = ctx._version
    statements = {
        "insert": t.insert().values(version_num=sa.bindparam("new")),
        "delete": t.delete().where(t.c.version_num == sa.bindparam("old")),
        "update": t.update().where(t.c.version_num == sa.bindparam("old")).values(version_num=sa.bindparam("new")),
    }
    return {k: v.compile(dialect=ctx.dialect) for k, v in statements.items()}


def _version_call(compiled: Any, params: dict[str, str]) -> tuple[str, Any]:
    """``compiled``'s SQL and its parameters in the driver's style."""
    values = compiled.construct_params(params)
    args: Any = tuple(values[k] for k in compiled.positiontup) if compiled.positional and compiled.positiontup is not None else values
    return compiled.string, args


def _own_transaction(ctx: MigrationContext, connection: Any, on_autocommit: Callable[[bool], None] | None) -> None:
    """Let Alembic's ``autocommit_block()`` end the transaction migmagic began (internals: ``_transaction``).

    Alembic commits only a transaction it began itself; migmagic begins the
    command's transaction outside Alembic, so it hands that transaction over, and
    wraps the block to tell the caller when it commits and when the next one began.
    """
    ctx._transaction = connection.get_transaction()
    original = ctx.autocommit_block

    @contextlib.contextmanager
    def autocommit_block() -> Iterator[None]:
        if on_autocommit is not None:
            on_autocommit(True)
        with original():
            yield
        if on_autocommit is not None:
            on_autocommit(False)

    ctx.autocommit_block = autocommit_block  # type: ignore[method-assign]


class _BoundHeadMaintainer(HeadMaintainer):
    """Alembic's version-table bookkeeping, with the revision ids sent as parameters.

    Alembic writes each id into the statement as a literal (for its offline
    mode), so SQLAlchemy compiles every one of them anew. Here the three
    statements are compiled once per run and sent with ``exec_driver_sql``, the
    ids as parameters: the same statements, rows and check (one row matched,
    where the driver counts rows); which of them a step needs is Alembic's
    decision, unchanged.
    """

    def _run(self, name: str, params: dict[str, str]) -> int:
        compiled = getattr(self, "_migmagic_compiled", None)
        if compiled is None:
            compiled = self._migmagic_compiled = _version_statements(self.context)
        statement, args = _version_call(compiled[name], params)
        conn = self.context.connection
        assert conn is not None
        # Through exec_driver_sql: nothing compiled again, and the connection's cursor events see it.
        return int(conn.exec_driver_sql(statement, args).rowcount)

    def _insert_version(self, version: str) -> None:
        if self.context.as_sql:
            return super()._insert_version(version)
        assert version not in self.heads
        self.heads.add(version)
        self._run("insert", {"new": version})

    def _delete_version(self, version: str) -> None:
        if self.context.as_sql:
            return super()._delete_version(version)
        self.heads.remove(version)
        self._one_row(self._run("delete", {"old": version}), f"deleting '{version}'")

    def _update_version(self, from_: str, to_: str) -> None:
        if self.context.as_sql:
            return super()._update_version(from_, to_)
        assert to_ not in self.heads
        self.heads.remove(from_)
        self.heads.add(to_)
        self._one_row(self._run("update", {"old": from_, "new": to_}), f"updating '{from_}' to '{to_}'")

    def _one_row(self, rowcount: int, what: str) -> None:
        if self.context.dialect.supports_sane_rowcount and rowcount != 1:
            raise CommandError(
                f"Online migration expected to match one row when {what} in '{self.context.version_table}'; {rowcount} found"
            )


@contextlib.contextmanager
def _bound_version_statements() -> Iterator[None]:
    """Alembic's runtime uses :class:`_BoundHeadMaintainer` while the block runs (put back after)."""
    from alembic.runtime import migration

    original = migration.HeadMaintainer
    migration.HeadMaintainer = _BoundHeadMaintainer  # type: ignore[misc]
    try:
        yield
    finally:
        migration.HeadMaintainer = original  # type: ignore[misc]


