"""The one place where connections are opened, transactions begun and locks taken.

Transactions, per database:

* SQLite and PostgreSQL roll DDL back, so a whole command runs in one
  transaction: it commits when every step succeeded and rolls back otherwise.
  On SQLite, pysqlite's own transaction handling is switched off (it never
  begins a transaction before DDL) and migmagic emits ``BEGIN`` itself;
  migrations use ``BEGIN IMMEDIATE``, which takes the database's write lock.
* MySQL/MariaDB commit DDL implicitly, so each revision is its own transaction
  (version table and ledger updated together, after the revision's DDL).

Locks, held for the whole command, across its transactions: PostgreSQL
``pg_try_advisory_lock`` (session-level: released at the end of the command, or
when the backend dies), on SQLite an ``flock`` on a lock file in migmagic's cache
directory keyed by the file's real path (:func:`migmagic.cache.lock_file`; released
at the end, or when the process dies) besides SQLite's own write
lock, MySQL ``GET_LOCK`` (released explicitly, or when the session ends). Each
waits at most ``lock_timeout`` seconds, and so does every statement a revision
runs that waits for a lock held elsewhere (PostgreSQL ``lock_timeout``, MySQL
``lock_wait_timeout``/``innodb_lock_wait_timeout``, SQLite ``busy_timeout``).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from . import kinds, settings
from .errors import ConnectionFailed, LockTimeout

T = TypeVar("T")

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine

LOCK_NAME = kinds.LOCK_NAME


_TABLE_IN_STATEMENT = re.compile(
    r"^\s*(?:ALTER\s+TABLE|DROP\s+TABLE(?:\s+IF\s+EXISTS)?|TRUNCATE(?:\s+TABLE)?|LOCK\s+TABLE|INSERT\s+INTO|UPDATE|DELETE\s+FROM"
    r"|CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?\S+\s+ON|SELECT\s.*?\sFROM)\s+(?:ONLY\s+)?[`\"]?([\w.]+)",
    re.IGNORECASE | re.DOTALL,
)


def _table_of(statement: str) -> str | None:
    """The table a DDL or DML statement works on, when it says so plainly."""
    found = _TABLE_IN_STATEMENT.match(statement)
    return found.group(1) if found else None


class Database:
    """A database URL, its kind (:mod:`migmagic.kinds`), its engine (made on first use) and its migration lock."""

    def __init__(self, url: str, lock_timeout: float = 30.0, *, replay: bool = True, cwd: str | os.PathLike[str] | None = None) -> None:
        self.url = url  # as typed: shown (masked) and written into alembic.ini
        self.bound = settings.bound_url(url, cwd)  # what connects: a relative SQLite file made absolute once, here (from cwd)
        self.lock_timeout = lock_timeout
        self.replay = replay  # run pure-DDL revisions from recorded SQL (see migmagic.replay)
        self._engine: Engine | None = None
        self._kind: kinds.Kind | None = None
        self._async: bool | None = None

    def __repr__(self) -> str:
        return f"Database({self.masked_url!r})"

    @property
    def kind(self) -> kinds.Kind:
        """What this kind of database does its own way; an unsupported kind is a one-line error naming the supported ones."""
        if self._kind is None:
            try:
                found = kinds.kind_of(self.url)
            except ConnectionFailed:
                raise
            except Exception:
                raise self._not_a_url() from None
            self._kind = found(self)
        return self._kind

    @property
    def masked_url(self) -> str:
        return settings.mask_url(self.url)

    def scrub(self, text: str) -> str:
        """``text`` without this database's password, in any of its spellings."""
        return settings.scrub(text, self.url)

    @property
    def described_url(self) -> str:
        """The masked URL, as status shows it."""
        return self.masked_url

    @property
    def is_async(self) -> bool:
        """Whether the URL names an async driver (asyncpg, aiosqlite...): its connections work only inside :meth:`session`."""
        if self._async is None:
            from sqlalchemy.engine import make_url

            try:
                self._async = bool(make_url(settings.engine_url(self.bound)).get_dialect().is_async)
            except Exception:  # not a URL, or no such dialect: the engine says so in words
                self._async = False
        return self._async

    def session(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` where this database's connections can be opened: what it returns or raises.

        With a sync driver that is anywhere: ``fn`` is called. With an async driver it is
        a unit of work on migmagic's own event loop, as Alembic's asyncio recipe runs
        migrations (:func:`migmagic.asyncdriver.run`): every command of the Python API
        runs in one (:class:`migmagic.engine.Migrator`).
        """
        if not self.is_async:
            return fn(*args, **kwargs)
        from . import asyncdriver

        return asyncdriver.run(fn, *args, **kwargs)

    def lock_wait(self, exc: BaseException, statement: str | None) -> str | None:
        """When ``exc`` is a statement giving up on a lock (``lock_timeout``): which table, and who holds it, in words."""
        if not self.kind.gave_up_waiting(exc):
            return None
        table = _table_of(statement or "")
        holder = self._lock_holders(table) if table else None
        on = f" on table {table}" if table else ""
        return f"waited {self.lock_timeout:g} s for a lock{on}" + (f", held by {holder}" if holder else "")

    def wait_refused(self, exc: BaseException, *, table: str | None, doing: str, exclude: int | None = None) -> LockTimeout:
        """A rehearsal's statement that gave up waiting for a lock, in one line: what waited, on what, held by whom (not ``exclude``, the waiter)."""
        holder = self._lock_holders(table, exclude) if table else None
        on = f" for a lock on table {table}" if table else " for a lock"
        by = f", held by {holder}" if holder else ""
        return LockTimeout(
            f"The dry run stopped while {doing}: it waited {self.lock_timeout:g} s{on}{by}. The real database was not changed.",
            holder=holder, waited=self.lock_timeout,
            hint="Finish or roll back the other transaction (in another cell, say), or raise %config Migrate.lock_timeout.",
        )

    def _lock_holders(self, table: str, exclude: int | None = None) -> str | None:
        """Who holds a lock on ``table`` right now, where the database tells (a new connection)."""
        try:
            with self.connect() as conn:
                return self.kind.table_holders(conn, table, exclude)
        except Exception:
            return None

    def in_transaction(self, conn: Connection) -> bool:
        """Whether the database itself still has a transaction open on ``conn`` (SQLAlchemy may think so wrongly).

        Known on SQLite (a ``COMMIT`` sent through the driver ends it there); elsewhere
        taken to be True.
        """
        return self.kind.in_transaction(conn)

    @property
    def dialect_name(self) -> str:
        """The kind's name: ``sqlite``, ``postgresql``, ``mysql`` or ``mariadb``."""
        return self.kind.name

    @property
    def transactional_ddl(self) -> bool:
        return self.kind.transactional_ddl

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._create_engine()
        return self._engine

    def _not_a_url(self) -> ConnectionFailed:
        return ConnectionFailed(
            f"{self.masked_url!r} is not a database URL.",
            url=self.masked_url,
            hint="Use the form dialect+driver://user@host/database, e.g. sqlite:///migmagic.db.",
        )

    def _create_engine(self) -> Engine:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        try:
            url = make_url(settings.engine_url(self.bound))
        except Exception:
            raise self._not_a_url() from None
        kind = self.kind
        try:
            engine = self._create_async_engine(url, kind) if self.is_async else create_engine(url, **kind.engine_options())
        except Exception as exc:
            raise ConnectionFailed(
                f"Cannot use {self.masked_url}: {settings.scrub(str(exc), self.url)}",
                url=self.masked_url,
                hint="Is the driver installed? pip install 'migmagic[postgres]' or 'migmagic[mysql]'.",
            ) from None
        kind.configure(engine)
        return engine

    @staticmethod
    def _create_async_engine(url: URL, kind: kinds.Kind) -> Engine:
        """The ``sync_engine`` of an ``AsyncEngine``: its connections reach the async driver, inside :meth:`session`.

        Each unit of work has an event loop of its own, and a connection of asyncpg (and
        the lock of SQLAlchemy's async pool) belongs to one loop: the pool keeps
        connections for the reads of one command and is emptied when its unit ends
        (:func:`migmagic.asyncdriver.pooled_in_unit`). An in-memory SQLite database keeps
        its one connection (SQLAlchemy's ``StaticPool``: aiosqlite's are not tied to a loop).
        """
        from sqlalchemy import event
        from sqlalchemy.ext.asyncio import create_async_engine
        from sqlalchemy.pool import StaticPool

        from .asyncdriver import pooled_in_unit

        engine = create_async_engine(url, **kind.engine_options()).sync_engine
        if not isinstance(engine.pool, StaticPool):
            event.listen(engine, "checkout", lambda *_: pooled_in_unit(engine))
        return engine

    def dispose(self) -> None:
        if self._engine is not None:
            self.session(self._engine.dispose)
            self._engine = None

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection; a failure to connect is a one-line error with the URL masked."""
        from sqlalchemy.exc import DBAPIError, OperationalError

        try:
            conn = self.engine.connect()
        except (OperationalError, DBAPIError) as exc:
            raise self._connection_failed(exc.orig or exc) from None
        except OSError as exc:  # asyncpg's socket errors reach here unwrapped (no server, no such host)
            raise self._connection_failed(exc) from None
        try:
            yield conn
        finally:
            conn.close()

    def _connection_failed(self, error: BaseException) -> ConnectionFailed:
        """A failure to connect, in words: authentication failed, no such database, or no server.

        Classified by the driver's error (psycopg's and asyncpg's message and SQLSTATE,
        PyMySQL's error code, the socket's error); the password is never shown, nor the
        driver's raw tuple.
        """
        from sqlalchemy.engine import make_url

        code = error.args[0] if error.args and isinstance(error.args[0], int) else None  # PyMySQL
        text = " ".join(str(error.args[1] if code is not None and len(error.args) > 1 else error).split())
        sqlstate = getattr(error, "sqlstate", None)
        lowered = text.lower()
        try:
            url = make_url(settings.engine_url(self.bound))
            where = f"{url.host or 'localhost'}" + (f":{url.port}" if url.port else "")
            database = url.database or ""
        except Exception:  # pragma: no cover - the engine was made from it
            where, database = "the server", ""

        def failed(message: str, hint: str) -> ConnectionFailed:
            # Scrubbed whole: a malformed URL can put its password in what reads as the database name.
            return ConnectionFailed(self.scrub(message), url=self.masked_url, hint=self.scrub(hint))

        prefix = f"Cannot connect to {self.masked_url}:"
        if code == 1045 or sqlstate in ("28P01", "28000") or "password authentication failed" in lowered:
            return failed(
                f"{prefix} authentication failed: the server refused the user name or password.",
                hint="Check the user and password (keep the URL in the DATABASE_URL environment variable).",
            )
        if code in (1049, 1044) or sqlstate == "3D000" or re.search(r'database "[^"]*" does not exist', text):
            return failed(
                f"{prefix} database {database!r} does not exist on {where}"
                + (" (or this user may not use it)" if code == 1044 else "")
                + ".",
                hint=f"Create it (CREATE DATABASE {database}), or fix the database name in the URL.",
            )
        unreachable = ("connection refused", "connect call failed", "could not translate host name", "timeout expired", "timed out", "no route to host", "name or service not known")
        why = next((w for w in unreachable if w in lowered), None)
        if code in (2002, 2003, 2005, 2006, 2013) or why:
            return failed(
                f"{prefix} the server is unreachable: nothing answers at {where}" + (f" ({why})." if why else "."),
                hint="Check that the server runs and that the host and port in the URL are right.",
            )
        reason = settings.scrub(text, self.url)
        if self.kind.name == "sqlite":  # a file, not a server: say which file, and what is wrong with its folder
            folder = os.path.dirname(os.path.abspath(database or "."))
            why = f"its folder {folder} does not exist" if not os.path.isdir(folder) else (
                f"its folder {folder} cannot be written" if not os.access(folder, os.W_OK | os.X_OK) else ""
            )
            percent = " A '%' in a URL's path starts an escape: write it as %25 (and '?' as %3F)." if "%" in self.url.partition("?")[0] else ""
            return failed(
                f"{prefix} {reason[:300]}" + (f": {why}." if why else "."),
                hint=f"It is a SQLite file: create its folder (or make it writable), or fix the path in the URL.{percent}",
            )
        return failed(
            f"{prefix} {reason[:300]}",
            hint="Check that the server runs and the URL is right.",
        )

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection in a read transaction, rolled back at the end.

        Its statements wait for a lock at most ``lock_timeout`` (a version table locked by
        another session's open ``ALTER TABLE``, say); giving up is a one-line :class:`LockTimeout`.
        """
        with self.connect() as conn, conn.begin() as trans:
            try:
                self.kind.bound_waits(conn)
                yield conn
            except Exception as exc:
                waited = self.lock_wait(exc, str(getattr(exc, "statement", None) or ""))
                if waited is None:
                    raise
                raise LockTimeout(
                    f"Reading {self.masked_url} {waited}. Nothing was changed.", waited=self.lock_timeout,
                    hint="Finish or roll back the other transaction (in another cell, say), or raise the lock timeout.",
                ) from None
            trans.rollback()

    def read(self, reader: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``reader(conn, *args, **kwargs)`` on a connection in a read transaction (see :meth:`reading`): what it returns."""

        def on_a_connection() -> T:
            with self.reading() as conn:
                return reader(conn, *args, **kwargs)

        return self.session(on_a_connection)

    @contextlib.contextmanager
    def migrating(self) -> Iterator[Connection]:
        """A connection that holds the migration lock, for one command.

        On SQLite and PostgreSQL the connection is inside a transaction; when the
        block ends normally, whatever transaction is then in progress commits (a
        revision's ``autocommit_block`` commits the one before it and begins
        another), and on an exception it rolls back — for real, also when the
        COMMIT itself failed (SQLAlchemy then forgets the transaction the
        database still has: :meth:`migmagic.kinds.Kind.roll_back`). On MySQL it
        is not: the caller commits per revision.

        The lock outlives those transactions (:meth:`migmagic.kinds.Kind.held`):
        a PostgreSQL session-level advisory lock, a lock file of a SQLite
        database in migmagic's cache directory (as well as SQLite's write lock),
        MySQL's ``GET_LOCK``. It is released when the block ends, whatever
        happened; where it cannot be, the session is closed so that the server
        releases it. Statements that wait for a lock (the user's own open
        transaction in another cell, say) wait at most ``lock_timeout`` seconds too.
        """
        kind = self.kind
        with self.connect() as conn, kind.held(conn) as conn:
            kind.begin(conn)
            try:
                yield conn
                if conn.in_transaction():
                    conn.commit()
            except BaseException:
                kind.roll_back(conn)
                raise

    def timeout(self, *, uncommitted_write: bool = False, doing: str | None = None) -> LockTimeout:
        """The migration lock (or SQLite's write lock) was not free within ``lock_timeout``, in one line."""
        if uncommitted_write:  # SQLite: migmagic's own lock was free, the file's write lock was not
            while_ = f" while {doing}" if doing else ""
            return LockTimeout(
                f"{self.masked_url} has an uncommitted write on another connection (SQLite write lock): "
                f"waited {self.lock_timeout:g} s{while_}. Nothing was changed.",
                holder="another connection with an uncommitted write", waited=self.lock_timeout,
                hint="Commit or roll back that connection's transaction (in another cell or program), or close it; then run the command again.",
            )
        try:
            holder = self.lock_holder()
        except Exception:  # saying who is a courtesy: the error stands without it
            holder = None
        if holder is None and self.kind.name == "sqlite":
            holder = "another process (it holds migmagic's lock file of this database)"
        who = f"{holder}; " if holder else ""
        return LockTimeout(
            f"{self.masked_url} is being migrated by someone else ({who}waited {self.lock_timeout:g} s).",
            holder=holder,
            waited=self.lock_timeout,
            hint="Try again when the other upgrade is done, or raise %config Migrate.lock_timeout.",
        )

    def lock_holder(self) -> str | None:
        """Who holds the migration lock right now, in words, or None."""

        def on_a_connection() -> str | None:
            with self.connect() as conn:
                return self.kind.lock_holder(conn)

        return self.session(on_a_connection)

    def remove_stale_scratch(self) -> list[str]:
        """Remove the scratch databases and copies of rehearsals killed mid-way (their process is gone)."""
        return self.kind.remove_stale()

