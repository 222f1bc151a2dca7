"""The only package that speaks to Alembic, split along Alembic's own lines.

* :mod:`.scripts`: the scripts and the revision graph (``alembic.script``);
* :mod:`.runtime`: running steps, the version table (``alembic.runtime``);
* :mod:`.offline`: ``--sql`` and the cell's offline rendering (offline ``MigrationContext``);
* :mod:`.autogenerate`: models against the database (``alembic.autogenerate``);
* :mod:`.tracing`: a revision's operations recorded, not run (``alembic.operations``);
* :mod:`.envpy`: what a project's own ``env.py`` passes to ``context.configure``, learned by running it (``alembic.runtime.environment``), as a value (:mod:`.configured`).

Everything else in migmagic works with the plain objects defined here
(:class:`RevisionInfo`, :class:`Step`, :class:`Scripts`, :class:`TracedOp`) and the
functions below. The Alembic internals relied on are :data:`ALEMBIC_INTERNALS`, complete:
``tests/test_layout.py`` fails on any private Alembic name used that is not in it, and on
any used outside this package. The supported Alembic range is pinned in ``pyproject.toml``.
"""

from __future__ import annotations

from .autogenerate import Generated, NameFilter, Namer, compare_models, generate
from .configured import Environment
from .envpy import learn
from .offline import compile_problem, offline_statements, render_sql, version_table_ddl
from .runtime import current_heads, heads_after, run_steps, step_of, version_statements
from .scripts import (
    ALEMBIC_VERSION,
    LEFTOVER_SUFFIX,
    RevisionInfo,
    ScriptCache,
    Scripts,
    Step,
    _compile,
    quiet,
    translated,
)
from .tracing import TracedOp, TracedStep, trace_operations

ALEMBIC_INTERNALS: dict[str, str] = {
    "ScriptDirectory._load_revisions": "scripts: replaced, to load the scripts from migmagic's code cache",
    "ScriptDirectory._upgrade_revs": "scripts, offline: the plan of an upgrade",
    "ScriptDirectory._downgrade_revs": "scripts, offline: the plan of a downgrade",
    "ScriptDirectory._stamp_revs": "scripts: the plan of a stamp",
    "RevisionMap._get_ancestor_nodes": "scripts: what is applied below the database's heads",
    "HeadMaintainer._insert_version": "runtime: the version-table statements sent with parameters; counted, not run (heads_after)",
    "HeadMaintainer._delete_version": "runtime: as above",
    "HeadMaintainer._update_version": "runtime: as above",
    "MigrationContext._version": "runtime: the version table, its statements compiled once",
    "MigrationContext._transaction": "runtime: the command's transaction handed to Alembic, for autocommit_block()",
    "Operations._install_proxy": "tracing: op calls recorded without running them",
    "Operations._remove_proxy": "tracing: as above",
    "autogenerate.compare._produce_net_changes": "autogenerate: the comparison without building the downgrade",
    "autogenerate.render._render_cmd_body": "autogenerate: the renderer (the imports the rendered code needs kept)",
    "autogenerate.render._indent": "autogenerate: the rendered body indented as Alembic's template does",
}
"""Every private name of Alembic that migmagic uses (``Class._name`` or ``module._name``), and what for."""

__all__ = [
    "ALEMBIC_INTERNALS", "ALEMBIC_VERSION", "LEFTOVER_SUFFIX", "Environment", "learn", "Generated", "NameFilter", "Namer", "TracedOp", "TracedStep",
    "RevisionInfo", "ScriptCache", "Scripts", "Step", "_compile", "compare_models", "compile_problem", "current_heads", "generate",
    "heads_after", "offline_statements", "quiet", "trace_operations", "render_sql", "run_steps", "step_of", "translated", "version_table_ddl",
    "version_statements",
]
