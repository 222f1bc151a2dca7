"""The one place where connections are opened, transactions begun and locks taken.

Transactions, per database:

* SQLite and PostgreSQL roll DDL back, so a whole command runs in one
  transaction: it commits when every step succeeded and rolls back otherwise.
  On SQLite, pysqlite's own transaction handling is switched off (it never
  begins a transaction before DDL) and migmagic emits ``BEGIN`` itself;
  migrations use ``BEGIN IMMEDIATE``, which takes the database's write lock.
* MySQL/MariaDB commit DDL implicitly, so each revision is its own transaction
  (version table and ledger updated together, after the revision's DDL).

Locks, held for the whole command: PostgreSQL ``pg_try_advisory_xact_lock``
(released with the transaction, or when the backend dies), SQLite's write lock
(released when the transaction ends or the process dies), MySQL ``GET_LOCK``
(released explicitly, or when the session ends). Each waits at most
``lock_timeout`` seconds.
"""

from __future__ import annotations

import contextlib
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
    def dialect_name(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(settings.engine_url(self.url)).get_backend_name()

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
                immediate = conn.get_execution_options().get("migmagic_write_lock", False)
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
            reason = settings.scrub(" ".join(str(exc.orig).split()), self.url)
            raise ConnectionFailed(
                f"Cannot connect to {self.masked_url}: {reason[:300]}",
                url=self.masked_url,
                hint="Check that the server runs and the URL is right.",
            ) from None
        try:
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection in a read transaction, rolled back at the end."""
        with self.connect() as conn, conn.begin() as trans:
            yield conn
            trans.rollback()

    @contextlib.contextmanager
    def migrating(self) -> Iterator[Connection]:
        """A connection that holds the migration lock, for one command.

        On SQLite and PostgreSQL the connection is inside a transaction that
        commits when the block ends normally and rolls back on an exception.
        On MySQL it is not: the caller commits per revision.
        """
        name = self.dialect_name
        with self.connect() as conn:
            if name == "sqlite":
                conn = conn.execution_options(migmagic_write_lock=True)
                # The engine may predate a change of lock_timeout: the wait is set per command.
                raw = conn.connection.dbapi_connection
                assert raw is not None
                raw.execute(f"PRAGMA busy_timeout = {int(self.lock_timeout * 1000)}")
                try:
                    trans = conn.begin()
                except Exception as exc:
                    if "locked" in str(exc):
                        raise self._timeout() from None
                    raise
                with trans:
                    yield conn
            elif name == "postgresql":
                with conn.begin():
                    self._pg_lock(conn)
                    yield conn
            elif name in ("mysql", "mariadb"):
                self._mysql_lock(conn)
                try:
                    yield conn
                    if conn.in_transaction():
                        conn.commit()
                finally:
                    if conn.in_transaction():
                        conn.rollback()
                    self._mysql_unlock(conn)
            else:
                with conn.begin():
                    yield conn

    def _timeout(self) -> LockTimeout:
        return LockTimeout(
            f"{self.masked_url} is being migrated by someone else (waited {self.lock_timeout:g} s).",
            waited=self.lock_timeout,
            hint="Try again when the other upgrade is done, or raise %config Migrate.lock_timeout.",
        )

    def _pg_lock(self, conn: Connection) -> None:
        from sqlalchemy import text

        deadline = time.monotonic() + self.lock_timeout
        while not conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY}).scalar():
            if time.monotonic() >= deadline:
                raise self._timeout()
            time.sleep(0.05)

    def _mysql_lock_name(self, conn: Connection) -> str:
        from sqlalchemy import text

        db = conn.execute(text("SELECT DATABASE()")).scalar() or ""
        return f"{LOCK_NAME}:{db}"[:64]

    def _mysql_lock(self, conn: Connection) -> None:
        from sqlalchemy import text

        got = conn.execute(
            text("SELECT GET_LOCK(:n, :t)"), {"n": self._mysql_lock_name(conn), "t": self.lock_timeout}
        ).scalar()
        conn.commit()
        if got != 1:
            raise self._timeout()

    def _mysql_unlock(self, conn: Connection) -> None:
        from sqlalchemy import text

        with contextlib.suppress(Exception):
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
