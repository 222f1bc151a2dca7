"""A project's own ``env.py``: what it passes to ``context.configure``, learned by running it with a recording ``configure``.

migmagic drives Alembic's runtime itself and never runs an adopted folder's ``env.py``
to migrate. What that ``env.py`` configures still shapes how revisions run (Alembic
applies the naming convention of ``target_metadata`` as they run, not only in
autogenerate), so :func:`learn` runs it once, the way the ``alembic`` command would,
with the connection handed in as ``config.attributes["connection"]`` (Alembic's recipe
for sharing a connection), and a ``configure`` that records its arguments and stops
there: nothing of a migration runs (``begin_transaction`` and ``run_migrations`` stop
too, should ``env.py`` carry on). What :data:`~migmagic.adapter.configured.APPLIED` names is then given to the
runtime (:func:`migmagic.adapter.run_steps`, the version table's reads); everything
else it passes, and every statement it ran on the connection first, is said in one
line each (:meth:`Environment.notes`).
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory

from .configured import Environment
from .scripts import _config, quiet

_TRANSACTION = re.compile(r"\s*(BEGIN|COMMIT|ROLLBACK|START\s+TRANSACTION|SAVEPOINT|RELEASE)\b", re.I)


class _Learned(Exception):
    """``env.py`` reached ``configure`` (or went on to run): what it configures is known; nothing more of it runs."""


class _Recording:
    """A ``configure`` that records its arguments and stops ``env.py`` there; ``begin_transaction`` and ``run_migrations`` stop it too."""

    def __init__(self) -> None:
        self.learned: dict[str, Any] | None = None

    def configure(self, *args: Any, **kwargs: Any) -> None:
        if self.learned is None:
            names = ("connection", "url", "dialect_name", "dialect_opts", "transactional_ddl", "transaction_per_migration")
            self.learned = {**dict(zip(names, args, strict=False)), **kwargs}
        raise _Learned

    def stop(self, *args: Any, **kwargs: Any) -> Any:
        raise _Learned

    def environment(self, config: Any, script: Any) -> EnvironmentContext:
        """Alembic's environment for ``env.py``, these three of its methods replaced on the object (what ``context.*`` calls)."""
        env = EnvironmentContext(config, script)
        env.configure = self.configure  # type: ignore[method-assign]
        env.begin_transaction = env.run_migrations = self.stop  # type: ignore[method-assign]
        return env


def _theirs(include_name: Any) -> Any:
    """The project's own ``include_name`` where migmagic's lines (``%migrate init --update-env``) wrapped it; None where there was none."""
    if not getattr(include_name, "__qualname__", "").startswith("_migmagic_leaves_out."):
        return include_name
    cells = dict(zip(include_name.__code__.co_freevars, include_name.__closure__ or (), strict=False))
    return cells["theirs"].cell_contents if "theirs" in cells else include_name


def _is_default(value: Any, default: Any) -> bool:
    try:
        return default is not inspect.Parameter.empty and type(value) is type(default) and bool(value == default)
    except Exception:  # a value whose == is not a plain comparison
        return False


def learn(folder: Path, connection: Any, options: Mapping[str, str] = {}, sys_paths: Sequence[str] = ()) -> Environment:  # noqa: B006 - read only
    """Run ``folder/env.py`` online with ``connection`` handed in, up to its ``context.configure``: what it passes.

    ``options`` are the project's own (its ``alembic.ini``'s ``[alembic]``: ``config.get_main_option``
    reads them), ``sys_paths`` its ``prepend_sys_path`` (on ``sys.path`` while it runs);
    ``sqlalchemy.url`` is the connection's database. No ini file is named, so an ``env.py``
    leaves the kernel's logging alone (``fileConfig`` is called only with one). The
    connection's transaction, if ``env.py`` began one, is rolled back; an ``env.py`` that
    cannot run (its project is not importable here, it needs settings of its own) gives an
    :class:`Environment` whose ``problem`` says why, in one line.
    """
    import sqlalchemy as sa

    config = _config(folder)
    for name, value in options.items():
        if name not in ("script_location", "sqlalchemy.url"):
            config.set_main_option(name, value.replace("%", "%%"))
    config.set_main_option("sqlalchemy.url", connection.engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    config.attributes["connection"] = connection
    statements: list[str] = []

    def heard(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not _TRANSACTION.match(statement):  # the driver's own BEGIN (pysqlite) is not env.py's set-up
            statements.append(" ".join(statement.split()))

    added = [p for p in sys_paths if p not in sys.path]
    sys.path[:0] = added
    sa.event.listen(connection, "before_cursor_execute", heard)
    recording = _Recording()
    script = ScriptDirectory.from_config(config)
    try:
        with quiet(), recording.environment(config, script):
            try:
                script.run_env()
            except _Learned:
                pass
    except (Exception, SystemExit) as exc:
        if recording.learned is None:
            text = " ".join(str(exc).split())
            return Environment(problem=f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__)
    finally:
        for p in added:
            sys.path.remove(p)
        sa.event.remove(connection, "before_cursor_execute", heard)
        if connection.in_transaction():
            connection.rollback()
    if recording.learned is None:
        return Environment(problem="it never called context.configure")
    # What it gives as Alembic's default says nothing (compare_type=True, transaction_per_migration=False); the connection is closed after this.
    defaults = {p.name: p.default for p in inspect.signature(EnvironmentContext.configure).parameters.values()}
    learned = {**recording.learned, "include_name": _theirs(recording.learned.get("include_name"))}
    options = {k: v for k, v in learned.items() if k != "connection" and v is not None and not _is_default(v, defaults.get(k, inspect.Parameter.empty))}
    return Environment(options=options, statements=tuple(statements))
