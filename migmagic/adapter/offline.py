"""Alembic's offline (``--sql``) mode: the SQL of a range, a cell's operations compiled, a revision's statements by line."""

from __future__ import annotations

import contextlib
import io
import re
from typing import Any

from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext

from .. import profile
from ..errors import InvalidTarget
from .configured import Environment
from .scripts import Scripts, _config, _tidy, quiet, translated


def version_table_ddl(dialect_name: str, environment: Environment | None = None) -> str:
    """The ``CREATE TABLE alembic_version`` statement Alembic's offline mode writes at the top of a script that starts at base
    (``environment``: the folder's, with the version table its ``env.py`` names)."""
    from sqlalchemy.schema import CreateTable

    with quiet():
        opts = {"as_sql": True, "output_buffer": io.StringIO(), **(environment.version_opts if environment else {})}
        ctx = MigrationContext.configure(dialect_name=dialect_name, opts=opts)
        return str(CreateTable(ctx._version).compile(dialect=ctx.dialect)).strip()


def render_sql(
    scripts: Scripts, dialect_name: str, upgrade: bool, start: str | None, target: str, *, transactional_ddl: bool
) -> tuple[str, bool]:
    """The SQL Alembic's ``--sql`` (offline) mode emits, nothing executed, and whether any step ran.

    With ``transactional_ddl`` the script is wrapped in one BEGIN/COMMIT, as migmagic
    runs it; without (MySQL, MariaDB) there is no transaction to show.
    """
    buf = io.StringIO()
    ran = False

    def fn(heads: Any, _ctx: Any) -> list[Any]:
        nonlocal ran
        revs = scripts.directory._upgrade_revs(target, heads) if upgrade else scripts.directory._downgrade_revs(target, heads)
        ran = ran or bool(revs)
        return revs

    if not upgrade and start is None:
        raise InvalidTarget("The database is at base: there is nothing to downgrade.", hint="Nothing was run.")
    for ref in (start, target):
        if ref:
            scripts.check_target(ref)
    action = f"render SQL for {start + ':' if start else ''}{target}"
    with quiet(), translated(action):
        with EnvironmentContext(
            _config(scripts.folder), scripts.directory, fn=fn, as_sql=True, starting_rev=start, destination_rev=target
        ) as env:
            env.configure(
                **scripts.environment.applied,  # what the folder's own env.py configures, where migmagic applies it
                dialect_name=dialect_name,
                output_buffer=buf,
                transactional_ddl=True if transactional_ddl else None,
                literal_binds=True,
                render_as_batch=dialect_name == "sqlite",
            )
            with env.begin_transaction():
                env.run_migrations()
    return buf.getvalue(), ran


# =========================================================================== rendering a cell offline
#
# ``%%revision`` checks, before anything is written, that the cell's operations
# compile for the session's database: ``sa.String()`` without a length, say, is
# refused on MySQL/MariaDB while the cell is being written, not at upgrade time.
# Only a body of plain ``op`` calls is rendered (the same test as the guard's),
# with Alembic's offline (``--sql``) context: nothing reaches a database.


def compile_problem(body: str, dialect_name: str) -> str | None:
    """Why ``body``'s ``upgrade()`` does not compile for ``dialect_name`` (None: it does, or it is not plain op calls)."""
    from alembic.operations import Operations
    from sqlalchemy.exc import CompileError

    source = "from alembic import op\nimport sqlalchemy as sa\n\n" + body
    try:
        if profile.of(source, "upgrade").not_plain is not None:
            return None
        namespace: dict[str, Any] = {"__name__": "migmagic_cell_check"}
        exec(compile(source, "<%%revision cell>", "exec", dont_inherit=True), namespace)
        upgrade = namespace.get("upgrade")
        if not callable(upgrade):
            return None
        with quiet():
            ctx = MigrationContext.configure(dialect_name=dialect_name, opts={"as_sql": True, "output_buffer": io.StringIO()})
            with Operations.context(ctx):
                upgrade()
    except CompileError as exc:
        text = " ".join(str(exc).split())
        text = re.sub(r"\(Background on this error at: [^)]*\)", "", text).strip()
        return re.sub(r"Compiler <[^>]*> ", "", text).rstrip(".")
    except Exception:  # anything else (batch mode offline, say) is for the real run to say
        return None
    return None


# =========================================================================== a revision's statements, by line
#
# ``%%revision`` and ``%migrate lint`` hand a revision's SQL to a linter
# (:mod:`migmagic.lint`), each statement with the line of the revision that sent
# it. Rendered as the compile check renders a cell (Alembic's offline context,
# nothing reaches a database), for the same bodies, plus ``op.execute`` (its SQL
# is what is linted) and ``op.get_context().autocommit_block()`` (offline it
# emits COMMIT and BEGIN, as Alembic's ``--sql`` does).


def offline_statements(
    source: str, filename: str, dialect_name: str, function: str = "upgrade", *, plain_only: bool = True
) -> list[tuple[int | None, str]] | str:
    """Each statement ``function()`` of revision ``source`` sends to ``dialect_name``, with its line in ``source``; or why it is not rendered.

    ``plain_only``: only a body the compile check would render (a cell not yet
    written); without, any code, as Alembic's ``--sql`` runs it (a revision file).
    ``op`` and ``sa`` are there without imports, as in a ``%%revision`` cell.
    """
    import sys

    from alembic.operations import Operations

    # op.execute and op.get_context() are safe offline: the rest is looked at as the compile check does.
    why = profile.of(source, function).not_offline if plain_only else None
    if why:
        return why
    out: list[tuple[int | None, str]] = []

    class Lines(io.StringIO):
        def write(self, text: str) -> int:
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_filename != filename:
                frame = frame.f_back  # type: ignore[assignment]
            out.append((frame.f_lineno if frame is not None else None, text.strip()))
            return len(text)

    try:
        import sqlalchemy as sa
        from alembic import op

        namespace: dict[str, Any] = {"__name__": "migmagic_offline_statements", "__file__": filename, "op": op, "sa": sa}
        exec(compile(source, filename, "exec", dont_inherit=True), namespace)
        with quiet(), contextlib.redirect_stdout(io.StringIO()):
            ctx = MigrationContext.configure(dialect_name=dialect_name, opts={"as_sql": True, "output_buffer": Lines(), "literal_binds": True})
            with Operations.context(ctx):
                namespace[function]()
    except Exception as exc:
        return f"it raised {type(exc).__name__} when rendered offline: {_tidy(exc)}"
    return [(line, text) for line, text in out if text]
