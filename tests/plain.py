"""Plain Alembic on a folder, as its own ``command.upgrade``/``downgrade`` run it (no migmagic in the way).

``EnvironmentContext`` with the folder's ``ScriptDirectory`` and the ``fn`` that
``alembic.command.upgrade`` builds, configured the way the generic ``env.py``
template does (one transaction, ``render_as_batch`` on SQLite): the expectation
nobody on this team wrote, for differential tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run(url: str, folder: Path, command: str, target: str) -> None:
    """``alembic upgrade TARGET`` / ``alembic downgrade TARGET`` on ``url`` with the scripts of ``folder``."""
    import sqlalchemy as sa
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(folder))
    script = ScriptDirectory.from_config(config)

    def fn(rev: Any, _context: Any) -> Any:
        if command == "upgrade":
            return script._upgrade_revs(target, rev)
        return script._downgrade_revs(target, rev)

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with EnvironmentContext(config, script, fn=fn, destination_rev=target) as env, engine.connect() as conn:
            env.configure(connection=conn, render_as_batch=conn.dialect.name == "sqlite")
            with env.begin_transaction():
                env.run_migrations()
            if conn.in_transaction():
                conn.commit()
    finally:
        engine.dispose()
