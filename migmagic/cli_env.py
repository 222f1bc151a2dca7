"""The `alembic` command on a folder migmagic wrote, run through migmagic's execution core.

The folder's ``env.py`` calls :func:`run` with plain values (the URL, the
folder, Alembic's command name and target) when the command is ``upgrade`` or
``downgrade``, online, with no connection handed in. Then the command gets what
the notebook gets: the migration lock with bounded waits, ledger rows, refusal
of an applied revision edited since, all-or-nothing on SQLite and PostgreSQL,
the journal on MySQL/MariaDB. What differs from a notebook, on purpose, so that
the command does what Alembic's would: the data-loss guard does not refuse (a
deploy runs what was reviewed), and no SQLite restore point is written beside
the database.

A user error comes back as :class:`Refused` (one line); env.py turns it into
Alembic's ``CommandError``, so the command says it as Alembic says its own errors and exits with its code (255).
"""

from __future__ import annotations

ROUTED = ("upgrade", "downgrade")


class Refused(Exception):
    """The command did not run (or stopped): the one line migmagic says, for Alembic to report."""


def routes(command: str | None, *, offline: bool, handed_in: bool) -> bool:
    """Whether env.py hands this `alembic` command to migmagic: upgrade/downgrade, online, its own connection."""
    return command in ROUTED and not offline and not handed_in


def run(*, url: str, folder: str, command: str, target: str, lock_timeout: float = 30.0) -> str:
    """``command`` (``upgrade`` / ``downgrade``) to ``target`` on ``url`` with the revisions of ``folder``; what was done, as text."""
    from . import Migrator
    from .errors import MigmagicError

    m = Migrator(url, folder, lock_timeout=lock_timeout, restore_points=0)
    try:
        step = m.upgrade if command == "upgrade" else m.downgrade
        return str(step(target, accept_data_loss=True))
    except MigmagicError as exc:
        raise Refused(" ".join(str(exc).split())) from exc
    finally:
        m.close()
