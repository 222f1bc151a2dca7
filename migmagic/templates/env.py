"""Alembic environment written by migmagic's %migrate init.

The notebook does not run this file (migmagic drives Alembic in-process); the
`alembic` command does. The URL comes from DATABASE_URL, else from
sqlalchemy.url in alembic.ini.
"""

import importlib
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config

if config.config_file_name is not None:
    fileConfig(config.config_file_name)

url = os.environ.get("DATABASE_URL") or config.get_main_option("sqlalchemy.url")
if not url:
    raise SystemExit("Set DATABASE_URL (or sqlalchemy.url in alembic.ini) to the database to migrate.")


def _models():
    """The MetaData named by migmagic.metadata in alembic.ini (module:attribute), or None.

    %migrate init --metadata myapp.models:Base writes that option; a declarative
    base stands for its .metadata.
    """
    spec = config.get_main_option("migmagic.metadata")
    if not spec:
        return None
    module, _, attribute = spec.partition(":")
    models = importlib.import_module(module)
    for name in attribute.split("."):
        models = getattr(models, name)
    return getattr(models, "metadata", models)


target_metadata = _models()


def include_name(name, type_, parent_names):
    """Autogenerate and `alembic check` leave migmagic's bookkeeping tables alone."""
    return not (type_ == "table" and name.startswith("migmagic_"))


def run_migrations_offline() -> None:
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = engine_from_config(
        {"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_name=include_name,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
