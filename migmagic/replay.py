"""Replay: a pure-DDL revision's SQL, recorded the first time Alembic ran it, executed directly after that.

Most of the time of an ``upgrade`` on a fresh database goes into Alembic
building operation objects and SQLAlchemy compiling them, statement by
statement, to the same SQL every time. For a revision *proven* to emit the same
SQL whatever the database holds, that SQL is recorded the first time it runs
and, on a later run of the same revision against another database of the same
kind, executed through the driver instead of calling the revision's
``upgrade()``/``downgrade()``.

Only the revision's own body is replaced. Everything else is the one execution
path (:mod:`migmagic.run`): the same lock, transaction, per-step commits on
MySQL/MariaDB, version-table bookkeeping (done by Alembic, merges and branch
points included), ledger rows and failure report.

*Proven pure* (:func:`pure`): the function's body holds only ``op.<operation>(...)``
calls of a fixed list of schema operations (``op.execute`` of a literal string
too), ``with op.batch_alter_table(...) as b:`` blocks of ``b.<operation>(...)``
calls (not on SQLite, where batch mode reflects the table), and names bound to
such values; every argument is a literal, a list/tuple/dict of them, an
``sa.<...>`` constructor, ``op.f(...)``, or such a name. No ``if``/``for``/``try``, no
other calls, nothing read from the database.

*The key* of a recording: the revision's exact source (the SHA-256 of the text its
loaded module was compiled from), the direction, the dialect, driver and server version, the Alembic and
SQLAlchemy versions, migmagic's recording format and the context options that
change rendering (``render_as_batch``, per-step transactions). Any difference
is a miss, and a miss runs Alembic as always. Only a revision proven pure is
recorded, so a recording found under its key is the proof: a fresh kernel
replays without parsing the revisions again, and the proof is made only for a
revision about to be recorded.

*Recorded*: every statement the revision's function sent to the cursor, with
its parameters, while it ran (the version table's and the ledger's statements
are made outside it). A revision is not recorded when it read anything
(``SELECT``, ``PRAGMA``, ``SHOW``...), ended or began a transaction, used
``executemany``, had parameters that are not plain JSON values, raised, or made
Alembic warn.

*Stored* in ``$XDG_CACHE_HOME/migmagic/replay/recordings.sqlite3``
(``~/.cache/migmagic/replay/``): a SQLite file of migmagic's own, one row per key
(its digest, the key as JSON, the statements as JSON); a run's recordings are
written in one transaction, so the file holds all of them or none, and several
kernels may share it. A row whose stored key differs from the one computed is a
miss. Nothing here can fail a command: a store that cannot be read or written
is a miss.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import json
import sqlite3
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .adapter import Scripts, Step

FORMAT = 1
"""The recording format and the purity proof's rules; part of the key (a change to either must raise it)."""

OPERATIONS = frozenset(
    {
        "create_table", "drop_table", "rename_table", "add_column", "drop_column", "alter_column",
        "create_index", "drop_index", "create_unique_constraint", "create_foreign_key",
        "create_check_constraint", "create_primary_key", "drop_constraint",
        "create_table_comment", "drop_table_comment",
    }
)
"""``op.<name>`` calls a pure revision may make (``op.execute`` of a literal string besides)."""

BATCH_OPERATIONS = frozenset(
    {
        "add_column", "drop_column", "alter_column", "create_index", "drop_index", "create_unique_constraint",
        "create_foreign_key", "create_check_constraint", "create_primary_key", "drop_constraint",
    }
)

_READS = ("SELECT", "PRAGMA", "SHOW", "WITH", "DESCRIBE", "DESC ", "EXPLAIN", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "START", "SET ")

_memory: dict[str, list[tuple[str, Any]]] = {}
"""Recordings already read or written by this process, by key digest."""

_proofs: dict[tuple[str, str, bool], bool] = {}
"""Purity proofs already made, by (source SHA-256, function, batch allowed)."""


def store_dir() -> Path:
    """Where recordings are kept: ``$XDG_CACHE_HOME/migmagic/replay`` (default ``~/.cache``)."""
    from .cache import cache_dir

    return cache_dir() / "replay"


# --------------------------------------------------------------------------- the purity proof


def pure(source: str, function: str, *, batch: bool) -> bool:
    """Whether ``function`` (``upgrade`` or ``downgrade``) of the revision ``source`` is proven to be pure DDL.

    ``batch``: whether ``op.batch_alter_table`` blocks are allowed (not on SQLite).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
    if len(found) != 1:
        return False
    fn = found[0]
    if fn.decorator_list or fn.args.args or fn.args.vararg or fn.args.kwarg or fn.args.kwonlyargs or fn.args.posonlyargs:
        return False
    if not _names_are_the_modules(tree, function):
        return False
    return _body(fn.body, set(), batch=batch, in_batch=None)


def _names_are_the_modules(tree: ast.Module, function: str) -> bool:
    """``op`` and ``sa`` are Alembic's ``op`` and SQLAlchemy, the module runs nothing else when loaded, and
    ``function`` is defined once (no nested or class definition of that name either).

    Module level may hold a docstring, imports, assignments of values (see
    :func:`_value`) and plain function definitions; nothing may rebind or
    change ``op`` or ``sa``.
    """
    op = sa = False
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "alembic" and any(a.name == "op" and a.asname in (None, "op") for a in node.names):
            op = True
        elif isinstance(node, ast.Import) and any(a.name == "sqlalchemy" and a.asname == "sa" for a in node.names):
            sa = True
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any((a.asname or a.name.split(".")[0]) in ("op", "sa") for a in node.names):
                return False
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            pass
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            if node.value is not None and not _value(node.value, set()):
                return False
        elif isinstance(node, ast.FunctionDef):
            defaults = [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
            if node.decorator_list or not all(isinstance(d, ast.Constant) for d in defaults):
                return False
        else:
            return False
    defined = 0
    for any_node in ast.walk(tree):  # one walk: it is most of the proof's time
        if isinstance(any_node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and any_node.name == function:
            defined += 1
        if isinstance(any_node, ast.Name | ast.Attribute) and isinstance(any_node.ctx, ast.Store | ast.Del):
            base: ast.expr = any_node
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in ("op", "sa"):
                return False
        if isinstance(any_node, ast.Global | ast.Nonlocal):
            return False
        if isinstance(any_node, ast.arg) and any_node.arg in ("op", "sa"):
            return False
    return op and sa and defined == 1


def _body(statements: list[ast.stmt], bound: set[str], *, batch: bool, in_batch: str | None) -> bool:
    for i, node in enumerate(statements):
        if isinstance(node, ast.Pass):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and i == 0 and in_batch is None:
            continue  # a docstring
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            if not _operation(node.value, bound, in_batch):
                return False
            continue
        if isinstance(node, ast.Assign) and in_batch is None:
            if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name) or node.targets[0].id in ("op", "sa"):
                return False
            if not _value(node.value, bound):
                return False
            bound.add(node.targets[0].id)
            continue
        if isinstance(node, ast.With) and batch and in_batch is None:
            if len(node.items) != 1:
                return False
            item = node.items[0]
            call, var = item.context_expr, item.optional_vars
            if not (isinstance(call, ast.Call) and _is_op(call.func, "batch_alter_table") and isinstance(var, ast.Name)):
                return False
            if var.id in ("op", "sa") or any(k.arg == "recreate" and not (isinstance(k.value, ast.Constant) and k.value.value in ("auto", "never")) for k in call.keywords):
                return False
            if any(k.arg in ("reflect_args", "reflect_kwargs", "copy_from", "table_args", "table_kwargs") for k in call.keywords):
                return False
            if not _arguments(call, bound):
                return False
            if not _body(node.body, bound, batch=batch, in_batch=var.id):
                return False
            continue
        return False
    return True


def _is_op(func: ast.expr, name: str | None = None) -> bool:
    return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "op" and (name is None or func.attr == name)


def _operation(call: ast.Call, bound: set[str], in_batch: str | None) -> bool:
    func = call.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)):
        return False
    if in_batch is not None:
        if func.value.id != in_batch or func.attr not in BATCH_OPERATIONS:
            return False
    elif func.value.id != "op":
        return False
    elif func.attr == "execute":
        return len(call.args) == 1 and not call.keywords and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)
    elif func.attr not in OPERATIONS:
        return False
    return _arguments(call, bound)


def _arguments(call: ast.Call, bound: set[str]) -> bool:
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return False
    return all(_value(a, bound) for a in call.args) and all(_value(k.value, bound) for k in call.keywords)


def _value(node: ast.expr, bound: set[str]) -> bool:
    """A literal, a container of values, an ``sa.`` constructor or attribute, ``op.f(...)``, or a bound name."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd) and isinstance(node.operand, ast.Constant):
        return True
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return all(_value(e, bound) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and _value(k, bound) for k in node.keys) and all(_value(v, bound) for v in node.values)
    if isinstance(node, ast.Name):
        return node.id in bound
    if isinstance(node, ast.Attribute):
        return _sa_path(node)
    if isinstance(node, ast.Call):
        if _is_op(node.func, "f"):
            return len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.Constant)
        return _sa_path(node.func) and _arguments(node, bound)
    return False


def _sa_path(node: ast.expr) -> bool:
    """``sa.X``, ``sa.X.Y``...: a name under SQLAlchemy's namespace."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name) and node.id == "sa"


# --------------------------------------------------------------------------- keys and the store


class Replayer:
    """Recordings for the steps of one run on one connection: what to replay, what to record.

    :mod:`migmagic.adapter` asks :meth:`function` for each step's function;
    :meth:`save` writes what was recorded; :attr:`replayed` counts the steps replayed.
    """

    def __init__(self, conn: Connection, scripts: Scripts, steps: list[Step], *, per_step: bool, alembic_version: str) -> None:
        import sqlalchemy

        dialect = conn.dialect
        self.conn = conn
        self.scripts = scripts
        self.batch = dialect.name != "sqlite"
        self.context = {
            "format": FORMAT,
            "dialect": dialect.name,
            "mariadb": bool(getattr(dialect, "is_mariadb", False)),
            "driver": dialect.driver,
            "server_version": ".".join(str(p) for p in (dialect.server_version_info or ())),
            "alembic": alembic_version,
            "sqlalchemy": sqlalchemy.__version__,
            "render_as_batch": dialect.name == "sqlite",
            "transaction_per_migration": per_step,
        }
        self.replayed = 0
        self._new: dict[str, tuple[dict[str, Any], list[tuple[str, Any]]]] = {}
        self._keys: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._statements = _Statements(conn)  # one listener for the run, collecting while a step is recorded
        self._looked: set[str] = set()  # digests preload() looked up in the store: not asked again
        self._trusted: list[Callable[..., Any]] = []
        self.preload(steps)

    def key(self, step: Step) -> dict[str, Any] | None:
        """The key of ``step``'s recording (with its ``digest``), or None for a step that is not a revision's function."""
        if (step.revision, step.direction) not in self._keys:
            key = self._key(step)
            self._keys[(step.revision, step.direction)] = key if key is None else {**key, "digest": _digest(key)}
        return self._keys[(step.revision, step.direction)]

    def _key(self, step: Step) -> dict[str, Any] | None:
        if step.direction not in ("upgrade", "downgrade") or step.revision not in self.scripts:
            return None
        source = self.scripts.info(step.revision).source  # the text the loaded module was compiled from
        sha = hashlib.sha256(source.encode("utf-8")).hexdigest()
        return {**self.context, "source_sha256": sha, "direction": step.direction}

    def _proven(self, step: Step, sha: str) -> bool:
        """Whether ``step``'s function is proven pure DDL (made once per source, function and batch rule)."""
        proof = (sha, step.direction, self.batch)
        if proof not in _proofs:
            _proofs[proof] = pure(self.scripts.info(step.revision).source, step.direction, batch=self.batch)
        return _proofs[proof]

    def function(self, step: Step, original: Callable[..., Any]) -> Callable[..., Any]:
        """What runs for ``step``: its recorded SQL, ``original`` while recording it, or ``original`` as it is."""
        key = self.key(step)
        if key is None:
            return original
        digest = key["digest"]
        key = {k: v for k, v in key.items() if k != "digest"}
        recorded = self.recorded(step)
        if recorded is not None:  # recorded only once proven pure: the proof holds for this exact source
            return self._replaying(recorded, original)
        if not self._proven(step, key["source_sha256"]):
            return original
        return self._recording(digest, key, original)

    def send(self, statement: str, args: Any) -> int:
        """``statement`` on the driver's cursor (see :func:`send`)."""
        return send(self.conn, statement, args)

    def quiet(self) -> bool:
        """Whether statements may go to the driver's cursor directly (see :func:`quiet`): also the version table's, between steps."""
        return quiet(self.conn, self._trusted)

    def trust(self, listener: Callable[..., Any]) -> None:
        """``listener`` (a ``before_cursor_execute`` one, added with ``retval=True``) need not see replayed statements."""
        self._trusted.append(listener)

    def recorded(self, step: Step) -> list[tuple[str, Any]] | None:
        """``step``'s recorded statements, or None when it has none."""
        key = self.key(step)
        if key is None:
            return None
        digest = key["digest"]
        return _memory.get(digest) if digest in self._looked else _load(digest, {k: v for k, v in key.items() if k != "digest"})

    def run(self, statements: list[tuple[str, Any]]) -> None:
        """A step's recorded statements, run in place of its function."""
        execute(self.conn, statements, trusted=self._trusted)
        self.replayed += 1

    def _replaying(self, statements: list[tuple[str, Any]], original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def replayed(**_kw: Any) -> None:
            self.run(statements)

        return replayed

    def _recording(self, digest: str, key: dict[str, Any], original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def recorded(**kw: Any) -> Any:
            warned: list[warnings.WarningMessage] = []
            self._statements.start()
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    warned = caught  # filled as warnings come, kept if the revision raises
                    result = original(**kw)
            finally:
                statements = self._statements.stop()
                for w in warned:  # handed on to whoever listens (the adapter keeps them for the user)
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
            if not warned and _recordable(statements):
                self._new[digest] = (key, statements)
            return result

        return recorded

    def save(self) -> None:
        """Stop listening; write the recordings made in this run, in one transaction (a store that cannot be written is left alone)."""
        self._statements.close()
        if not self._new:
            return
        for digest, (_key, statements) in self._new.items():
            _memory[digest] = statements
        with contextlib.suppress(sqlite3.Error, OSError, TypeError, ValueError):
            _write(self._new)
        self._new.clear()

    def preload(self, steps: list[Step]) -> None:
        """Read the recordings of ``steps`` in one query, before they run."""
        keys = {}
        for step in steps:
            key = self.key(step)
            if key is not None:
                keys[key["digest"]] = {k: v for k, v in key.items() if k != "digest"}
        _load_many(keys)
        self._looked.update(keys)


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


def _load_many(keys: dict[str, dict[str, Any]]) -> None:
    """Read the recordings of ``keys`` (digest -> key) that this process does not hold yet."""
    wanted = [d for d in keys if d not in _memory]
    if not wanted:
        return
    with contextlib.suppress(sqlite3.Error, OSError, ValueError, TypeError), _store(create=False) as store:
        if store is None:
            return
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for digest, key_text, statements_text in store.execute(f"SELECT digest, key, statements FROM recording WHERE digest IN ({marks})", chunk):
                if json.loads(key_text) != keys[digest]:
                    continue  # a different key under this digest: not ours
                _memory[digest] = [(str(stmt), params) for stmt, params in json.loads(statements_text)]


def _load(digest: str, key: dict[str, Any]) -> list[tuple[str, Any]] | None:
    _load_many({digest: key})
    return _memory.get(digest)


def _write(recordings: dict[str, tuple[dict[str, Any], list[tuple[str, Any]]]]) -> None:
    """Write ``recordings`` in one transaction: all of them or none."""
    rows = [(d, json.dumps(k, sort_keys=True), json.dumps([list(st) for st in s])) for d, (k, s) in recordings.items()]
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


# --------------------------------------------------------------------------- statements


class _Statements:
    """The statements sent to the cursor of ``conn`` between :meth:`start` and :meth:`stop`, with their parameters.

    One ``before_cursor_execute`` listener serves every step of a run (added at
    the first :meth:`start`, removed by :meth:`close`). When a statement used
    ``executemany`` or parameters that are not plain JSON values, :meth:`stop`
    returns a marker that makes the step not recordable.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._current: list[tuple[str, Any]] | None = None
        self._spoiled = False
        self._listening = False

    def start(self) -> None:
        if not self._listening:
            from sqlalchemy import event

            event.listen(self.conn, "before_cursor_execute", self._listen)
            self._listening = True
        self._current, self._spoiled = [], False

    def stop(self) -> list[tuple[str, Any]]:
        statements, self._current = self._current or [], None
        return [("-- not recordable", None)] if self._spoiled else statements

    def close(self) -> None:
        if self._listening:
            from sqlalchemy import event

            event.remove(self.conn, "before_cursor_execute", self._listen)
            self._listening = False

    def _listen(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if self._current is None:
            return
        if executemany:
            self._spoiled = True
            return
        params = None if context is not None and getattr(context, "no_parameters", False) else parameters
        if isinstance(params, tuple):
            params = list(params)
        if params:  # () and None need no check
            try:
                json.dumps(params)
            except (TypeError, ValueError):
                self._spoiled = True
                return
        self._current.append((statement, params))


def _recordable(statements: list[tuple[str, Any]]) -> bool:
    return all(not s.lstrip().upper().startswith(_READS) and not s.startswith("-- not recordable") for s, _ in statements)


def execute(conn: Connection, statements: list[tuple[str, Any]], *, trusted: Sequence[Callable[..., Any]] = ()) -> None:
    """Run recorded statements on ``conn``, inside its transaction, as SQLAlchemy sent them to the cursor.

    Where nothing but ``trusted`` listeners watches the connection's cursor
    (migmagic's transaction guard: a recording never ends the transaction), on
    the driver's cursor directly (:func:`send`). Otherwise (a dry run's capture,
    MySQL/MariaDB's journal) through ``exec_driver_sql``, so whatever listens
    sees every statement. Nothing is compiled either way.
    """
    if not quiet(conn, trusted):
        for statement, params in statements:
            if params:
                conn.exec_driver_sql(statement, params if isinstance(params, dict) else tuple(params))
            else:
                conn.exec_driver_sql(statement)
        return
    for statement, params in statements:
        send(conn, statement, None if params is None else params if isinstance(params, dict) else tuple(params))


def quiet(conn: Connection, trusted: Sequence[Callable[..., Any]]) -> bool:
    """Whether nothing but ``trusted`` (``before_cursor_execute`` listeners added with ``retval=True``) watches ``conn``'s cursor."""
    events = conn.dispatch
    return not events.after_cursor_execute and all(fn in trusted for fn in events.before_cursor_execute)


def send(conn: Connection, statement: str, args: Any) -> int:
    """``statement`` on the driver's cursor of ``conn`` (in its transaction), as SQLAlchemy would send it; the row count.

    ``args`` None: sent without parameters. A statement the database refuses
    raises SQLAlchemy's error for it, with the statement and its parameters.
    """
    import sqlalchemy as sa

    dbapi = conn.dialect.loaded_dbapi
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
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
