"""migmagic's cache directory, and the compiled code of revision scripts kept there.

``$XDG_CACHE_HOME/migmagic`` (default ``~/.cache/migmagic``): never the revision
folder. A fresh kernel reads a folder of a thousand revisions; parsing and
compiling each one is most of that work, so the code object of a script that
passed the checks (it parses, it defines ``upgrade()``) is kept, as Python's
``__pycache__`` does, keyed by the SHA-256 of its exact text, its path and the
interpreter's bytecode version. The file is still read and hashed every time,
so an edit is never missed. ``code.sqlite3`` holds them; writes of one folder
read are one transaction. Nothing here can fail a command: a cache that cannot
be read or written is a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import marshal
import os
import sqlite3
import types
from pathlib import Path

_SCHEMA = "CREATE TABLE IF NOT EXISTS code (key TEXT PRIMARY KEY, code BLOB NOT NULL)"


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/migmagic`` (default ``~/.cache/migmagic``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "migmagic"


class CodeCache:
    """Compiled revision scripts for one read of a folder: :meth:`get`, :meth:`put`, then :meth:`close`."""

    def __init__(self) -> None:
        self._conn: sqlite3.Connection | None = None
        self._new: list[tuple[str, bytes]] = []
        self._opened = False
        self._fetched: dict[str, bytes] | None = None  # what prefetch() read: get() asks nothing more

    @staticmethod
    def key(source: str, path: Path) -> str:
        seed = f"{importlib.util.MAGIC_NUMBER.hex()}\0{path}\0{source}"
        return hashlib.sha256(seed.encode("utf-8", "surrogatepass")).hexdigest()

    def _connection(self, create: bool) -> sqlite3.Connection | None:
        if self._conn is None and (create or not self._opened):
            self._opened = True
            path = cache_dir() / "code.sqlite3"
            if not create and not path.exists():
                return None
            with contextlib.suppress(sqlite3.Error, OSError):
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(path, timeout=5, isolation_level=None)
                conn.execute("PRAGMA busy_timeout = 5000")
                conn.execute(_SCHEMA)
                self._conn = conn
        return self._conn

    def prefetch(self, keys: list[str]) -> None:
        """Read the code kept under ``keys`` in a few queries; :meth:`get` then looks only there."""
        conn = self._connection(create=False)
        fetched: dict[str, bytes] = {}
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                for start in range(0, len(keys), 500):
                    chunk = keys[start:start + 500]
                    marks = ",".join("?" * len(chunk))
                    fetched.update(conn.execute(f"SELECT key, code FROM code WHERE key IN ({marks})", chunk).fetchall())
        self._fetched = fetched

    def get(self, key: str) -> types.CodeType | None:
        if self._fetched is not None:
            row: tuple[bytes] | None = (self._fetched[key],) if key in self._fetched else None
        else:
            conn = self._connection(create=False)
            if conn is None:
                return None
            try:
                row = conn.execute("SELECT code FROM code WHERE key = ?", (key,)).fetchone()
            except sqlite3.Error:
                return None
        with contextlib.suppress(ValueError, EOFError, TypeError):
            if row is not None:
                code = marshal.loads(row[0])
                if isinstance(code, types.CodeType):
                    return code
        return None

    def put(self, key: str, code: types.CodeType) -> None:
        self._new.append((key, marshal.dumps(code)))

    def close(self) -> None:
        """Write what was compiled, in one transaction, and let go of the file."""
        try:
            if self._new:
                conn = self._connection(create=True)
                if conn is not None:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("BEGIN IMMEDIATE")
                        try:
                            conn.executemany("INSERT OR REPLACE INTO code (key, code) VALUES (?, ?)", self._new)
                            conn.execute("COMMIT")
                        except sqlite3.Error:
                            conn.execute("ROLLBACK")
        finally:
            self._new.clear()
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def lock_file(database_file: str | os.PathLike[str]) -> Path:
    """Where the migration lock of a SQLite file lives: ``locks/<hash of its absolute path>.lock`` here.

    Never beside the database, where a ``git add .`` would pick it up. Keyed by
    the file's real path, so every spelling of it (relative, through a symlink)
    takes the same lock. The folder is made if missing (mode 700).
    """
    real = os.path.realpath(os.fspath(database_file))
    folder = cache_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    digest = hashlib.sha256(real.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return folder / f"{digest}.lock"
