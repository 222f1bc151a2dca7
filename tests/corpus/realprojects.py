"""Real projects' shipped Alembic folders, pinned by version, and where their environments are kept.

Each project is fetched once per pinned version into a cache outside the clone
(``$MIGMAGIC_CORPUS_CACHE``, else ``$XDG_CACHE_HOME/migmagic-corpus``, else
``~/.cache/migmagic-corpus``): ``<name>-<version>/wheel`` is its wheel unpacked
(``pip download --no-deps``: the migration folder as shipped), and, when its
revisions or its env.py import the project, ``<name>-<version>/site`` holds the
project and its dependencies (``pip install --target``), put at the END of
``sys.path`` of the process that runs its revisions, so the test environment's
Alembic, SQLAlchemy and drivers are the ones used. ``prepare.py`` makes them;
``.ci/run`` calls it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path(
    os.environ.get("MIGMAGIC_CORPUS_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "migmagic-corpus"
)  # read when this module is imported, before a test points XDG_CACHE_HOME at its own temp dir


@dataclass(frozen=True)
class Project:
    """One project's shipped folder and what running it takes."""

    name: str  # on PyPI
    version: str
    folder: str  # the migration folder inside the wheel
    databases: tuple[str, ...]  # the kinds the project itself supports, of sqlite / postgresql / mariadb
    site: bool = False  # its revisions or env.py import the project: install it with its dependencies
    own_env: bool = False  # plain Alembic runs the project's own env.py (else the test's minimal one)
    dialect_versions: bool = False  # versions/<dialect>/ instead of versions/ (prefect)
    async_driver: bool = False  # its users' URLs name the async drivers (asyncpg, aiosqlite)
    initial_tables: str | None = None  # module:MetaData created before the first revision runs (mlflow)
    downgrade_to: dict[str, str] = field(default_factory=dict)  # per database: how far its own downgrades go (none: not at all)
    configure: dict[str, object] = field(default_factory=dict)  # what its env.py passes to context.configure (minimal env.py)
    naming_convention: dict[str, str] | None = None  # its target_metadata's, which Alembic applies as revisions run
    why: str = ""

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"

    @property
    def root(self) -> Path:
        return CACHE / self.key

    @property
    def wheel(self) -> Path:
        return self.root / "wheel"

    @property
    def site_dir(self) -> Path:
        return self.root / "site"

    @property
    def ready(self) -> Path:
        return self.root / ".ready"

    def source_folder(self) -> Path:
        return self.wheel / self.folder


PROJECTS = [
    Project(
        "mlflow-skinny", "3.17.2", "mlflow/store/db_migrations", ("sqlite", "postgresql", "mariadb"),
        site=True, own_env=True, initial_tables="mlflow.store.tracking.dbmodels.initial_models:Base",
        downgrade_to={"sqlite": "-19", "postgresql": "-19"},  # further, a re-upgrade fails under plain Alembic; MariaDB: its first downgrade does
        why="the most used ML tracking server; 60+ revisions with triggers, batch ops, dialect branches",
    ),
    Project(
        # MariaDB: upgrade head fails under plain Alembic too (v3.0.0.b: "Key column 'step' doesn't exist").
        "optuna", "5.0.0", "optuna/storages/_rdb/alembic", ("sqlite", "postgresql"),
        site=True, own_env=True, downgrade_to={"sqlite": "-2", "postgresql": "-2"},  # then v3.0.0.c's needs optuna < 3
        why="hyperparameter search's RDB storage; enums, data migrations through the ORM",
    ),
    Project(
        "prefect", "3.9.1", "prefect/server/database/_migrations", ("sqlite", "postgresql"),
        site=True, dialect_versions=True, async_driver=True, configure={"transaction_per_migration": True},
        downgrade_to={"sqlite": "base", "postgresql": "base"},
        why="workflow orchestration; per-dialect version folders, async drivers, 100+ revisions each",
    ),
    Project(
        "arize-phoenix", "20.26.1", "phoenix/db/migrations", ("sqlite", "postgresql"),
        site=True,  # its env.py imports phoenix (its models' naming convention, which migmagic learns from it)
        configure={"transaction_per_migration": True, "transactional_ddl": True},
        naming_convention={  # phoenix.db.models.Base.metadata's
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_`%(constraint_name)s`",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        },
        downgrade_to={"sqlite": "base", "postgresql": "base"},
        why="LLM observability server; SQLite and PostgreSQL, custom compiled types, revisions import only SQLAlchemy",
    ),
    Project(
        "aim", "3.29.1", "aim/storage/migrations", ("sqlite",),
        downgrade_to={},  # its first downgrade drops an unnamed constraint: fails under plain Alembic on both
        why="experiment tracker; a small SQLite-first folder with batch operations and full downgrades",
    ),
]


MINIMAL_ENV = '''"""The test's env.py for a project whose own env.py needs its application: Alembic's recipes, sync and async."""
import asyncio

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.ext.asyncio import create_async_engine

config = context.config
url = config.get_main_option("sqlalchemy.url")
options = config.attributes.get("configure", {})


def run(connection):
    context.configure(connection=connection, **options)
    with context.begin_transaction():
        context.run_migrations()


async def run_async():
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(run)
    await engine.dispose()


if "+asyncpg" in url or "+aiosqlite" in url:
    asyncio.run(run_async())
else:
    with create_engine(url, poolclass=pool.NullPool).connect() as connection:
        run(connection)
'''
