"""What a folder's own ``env.py`` passes to ``context.configure``, as a value: what migmagic applies of it, and what it says.

Learned by :func:`migmagic.adapter.envpy.learn`; carried by :class:`~migmagic.adapter.Scripts`
(``scripts.environment``) to the runtime, the version table's reads and ``--sql``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

APPLIED = ("target_metadata", "version_table", "version_table_schema", "version_table_pk")
"""The arguments of ``context.configure`` migmagic applies as ``env.py`` gives them."""

_UNSAID = frozenset({"connection", "url", "dialect_name", "dialect_opts", "literal_binds", "as_sql", "output_buffer", "output_encoding"})
"""Arguments that only say which database, or shape ``--sql`` output: nothing to say about them."""

_AUTOGENERATE = frozenset({
    "include_name", "include_object", "include_schemas", "include_symbol", "compare_type", "compare_server_default",
    "render_item", "render_as_batch", "process_revision_directives", "user_module_prefix", "upgrade_token",
    "downgrade_token", "alembic_module_prefix", "sqlalchemy_module_prefix", "template_args", "autogenerate_plugins",
})
"""Arguments that shape Alembic's autogenerate only, not how a revision runs."""

_WHY = {
    "transaction_per_migration": "migmagic runs a whole command in one transaction where DDL rolls back (all or nothing), and each revision in its own on MySQL/MariaDB",
    "transactional_ddl": "migmagic decides by the database whether DDL rolls back",
    "on_version_apply": "migmagic does not call it (its ledger records each step)",
}


@dataclass(frozen=True)
class Environment:
    """What a folder's ``env.py`` passes to ``context.configure``, as migmagic learned it (nothing, for migmagic's own)."""

    options: Mapping[str, Any] = field(default_factory=dict)
    statements: tuple[str, ...] = ()  # what env.py ran on the connection before configure
    problem: str | None = None  # why env.py could not be read, in one line

    @property
    def applied(self) -> dict[str, Any]:
        """The arguments of :data:`APPLIED` that ``env.py`` gave (not None), for Alembic's ``configure``."""
        return {k: self.options[k] for k in APPLIED if self.options.get(k) is not None}

    @property
    def version_opts(self) -> dict[str, Any]:
        """The version table's name, schema and key, for a ``MigrationContext`` (empty: Alembic's ``alembic_version``)."""
        return {k: v for k, v in self.applied.items() if k.startswith("version_table")}

    @property
    def version_table_name(self) -> str:
        """The version table's name, without its schema."""
        return str(self.options.get("version_table") or "alembic_version")

    @property
    def version_table(self) -> str:
        """The version table, as it is named in the database (``schema.name`` where ``env.py`` gives a schema)."""
        name = self.options.get("version_table") or "alembic_version"
        schema = self.options.get("version_table_schema")
        return f"{schema}.{name}" if schema else name

    @property
    def fingerprint(self) -> str:
        """What of :attr:`applied` changes the SQL a revision runs (the naming convention, the version table), as a digest."""
        metadata = self.applied.get("target_metadata")
        conventions = [
            sorted((str(k), str(v)) for k, v in (getattr(m, "naming_convention", None) or {}).items())
            for m in (metadata if isinstance(metadata, list | tuple) else [metadata] if metadata is not None else [])
        ]
        return hashlib.sha256(repr((conventions, sorted(self.version_opts.items()))).encode()).hexdigest()[:16]

    def notes(self, env: str, *, unsaid: frozenset[str] = frozenset()) -> list[str]:
        """One line for each thing ``env`` (its path, as shown) configures that migmagic does not apply (``unsaid`` aside)."""
        if self.problem:
            return [f"{env} could not be run to learn what it passes to context.configure ({self.problem}): migmagic runs the revisions without it."]
        out = [f"{env} runs {s!r} on the connection before context.configure: migmagic does not." for s in self.statements]
        if self.version_table_name != "alembic_version":
            out.append(
                f"{env} names the version table {self.version_table}: migmagic runs, reads and writes it as Alembic does, but its watch "
                "of changes made outside migmagic (triggers) and the MySQL/MariaDB journal know alembic_version only."
            )
        for name, value in self.options.items():
            if name in APPLIED or name in _UNSAID or name in unsaid or value is None:
                continue
            shown = getattr(value, "__qualname__", None) or repr(value)
            if name in _AUTOGENERATE:
                why = "it shapes Alembic's autogenerate, not how revisions run"
            else:
                why = _WHY.get(name, "migmagic does not apply it")
            out.append(f"{env} passes {name}={shown[:60]} to context.configure: {why}.")
        return out
