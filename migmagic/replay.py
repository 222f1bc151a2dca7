"""Replay: a whole plan's SQL, recorded the first time Alembic ran that plan on an empty database, sent again after that.

Most of the time of an ``upgrade`` of a fresh database goes into Alembic
building operation objects and SQLAlchemy compiling them, statement by
statement, to the same SQL every time. Replay keeps that SQL and sends it again
— under rules that make the database it builds the one Alembic builds *by
construction*, not by a list of exceptions:

* *What is recorded*: a whole plan, as one stream, in one Alembic run: every
  statement Alembic sent to the cursor from the start of its run (reading and
  creating the version table) through each step's own statements and its
  version-table update, with parameters, step by step. Whatever Alembic's runtime
  carries from one revision to the next (the enum types it already created, say)
  is inside the stream. migmagic's own statements (ledger, lock, watch) are not.
* *When*: only an ``upgrade`` that starts from an empty database — nothing in it
  but migmagic's own tables (:func:`empty`) — on a database where DDL rolls back
  (SQLite, PostgreSQL), with replay on, and no dry-run capture listening. Every
  revision of the plan must be *proven pure* (:func:`pure`). The recording is
  kept only when the run completed without a warning, without ``executemany``,
  with parameters that are plain values and no read inside a step, and it is
  stored only after the command committed (:func:`migmagic.run.locked`). A run that
  failed, rolled back, was a rehearsal, skipped or substituted statements (the
  MySQL/MariaDB journal's resume) never stores anything.
* *The key*: the ordered (revision, direction, SHA-256 of its source) of every
  step, the dialect, driver and server version, the Alembic and SQLAlchemy
  versions, migmagic's recording format and the context options that change
  rendering (with what the folder's own env.py configures that migmagic applies). *Replayed* only for a plan with that exact key that again starts from
  an empty database; any other plan, and every downgrade, runs through Alembic.
* *How*: each statement goes to the driver's cursor as SQLAlchemy sent it (same
  text, same parameters, none where there were none), step by step; after each step
  the execution records its ledger row as for any step, with the version table
  Alembic's bookkeeping left then (recorded with the stream).

*Proven pure* (:func:`pure`): the function's body holds only ``op.<operation>(...)``
calls of a fixed list of schema operations (``op.execute`` of a literal string
too), ``with op.batch_alter_table(...) as b:`` blocks of ``b.<operation>(...)``
calls (not on SQLite, where batch mode reflects the table), and names bound to
such values; every argument is a literal, a list/tuple/dict of them, an
``sa.<...>`` constructor, ``op.f(...)``, or such a name. No ``if``/``for``/``try``, no
other calls; the module imports nothing but Alembic's ``op``, SQLAlchemy as ``sa``
and typing names, and runs nothing when loaded.

*Stored* in ``$XDG_CACHE_HOME/migmagic/replay/recordings.sqlite3``
(``~/.cache/migmagic/replay/``): a SQLite file of migmagic's own, one row per key
(its digest, the key as JSON, the stream as JSON). Deleting it (or
:func:`clear`, ``%migrate replay --clear``) is always safe: the next fresh
database runs through Alembic and is recorded again. Nothing here can fail a
command: a store that cannot be read or written is a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .adapter import Scripts, Step

FORMAT = 2
"""The recording format and the purity proof's rules; part of the key (a change to either must raise it)."""

_READS = ("SELECT", "PRAGMA", "SHOW", "WITH", "DESCRIBE", "DESC ", "EXPLAIN", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "START", "SET ")

_memory: dict[str, Recording] = {}
"""Recordings already read or written by this process, by key digest."""

_misses: set[str] = set()
"""Digests looked up in the store and not found, since the last store write of this process."""

_proofs: dict[tuple[str, str, bool], bool] = {}
"""Purity proofs already made, by (source SHA-256, function, batch allowed)."""


def store_dir() -> Path:
    """Where recordings are kept: ``$XDG_CACHE_HOME/migmagic/replay`` (default ``~/.cache``)."""
    from .cache import cache_dir

    return cache_dir() / "replay"


# --------------------------------------------------------------------------- the purity proof


def pure(source: str, function: str, *, batch: bool) -> bool:
    """Whether ``function`` (``upgrade`` or ``downgrade``) of the revision ``source`` is proven to be pure DDL (see :mod:`migmagic.profile`).

    ``batch``: whether ``op.batch_alter_table`` blocks are allowed (not on SQLite).
    """
    from . import profile

    return profile.of(source, function).is_pure(batch=batch)


# --------------------------------------------------------------------------- which plans (the decision is run.py's: these are its facts)


def proven(scripts: Scripts, steps: Sequence[Step], *, batch: bool) -> bool:
    """Whether every step's function is proven pure (see :mod:`migmagic.profile`); each proof made once per source."""
    for step in steps:
        source = scripts.info(step.revision).source
        proof = (_sha(source), step.direction, batch)
        if proof not in _proofs:
            _proofs[proof] = pure(source, step.direction, batch=batch)
        if not _proofs[proof]:
            return False
    return True


def empty(conn: Connection) -> bool:
    """Whether the database holds nothing but migmagic's own objects — no version table either: where a recorded plan starts."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        rows = conn.exec_driver_sql("SELECT tbl_name FROM sqlite_master WHERE tbl_name NOT LIKE 'sqlite_%'").all()
        return all(r[0].startswith("migmagic_") for r in rows)
    if dialect == "postgresql":
        relations = conn.exec_driver_sql(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
        ).all()
        if not all(r[0].startswith("migmagic_") for r in relations):
            return False
        others = conn.exec_driver_sql(
            "SELECT (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            "        WHERE n.nspname = current_schema() AND t.typtype IN ('e', 'd', 'r', 'm')) "
            "     + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "        WHERE n.nspname = current_schema() AND p.proname NOT LIKE 'migmagic%%')"
        ).scalar()
        return not others
    return False


# --------------------------------------------------------------------------- recordings


@dataclass
class Recording:
    """One plan's stream: what Alembic sent before the first step, each step's statements, and the version table after each step."""

    key: dict[str, Any]
    prologue: list[tuple[str, Any]] = field(default_factory=list)
    steps: list[list[tuple[str, Any]]] = field(default_factory=list)
    heads: list[list[str]] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return _digest(self.key)

    def to_json(self) -> str:
        return json.dumps({"prologue": self.prologue, "steps": self.steps, "heads": self.heads})

    @classmethod
    def from_json(cls, key: dict[str, Any], text: str) -> Recording:
        data = json.loads(text)
        return cls(key, _pairs(data["prologue"]), [_pairs(s) for s in data["steps"]], [list(h) for h in data["heads"]])

    def play(self, conn: Connection, steps: Sequence[Step], started: Callable[[Step], None], finished: Callable[[Step], None]) -> None:
        """Send the stream on ``conn``'s driver cursor, step by step; ``started``/``finished`` bracket each step as Alembic's run would."""
        for statement, params in self.prologue:
            send(conn, statement, params)
        for step, statements, heads in zip(steps, self.steps, self.heads, strict=True):
            started(step)
            for statement, params in statements:
                send(conn, statement, params)
            step.warnings = []
            step.heads_after = tuple(heads)
            finished(step)


def _pairs(rows: list[list[Any]]) -> list[tuple[str, Any]]:
    return [(str(statement), params) for statement, params in rows]


def key_of(scripts: Scripts, steps: Sequence[Step], conn: Connection) -> dict[str, Any]:
    """The key of the recording of ``steps`` on the database of ``conn`` (see the module's docstring)."""
    import sqlalchemy

    from .adapter import ALEMBIC_VERSION

    dialect = conn.dialect
    return {
        "format": FORMAT,
        "dialect": dialect.name,
        "mariadb": bool(getattr(dialect, "is_mariadb", False)),
        "driver": dialect.driver,
        "server_version": ".".join(str(p) for p in (dialect.server_version_info or ())),
        "alembic": ALEMBIC_VERSION,
        "sqlalchemy": sqlalchemy.__version__,
        "render_as_batch": dialect.name == "sqlite",
        "transaction_per_migration": False,
        "environment": scripts.environment.fingerprint,  # the folder's own env.py: naming convention, version table
        "plan": [[s.revision, s.direction, _sha(scripts.info(s.revision).source)] for s in steps],
    }


def find(key: dict[str, Any]) -> Recording | None:
    """The recording under ``key`` (see :func:`key_of`), or None."""
    digest = _digest(key)
    if digest in _memory:
        return _memory[digest]
    if digest in _misses:
        return None
    found = _load(digest, key)
    if found is None:
        _misses.add(digest)
    return found


class Recorder:
    """Records Alembic's run of one plan of ``steps`` steps under ``key``, heard through the execution's tap (see :class:`migmagic.run.Tap`)."""

    def __init__(self, key: dict[str, Any], steps: int) -> None:
        self.key = key
        self.expected = steps
        self.prologue: list[tuple[str, Any]] = []
        self.steps: list[list[tuple[str, Any]]] = []
        self.heads: list[list[str]] = []
        self._current: list[tuple[str, Any]] | None = self.prologue
        self.spoiled: str | None = None  # why this run cannot be a recording

    def before(self, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if self._current is None or self.spoiled:
            return
        if executemany:
            self.spoiled = "executemany"
            return
        # As the driver gets it: no parameters at all (no placeholder formatting), or these, even empty.
        params = None if context is not None and getattr(context, "no_parameters", False) else parameters
        if isinstance(params, tuple):
            params = list(params)
        if params is not None:
            try:
                json.dumps(params)
            except (TypeError, ValueError):
                self.spoiled = "parameters that are not plain values"
                return
        if self._current is not self.prologue and statement.lstrip().upper().startswith(_READS) and "alembic_version" not in statement:
            self.spoiled = "a read inside a step"
            return
        self._current.append((statement, params))

    def starting(self, started: Callable[[Step], None]) -> Callable[[Step], None]:
        """``started``, once the step's own statements begin to be recorded."""

        def start(step: Step) -> None:
            started(step)
            self._current = []
            self.steps.append(self._current)

        return start

    def paused(self, finished: Callable[[Step], None]) -> Callable[[Step], None]:
        """``finished``, with the recording paused while it runs (migmagic's own statements are not the plan's)."""

        def finish(step: Step) -> None:
            self._current = None
            self.heads.append(list(step.heads_after or ()))
            if step.warnings:
                self.spoiled = "a warning"
            finished(step)

        return finish

    def recording(self) -> Recording | None:
        """The recording, when the whole plan ran and nothing spoiled it."""
        if self.spoiled or len(self.steps) != self.expected or len(self.heads) != self.expected:
            return None
        return Recording(self.key, self.prologue, self.steps, self.heads)


def store(recordings: Sequence[Recording]) -> None:
    """Write ``recordings`` (of a command that committed) in one transaction; a store that cannot be written is left alone."""
    if not recordings:
        return
    for r in recordings:
        _memory[r.digest] = r
    _misses.clear()
    with contextlib.suppress(sqlite3.Error, OSError, TypeError, ValueError):
        _write(recordings)


def held() -> tuple[Path, int]:
    """Where the store is, and how many recordings it holds."""
    path = store_dir() / STORE_NAME
    with contextlib.suppress(sqlite3.Error, OSError), _store(create=False) as conn:
        if conn is not None:
            return path, int(conn.execute("SELECT count(*) FROM recording").fetchone()[0])
    return path, 0


def clear() -> int:
    """Empty the store (and this process's memory of it); returns how many recordings were dropped. Always safe."""
    forget()
    path = store_dir() / STORE_NAME
    if not path.exists():
        return 0
    with _store(create=False) as conn:
        count = conn.execute("SELECT count(*) FROM recording").fetchone()[0] if conn is not None else 0
    path.unlink(missing_ok=True)
    return int(count)


def _sha(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def _digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


STORE_NAME = "recordings.sqlite3"

_SCHEMA = "CREATE TABLE IF NOT EXISTS recording (digest TEXT PRIMARY KEY, key TEXT NOT NULL, statements TEXT NOT NULL)"


@contextlib.contextmanager
def _store(create: bool) -> Iterator[sqlite3.Connection | None]:
    """The store (a SQLite file of its own, one row per recording); None when there is none to read."""
    path = store_dir() / STORE_NAME
    if not create and not path.exists():
        yield None
        return
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=5, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        if create:
            conn.execute(_SCHEMA)
        yield conn
    finally:
        conn.close()


def _load(digest: str, key: dict[str, Any]) -> Recording | None:
    with contextlib.suppress(sqlite3.Error, OSError, ValueError, TypeError, KeyError), _store(create=False) as store:
        if store is None:
            return None
        row = store.execute("SELECT key, statements FROM recording WHERE digest = ?", (digest,)).fetchone()
        if row is None or json.loads(row[0]) != key:
            return None  # absent, or a different key under this digest: not ours
        _memory[digest] = Recording.from_json(key, row[1])
        return _memory[digest]
    return None


def _write(recordings: Sequence[Recording]) -> None:
    """Write ``recordings`` in one transaction: all of them or none."""
    rows = [(r.digest, json.dumps(r.key, sort_keys=True), r.to_json()) for r in recordings]
    with _store(create=True) as store:
        assert store is not None
        store.execute("BEGIN IMMEDIATE")
        try:
            store.executemany("INSERT OR REPLACE INTO recording (digest, key, statements) VALUES (?, ?, ?)", rows)
            store.execute("COMMIT")
        except BaseException:
            store.execute("ROLLBACK")
            raise


def forget() -> None:
    """Drop the recordings this process keeps in memory (the store on disk stays)."""
    _memory.clear()
    _misses.clear()


def send(conn: Connection, statement: str, args: Any) -> int:
    """``statement`` on the driver's cursor of ``conn`` (in its transaction), as SQLAlchemy sent it; the row count.

    ``args`` None: sent without parameters (the driver then does no placeholder
    formatting, as for Alembic's own). A statement the database refuses raises
    SQLAlchemy's error for it, with the statement and its parameters.
    """
    import sqlalchemy as sa

    dbapi = conn.dialect.loaded_dbapi
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    args = tuple(args) if isinstance(args, list) else args
    try:
        if args is None:
            cursor.execute(statement)
        else:
            cursor.execute(statement, args)
        return int(cursor.rowcount)
    except dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(statement, args, exc, dbapi.Error, dialect=conn.dialect) from exc
    finally:
        cursor.close()
