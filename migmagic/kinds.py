"""The database kinds migmagic supports, one class each, as Alembic's ``ddl/impl.py`` registers one implementation per dialect.

A :class:`Kind` holds everything that differs between databases, so no other
module decides it again:

* whether DDL rolls back (``transactional_ddl``) and whether restore points exist;
* the migration lock for one command (:meth:`Kind.held`), who holds it
  (:meth:`Kind.lock_holder`), and who holds a lock on a table
  (:meth:`Kind.table_holders`);
* every wait, bounded by ``lock_timeout`` (:meth:`Kind.bound_waits`): the real
  run, a dry run's copy, verify's throwaway database, ``--copy``'s
  ``CREATE DATABASE``; and telling a statement that gave up waiting
  (:meth:`Kind.gave_up_waiting`);
* ending a transaction for real after a failure (:meth:`Kind.roll_back`);
* scratch databases for rehearsals and their clean-up (:meth:`Kind.scratch_copy`,
  :meth:`Kind.throwaway`, :meth:`Kind.remove_stale`);
* string-length rules (``string_length``: the SQL function counting characters).

:func:`kind_of` picks the class from a URL's backend name; an unknown backend
is a one-line :class:`~migmagic.errors.ConnectionFailed` naming the supported
ones — never a silent fall-back to one of them. Scratch databases are named
``mm_<what>_<pid>_<unix time>_<random>``: a later command removes those whose
process is gone (a rehearsal killed mid-way).

This module knows the :class:`~migmagic.database.Database` only by what it
offers (``url``, ``lock_timeout``, ``engine``, ``connect()``...): it makes new
ones with ``type(db)(url, lock_timeout)``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import tempfile
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from . import settings
from .errors import ConnectionFailed, LockTimeout, RehearsalRefused

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

LOCK_NAME = "migmagic"
PG_LOCK_KEY = zlib.crc32(b"migmagic-migrate")  # one key per database: advisory locks are per database
SCRATCH_PREFIX = "mm_"
_SCRATCH_NAME = re.compile(r"^mm_(?P<what>[a-z]+)_(?P<host>[0-9a-f]{6})_(?P<pid>\d+)_(?P<time>\d+)_[0-9a-f]{8}$")
_SQLITE_SCRATCH = "migmagic-rehearse-"

KINDS: dict[str, type[Kind]] = {}
"""The supported kinds by backend name (``sqlite``, ``postgresql``, ``mysql``, ``mariadb``)."""


@dataclass
class Scratch:
    """Where a rehearsal runs: the database, in words, and what that means (see :func:`migmagic.rehearse.scratch_copy`)."""

    db: Any
    how: str
    caveats: list[str] = field(default_factory=list)
    rollback: bool = False  # PostgreSQL's default: the real database, rolled back


def supported() -> str:
    return ", ".join(KINDS)


def kind_of(url: str) -> type[Kind]:
    """The kind of the database ``url`` names; a one-line error naming the supported ones when migmagic has none for it."""
    backend = backend_of(url)
    found = KINDS.get(backend)
    if found is None:
        raise ConnectionFailed(
            f"{settings.mask_url(url)} is a {backend} database: migmagic supports {supported()}.",
            url=settings.mask_url(url),
            hint="Use a URL of one of those (sqlite:///file.db, postgresql+psycopg://..., mysql+pymysql://..., mariadb+pymysql://...).",
        )
    return found


def for_dialect(name: str) -> type[Kind]:
    """The kind of a connection's SQLAlchemy dialect name (``conn.dialect.name``)."""
    found = KINDS.get(name)
    if found is None:
        raise ConnectionFailed(f"migmagic supports {supported()}, not {name}.", url="")
    return found


def backend_of(url: str) -> str:
    """The backend's name in ``url`` (``sqlite``, ``postgresql``, ``mysql``...); ``url`` must parse."""
    from sqlalchemy.engine import make_url

    return make_url(settings.engine_url(url)).get_backend_name()


def _host() -> str:
    """This machine, in six hex digits: a scratch database of a process elsewhere is never taken for a dead one here."""
    import socket

    return f"{zlib.crc32(socket.gethostname().encode()) & 0xFFFFFF:06x}"


def _scratch_name(what: str) -> str:
    """``mm_<what>_<host>_<pid>_<unix time>_<random>``: whose it is, so that a later command can tell it was left behind."""
    return f"{SCRATCH_PREFIX}{what}_{_host()}_{os.getpid()}_{int(time.time())}_{uuid.uuid4().hex[:8]}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale(name: str, *, min_age: float = 0.0) -> bool:
    """Whether ``name`` is a scratch database (or folder) of a migmagic process that is gone."""
    m = _SCRATCH_NAME.match(name)
    if not m or m.group("host") != _host():
        return False
    return not _alive(int(m.group("pid"))) and time.time() - int(m.group("time")) >= min_age


class Kind:
    """One kind of database: what differs from the others. Subclasses register themselves under ``name``."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    transactional_ddl: ClassVar[bool] = True
    restore_points: ClassVar[bool] = False
    string_length: ClassVar[str] = "length"
    """The SQL function that counts a string's characters (MySQL's ``length`` counts bytes)."""
    schemas_are_databases: ClassVar[bool] = False
    """A revision's ``schema=`` names another database (MySQL/MariaDB): a scratch copy must not be left through it."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            KINDS[cls.name] = cls

    def __init__(self, db: Any) -> None:
        self.db = db

    def real_name(self) -> str:
        """The name of the database on its server ("" where there is no server)."""
        return ""

    # ------------------------------------------------------------------ connecting

    def engine_options(self) -> dict[str, Any]:
        return {}

    def configure(self, engine: Engine) -> None:
        """Set up a new engine (event listeners)."""

    def in_transaction(self, conn: Connection) -> bool:
        """Whether the database still has a transaction open on ``conn`` (SQLAlchemy may think not): True where unknown."""
        return True

    def committed_through_the_driver(self, conn: Connection) -> bool:
        """After a revision ended the command's transaction on the driver's connection (only SQLite tells): whether it committed."""
        return False

    def begin_again(self, conn: Connection, *, commit_first: bool = False) -> None:
        """A new migration transaction on the driver's connection, after a revision ended the last one (``commit_first``: commit the one open).

        Only a kind whose :meth:`committed_through_the_driver` can say True is asked (SQLite).
        """
        raise RuntimeError(f"{self.label} cannot tell a transaction ended through the driver")

    def roll_back(self, conn: Connection) -> None:
        """End whatever transaction ``conn`` is in, for real, after a failure (a failed COMMIT included)."""
        if conn.in_transaction():
            conn.rollback()

    # ------------------------------------------------------------------ the lock and every wait

    @contextlib.contextmanager
    def held(self, conn: Connection) -> Iterator[Connection]:
        """The migration lock on ``conn`` for one command, across its transactions, and bounded statement waits."""
        raise NotImplementedError

    def begin(self, conn: Connection) -> None:
        """Begin the command's transaction (where DDL rolls back)."""
        conn.begin()

    def bound_waits(self, conn: Connection) -> None:
        """Statements on ``conn`` wait for a lock at most ``lock_timeout`` seconds."""
        raise NotImplementedError

    def gave_up_waiting(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a statement that gave up waiting for a lock."""
        raise NotImplementedError

    def lock_holder(self, conn: Connection) -> str | None:
        """Who holds the migration lock right now, in words, or None."""
        raise NotImplementedError

    def table_holders(self, conn: Connection, table: str, exclude: int | None = None) -> str | None:
        """Who holds a lock on ``table`` right now (not session ``exclude``), where the database tells, in words."""
        return None

    # ------------------------------------------------------------------ scratch databases

    @contextlib.contextmanager
    def scratch_copy(self, *, copy: bool, sample: int | None) -> Iterator[Scratch]:
        """Where a dry run of the database runs; cleaned up after."""
        raise NotImplementedError
        yield  # pragma: no cover

    @contextlib.contextmanager
    def throwaway(self) -> Iterator[Any]:
        """An empty database of this kind, for ``verify``; removed after."""
        raise NotImplementedError
        yield  # pragma: no cover

    def remove_stale(self) -> list[str]:
        """Remove scratch databases a killed rehearsal left behind; their names."""
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers

    @property
    def wait_ms(self) -> int:
        return max(1, int(self.db.lock_timeout * 1000))


# =========================================================================== SQLite


def _driver(raw: Any, *statements: str) -> Any:
    """Run ``statements`` on the driver's connection, unseen by SQLAlchemy (and so by the tap); the last one's first value."""
    cursor = raw.cursor()
    try:
        for statement in statements:
            cursor.execute(statement)
        row = cursor.fetchone()
        return row[0] if row else None
    finally:
        cursor.close()


class SQLite(Kind):
    name = "sqlite"
    label = "SQLite"
    restore_points = True

    def file(self) -> str | None:
        """The database file, absolute; None for an in-memory database."""
        from sqlalchemy.engine import make_url

        path = make_url(settings.engine_url(self.db.bound)).database
        if not path or path == ":memory:" or path.startswith("file:"):
            return None
        return os.path.abspath(path)

    def engine_options(self) -> dict[str, Any]:
        return {"connect_args": {"timeout": self.db.lock_timeout}}

    def configure(self, engine: Engine) -> None:
        from sqlalchemy import event

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
            if immediate and raw is not None:
                _driver(raw, "CREATE TEMP TABLE IF NOT EXISTS migmagic_transaction (open INTEGER)", "DELETE FROM temp.migmagic_transaction")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
            if immediate and raw is not None:
                _driver(raw, "INSERT INTO temp.migmagic_transaction VALUES (1)")  # commits or rolls back with the command

    def in_transaction(self, conn: Connection) -> bool:
        driver = conn.connection.driver_connection  # sqlite3's connection, or aiosqlite's (which tells sqlite3's)
        return bool(driver.in_transaction) if driver is not None else True

    def committed_through_the_driver(self, conn: Connection) -> bool:
        """After a revision ended the command's transaction on the driver's connection: whether it was a commit.

        A migration's transaction begins with a row in a temporary table of this
        connection (invisible to every other): a commit keeps it, a rollback takes it away.
        """
        raw = conn.connection.dbapi_connection
        try:
            return bool(raw is not None and _driver(raw, "SELECT count(*) FROM temp.migmagic_transaction"))
        except Exception:  # no such table: this transaction was not a migration's
            return False

    def begin_again(self, conn: Connection, *, commit_first: bool = False) -> None:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        begin = ("DELETE FROM temp.migmagic_transaction", "BEGIN IMMEDIATE", "INSERT INTO temp.migmagic_transaction VALUES (1)")
        _driver(raw, *(("COMMIT",) if commit_first else ()), *begin)

    def roll_back(self, conn: Connection) -> None:
        """SQLAlchemy forgets its transaction when COMMIT fails ("database is locked"), but SQLite does not: roll it back on the driver."""
        with contextlib.suppress(Exception):
            if conn.in_transaction():
                conn.rollback()
        raw = conn.connection.dbapi_connection if not conn.closed else None
        if raw is not None and self.in_transaction(conn):
            raw.execute("ROLLBACK")

    def _writable(self) -> None:
        """Refuse, before anything runs, a file SQLite cannot write: a read-only file, or a folder where its journal cannot go."""
        path = self.file()
        if path is None or not os.path.exists(path):
            return
        folder = os.path.dirname(path)
        what = (
            f"its folder {folder} cannot be written, and SQLite writes its journal there" if not os.access(folder, os.W_OK | os.X_OK)
            else f"the file {path} is read-only" if not os.access(path, os.W_OK) else None
        )
        if what:
            raise ConnectionFailed(
                f"Cannot change {self.db.masked_url}: {what}. Nothing was run.",
                url=self.db.masked_url,
                hint="Make it writable (or work on a copy in a writable folder), then run the command again.",
            )

    @contextlib.contextmanager
    def held(self, conn: Connection) -> Iterator[Connection]:
        self._writable()
        conn = conn.execution_options(migmagic_write_lock=True)
        self.bound_waits(conn)  # the engine may predate a change of lock_timeout: the wait is set per command
        with self._lock_file():
            yield conn

    def begin(self, conn: Connection) -> None:
        try:
            conn.begin()
        except Exception as exc:
            if "locked" in str(exc):
                raise self.db.timeout(uncommitted_write=True) from None
            raise

    def bound_waits(self, conn: Connection) -> None:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute(f"PRAGMA busy_timeout = {self.wait_ms}")

    def gave_up_waiting(self, exc: BaseException) -> bool:
        return "database is locked" in str(getattr(exc, "orig", None) or exc)

    def migration_lock(self) -> contextlib.AbstractContextManager[None]:
        """The migration lock alone, with no connection (``restore`` holds it while it counts, copies and replaces)."""
        return self._lock_file()

    @contextlib.contextmanager
    def _lock_file(self) -> Iterator[None]:
        """An exclusive ``flock`` on the file's lock file (:func:`migmagic.cache.lock_file`), for the whole command.

        SQLite's write lock ends with each transaction; this one does not, so a
        revision's ``autocommit_block`` (which commits) cannot let another kernel
        in half-way. The operating system releases it when the process dies.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: SQLite's write lock only
            yield
            return
        from .cache import lock_file

        path = self.file()
        if path is None:
            yield
            return
        try:
            handle = open(lock_file(path), "a+b")  # noqa: SIM115 - closed below
        except OSError:
            yield  # no cache folder: SQLite's own write lock still guards the transaction
            return
        try:
            deadline = time.monotonic() + self.db.lock_timeout
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise self.db.timeout() from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        finally:
            handle.close()

    def lock_holder(self, conn: Connection) -> str | None:
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

    def table_holders(self, conn: Connection, table: str, exclude: int | None = None) -> str | None:
        return "another connection (SQLite write lock)"

    # ---- scratch files

    @contextlib.contextmanager
    def _file_copy(self, source: Any | None) -> Iterator[Any]:
        """A temporary SQLite file: a backup-API copy of ``source``, or empty; deleted after."""
        folder = Path(tempfile.mkdtemp(prefix=_SQLITE_SCRATCH + _scratch_name("file")[len(SCRATCH_PREFIX):] + "-"))
        path = folder / "scratch.db"
        try:
            if source is not None:
                target = sqlite3.connect(path, check_same_thread=False)  # aiosqlite copies into it from its own thread
                try:
                    with source.connect() as conn:
                        driver = conn.connection.driver_connection
                        assert driver is not None
                        self.bound_waits(conn)
                        deadline = time.monotonic() + self.db.lock_timeout

                        def progress(status: int, _remaining: int, _total: int) -> None:
                            # The backup retries a locked file for ever: give up after lock_timeout.
                            if status in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) and time.monotonic() > deadline:
                                raise TimeoutError

                        copied = driver.backup(target, progress=progress, sleep=0.05)
                        if source.is_async:  # aiosqlite: a coroutine, run on its connection's thread
                            from .asyncdriver import wait

                            wait(copied)
                except (sqlite3.OperationalError, TimeoutError) as exc:
                    if isinstance(exc, TimeoutError) or "locked" in str(exc):
                        raise self.db.timeout(uncommitted_write=True, doing="copying it for the dry run") from None
                    raise
                finally:
                    target.close()
            from sqlalchemy.engine import make_url

            driver = make_url(settings.engine_url(self.db.bound)).drivername  # the user's: sqlite, or sqlite+aiosqlite
            scratch = type(self.db)(f"{driver}:///{path}", self.db.lock_timeout)
            try:
                yield scratch
            finally:
                scratch.dispose()
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @contextlib.contextmanager
    def scratch_copy(self, *, copy: bool, sample: int | None) -> Iterator[Scratch]:
        with self._file_copy(self.db) as scratch:
            yield Scratch(scratch, f"Rehearsed on a backup copy of {self.db.masked_url} (deleted after); the real database was not touched.")

    @contextlib.contextmanager
    def throwaway(self) -> Iterator[Any]:
        with self._file_copy(None) as scratch:
            yield scratch

    def remove_stale(self) -> list[str]:
        removed = []
        with contextlib.suppress(OSError):
            for entry in Path(tempfile.gettempdir()).iterdir():
                if not entry.name.startswith(_SQLITE_SCRATCH) or not entry.is_dir():
                    continue
                name = SCRATCH_PREFIX + entry.name[len(_SQLITE_SCRATCH):].rsplit("-", 1)[0]
                if stale(name):
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(str(entry))
        return removed


# =========================================================================== servers


class _Server(Kind):
    """A database on a server: scratch databases are created on the same server and dropped after."""

    quote: ClassVar[str] = '"'
    create_privilege: ClassVar[str] = "CREATE"
    maintenance: ClassVar[str | None] = None  # the database admin connections use (never the template)

    def q(self, name: str) -> str:
        return f"{self.quote}{name}{self.quote}"

    def url_for(self, name: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(settings.engine_url(self.db.bound)).set(database=name).render_as_string(hide_password=False)

    def real_name(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(settings.engine_url(self.db.bound)).database or ""

    @contextlib.contextmanager
    def admin(self, database: str | None = None, *, bounded: bool = True) -> Iterator[Connection]:
        """An autocommit connection to the server (to ``database`` on it, when given), its waits bounded."""
        import sqlalchemy as sa

        url = self.url_for(database) if database is not None else settings.engine_url(self.db.bound)
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                if bounded:
                    self.bound_waits(conn)
                yield conn
        finally:
            engine.dispose()

    def _create_refused(self, exc: BaseException, what: str) -> RehearsalRefused:
        reason = self.db.scrub(" ".join(str(getattr(exc, "orig", None) or exc).split()))[:300]
        privilege = self.create_privilege
        if re.search(r"permission denied|access denied|denied to user", reason, re.I):
            return RehearsalRefused(
                f"Cannot create {what} on {self.db.masked_url}: the user lacks the {privilege} privilege ({reason}).",
                privilege=privilege, hint=f"Grant {privilege} to the user, or rehearse on a server where it has it. Nothing ran.",
            )
        return RehearsalRefused(f"Cannot create {what} on {self.db.masked_url}: {reason}.", hint="Nothing ran.")

    def _create(self, conn: Connection, name: str, template: str | None) -> None:
        conn.exec_driver_sql(f"CREATE DATABASE {self.q(name)}")

    def _drop(self, conn: Connection, name: str) -> None:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {self.q(name)}")

    def _scratch_names(self, conn: Connection) -> list[str]:
        raise NotImplementedError

    @contextlib.contextmanager
    def server_database(self, what: str, template: str | None = None) -> Iterator[Any]:
        """A database created on the server for one rehearsal (a clone of ``template``), dropped after."""
        name = _scratch_name(what)
        try:
            with self.admin(self.maintenance) as conn:
                self._create(conn, name, template)
        except (LockTimeout, RehearsalRefused):
            raise
        except Exception as exc:
            if self.gave_up_waiting(exc):
                raise self.db.wait_refused(exc, table=None, doing="creating " + ("the clone" if template else "a throwaway database")) from None
            raise self._create_refused(exc, "a clone" if template else "a throwaway database") from None
        scratch = type(self.db)(self.url_for(name), self.db.lock_timeout)
        try:
            yield scratch
        finally:
            scratch.dispose()
            with self.admin(self.maintenance, bounded=False) as conn:
                self._drop(conn, name)

    @contextlib.contextmanager
    def throwaway(self) -> Iterator[Any]:
        with self.server_database("verify") as scratch:
            yield scratch

    def remove_stale(self) -> list[str]:
        removed = []
        try:
            with self.admin(self.maintenance, bounded=False) as conn:
                for name in self._scratch_names(conn):
                    if stale(name):
                        with contextlib.suppress(Exception):
                            self._drop(conn, name)
                            removed.append(name)
        except Exception:  # clean-up is a courtesy: never the reason a command fails
            return removed
        return removed


class PostgreSQL(_Server):
    name = "postgresql"
    label = "PostgreSQL"
    create_privilege = "CREATEDB"
    maintenance = "postgres"

    @contextlib.contextmanager
    def held(self, conn: Connection) -> Iterator[Connection]:
        """The session-level advisory lock (it outlives a COMMIT), released at the end even after a failed COMMIT."""
        from sqlalchemy import text

        deadline = time.monotonic() + self.db.lock_timeout
        while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": PG_LOCK_KEY}).scalar():
            if time.monotonic() >= deadline:
                conn.rollback()
                raise self.db.timeout()
            time.sleep(0.05)
        self.bound_waits(conn)
        conn.commit()  # a session lock and a session setting: they outlive this transaction
        try:
            yield conn
        finally:
            self._unlock(conn)

    def _unlock(self, conn: Connection) -> None:
        """Release the advisory lock; if that cannot be done on this session, end the session (the server then releases it)."""
        from sqlalchemy import text

        try:
            self.roll_back(conn)
            conn.execute(text("RESET lock_timeout"))
            released = conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PG_LOCK_KEY}).scalar()
            conn.commit()
            if released:
                return
        except Exception:
            pass
        # The lock stayed with this session: a pooled connection must never keep it.
        with contextlib.suppress(Exception):
            conn.invalidate()

    def bound_waits(self, conn: Connection) -> None:
        from sqlalchemy import text

        conn.execute(text(f"SET lock_timeout = {self.wait_ms}"))

    def gave_up_waiting(self, exc: BaseException) -> bool:
        orig = getattr(exc, "orig", None)
        return getattr(orig, "sqlstate", None) == "55P03"  # lock_not_available

    def lock_holder(self, conn: Connection) -> str | None:
        from sqlalchemy import text

        row = conn.execute(
            text(
                "SELECT l.pid, a.application_name, a.client_addr FROM pg_locks l "
                "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.objid = :k AND l.granted "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"k": PG_LOCK_KEY},
        ).first()
        conn.rollback()
        return f"PostgreSQL backend pid {row[0]}" if row else None

    def table_holders(self, conn: Connection, table: str, exclude: int | None = None) -> str | None:
        from sqlalchemy import text

        rows = conn.execute(
            text(
                "SELECT DISTINCT a.pid, a.usename, a.application_name, a.state FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.relation = to_regclass(:t) AND l.granted "
                "AND a.pid <> pg_backend_pid() AND a.pid <> :x ORDER BY a.pid"
            ),
            {"t": table, "x": exclude or 0},
        ).all()
        return ", ".join(f"PostgreSQL backend pid {pid} ({user}, {state or 'idle'}{', ' + app if app else ''})" for pid, user, app, state in rows) or None

    def database_holders(self, conn: Connection, database: str) -> str | None:
        from sqlalchemy import text

        rows = conn.execute(
            text("SELECT pid, usename, application_name FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid() ORDER BY pid"),
            {"d": database},
        ).all()
        return ", ".join(f"PostgreSQL backend pid {pid} ({user}{', ' + app if app else ''})" for pid, user, app in rows) or None

    def _create(self, conn: Connection, name: str, template: str | None) -> None:
        conn.exec_driver_sql(f"CREATE DATABASE {self.q(name)}" + (f" TEMPLATE {self.q(template)}" if template else ""))

    def _drop(self, conn: Connection, name: str) -> None:
        force = " WITH (FORCE)" if (conn.dialect.server_version_info or (0,)) >= (13,) else ""
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {self.q(name)}{force}")

    def _scratch_names(self, conn: Connection) -> list[str]:
        return [r[0] for r in conn.exec_driver_sql("SELECT datname FROM pg_database WHERE datname LIKE 'mm\\_%%'")]

    @contextlib.contextmanager
    def scratch_copy(self, *, copy: bool, sample: int | None) -> Iterator[Scratch]:
        db = self.db
        if not copy:
            rehearsal = type(db)(db.url, db.lock_timeout)  # its own engine: the guards on it stay on it
            try:
                yield Scratch(
                    rehearsal,
                    f"Rehearsed on {db.masked_url} itself, in one transaction that was rolled back: nothing was committed.",
                    [
                        "While it ran, the locks the revisions took (ACCESS EXCLUSIVE for most DDL) were held on the real tables: other sessions touching them waited.",
                        "Sequences the revisions advanced stay advanced (PostgreSQL never rolls them back).",
                        "--copy rehearses on a clone instead (CREATE DATABASE ... TEMPLATE; no other session may be connected).",
                    ],
                    rollback=True,
                )
            finally:
                rehearsal.dispose()
            return
        db.dispose()  # our own idle connections would keep the template busy
        real = self.real_name()
        try:
            with self.server_database("rehearse", template=real) as scratch:
                yield Scratch(scratch, f"Rehearsed on a clone of {db.masked_url} (CREATE DATABASE ... TEMPLATE, dropped after); the real database was not touched.")
        except RehearsalRefused as exc:
            if "being accessed by other users" not in str(exc):
                raise
            holders = None
            with contextlib.suppress(Exception), self.admin(self.maintenance) as conn:
                holders = self.database_holders(conn, real)
            raise RehearsalRefused(
                f"--copy clones {db.masked_url} with CREATE DATABASE ... TEMPLATE, which needs no other session connected to it, and there is one"
                + (f": {holders}." if holders else "."),
                hint="Close the other sessions (kernels, psql, pools), or leave out --copy to rehearse in a transaction that is rolled back. Nothing ran.",
            ) from None


class MySQL(_Server):
    name = "mysql"
    label = "MySQL"
    transactional_ddl = False
    quote = "`"
    string_length = "char_length"
    schemas_are_databases = True

    def _lock_name(self, conn: Connection) -> str:
        from sqlalchemy import text

        db = conn.execute(text("SELECT DATABASE()")).scalar() or ""
        name = f"{LOCK_NAME}:{db}"
        if len(name) <= 64:  # GET_LOCK's limit
            return name
        import hashlib

        return f"{name[:47]}:{hashlib.sha256(db.encode()).hexdigest()[:16]}"  # cut, the two names of a shared prefix would be one

    @contextlib.contextmanager
    def held(self, conn: Connection) -> Iterator[Connection]:
        """``GET_LOCK`` for the command, and the statement lock timeouts (metadata and row locks)."""
        from sqlalchemy import text

        got = conn.execute(text("SELECT GET_LOCK(:n, :t)"), {"n": self._lock_name(conn), "t": self.db.lock_timeout}).scalar()
        self.bound_waits(conn)
        conn.commit()
        if got != 1:
            raise self.db.timeout()
        try:
            yield conn
        finally:
            self._unlock(conn)

    def _unlock(self, conn: Connection) -> None:
        from sqlalchemy import text

        try:
            self.roll_back(conn)
            conn.execute(text("SET SESSION lock_wait_timeout = DEFAULT, SESSION innodb_lock_wait_timeout = DEFAULT"))
            conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": self._lock_name(conn)})
            conn.commit()
        except Exception:
            with contextlib.suppress(Exception):
                conn.invalidate()  # the session ends, and GET_LOCK's lock with it

    def begin(self, conn: Connection) -> None:
        """DDL commits itself: the caller commits per revision."""

    def bound_waits(self, conn: Connection) -> None:
        from sqlalchemy import text

        wait = max(1, int(round(self.db.lock_timeout)))
        conn.execute(text(f"SET SESSION lock_wait_timeout = {wait}, SESSION innodb_lock_wait_timeout = {wait}"))

    def gave_up_waiting(self, exc: BaseException) -> bool:
        orig = getattr(exc, "orig", None)
        errno = orig.args[0] if orig is not None and getattr(orig, "args", None) else None
        return errno == 1205  # lock wait timeout (metadata and row locks)

    def lock_holder(self, conn: Connection) -> str | None:
        from sqlalchemy import text

        holder = conn.execute(text("SELECT IS_USED_LOCK(:n)"), {"n": self._lock_name(conn)}).scalar()
        conn.rollback()
        return f"{self.label} connection {holder}" if holder else None

    def table_holders(self, conn: Connection, table: str, exclude: int | None = None) -> str | None:
        from sqlalchemy import text

        rows = conn.execute(
            text(
                "SELECT p.ID, p.USER, p.HOST FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p "
                "ON p.ID = t.trx_mysql_thread_id WHERE p.ID <> CONNECTION_ID() AND p.ID <> :x ORDER BY p.ID"
            ),
            {"x": exclude or 0},
        ).all()
        return ", ".join(f"{self.label} connection {pid} ({user}@{host}, an open transaction)" for pid, user, host in rows) or None

    def _scratch_names(self, conn: Connection) -> list[str]:
        return [r[0] for r in conn.exec_driver_sql("SHOW DATABASES LIKE 'mm\\\\_%%'")]

    def _copy(self, scratch: Any, sample: int | None) -> list[str]:
        """Copy every table's definition and (a sample of) its rows into ``scratch``; returns what was not copied."""
        from .schema import BOOKKEEPING

        real = self.real_name()
        name = type(self)(scratch).real_name()
        left: list[str] = []
        with self.admin() as conn:
            plain = conn.execution_options(no_parameters=True)  # DDL may hold '%': no parameter formatting
            kinds = conn.exec_driver_sql(f"SHOW FULL TABLES FROM `{real}`").all()
            tables = [r[0] for r in kinds if r[1] == "BASE TABLE"]
            left += [f"view {r[0]}" for r in kinds if r[1] != "BASE TABLE"]
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
            own = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
            table = ""
            try:
                conn.exec_driver_sql(f"USE `{name}`")
                for table in tables:
                    plain.exec_driver_sql(conn.exec_driver_sql(f"SHOW CREATE TABLE `{real}`.`{table}`").one()[1])
                for table in tables:
                    cols = ", ".join(
                        f"`{c}`"
                        for (c,) in conn.exec_driver_sql(
                            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
                            "AND EXTRA NOT LIKE %s ORDER BY ORDINAL_POSITION",
                            (real, table, "%GENERATED%"),
                        )
                    )
                    limit = "" if sample is None or table in BOOKKEEPING else f" LIMIT {int(sample)}"
                    plain.exec_driver_sql(f"INSERT INTO `{name}`.`{table}` ({cols}) SELECT {cols} FROM `{real}`.`{table}`{limit}")
                triggers = conn.exec_driver_sql(f"SHOW TRIGGERS FROM `{real}`").all()
                left += [f"trigger {r[0]}" for r in triggers]
            except Exception as exc:
                if self.gave_up_waiting(exc):
                    raise self.db.wait_refused(exc, table=table, doing=f"copying table {table}", exclude=own) from None
                raise
            finally:
                with contextlib.suppress(Exception):
                    conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
        return left

    @contextlib.contextmanager
    def scratch_copy(self, *, copy: bool, sample: int | None) -> Iterator[Scratch]:
        db = self.db
        with self.server_database("rehearse") as scratch:
            left = self._copy(scratch, sample)
            rows = "all rows of every table" if sample is None else f"at most {sample:,} rows per table (--sample N, --full for all)"
            caveats = [f"It ran on a sample: {rows}, so row counts and timings are the sample's." if sample is not None else "Every row was copied (--full)."]
            if left:
                caveats.append("Not copied: " + ", ".join(left) + ".")
            yield Scratch(scratch, f"Rehearsed on a scratch database with the schema of {db.masked_url} and {rows} (dropped after); the real database was not touched.", caveats)


class MariaDB(MySQL):
    name = "mariadb"
    label = "MariaDB"
