"""Restore points on SQLite: a copy of the database before each command that changes it, and ``restore``.

Taking a point is an ``inspect`` hook of :func:`migmagic.run.migrate` (and of
``--reapply``): under the migration lock, before any step runs, the database
file is copied with SQLite's backup API into ``<file>.migmagic-restore/``
beside it, as ``<n>-<UTC time>.db``, and ``index.json`` there records each
point (point, taken at, before which command, revision then, size). The copy is
read through a connection of its own: the command's connection holds the write
lock (nobody else can change the file meanwhile) and its uncommitted work, such
as a new ledger table, is not in the copy. The last ``keep`` points are kept;
no point is taken when the plan has no step, when ``keep`` is 0, or when the
disk has less than twice the database's size free (a note says so).

:func:`put_back` restores a point *into* the live file, again with the backup
API, so connections that have the file open see the restored database: the
point is copied to a staging file, the ledger row of the restore (direction
``restore``) is added there, after the point's own ledger, and the staging file
is copied into the live file in one backup step. That step is one write
transaction of SQLite: it takes the database's write lock (the migration lock
on SQLite), waits for it at most ``lock_timeout``, and either replaces schema,
rows, version table and ledger all at once or changes nothing.

A restore first checks that the point is of this database (:func:`_identity`:
the file and the first row of its ledger; a database made again since is
refused), counts the rows written or changed after the point that it will drop
(row by row, :func:`_not_in_point`), and takes
a restore point of the database as it is, so that the restore can be undone.
It holds the migration lock throughout, and the connection it copies into reads
``PRAGMA data_version`` before the counting and again before each try of the
copy (which never waits inside SQLite): a write another connection committed in
between stops the restore, with nothing restored.

PostgreSQL and MySQL/MariaDB have no restore points: :func:`put_back` and
:func:`listing` say so in one line and point to ``--dry-run`` and the data-loss
guard.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import stat
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import display, kinds, ledger
from .display import short_path
from .errors import Fix, LockTimeout, RestoreUnavailable

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .database import Database
    from .run import Plan

SUFFIX = ".migmagic-restore"
INDEX = "index.json"
COLUMNS = ["point", "taken at", "before", "revision then", "size"]
_POINT_FILE = re.compile(r"^(\d+)-.*\.db$")


@dataclass(frozen=True)
class Point:
    """One restore point: its number, file (in the restore folder), when, before what, at which revision, bytes."""

    point: int
    file: str
    taken_at: str  # UTC, "YYYY-MM-DD HH:MM:SS"
    before: str  # the command, e.g. "upgrade head"
    revision: str  # where the database was: "abc1", "abc1, def2" or "base"
    size: int
    identity: str = ""  # which database it is a point of (see _identity); "" for points of older versions


@dataclass(repr=False)
class Restored(display.Restored):
    """``restore``, and what it cost: rows written after the point, and the point that undoes it."""

    lost: list[str] = field(default_factory=list)
    undo: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        text = super().summary
        if self.lost:
            text += " Written or changed after the point and now gone: " + "; ".join(self.lost) + "."
        if self.undo is not None:
            text += f" Restore point {self.undo} holds the database as it was just before: %migrate restore {self.undo} undoes this."
        return " ".join([text, *self.notes])


def folder_of(database_file: Path) -> Path:
    """Where the restore points of ``database_file`` live: ``<file>.migmagic-restore/`` beside it."""
    return database_file.with_name(database_file.name + SUFFIX)


def _private(database_file: Path) -> int:
    """The mode the restore files of ``database_file`` get: the file's own (as SQLite gives its journal and WAL)."""
    try:
        return database_file.stat().st_mode & 0o666
    except OSError:
        return 0o600


def _make_folder(database_file: Path) -> Path:
    """The restore folder, made no wider than the database file (its read bits, with search bits), kept out of version control."""
    folder = folder_of(database_file)
    mode = _private(database_file)
    folder_mode = mode | ((mode & 0o444) >> 2) | 0o700
    folder.mkdir(exist_ok=True, mode=folder_mode)
    if folder.stat().st_mode & 0o777 & ~folder_mode:
        folder.chmod(folder.stat().st_mode & folder_mode & 0o777)
    for path in folder.iterdir():  # points taken while the file was more widely readable
        with contextlib.suppress(OSError):
            if path.is_file() and stat.S_IMODE(path.stat().st_mode) & ~mode:
                path.chmod(stat.S_IMODE(path.stat().st_mode) & mode)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        with contextlib.suppress(OSError):
            _create(ignore, mode).write_text("# migmagic's restore points: never committed.\n*\n", encoding="utf-8")
    return folder


def _create(path: Path, mode: int) -> Path:
    """``path`` created empty (or emptied) with ``mode`` before anything is written to it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.close(fd)
    os.chmod(path, mode)  # the umask may have narrowed it, never widened: set exactly
    return path


def points_of(database_file: Path) -> list[Point]:
    """The restore points of ``database_file``, oldest first."""
    try:
        data = json.loads((folder_of(database_file) / INDEX).read_text(encoding="utf-8"))
        return [Point(**item) for item in data["points"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _write_index(folder: Path, points: list[Point], mode: int = 0o600) -> None:
    partial = _create(folder / (INDEX + ".partial"), mode)
    partial.write_text(json.dumps({"points": [asdict(p) for p in points]}, indent=1), encoding="utf-8")
    os.replace(partial, folder / INDEX)


def _size(database_file: Path) -> int:
    wal = database_file.with_name(database_file.name + "-wal")
    return database_file.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


# --------------------------------------------------------------------------- copying


@contextlib.contextmanager
def _sqlite(path: Path, *, read_only: bool = False, timeout: float = 5.0) -> Iterator[sqlite3.Connection]:
    target = f"{path.resolve().as_uri()}?mode=ro" if read_only else str(path)
    conn = sqlite3.connect(target, uri=read_only, timeout=timeout, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


class _Busy(Exception):
    pass


class _Changed(Exception):
    pass


class _Again(Exception):
    pass


def _copy(source: sqlite3.Connection, target: sqlite3.Connection, wait: float, *, unchanged_since: int | None = None) -> None:
    """Every page of ``source`` into ``target`` in one backup step, retried while the file is locked, at most ``wait`` seconds.

    ``unchanged_since``: the ``PRAGMA data_version`` ``target`` read before the restore counted what
    it drops; before each try the copy checks that no other connection has committed since
    (:class:`_Changed` if one has), so what it said it drops is what it drops. ``target`` must not
    wait for the lock itself (timeout 0): a write committed during such a wait would go unseen.
    """
    deadline = time.monotonic() + wait

    def progress(status: int, _remaining: int, _total: int) -> None:
        if status in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            if time.monotonic() > deadline:
                raise _Busy()
            if unchanged_since is not None:
                raise _Again()  # try again from the check, not from inside the backup

    while True:
        if unchanged_since is not None and target.execute("PRAGMA data_version").fetchone()[0] != unchanged_since:
            raise _Changed()
        try:
            source.backup(target, pages=-1, progress=progress, sleep=0.05)
            return
        except _Again:
            time.sleep(0.05)


# --------------------------------------------------------------------------- which database, and its rows


def _identity(conn: sqlite3.Connection, database_file: Path) -> str:
    """Which database ``conn`` reads: the file (device, inode) and the first row of its migmagic ledger.

    The ledger's first row (restores left out) is written once, by the
    database's first command, and kept by every restore; a database made again
    (the file deleted, the project started over) has another, or none.
    """
    try:
        row = conn.execute(
            f"SELECT id, revision, direction, applied_at FROM {ledger.TABLE_NAME} WHERE direction <> 'restore' ORDER BY id LIMIT 1"
        ).fetchone()
    except sqlite3.Error:
        row = None
    st = database_file.stat()
    return f"{st.st_dev}:{st.st_ino}|" + ("|".join(map(str, row)) if row else "")


def _belongs(point: str, live: str) -> bool:
    """Whether a point with identity ``point`` was taken of the database whose identity is ``live``."""
    if not point:
        return True  # a point of an older version: nothing to check it with
    point_file, _, point_ledger = point.partition("|")
    live_file, _, live_ledger = live.partition("|")
    if point_ledger and live_ledger:
        return point_ledger == live_ledger
    return point_file == live_file  # one of them before the database's first ledger row: the same file, at least


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows per table (migmagic's and SQLite's own left out)."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    counts = {}
    for name in names:
        if name.startswith("migmagic_") or name == "alembic_version":
            continue
        quoted = name.replace('"', '""')
        with contextlib.suppress(sqlite3.Error):
            counts[name] = int(conn.execute(f'SELECT count(*) FROM "{quoted}"').fetchone()[0])
    return counts


def _not_in_point(live: sqlite3.Connection, point: Path, now: dict[str, int], then: dict[str, int]) -> dict[str, int]:
    """Per table in both, the rows of ``live`` that the point does not hold (written or changed since), compared row by row.

    Where a table's columns differ between the two (a column added since), its rows
    cannot be compared: the difference of the counts stands in (see :func:`_lost`).
    """
    out: dict[str, int] = {}
    try:
        live.execute("ATTACH DATABASE ? AS point", (f"{point.resolve().as_uri()}?mode=ro",))
    except sqlite3.Error:
        return out
    try:
        for table in sorted(set(now) & set(then)):
            quoted = table.replace('"', '""')
            with contextlib.suppress(sqlite3.Error):
                query = f'SELECT count(*) FROM (SELECT * FROM main."{quoted}" EXCEPT SELECT * FROM point."{quoted}")'
                out[table] = int(live.execute(query).fetchone()[0])
    finally:
        live.execute("DETACH DATABASE point")
    return out


def _lost(now: dict[str, int], then: dict[str, int], not_in_point: dict[str, int] | None = None) -> list[str]:
    """What restoring ``then`` over ``now`` loses, per table, in words.

    ``not_in_point``: rows compared one by one (new rows and rows changed since); for a table
    missing there, the rows counted beyond the point's.
    """
    out = []
    for table, n in sorted(now.items()):
        if table not in then:
            if n:
                out.append(f"table {table} ({n:,} row{'s' if n != 1 else ''}; made after the point)")
            continue
        more = (not_in_point or {}).get(table, n - then[table])
        if more > 0:
            out.append(f"{more:,} row{'s' if more != 1 else ''} of {table}")
    return out


def _heads(conn: sqlite3.Connection) -> str:
    try:
        return ", ".join(r[0] for r in conn.execute("SELECT version_num FROM alembic_version")) or "base"
    except sqlite3.Error:
        return "base"


# --------------------------------------------------------------------------- taking a point


class Taker:
    """The ``inspect`` hook that takes a restore point before the steps run (SQLite files only).

    ``label`` names the command in the index (default: the plan's, such as
    ``upgrade head``); ``notes`` says when no point could be taken.
    """

    def __init__(self, keep: int, *, wait: float = 30.0, label: str | None = None) -> None:
        self.keep = keep
        self.wait = wait
        self.label = label
        self.taken: Point | None = None
        self.notes: list[str] = []

    def __call__(self, plan: Plan, conn: Connection) -> None:
        if self.keep <= 0 or not kinds.for_dialect(conn.dialect.name).restore_points or not (plan.steps or plan.purge):
            return
        rows = conn.exec_driver_sql("PRAGMA database_list").fetchall()
        file = next((r[2] for r in rows if r[1] == "main"), "")
        if not file:
            return  # an in-memory database: nothing to copy it beside
        before = self.label or f"{plan.command} {plan.target}"
        self.taken = take(Path(file), before, plan.before.where, self.keep, notes=self.notes, wait=self.wait)


def take(database_file: Path, before: str, revision: str, keep: int, *, notes: list[str] | None = None, wait: float = 30.0) -> Point | None:
    """Copy ``database_file`` as a new restore point and keep the last ``keep``; None (and a note) when skipped."""
    notes = notes if notes is not None else []
    size = _size(database_file)
    folder = _make_folder(database_file)
    mode = _private(database_file)
    free = shutil.disk_usage(folder).free
    if free < 2 * size:
        notes.append(
            f"No restore point was taken before this {before}: {_mb(free)} free on disk, "
            f"less than twice the database's {_mb(size)}."
        )
        return None
    points = points_of(database_file)
    used = [p.point for p in points] + [int(m.group(1)) for f in folder.iterdir() if (m := _POINT_FILE.match(f.name))]
    number = max(used, default=0) + 1
    now = datetime.now(timezone.utc)
    name = f"{number}-{now:%Y%m%dT%H%M%SZ}.db"
    partial = folder / (name + ".partial")
    try:
        _create(partial, mode)
        with _sqlite(database_file, read_only=True) as source, _sqlite(partial) as copy:
            _copy(source, copy, wait)
            identity = _identity(source, database_file)
        os.replace(partial, folder / name)
    except (sqlite3.Error, OSError, _Busy) as exc:
        partial.unlink(missing_ok=True)
        reason = "the file stayed locked" if isinstance(exc, _Busy) else str(exc)
        notes.append(f"No restore point was taken before this {before}: {reason}.")
        return None
    point = Point(number, name, now.strftime("%Y-%m-%d %H:%M:%S"), before, revision, (folder / name).stat().st_size, identity)
    points.append(point)
    dropped, points = points[: max(len(points) - keep, 0)], points[max(len(points) - keep, 0):]
    _write_index(folder, points, mode)
    for old in dropped:
        (folder / old.file).unlink(missing_ok=True)
    return point


# --------------------------------------------------------------------------- listing and restoring


def _file_of(db: Database) -> Path:
    """The SQLite file of ``db``; a one-line error for other databases and in-memory SQLite."""
    from sqlalchemy.engine import make_url

    from .settings import engine_url

    if not db.kind.restore_points:
        raise RestoreUnavailable(
            f"{db.kind.label} databases have no restore points: migmagic takes them on {', '.join(k.label for k in kinds.KINDS.values() if k.restore_points)} only.",
            database=db.masked_url,
            hint="Rehearse a change with {0}; the data-loss guard refuses an upgrade or downgrade that would destroy data.",
            fixes=[Fix("upgrade", ("head",), (("dry_run", True),))],
        )
    database = make_url(engine_url(db.bound)).database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        raise RestoreUnavailable(f"{db.masked_url} is an in-memory database: it has no restore points.", database=db.masked_url)
    return Path(database).resolve()


def listing(db: Database) -> Any:
    """The restore points of ``db``, oldest first: point, taken at (UTC), before, revision then, size."""
    points = points_of(_file_of(db))
    return display.table([(p.point, p.taken_at, p.before, p.revision, _mb(p.size)) for p in points], COLUMNS)


@dataclass
class _Chosen:
    point: Point
    path: Path
    others: list[int] = field(default_factory=list)


def _choose(db: Database, database_file: Path, point: int | str | None, kept: int | None = None) -> _Chosen:
    points = points_of(database_file)
    numbers = [p.point for p in points]
    if not points:
        off = kept == 0  # none taken because they are off: say that, not that one is taken before each command
        raise RestoreUnavailable(
            f"{db.masked_url} has no restore points yet" + (": they are off (restore_points = 0)." if off else "."),
            database=db.masked_url,
            hint="%config Migrate.restore_points = 3 turns them on, for the commands that change the database from then on."
            if off else "One is taken before each upgrade, downgrade, stamp and re-apply that changes the database.",
        )
    if point is None:
        chosen = points[-1]
    else:
        wanted = str(point).strip()
        found = [p for p in points if str(p.point) == wanted]
        if not found:
            raise RestoreUnavailable(
                f"{db.masked_url} has no restore point {wanted}.",
                database=db.masked_url, points=numbers,
                hint=f"Its restore points are {', '.join(map(str, numbers))}.",
            )
        chosen = found[0]
    path = folder_of(database_file) / chosen.file
    if not path.is_file():
        raise RestoreUnavailable(
            f"Restore point {chosen.point} of {db.masked_url} is gone: {short_path(path)} does not exist.",
            database=db.masked_url, points=numbers,
        )
    return _Chosen(chosen, path, numbers)


def put_back(db: Database, point: int | str | None = None, *, kept: int | None = None) -> Restored:
    """Restore ``point`` (default: the latest) into the live file, and record it in the ledger.

    Refused when the point is of another database (the file was made again since).
    Before it, a restore point of the database as it is now is taken, so that a
    restore can be undone; the result says which rows written or changed after the
    point are gone (per table, compared row by row).
    """
    database_file = _file_of(db)
    chosen = _choose(db, database_file, point, kept)  # kept: the session's restore_points, for the words when there are none
    kind = db.kind
    assert isinstance(kind, kinds.SQLite)  # _file_of refused the others
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(kind.migration_lock())  # no migmagic command of another kernel runs in between
        except LockTimeout:
            raise _busy(db) from None
        # The connection the point is copied into, opened before anything is counted: a write another
        # connection commits after this is seen before the copy (PRAGMA data_version), and stops it.
        target = stack.enter_context(_sqlite(database_file, timeout=0)) if database_file.exists() else None
        return _put_back(db, database_file, chosen, target)


def _put_back(db: Database, database_file: Path, chosen: _Chosen, target: sqlite3.Connection | None) -> Restored:
    from .adapter import ALEMBIC_VERSION

    p = chosen.point
    started = time.perf_counter()
    version: int | None = None
    if target is None:  # the file is gone: the point brings it back, nothing is lost
        identity, lost, now_at = p.identity, [], ""
    else:
        try:
            version = int(target.execute("PRAGMA data_version").fetchone()[0])
            with _sqlite(database_file, read_only=True) as live, _sqlite(chosen.path, read_only=True) as then:
                identity, now_counts, now_at = _identity(live, database_file), _counts(live), _heads(live)
                then_counts = _counts(then)
                lost = _lost(now_counts, then_counts, _not_in_point(live, chosen.path, now_counts, then_counts))
        except sqlite3.Error as exc:
            raise RestoreUnavailable(f"Cannot read {db.masked_url} or restore point {p.point}: {exc}. Nothing was restored.", database=db.masked_url) from None
    if not _belongs(p.identity, identity):
        raise RestoreUnavailable(
            f"Restore point {p.point} of {db.masked_url} was taken of another database: the file has been made again since "
            f"(its ledger does not begin as the point's does). Nothing was restored.",
            database=db.masked_url, points=chosen.others,
            hint=f"Those points belong to the old database: delete {short_path(folder_of(database_file))} if it is gone for good.",
        )
    notes: list[str] = []
    existing = points_of(database_file)
    at_stake = bool(now_at or lost)  # a database at base with no rows beyond the point's has nothing to undo
    undo = take(database_file, f"restore {p.point}", now_at, keep=len(existing) + 1, notes=notes, wait=db.lock_timeout) if at_stake else None
    if at_stake and undo is None:  # a full disk, say: without a point of the state now, the restore could not be undone
        why = notes[-1].split(": ", 1)[-1].rstrip(".") if notes else "it could not be written"
        gone = f" It would drop what was written after the point: {'; '.join(lost)}." if lost else ""
        raise RestoreUnavailable(
            f"Cannot restore point {p.point} into {db.masked_url}: a restore point of the database as it is now could not be "
            f"taken first ({why}), and without it the restore could not be undone.{gone} Nothing was restored.",
            database=db.masked_url, hint="Free disk space (or make the folder writable) and run the restore again.",
        )
    staging = folder_of(database_file) / f".restoring-{p.point}.db"
    staging.unlink(missing_ok=True)
    try:
        _create(staging, _private(database_file))
        with _sqlite(chosen.path, read_only=True) as source, _sqlite(staging) as stage:
            _copy(source, stage, db.lock_timeout)
            _record(stage, ledger.row(
                revision=p.revision[:64], direction="restore", message=f"restore point {p.point}, taken {p.taken_at} UTC before {p.before}",
                seconds=None, source=None, alembic_version=ALEMBIC_VERSION,
            ))
            if target is not None:
                _copy(stage, target, db.lock_timeout, unchanged_since=version)
            else:
                with _sqlite(database_file, timeout=0.05) as live:
                    _copy(stage, live, db.lock_timeout)
    except BaseException as exc:
        if undo is not None:  # nothing was restored: nothing to undo
            _forget(database_file, undo)
        if isinstance(exc, _Busy):
            raise _busy(db) from None
        if isinstance(exc, _Changed):
            raise RestoreUnavailable(
                f"Cannot restore point {p.point} into {db.masked_url}: another connection wrote to it while the restore was "
                f"being prepared, so what it would drop is no longer what it counted. Nothing was restored.",
                database=db.masked_url, hint="Run the restore again (it counts again), once the other writer is done.",
            ) from None
        if isinstance(exc, sqlite3.Error | OSError):  # a full disk, a read-only folder: one backup step, so nothing changed
            raise RestoreUnavailable(
                f"Cannot restore point {p.point} into {db.masked_url}: {exc}. Nothing was restored.",
                database=db.masked_url, hint="Free disk space (or make the folder writable) and run the restore again.",
            ) from None
        raise
    finally:
        staging.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    return Restored(
        db.masked_url, p.point, p.taken_at, p.before, p.revision, seconds,
        lost=lost, undo=undo.point if undo else None, notes=[n.replace("No restore point was taken", "No restore point of the state before was taken") for n in notes],
    )


def _forget(database_file: Path, point: Point) -> None:
    """Drop ``point`` from the index and the folder."""
    folder = folder_of(database_file)
    with contextlib.suppress(OSError):
        _write_index(folder, [p for p in points_of(database_file) if p.point != point.point], _private(database_file))
        (folder / point.file).unlink(missing_ok=True)


def _busy(db: Database) -> LockTimeout:
    return LockTimeout(
        f"{db.masked_url} is being migrated or read by someone else (waited {db.lock_timeout:g} s): nothing was restored.",
        waited=db.lock_timeout,
        hint="Try again when the other connection is done, or raise the lock timeout.",
    )


def _record(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    """The restore's ledger row, in the staging copy (the ledger table is made if the point predates it)."""
    import sqlalchemy as sa

    engine = sa.create_engine("sqlite://", creator=lambda: conn, poolclass=sa.pool.StaticPool)
    with engine.begin() as sa_conn:
        ledger.ensure(sa_conn)
        ledger.insert(sa_conn, [row])
