"""Alembic environment written by migmagic's %migrate init.

The notebook does not run this file (migmagic drives Alembic in-process); the
`alembic` command does, and so do tools that run Alembic in their own process
(pytest-alembic, Flask-Migrate, scripts).

The database, first found first used:
1. a connection (or engine) handed in as config.attributes["connection"]
   (Alembic's recipe for sharing a connection, used by pytest-alembic): it is
   used as it is and no other connection is opened;
2. the DATABASE_URL environment variable;
3. sqlalchemy.url in alembic.ini.

`alembic upgrade` and `alembic downgrade` (online, no connection handed in) go
through migmagic's execution core where migmagic is importable: the migration
lock with bounded waits, ledger rows, refusal of an applied revision edited
since, all-or-nothing on SQLite and PostgreSQL. Where it is not, plain Alembic
runs, and says so in one line.
"""

import importlib
import os
import sys
from logging.config import fileConfig

from alembic import context
from alembic.util import CommandError
from sqlalchemy import engine_from_config, pool
from sqlalchemy.engine import Connection, make_url

config = context.config

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

handed_in = config.attributes.get("connection")


def _url():
    url = os.environ.get("DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("Set DATABASE_URL (or sqlalchemy.url in alembic.ini) to the database to migrate.")
    return url


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
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_name=include_name,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(connectable) -> None:
    """An async engine or connection (Alembic's async recipe): the migrations run through run_sync."""
    if hasattr(connectable, "run_sync"):  # an AsyncConnection
        await connectable.run_sync(do_run_migrations)
        return
    async with connectable.connect() as connection:
        await connection.run_sync(do_run_migrations)


def _command():
    """Alembic's command name (upgrade, downgrade, ...), or None when not run by the `alembic` command."""
    cmd = getattr(config.cmd_opts, "cmd", None)
    return getattr(cmd[0], "__name__", None) if cmd else None


def _target():
    """The target as typed (``head``, ``-1``, ``ae10+2``...), for migmagic to read with Alembic's grammar."""
    typed = getattr(config.cmd_opts, "revision", None)
    return typed if isinstance(typed, str) else context.get_revision_argument()


def run_through_migmagic() -> bool:
    """This command through migmagic's execution core; False when migmagic is not importable here.

    MIGMAGIC_ALEMBIC=plain in the environment runs plain Alembic (a reference measurement, say).
    """
    if os.environ.get("MIGMAGIC_ALEMBIC") == "plain":
        return False
    try:
        from migmagic import cli_env
    except ImportError:
        print("migmagic is not importable here: plain Alembic runs (no lock, ledger or check of edited revisions).", file=sys.stderr)
        return False
    if not cli_env.routes(_command(), offline=False, handed_in=False):
        return False
    command = context._proxy  # migmagic drives Alembic in-process; this command's environment is put back after
    try:
        print(cli_env.run(url=_url(), folder=os.path.dirname(os.path.abspath(__file__)), command=_command(), target=_target()))
    except cli_env.Refused as refused:
        raise CommandError(str(refused)) from None
    finally:
        command._install_proxy()
    return True


def run_migrations_online() -> None:
    if handed_in is None and _command() in ("upgrade", "downgrade") and run_through_migmagic():
        return
    connectable = handed_in
    if connectable is None:
        url = _url()
        if make_url(url).get_dialect().is_async:
            from sqlalchemy.ext.asyncio import create_async_engine

            connectable = create_async_engine(url, poolclass=pool.NullPool)
        else:
            connectable = engine_from_config({"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool)
    if isinstance(connectable, Connection):
        do_run_migrations(connectable)
    elif hasattr(connectable, "sync_engine"):  # AsyncEngine / AsyncConnection
        import asyncio

        asyncio.run(_run_async(connectable))
    else:  # an Engine, or anything whose connect() gives a connection
        with connectable.connect() as connection:
            do_run_migrations(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
