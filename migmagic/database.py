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
import functools
import re
import time
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import settings
from .errors import ConnectionFailed, LockTimeout

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

LOCK_NAME = "migmagic"
_PG_LOCK_KEY = zlib.crc32(b"migmagic-migrate")  # one key per database: advisory locks are per database


_TABLE_IN_STATEMENT = re.compile(
    r"^\s*(?:ALTER\s+TABLE|DROP\s+TABLE(?:\s+IF\s+EXISTS)?|TRUNCATE(?:\s+TABLE)?|LOCK\s+TABLE|INSERT\s+INTO|UPDATE|DELETE\s+FROM"
    r"|CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?\S+\s+ON)\s+(?:ONLY\s+)?[`\"]?([\w.]+)",
    re.IGNORECASE,
)


def _table_of(statement: str) -> str | None:
    """The table a DDL or DML statement works on, when it says so plainly."""
    found = _TABLE_IN_STATEMENT.match(statement)
    return found.group(1) if found else None


class Database:
    """A database URL, its engine (made on first use) and its migration lock."""

    def __init__(self, url: str, lock_timeout: float = 30.0, *, replay: bool = True) -> None:
        self.url = url
        self.lock_timeout = lock_timeout
        self.replay = replay  # run pure-DDL revisions from recorded SQL (see migmagic.replay)
        self._engine: Engine | None = None

    def __repr__(self) -> str:
        return f"Database({self.masked_url!r})"

    @property
    def masked_url(self) -> str:
        return settings.mask_url(self.url)

    def scrub(self, text: str) -> str:
        """``text`` without this database's password, in any of its spellings."""
        return settings.scrub(text, self.url)

    @property
    def described_url(self) -> str:
        """The masked URL; for an async driver, also the sync driver migmagic runs it through."""
        swap = settings.sync_driver(self.url)
        if swap is None:
            return self.masked_url
        return f"{self.masked_url} (run with {swap[1]}: migmagic migrates synchronously)"

    def lock_wait(self, exc: BaseException, statement: str | None) -> str | None:
        """When ``exc`` is a statement giving up on a lock (``lock_timeout``): which table, and who holds it, in words."""
        orig = getattr(exc, "orig", None)
        sqlstate = getattr(orig, "sqlstate", None)  # PostgreSQL 55P03: lock_not_available
        errno = orig.args[0] if orig is not None and getattr(orig, "args", None) else None  # MySQL 1205: lock wait timeout
        sqlite_busy = self.dialect_name == "sqlite" and "database is locked" in str(orig or "")
        if sqlstate != "55P03" and errno != 1205 and not sqlite_busy:
            return None
        table = _table_of(statement or "")
        holder = self._lock_holders(table) if table else None
        on = f" on table {table}" if table else ""
        return f"waited {self.lock_timeout:g} s for a lock{on}" + (f", held by {holder}" if holder else "")

    def _lock_holders(self, table: str) -> str | None:
        """Who holds a lock on ``table`` right now, where the database tells (a new connection)."""
        from sqlalchemy import text

        try:
            with self.connect() as conn:
                if self.dialect_name == "postgresql":
                    rows = conn.execute(
                        text(
                            "SELECT DISTINCT a.pid, a.usename, a.application_name, a.state FROM pg_locks l "
                            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.relation = to_regclass(:t) AND l.granted "
                            "AND a.pid <> pg_backend_pid() ORDER BY a.pid"
                        ),
                        {"t": table},
                    ).all()
                    return ", ".join(f"PostgreSQL backend pid {pid} ({user}, {state or 'idle'}{', ' + app if app else ''})" for pid, user, app, state in rows) or None
                if self.dialect_name in ("mysql", "mariadb"):
                    rows = conn.execute(
                        text(
                            "SELECT p.ID, p.USER, p.HOST FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p "
                            "ON p.ID = t.trx_mysql_thread_id WHERE p.ID <> CONNECTION_ID() ORDER BY p.ID"
                        )
                    ).all()
                    return ", ".join(f"MySQL connection {pid} ({user}@{host}, an open transaction)" for pid, user, host in rows) or None
                if self.dialect_name == "sqlite":
                    return "another connection (SQLite write lock)"
        except Exception:
            return None
        return None

    def in_transaction(self, conn: Connection) -> bool:
        """Whether the database itself still has a transaction open on ``conn`` (SQLAlchemy may think so wrongly).

        Known on SQLite (a ``COMMIT`` sent through the driver ends it there); elsewhere
        taken to be True.
        """
        raw = conn.connection.dbapi_connection
        if self.dialect_name == "sqlite" and raw is not None:
            return bool(raw.in_transaction)
        return True

    @property
    def dialect_name(self) -> str:
        return _backend(self.url)

    @property
    def transactional_ddl(self) -> bool:
        return self.dialect_name in ("sqlite", "postgresql")

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> Engine:
        from sqlalchemy import create_engine, event
        from sqlalchemy.engine import make_url

        try:
            url = make_url(settings.engine_url(self.url))
        except Exception:
            raise ConnectionFailed(
                f"{self.masked_url!r} is not a database URL.",
                url=self.masked_url,
                hint="Use the form dialect+driver://user@host/database, e.g. sqlite:///migmagic.db.",
            ) from None
        kwargs: dict[str, Any] = {}
        if url.get_backend_name() == "sqlite":
            kwargs["connect_args"] = {"timeout": self.lock_timeout}
        try:
            engine = create_engine(url, **kwargs)
        except Exception as exc:
            raise ConnectionFailed(
                f"Cannot use {self.masked_url}: {settings.scrub(str(exc), self.url)}",
                url=self.masked_url,
                hint="Is the driver installed? pip install 'migmagic[postgres]' or 'migmagic[mysql]'.",
            ) from None
        if url.get_backend_name() == "sqlite":

            @event.listens_for(engine, "connect")
            def _no_pysqlite_transactions(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.isolation_level = None

            @event.listens_for(engine, "begin")
            def _begin(conn: Connection) -> None:
                options = conn.get_execution_options()
                if options.get("isolation_level") == "AUTOCOMMIT":
                    return  # Alembic's autocommit_block: no transaction at all
                raw = conn.connection.dbapi_connection
                if raw is not None:
                    raw.isolation_level = None  # restoring an isolation level turns pysqlite's own BEGINs back on
                immediate = options.get("migmagic_write_lock", False)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection; a failure to connect is a one-line error with the URL masked."""
        from sqlalchemy.exc import DBAPIError, OperationalError

        try:
            conn = self.engine.connect()
        except (OperationalError, DBAPIError) as exc:
            raise self._connection_failed(exc.orig or exc) from None
        try:
            yield conn
        finally:
            conn.close()

    def _connection_failed(self, error: BaseException) -> ConnectionFailed:
        """A failure to connect, in words: authentication failed, no such database, or no server.

        Classified by the driver's error (psycopg's message and SQLSTATE, PyMySQL's
        error code); the password is never shown, nor the driver's raw tuple.
        """
        from sqlalchemy.engine import make_url

        code = error.args[0] if error.args and isinstance(error.args[0], int) else None  # PyMySQL
        text = " ".join(str(error.args[1] if code is not None and len(error.args) > 1 else error).split())
        sqlstate = getattr(error, "sqlstate", None)
        lowered = text.lower()
        try:
            url = make_url(settings.engine_url(self.url))
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
        unreachable = ("connection refused", "could not translate host name", "timeout expired", "timed out", "no route to host", "name or service not known")
        why = next((w for w in unreachable if w in lowered), None)
        if code in (2002, 2003, 2005, 2006, 2013) or why:
            return failed(
                f"{prefix} the server is unreachable: nothing answers at {where}" + (f" ({why})." if why else "."),
                hint="Check that the server runs and that the host and port in the URL are right.",
            )
        reason = settings.scrub(text, self.url)
        return failed(
            f"{prefix} {reason[:300]}",
            hint="Check that the server runs and the URL is right.",
        )

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection in a read transaction, rolled back at the end."""
        with self.connect() as conn, conn.begin() as trans:
            yield conn
            trans.rollback()

    @contextlib.contextmanager
    def migrating(self) -> Iterator[Connection]:
        """A connection that holds the migration lock, for one command.

        On SQLite and PostgreSQL the connection is inside a transaction; when the
        block ends normally, whatever transaction is then in progress commits (a
        revision's ``autocommit_block`` commits the one before it and begins
        another), and on an exception it rolls back. On MySQL it is not: the
        caller commits per revision.

        The lock outlives those transactions: a PostgreSQL session-level
        advisory lock, a lock file of a SQLite database in migmagic's cache directory (as well as SQLite's
        write lock), MySQL's ``GET_LOCK``. Statements that wait for a lock (the
        user's own open transaction in another cell, say) wait at most
        ``lock_timeout`` seconds too.
        """
        name = self.dialect_name
        with self.connect() as conn:
            if name in ("mysql", "mariadb"):
                self._mysql_lock(conn)
                try:
                    yield conn
                    if conn.in_transaction():
                        conn.commit()
                finally:
                    if conn.in_transaction():
                        conn.rollback()
                    self._mysql_unlock(conn)
                return
            with self._held(conn) as conn:
                if name == "sqlite":
                    try:
                        conn.begin()
                    except Exception as exc:
                        if "locked" in str(exc):
                            raise self._timeout() from None
                        raise
                else:
                    conn.begin()
                try:
                    yield conn
                    if conn.in_transaction():
                        conn.commit()
                except BaseException:
                    if conn.in_transaction():
                        conn.rollback()
                    raise

    @contextlib.contextmanager
    def _held(self, conn: Connection) -> Iterator[Connection]:
        """The migration lock of a SQLite or PostgreSQL database, held on ``conn`` across its transactions."""
        if self.dialect_name == "sqlite":
            conn = conn.execution_options(migmagic_write_lock=True)
            # The engine may predate a change of lock_timeout: the wait is set per command.
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.execute(f"PRAGMA busy_timeout = {int(self.lock_timeout * 1000)}")
            with self._sqlite_lock_file():
                yield conn
        elif self.dialect_name == "postgresql":
            self._pg_lock(conn)
            try:
                yield conn
            finally:
                self._pg_unlock(conn)
        else:
            yield conn

    @contextlib.contextmanager
    def _sqlite_lock_file(self) -> Iterator[None]:
        """An exclusive ``flock`` on the SQLite file's lock file (:func:`migmagic.cache.lock_file`), for the whole command.

        SQLite's write lock ends with each transaction; this one does not, so a
        revision's ``autocommit_block`` (which commits) cannot let another kernel
        in half-way. The operating system releases it when the process dies.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: SQLite's write lock only
            yield
            return
        from sqlalchemy.engine import make_url

        path = make_url(settings.engine_url(self.url)).database
        if not path or path == ":memory:" or path.startswith("file:"):
            yield
            return
        from .cache import lock_file

        try:
            handle = open(lock_file(path), "a+b")  # noqa: SIM115 - closed below
        except OSError:
            yield  # a read-only folder: SQLite's own write lock still guards the transaction
            return
        try:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise self._timeout() from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        finally:
            handle.close()

    def _timeout(self) -> LockTimeout:
        try:
            holder = self.lock_holder()
        except Exception:  # saying who is a courtesy: the error stands without it
            holder = None
        if holder is None and self.dialect_name == "sqlite":
            holder = "another process (it holds migmagic's lock file of this database)"
        who = f"{holder}; " if holder else ""
        return LockTimeout(
            f"{self.masked_url} is being migrated by someone else ({who}waited {self.lock_timeout:g} s).",
            holder=holder,
            waited=self.lock_timeout,
            hint="Try again when the other upgrade is done, or raise %config Migrate.lock_timeout.",
        )

    def _pg_lock(self, conn: Connection) -> None:
        """The session-level advisory lock (it outlives a COMMIT), and the statement lock timeout."""
        from sqlalchemy import text

        deadline = time.monotonic() + self.lock_timeout
        while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _PG_LOCK_KEY}).scalar():
            if time.monotonic() >= deadline:
                conn.rollback()
                raise self._timeout()
            time.sleep(0.05)
        conn.execute(text(f"SET lock_timeout = {max(1, int(self.lock_timeout * 1000))}"))
        conn.commit()  # a session lock and a session setting: they outlive this transaction

    def _pg_unlock(self, conn: Connection) -> None:
        from sqlalchemy import text

        with contextlib.suppress(Exception):
            if conn.in_transaction():
                conn.rollback()
            conn.execute(text("RESET lock_timeout"))
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()

    def _mysql_lock_name(self, conn: Connection) -> str:
        from sqlalchemy import text

        db = conn.execute(text("SELECT DATABASE()")).scalar() or ""
        return f"{LOCK_NAME}:{db}"[:64]

    def _mysql_lock(self, conn: Connection) -> None:
        """``GET_LOCK`` for the command, and the statement lock timeouts (metadata and row locks)."""
        from sqlalchemy import text

        got = conn.execute(
            text("SELECT GET_LOCK(:n, :t)"), {"n": self._mysql_lock_name(conn), "t": self.lock_timeout}
        ).scalar()
        wait = max(1, int(round(self.lock_timeout)))
        conn.execute(text(f"SET SESSION lock_wait_timeout = {wait}, SESSION innodb_lock_wait_timeout = {wait}"))
        conn.commit()
        if got != 1:
            raise self._timeout()

    def _mysql_unlock(self, conn: Connection) -> None:
        from sqlalchemy import text

        with contextlib.suppress(Exception):
            conn.execute(text("SET SESSION lock_wait_timeout = DEFAULT, SESSION innodb_lock_wait_timeout = DEFAULT"))
            conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": self._mysql_lock_name(conn)})
            conn.commit()

    def lock_holder(self) -> str | None:
        """Who holds the migration lock right now, in words, or None."""
        from sqlalchemy import text

        name = self.dialect_name
        with self.connect() as conn:
            if name == "postgresql":
                row = conn.execute(
                    text(
                        "SELECT l.pid, a.application_name, a.client_addr FROM pg_locks l "
                        "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
                        "WHERE l.locktype = 'advisory' AND l.objid = :k AND l.granted "
                        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                    ),
                    {"k": _PG_LOCK_KEY},
                ).first()
                conn.rollback()
                return f"PostgreSQL backend pid {row[0]}" if row else None
            if name in ("mysql", "mariadb"):
                holder = conn.execute(text("SELECT IS_USED_LOCK(:n)"), {"n": self._mysql_lock_name(conn)}).scalar()
                conn.rollback()
                return f"MySQL connection {holder}" if holder else None
            if name == "sqlite":
                raw = conn.connection.dbapi_connection
                assert raw is not None
                old = raw.execute("PRAGMA busy_timeout").fetchone()[0]
                raw.execute("PRAGMA busy_timeout = 0")
                try:
                    raw.execute("BEGIN IMMEDIATE")
                    raw.execute("ROLLBACK")
                    return None
                except Exception:
                    return "another connection (SQLite write lock)"
                finally:
                    raw.execute(f"PRAGMA busy_timeout = {int(old)}")
        return None


@functools.lru_cache(maxsize=64)
def _backend(url: str) -> str:
    """The backend's name in ``url`` (``sqlite``, ``postgresql``, ``mysql``): asked once per step, parsed once."""
    from sqlalchemy.engine import make_url

    return make_url(settings.engine_url(url)).get_backend_name()
