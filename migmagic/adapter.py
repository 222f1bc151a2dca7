"""The one module that speaks to Alembic.

Everything else in migmagic works with the plain objects defined here
(:class:`RevisionInfo`, :class:`Step`, :class:`Scripts`). Alembic internals used
here, and nowhere else: ``ScriptDirectory._load_revisions`` (replaced, to load
scripts from a cache), ``ScriptDirectory._upgrade_revs`` / ``_downgrade_revs`` /
``_stamp_revs`` (the plans of ``upgrade``/``downgrade``/``stamp``) and
``RevisionMap._get_ancestor_nodes`` (what is applied below the current heads),
``HeadMaintainer`` (subclassed while steps run, so the version-table statements take
their ids as parameters) and ``MigrationStep.migration_fn`` (set on a copy of a
step whose recorded SQL replays it, see :mod:`migmagic.replay`).
The supported Alembic range is pinned in ``pyproject.toml``.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import io
import linecache
import logging
import os
import re
import traceback
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import alembic
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import HeadMaintainer, MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError

from . import revisionfile
from .cache import CodeCache
from .display import short_path
from .errors import AmbiguousMessage, InvalidTarget, RevisionNotFound, ScriptDirectoryError

ALEMBIC_VERSION: str = alembic.__version__


# --------------------------------------------------------------------------- plain objects


@dataclass(frozen=True)
class RevisionInfo:
    """One revision script, as migmagic shows it."""

    id: str
    message: str
    down_revisions: tuple[str, ...]
    branch_labels: tuple[str, ...]
    depends_on: tuple[str, ...]
    path: Path
    source: str
    checksum: str
    created: str | None
    is_head: bool
    is_base: bool
    is_branch_point: bool
    is_merge: bool


@dataclass
class Step:
    """One revision applied (or to apply) in one direction.

    ``checksum`` is that of the revision's source when the plan was made (None
    for a stamp); ``seconds`` and ``warnings`` (what Alembic warned about while
    the step ran) are filled in once it ran.
    """

    revision: str
    message: str
    direction: str  # "upgrade" | "downgrade" | "stamp"
    checksum: str | None = None
    seconds: float | None = None
    warnings: list[str] = field(default_factory=list)
    _alembic: Any = field(default=None, repr=False, compare=False)


# --------------------------------------------------------------------------- quiet Alembic


@contextlib.contextmanager
def quiet() -> Iterator[list[warnings.WarningMessage]]:
    """Keep Alembic's log lines and warnings out of cells; the warnings raised in the block are in the list it gives.

    Callers that run revisions hand the warnings on to the user (:func:`run_steps`);
    elsewhere (reading the folder, planning) migmagic reports what matters itself.
    """
    logger = logging.getLogger("alembic")
    old_level, old_propagate = logger.level, logger.propagate
    logger.setLevel(logging.ERROR)
    logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield caught
    finally:
        logger.setLevel(old_level)
        logger.propagate = old_propagate


@contextlib.contextmanager
def translated(action: str) -> Iterator[None]:
    """Alembic's CommandError and revision errors, as one-line migmagic errors."""
    try:
        yield
    except (RevisionError, CommandError) as exc:
        raise InvalidTarget(f"Cannot {action}: {_tidy(exc)}.", hint="Nothing was run.") from None


def _tidy(exc: BaseException) -> str:
    return " ".join(str(exc).split()).rstrip(".")


# --------------------------------------------------------------------------- loading scripts


@dataclass
class _Loaded:
    signature: tuple[int, ...]
    source: str
    checksum: str
    module: types.ModuleType
    rev_id: str


class _CachedScriptDirectory(ScriptDirectory):
    """A ScriptDirectory whose scripts come from migmagic's cache, not from disk."""

    def __init__(self, folder: Path, scripts: list[Script]) -> None:
        self._migmagic_scripts = scripts
        super().__init__(folder if folder.exists() else Path.cwd(), version_locations=[str(folder / "versions")])

    def _load_revisions(self) -> Iterator[Script]:
        yield from self._migmagic_scripts


_SKIP_FILE = re.compile(r"^(__init__|\.#|\.)")
LEFTOVER_SUFFIX = ".before-reapply"


def _exec_module(path: Path, code: types.CodeType) -> types.ModuleType:
    module = types.ModuleType("migmagic_revision_" + re.sub(r"\W", "_", path.stem))
    module.__file__ = str(path)
    linecache.checkcache(str(path))
    exec(code, module.__dict__)
    return module


def _compile(path: Path, source: str) -> types.CodeType:
    """The script's code, once it parses, defines ``upgrade()`` and no ``async def`` upgrade or downgrade."""
    rel = short_path(path)  # for the errors: compiling is the rare case (a fresh kernel finds the code cached)
    try:
        tree = ast.parse(source, str(path))
    except SyntaxError as exc:
        raise ScriptDirectoryError(
            f"{rel}, line {exc.lineno}: {exc.msg}.",
            hint="Fix the file; nothing was run.",
            path=str(path),
        ) from None
    if not any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == "upgrade" for n in tree.body):
        raise ScriptDirectoryError(f"{rel} defines no upgrade() function.", hint="Nothing was run.", path=str(path))
    problem = revisionfile.async_problem(tree)
    if problem:
        raise ScriptDirectoryError(f"{rel}: {problem}", hint="Nothing was run.", path=str(path))
    return compile(tree, str(path), "exec", dont_inherit=True)  # from the tree: the text is parsed once


def _read(path: Path) -> str:
    try:
        # As Python and Alembic read it: a UTF-8 BOM is allowed (and not part of the source or its checksum).
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ScriptDirectoryError(f"{short_path(path)} is not UTF-8 text.", path=str(path)) from None


def _load_file(
    path: Path, signature: tuple[int, ...], compiled: CodeCache | None = None, source: str | None = None, key: str | None = None
) -> _Loaded:
    if source is None:
        source = _read(path)
    if key is None:
        key = compiled.key(source, path) if compiled is not None else ""
    code = compiled.get(key) if compiled is not None else None
    if code is None:
        code = _compile(path, source)  # a script that passed these checks is the only kind cached
        if compiled is not None:
            compiled.put(key, code)
    try:
        module = _exec_module(path, code)
    except (Exception, SystemExit) as exc:  # sys.exit() at import time is a broken script, not the kernel's end
        lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        at = f", line {lines[-1]}," if lines else ""
        raise ScriptDirectoryError(
            f"{short_path(path)}{at} raised {type(exc).__name__} when loaded: {exc}.", hint="Nothing was run.", path=str(path)
        ) from None
    rev_id = getattr(module, "revision", None)
    if not isinstance(rev_id, str) or not rev_id:
        raise ScriptDirectoryError(f"{short_path(path)} sets no revision id (revision = '...').", path=str(path))
    if not hasattr(module, "down_revision"):
        raise ScriptDirectoryError(f"{short_path(path)} sets no down_revision.", path=str(path))
    return _Loaded(signature, source, revisionfile.checksum(source), module, rev_id)


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


class ScriptCache:
    """Revision scripts of one folder, re-read only when a file's size, mtime, ctime or inode changed.

    The ctime and inode are part of the signature because an edit can keep the
    size and the mtime (``cp -p``, ``tar``, ``rsync -a``, ``touch -r``), and an
    edit the cache missed would slip past the checksum check.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.leftovers: list[Path] = []  # old bytes an interrupted --reapply kept (see migmagic.reapply)
        self._files: dict[str, _Loaded] = {}
        self._signature: tuple[tuple[str, int, int, int, int], ...] | None = None
        self._scripts: Scripts | None = None

    def load(self) -> Scripts:
        """The folder's revision graph, parsed and checked; nothing touches a database."""
        versions = self.folder / "versions"
        entries: list[tuple[str, int, int, int, int]] = []
        self.leftovers = []
        if versions.is_dir():
            with os.scandir(versions) as it:
                for entry in it:
                    if entry.name.startswith(".") and entry.name.endswith(LEFTOVER_SUFFIX):
                        self.leftovers.append(versions / entry.name)
                    elif entry.name.endswith(".py") and not _SKIP_FILE.match(entry.name) and entry.is_file():
                        st = entry.stat()
                        entries.append((entry.name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
        entries.sort()
        signature = tuple(entries)
        if self._scripts is not None and signature == self._signature:
            return self._scripts

        files: dict[str, _Loaded] = {}
        reread: dict[Path, _Loaded] = {}
        stale = [e for e in entries if (c := self._files.get(e[0])) is None or c.signature != tuple(e[1:])]
        # Many files to read (a fresh kernel): their compiled code may be in migmagic's cache.
        compiled = CodeCache() if len(stale) > 10 else None
        paths = {e[0]: versions / e[0] for e in entries}  # one Path per file: a thousand of them add up
        sources: dict[str, str] = {}
        keys: dict[str, str] = {}
        if compiled is not None:  # read first, so the cached code of all of them comes in one query
            sources = {e[0]: _read(paths[e[0]]) for e in stale}
            keys = {name: compiled.key(text, paths[name]) for name, text in sources.items()}
            compiled.prefetch(list(keys.values()))
        try:
            for name, *stat in entries:
                cached = self._files.get(name)
                if cached is not None and cached.signature == tuple(stat):
                    files[name] = cached
                else:
                    path = paths[name]
                    files[name] = reread[path] = _load_file(path, tuple(stat), compiled, sources.get(name), keys.get(name))
        finally:
            if compiled is not None:
                compiled.close()
        scripts = None
        if self._scripts is not None and files.keys() == self._files.keys():
            scripts = self._scripts.refreshed(reread)
        if scripts is None:
            scripts = Scripts(self.folder, {paths[n]: f for n, f in files.items()})
        # Only a graph that passed every check is remembered.
        self._files, self._signature, self._scripts = files, signature, scripts
        return scripts

    def forget(self) -> None:
        self._signature = None
        self._scripts = None


# --------------------------------------------------------------------------- the graph


def _check_graph(loaded: dict[Path, _Loaded]) -> None:
    by_id: dict[str, Path] = {}
    for path, item in loaded.items():
        if item.rev_id in by_id:
            raise ScriptDirectoryError(
                f"Two revisions have the id {item.rev_id}: {short_path(by_id[item.rev_id])} "
                f"and {short_path(path)}.",
                hint="Give one of them a new id; nothing was run.",
                path=str(path),
            )
        by_id[item.rev_id] = path
    parents: dict[str, tuple[str, ...]] = {}
    for path, item in loaded.items():
        downs = _as_tuple(item.module.down_revision)
        for down in downs:
            if down not in by_id:
                raise ScriptDirectoryError(
                    f"{short_path(path)} revises {down}, which is not in the folder.",
                    hint="Fix its down_revision; nothing was run.",
                    path=str(path),
                )
        parents[item.rev_id] = downs
    labels = {label for item in loaded.values() for label in _as_tuple(getattr(item.module, "branch_labels", None))}
    for path, item in loaded.items():
        # Alembic looks a dependency up as an id or a branch label; anything else is its KeyError later.
        for dep in _as_tuple(getattr(item.module, "depends_on", None)):
            if dep not in by_id and dep not in labels:
                raise ScriptDirectoryError(
                    f"{short_path(path)} depends on {dep}, which is not in the folder.",
                    hint="Fix its depends_on; nothing was run.",
                    path=str(path),
                )
    # Cycles: depth-first search with colours.
    state: dict[str, int] = {}
    for start in parents:
        if state.get(start):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(parents[start]))]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                cycle = [n for n, _ in stack[[n for n, _ in stack].index(child):]] + [child]
                raise ScriptDirectoryError(
                    "The revisions form a cycle: " + " -> ".join(cycle) + ".",
                    hint="Fix a down_revision; nothing was run.",
                )
            elif not state.get(child):
                state[child] = 1
                stack.append((child, iter(parents[child])))


def _graph_fields(module: types.ModuleType) -> tuple[tuple[str, ...], ...]:
    """What a revision script contributes to the graph, besides its id."""
    return tuple(_as_tuple(getattr(module, name, None)) for name in ("down_revision", "branch_labels", "depends_on"))


class Scripts:
    """A checked revision graph: what the folder holds, and plans over it."""

    def __init__(self, folder: Path, loaded: dict[Path, _Loaded]) -> None:
        _check_graph(loaded)
        self.folder = folder
        self._loaded = {item.rev_id: (path, item) for path, item in loaded.items()}
        alembic_scripts = [Script(item.module, item.rev_id, path) for path, item in loaded.items()]
        self.directory = _CachedScriptDirectory(folder, alembic_scripts)
        with quiet(), translated("read the revision folder"):
            self._map = self.directory.revision_map
            self._heads = tuple(self._map.heads)
            self._order = [s.revision for s in self.directory.walk_revisions()]
        self._infos: dict[str, RevisionInfo] = {}

    def refreshed(self, changed: dict[Path, _Loaded]) -> Scripts | None:
        """This graph with the re-read files in ``changed`` swapped in; None if the graph changed.

        A file that keeps its revision id, parents, branch labels and dependencies
        leaves the graph as it was (already checked): only its module, source and
        checksum are replaced, so one edited file does not rebuild Alembic's map.
        """
        for path, item in changed.items():
            old = self._loaded.get(item.rev_id)
            if old is None or old[0] != path or _graph_fields(old[1].module) != _graph_fields(item.module):
                return None
        new = copy.copy(self)
        new._loaded = dict(self._loaded)
        new._infos = dict(self._infos)
        for path, item in changed.items():
            new._loaded[item.rev_id] = (path, item)
            new._infos.pop(item.rev_id, None)
            script = self._map.get_revision(item.rev_id)
            assert isinstance(script, Script)
            script.module = item.module  # shared with this (now stale) object
        return new

    # ---- what is there

    def __len__(self) -> int:
        return len(self._loaded)

    def __contains__(self, rev_id: object) -> bool:
        """Whether the folder holds revision ``rev_id`` (exact id)."""
        return rev_id in self._loaded

    @property
    def heads(self) -> tuple[str, ...]:
        return self._heads

    def ids(self) -> list[str]:
        """Revision ids, newest first (Alembic's walk order)."""
        return list(self._order)

    def info(self, rev_id: str) -> RevisionInfo:
        cached = self._infos.get(rev_id)
        if cached is not None:
            return cached
        path, item = self._loaded[rev_id]
        rev = self._map.get_revision(rev_id)
        assert rev is not None
        info = RevisionInfo(
            id=rev_id,
            message=(item.module.__doc__ or "").strip().split("\n")[0].strip(),
            down_revisions=_as_tuple(rev.down_revision),
            # The script's own labels: Alembic's ``rev.branch_labels`` also holds those
            # its descendants inherit from an ancestor.
            branch_labels=tuple(sorted(_as_tuple(getattr(item.module, "branch_labels", None)))),
            depends_on=_as_tuple(rev.dependencies),
            path=path,
            source=item.source,
            checksum=item.checksum,
            created=revisionfile.create_date_of(item.source),
            is_head=rev.is_head,
            is_base=rev.is_base,
            is_branch_point=rev.is_branch_point,
            is_merge=rev.is_merge_point,
        )
        self._infos[rev_id] = info
        return info

    def all(self) -> list[RevisionInfo]:
        return [self.info(r) for r in self._order]

    def by_message_all(self, message: str) -> list[RevisionInfo]:
        """Every revision whose message is ``message``, newest first."""
        wanted = message.strip()
        return [self.info(r) for r in self._order if self.info(r).message == wanted]

    def by_message(self, message: str) -> RevisionInfo | None:
        """The revision ``message`` names, or None; :class:`AmbiguousMessage` when it names several.

        A message names one revision in its folder: rewriting "the first match"
        could rewrite someone else's revision.
        """
        found = self.by_message_all(message)
        if len(found) > 1:
            named = ", ".join(f"{r.id} ({short_path(r.path)})" for r in found)
            raise AmbiguousMessage(
                f"The message {message.strip()!r} names {len(found)} revisions: {named}.",
                candidates=[r.id for r in found],
                revision_message=message.strip(),
                hint="Give this revision another message, or change the message of one of them. Nothing was written.",
            )
        return found[0] if found else None

    def children(self, rev_id: str) -> list[str]:
        """The revisions whose parent is ``rev_id``, newest first."""
        return [r for r in self._order if rev_id in self.info(r).down_revisions]

    def branch_labels(self) -> set[str]:
        return {label for r in self.all() for label in r.branch_labels}

    def resolve(self, ref: str) -> RevisionInfo:
        """One revision from an id, a unique prefix, a branch label, ``head`` or ``label@head``."""
        ref = ref.strip()
        if ref in self._loaded:
            return self.info(ref)
        if ref in ("head", "heads") or ref.endswith("@head"):
            with quiet(), translated(f"find {ref}"):
                found = self.directory.get_revisions(ref)
            if len(found) != 1:
                raise RevisionNotFound(
                    f"{ref} names {len(found)} revisions.",
                    candidates=[s.revision for s in found],
                    hint="Name one of: " + ", ".join(s.revision for s in found) + ".",
                )
            return self.info(found[0].revision)
        labelled = [r for r in self.all() if ref in r.branch_labels]
        if len(labelled) == 1:
            return labelled[0]
        matches = [r for r in self._order if r.startswith(ref)]
        if len(matches) == 1:
            return self.info(matches[0])
        if len(matches) > 1:
            raise RevisionNotFound(
                f"{ref!r} is ambiguous: it starts {len(matches)} revision ids.",
                candidates=matches,
                hint="Use more characters: " + ", ".join(matches[:8]) + ".",
            )
        raise self.unknown(ref)

    def unknown(self, ref: str) -> RevisionNotFound:
        import difflib

        names = self._order + sorted(self.branch_labels())
        close = difflib.get_close_matches(ref, names, n=5, cutoff=0.5)
        known = close or list(self._heads)
        what = "Did you mean" if close else "Heads are"
        hint = f"{what}: {', '.join(known)}{'?' if close else '.'}" if known else "The folder has no revisions yet."
        return RevisionNotFound(f"No revision {ref!r} in {short_path(self.folder)}.", candidates=known, hint=hint)

    def check_target(self, target: str) -> None:
        """Refuse a target whose revision part is unknown or ambiguous, naming candidates."""
        for part in target.split(":"):
            core = re.sub(r"[+-]\d+$", "", part.strip())
            if "@" in core:
                label, _, core = core.partition("@")
                if label and label not in self.branch_labels() and label not in self._loaded:
                    self.resolve(label)
            if core in ("", "head", "heads", "base") or re.fullmatch(r"[+-]\d+", core):
                continue
            self.resolve(core)

    # ---- applied state

    def applied(self, heads: Sequence[str]) -> set[str]:
        """Every revision at or below the given database heads."""
        if not heads:
            return set()
        return {r.revision for r in self._map._get_ancestor_nodes(self._map.get_revisions(tuple(heads)))}

    # ---- plans

    def _steps(self, alembic_steps: Sequence[Any]) -> list[Step]:
        steps = []
        for s in alembic_steps:
            if getattr(s, "is_stamp", False) or not hasattr(s, "revision"):
                rev = ",".join(s.to_) if hasattr(s, "to_") else ""
                steps.append(Step(rev or "base", getattr(s, "doc", "") or "", "stamp", _alembic=s))
            else:
                info = self.info(s.revision.revision)
                direction = "upgrade" if s.is_upgrade else "downgrade"
                steps.append(Step(info.id, info.message, direction, info.checksum, _alembic=s))
        return steps

    def plan(self, command: str, target: str, heads: Sequence[str]) -> list[Step]:
        """The steps of ``upgrade``, ``downgrade`` or ``stamp`` to ``target`` from a database at ``heads``.

        Unknown or ambiguous revisions in ``target`` name their candidates;
        a target Alembic cannot reach is an :class:`~migmagic.errors.InvalidTarget`.
        """
        self.check_target(target)
        revs: dict[str, Any] = {"upgrade": self.directory._upgrade_revs, "downgrade": self.directory._downgrade_revs, "stamp": self.directory._stamp_revs}
        with quiet(), translated(f"{command} {'to ' if command != 'stamp' else ''}{target}"):
            return self._steps(revs[command](target, tuple(heads)))

    def between(self, upper: str, lower: str) -> list[str]:
        """Revision ids from ``upper`` down to ``lower`` (history ranges)."""
        self.check_target(upper)
        self.check_target(lower)
        with quiet(), translated(f"list {lower}:{upper}"):
            # As `alembic history -r lower:upper`: both ends included.
            return [s.revision for s in self.directory.walk_revisions(base=lower, head=upper)]


# --------------------------------------------------------------------------- running


def _config(folder: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(folder).replace("%", "%%"))
    return config


def current_heads(connection: Any) -> tuple[str, ...]:
    """The revisions in the database's version table (empty when there is none)."""
    with quiet():
        ctx = MigrationContext.configure(connection)
        return tuple(ctx.get_current_heads())


def run_steps(
    connection: Any,
    scripts: Scripts,
    steps: Sequence[Step],
    *,
    on_step: Callable[[Step], None],
    transaction_per_migration: bool,
    purge: bool = False,
    on_start: Callable[[Step], None] | None = None,
    on_autocommit: Callable[[bool], None] | None = None,
    replay: Any = None,
) -> None:
    """Run ``steps`` (a plan made by :meth:`Scripts.plan`) on ``connection``, the way ``env.py`` would.

    ``on_start`` is called before each step's first statement (before Alembic
    begins its per-step transaction); ``on_step`` on the same connection right
    after each step's version-table update, with the step's ``warnings`` filled in. Transactions
    are the caller's, except that with ``transaction_per_migration`` Alembic
    commits after every step.

    Where the caller's transaction holds the whole command, a revision's
    ``op.get_context().autocommit_block()`` works as in Alembic: the transaction
    so far commits, the block's statements run in autocommit mode, and a new
    transaction begins after it. ``on_autocommit(True)`` is called just before
    that commit, ``on_autocommit(False)`` once the new transaction has begun.

    ``replay`` (a :class:`migmagic.replay.Replayer`) may give a step another
    function to run in place of the revision's ``upgrade()``/``downgrade()``
    (its recorded SQL); Alembic still runs the step: transaction, version
    table, callbacks. When every step has a recording and the steps walk one
    line of history (see :func:`_replay_line`), Alembic's runtime is not
    entered at all.
    """
    if replay is not None and not transaction_per_migration and not purge and _replay_line(connection, scripts, steps, on_step, replay):
        return
    done = 0
    seen = 0

    def fn(_heads: Any, _ctx: Any) -> Iterator[Any]:
        for s in steps:  # Alembic takes each step when the one before is done
            if on_start is not None:
                on_start(s)
            yield _with_function(s, replay) if replay is not None else s._alembic

    def on_version_apply(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        nonlocal done, seen
        step = steps[done]
        done += 1
        step.warnings = list(dict.fromkeys(" ".join(str(w.message).split()) for w in warned[seen:]))
        seen = len(warned)
        on_step(step)

    with quiet() as warned, _bound_version_statements(replay):
        if steps or purge:
            with EnvironmentContext(_config(scripts.folder), scripts.directory, fn=fn, purge=purge) as env:
                env.configure(
                    connection=connection,
                    transactional_ddl=None if transaction_per_migration else True,
                    transaction_per_migration=transaction_per_migration,
                    on_version_apply=on_version_apply,
                    render_as_batch=connection.dialect.name == "sqlite",
                )
                if not transaction_per_migration and connection.in_transaction():
                    _own_transaction(env.get_context(), connection, on_autocommit)
                with env.begin_transaction():
                    env.run_migrations()


def _replay_line(connection: Any, scripts: Scripts, steps: Sequence[Step], on_step: Callable[[Step], None], replay: Any) -> bool:
    """Run ``steps`` from their recordings alone, with the version-table statements Alembic would send; False (nothing done) where that does not apply.

    It applies when nothing but migmagic's transaction guard watches the
    connection (``replay.quiet()``), every step has a recording, and each step
    moves one line of history: an upgrade from its only parent at the single
    head (or from an empty version table for a root), a downgrade from the
    single head to its only parent (or to an empty table). For those, Alembic's
    own bookkeeping is one ``UPDATE`` (``INSERT``, ``DELETE``) of the version
    row; merges, branches and several heads are left to Alembic. The version
    table is created as Alembic creates it. ``on_step`` is called after each
    step's version row, as from Alembic's ``on_version_apply``.
    """
    if not steps or not replay.quiet():
        return False
    recorded = [replay.recorded(s) for s in steps]
    if any(r is None for r in recorded):
        return False
    with quiet():
        ctx = MigrationContext.configure(connection, opts={"render_as_batch": connection.dialect.name == "sqlite"})
        heads = tuple(ctx.get_current_heads())
    moves = []
    for step in steps:
        move = _line_move(scripts, heads, step)
        if move is None:
            return False
        moves.append(move)
        heads = move[2]
    with quiet():
        ctx._ensure_version_table()
    compiled = _version_statements(ctx)
    for step, statements, (name, params, _) in zip(steps, recorded, moves, strict=True):
        replay.run(statements)
        rowcount = replay.send(*_version_call(compiled[name], params))
        if name != "insert" and connection.dialect.supports_sane_rowcount and rowcount != 1:
            raise CommandError(f"Online migration expected to match one row when running {name} on '{ctx.version_table}'; {rowcount} found")
        step.warnings = []
        on_step(step)
    return True


def _line_move(scripts: Scripts, heads: tuple[str, ...], step: Step) -> tuple[str, dict[str, str], tuple[str, ...]] | None:
    """The version-table statement of ``step`` from ``heads`` (name, parameters, heads after) on one line of history; else None."""
    if step.direction not in ("upgrade", "downgrade") or step.revision not in scripts or len(heads) > 1:
        return None
    parents = scripts.info(step.revision).down_revisions
    if len(parents) > 1:
        return None
    parent = parents[0] if parents else None
    if step.direction == "upgrade":
        if parent is None:
            return ("insert", {"new": step.revision}, (step.revision,)) if not heads else None
        return ("update", {"old": parent, "new": step.revision}, (step.revision,)) if heads == (parent,) else None
    if heads != (step.revision,):
        return None
    if parent is None:
        return "delete", {"old": step.revision}, ()
    if scripts.info(parent).is_branch_point:  # Alembic's rules for what stays at a branch point: its own
        return None
    return "update", {"old": step.revision, "new": parent}, (parent,)


def _version_statements(ctx: MigrationContext) -> dict[str, Any]:
    """The version table's three statements, compiled once for ``ctx``'s dialect, the ids as parameters."""
    import sqlalchemy as sa

    t = ctx._version
    statements = {
        "insert": t.insert().values(version_num=sa.bindparam("new")),
        "delete": t.delete().where(t.c.version_num == sa.bindparam("old")),
        "update": t.update().where(t.c.version_num == sa.bindparam("old")).values(version_num=sa.bindparam("new")),
    }
    return {k: v.compile(dialect=ctx.dialect) for k, v in statements.items()}


def _version_call(compiled: Any, params: dict[str, str]) -> tuple[str, Any]:
    """``compiled``'s SQL and its parameters in the driver's style."""
    values = compiled.construct_params(params)
    args: Any = tuple(values[k] for k in compiled.positiontup) if compiled.positional and compiled.positiontup is not None else values
    return compiled.string, args


def _own_transaction(ctx: MigrationContext, connection: Any, on_autocommit: Callable[[bool], None] | None) -> None:
    """Let Alembic's ``autocommit_block()`` end the transaction migmagic began (internals: ``_transaction``).

    Alembic commits only a transaction it began itself; migmagic begins the
    command's transaction outside Alembic, so it hands that transaction over, and
    wraps the block to tell the caller when it commits and when the next one began.
    """
    ctx._transaction = connection.get_transaction()
    original = ctx.autocommit_block

    @contextlib.contextmanager
    def autocommit_block() -> Iterator[None]:
        if on_autocommit is not None:
            on_autocommit(True)
        with original():
            yield
        if on_autocommit is not None:
            on_autocommit(False)

    ctx.autocommit_block = autocommit_block  # type: ignore[method-assign]
class _BoundHeadMaintainer(HeadMaintainer):
    """Alembic's version-table bookkeeping, with the revision ids sent as parameters.

    Alembic writes each id into the statement as a literal (for its offline
    mode), so SQLAlchemy compiles every one of them anew. Here the three
    statements are compiled once per run and sent with ``exec_driver_sql``, the
    ids as parameters: the same statements, rows and check (one row matched,
    where the driver counts rows); which of them a step needs is Alembic's
    decision, unchanged.
    """

    replay: Any = None  # set by _bound_version_statements for one run

    def _run(self, name: str, params: dict[str, str]) -> int:
        compiled = getattr(self, "_migmagic_compiled", None)
        if compiled is None:
            compiled = self._migmagic_compiled = _version_statements(self.context)
        statement, args = _version_call(compiled[name], params)
        conn = self.context.connection
        assert conn is not None
        if self.replay is not None and self.replay.quiet():
            return int(self.replay.send(statement, args))
        # Through exec_driver_sql: nothing compiled again, and the connection's cursor events see it.
        return int(conn.exec_driver_sql(statement, args).rowcount)

    def _insert_version(self, version: str) -> None:
        if self.context.as_sql:
            return super()._insert_version(version)
        assert version not in self.heads
        self.heads.add(version)
        self._run("insert", {"new": version})

    def _delete_version(self, version: str) -> None:
        if self.context.as_sql:
            return super()._delete_version(version)
        self.heads.remove(version)
        self._one_row(self._run("delete", {"old": version}), f"deleting '{version}'")

    def _update_version(self, from_: str, to_: str) -> None:
        if self.context.as_sql:
            return super()._update_version(from_, to_)
        assert to_ not in self.heads
        self.heads.remove(from_)
        self.heads.add(to_)
        self._one_row(self._run("update", {"old": from_, "new": to_}), f"updating '{from_}' to '{to_}'")

    def _one_row(self, rowcount: int, what: str) -> None:
        if self.context.dialect.supports_sane_rowcount and rowcount != 1:
            raise CommandError(
                f"Online migration expected to match one row when {what} in '{self.context.version_table}'; {rowcount} found"
            )


@contextlib.contextmanager
def _bound_version_statements(replay: Any = None) -> Iterator[None]:
    """Alembic's runtime uses :class:`_BoundHeadMaintainer` while the block runs (put back after).

    With a ``replay`` (:class:`migmagic.replay.Replayer`) whose connection nothing
    else watches, the version-table statements go to the driver's cursor, as the
    replayed statements do.
    """
    from alembic.runtime import migration

    original = migration.HeadMaintainer
    migration.HeadMaintainer = _BoundHeadMaintainer  # type: ignore[misc]
    _BoundHeadMaintainer.replay = replay
    try:
        yield
    finally:
        migration.HeadMaintainer = original  # type: ignore[misc]
        _BoundHeadMaintainer.replay = None


def _with_function(step: Step, replay: Any) -> Any:
    """Alembic's step for ``step``, running the function ``replay`` gives for it (a copy when it differs)."""
    alembic_step = step._alembic
    original = getattr(alembic_step, "migration_fn", None)
    if original is None or step.direction not in ("upgrade", "downgrade"):
        return alembic_step
    function = replay.function(step, original)
    if function is original:
        return alembic_step
    alembic_step = copy.copy(alembic_step)
    alembic_step.migration_fn = function
    return alembic_step


def render_sql(
    scripts: Scripts, dialect_name: str, upgrade: bool, start: str | None, target: str, *, transactional_ddl: bool
) -> tuple[str, bool]:
    """The SQL Alembic's ``--sql`` (offline) mode emits, nothing executed, and whether any step ran.

    With ``transactional_ddl`` the script is wrapped in one BEGIN/COMMIT, as migmagic
    runs it; without (MySQL, MariaDB) there is no transaction to show.
    """
    buf = io.StringIO()
    ran = False

    def fn(heads: Any, _ctx: Any) -> list[Any]:
        nonlocal ran
        revs = scripts.directory._upgrade_revs(target, heads) if upgrade else scripts.directory._downgrade_revs(target, heads)
        ran = ran or bool(revs)
        return revs

    if not upgrade and start is None:
        raise InvalidTarget("The database is at base: there is nothing to downgrade.", hint="Nothing was run.")
    for ref in (start, target):
        if ref:
            scripts.check_target(ref)
    action = f"render SQL for {start + ':' if start else ''}{target}"
    with quiet(), translated(action):
        with EnvironmentContext(
            _config(scripts.folder), scripts.directory, fn=fn, as_sql=True, starting_rev=start, destination_rev=target
        ) as env:
            env.configure(
                dialect_name=dialect_name,
                output_buffer=buf,
                transactional_ddl=True if transactional_ddl else None,
                literal_binds=True,
                render_as_batch=dialect_name == "sqlite",
            )
            with env.begin_transaction():
                env.run_migrations()
    return buf.getvalue(), ran


# =========================================================================== autogenerate
#
# Alembic's autogenerate, for ``revision --autogenerate``, ``check`` and
# ``diff``. Only this section touches ``alembic.autogenerate``; the decisions
# (which metadata, which tables, which constraint names) are made in
# :mod:`migmagic.autogen` and passed in as plain callables. Internals used:
# ``AutogenContext``, ``compare._produce_net_changes`` (the comparison without
# building the downgrade) and ``render._render_cmd_body`` (the renderer, so the
# imports the rendered code needs are kept).

NameFilter = Callable[[Any, str, Any], bool]
"""Alembic's ``include_name(name, type_, parent_names)`` hook."""

Namer = Callable[[str, str, Sequence[str], "str | None", bool], "str | None"]
"""``namer(kind, table, columns, referred_table, in_new_table)``: a name for an unnamed
``foreign_key``/``unique``/``check`` constraint the generated code creates, or None."""


@dataclass
class Generated:
    """What autogenerate found and the code it wrote for it."""

    diffs: list[Any]  # Alembic's diff tuples, as compare_metadata returns them
    upgrade: str  # the body of upgrade(), indented by four spaces
    downgrade: str
    imports: list[str]

    @property
    def empty(self) -> bool:
        return not self.diffs


def _autogen_opts(include_name: NameFilter | None, render_as_batch: bool) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "compare_type": True,
        "compare_server_default": True,
        "render_as_batch": render_as_batch,
        "sqlalchemy_module_prefix": "sa.",
        "alembic_module_prefix": "op.",
        "user_module_prefix": None,
    }
    if include_name is not None:
        opts["include_name"] = include_name
    return opts


def _net_changes(connection: Any, metadata: Any, opts: dict[str, Any]) -> tuple[Any, Any]:
    from alembic.autogenerate import compare
    from alembic.autogenerate.api import AutogenContext
    from alembic.operations import ops

    ctx = MigrationContext.configure(connection, opts=opts)
    autogen_context = AutogenContext(ctx, metadata=metadata)
    upgrade_ops = ops.UpgradeOps([])
    compare._produce_net_changes(autogen_context, upgrade_ops)
    return autogen_context, upgrade_ops


def compare_models(connection: Any, metadata: Any, *, include_name: NameFilter | None = None) -> list[Any]:
    """The differences between ``metadata`` and the database, as Alembic's diff tuples.

    Types and server defaults are compared. Same result as ``compare_metadata``
    with those options, without building the downgrade that nobody reads.
    """
    with quiet(), _no_gc_pauses():
        _, upgrade_ops = _net_changes(connection, metadata, _autogen_opts(include_name, False))
        return list(upgrade_ops.as_diffs())


@contextlib.contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector while reflecting.

    Reflection allocates many small objects, which triggers full collections
    that walk the whole kernel heap (models, DataFrames...) again and again;
    the cycles it leaves are collected as usual afterwards.
    """
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def generate(
    connection: Any,
    metadata: Any,
    *,
    include_name: NameFilter | None = None,
    render_as_batch: bool = False,
    namer: Namer | None = None,
) -> Generated:
    """Compare, then render ``upgrade()`` and ``downgrade()`` bodies the way ``alembic revision --autogenerate`` does.

    Unnamed constraints the code creates get the names ``namer`` gives them; the
    downgrade is derived after naming, so it drops them by the same names. The
    user's metadata is left as it was.
    """
    from alembic.autogenerate import render

    with quiet(), _no_gc_pauses():
        autogen_context, upgrade_ops = _net_changes(connection, metadata, _autogen_opts(include_name, render_as_batch))
        diffs = list(upgrade_ops.as_diffs())
        if not diffs:
            return Generated([], "", "", [])
        restore = _name_constraints(upgrade_ops, namer) if namer else []
        try:
            downgrade_ops = upgrade_ops.reverse()
            autogen_context.imports = set()
            up = render._indent(render._render_cmd_body(upgrade_ops, autogen_context))
            down = render._indent(render._render_cmd_body(downgrade_ops, autogen_context))
        finally:
            for constraint, old in restore:
                constraint.name = old
        return Generated(diffs, "    " + up, "    " + down, sorted(autogen_context.imports))


def _walk_ops(container: Any) -> Iterator[Any]:
    for op in container.ops:
        if hasattr(op, "ops"):
            yield from _walk_ops(op)
        else:
            yield op


def _name_constraints(upgrade_ops: Any, namer: Namer) -> list[tuple[Any, Any]]:
    """Give unnamed constraints names, in place; returns what to restore on user objects."""
    import sqlalchemy as sa
    from alembic.operations import ops

    restore: list[tuple[Any, Any]] = []
    op: Any
    for op in _walk_ops(upgrade_ops):
        if isinstance(op, ops.CreateTableOp):
            checks = 0
            for item in op.columns:
                if not isinstance(item, sa.ForeignKeyConstraint | sa.UniqueConstraint | sa.CheckConstraint):
                    continue
                if isinstance(item, sa.CheckConstraint):
                    checks += 1
                if item.name is not None:
                    continue
                if isinstance(item, sa.ForeignKeyConstraint):
                    name = namer("foreign_key", op.table_name, list(item.column_keys), item.referred_table.name, True)
                elif isinstance(item, sa.UniqueConstraint):
                    name = namer("unique", op.table_name, [c.name for c in item.columns], None, True)
                else:
                    name = namer("check", op.table_name, [str(checks)], None, True)
                if name:
                    restore.append((item, item.name))
                    item.name = name
        elif isinstance(op, ops.AddConstraintOp) and getattr(op, "constraint_name", None) is None:
            if isinstance(op, ops.CreateForeignKeyOp):
                name = namer("foreign_key", op.source_table, list(op.local_cols), op.referent_table, False)
            elif isinstance(op, ops.CreateUniqueConstraintOp):
                name = namer("unique", op.table_name, list(op.columns), None, False)
            elif isinstance(op, ops.CreateCheckConstraintOp):
                name = namer("check", op.table_name, ["1"], None, False)
            else:  # pragma: no cover - every AddConstraintOp Alembic produces is above
                name = None
            if name:
                unnamed: Any = op
                unnamed.constraint_name = name
    return restore


# =========================================================================== recording operations
#
# For the data-loss guard (:mod:`migmagic.guard`): a revision's ``upgrade()`` or
# ``downgrade()`` is called with Alembic's ``op`` proxy bound to an
# ``Operations`` whose ``invoke`` records each operation object instead of
# running it; ``batch_alter_table`` yields a ``BatchOperations`` that records
# the same way. The context is offline (no connection): nothing can reach a
# database. What the recorder cannot follow (``op.execute``, ``op.bulk_insert``,
# ``op.get_bind()``, ``op.get_context()``, ``op.run_async``, a custom
# operation) stops the recording of that revision and says why. Internals used:
# ``ModuleClsProxy._install_proxy`` / ``_remove_proxy`` (what
# ``Operations.context`` does, with our instance).


@dataclass(frozen=True)
class RecordedOp:
    """One ``op`` call of a revision, recorded, not run.

    ``name`` is Alembic's operation (``drop_table``, ``drop_column``,
    ``alter_column``, ``create_table``, ``add_column``, ``rename_table``, ...);
    ``new_name`` is a renamed table's or column's new name; ``nullable`` the
    ``nullable=`` an ``alter_column`` sets (None: unchanged); ``length`` the
    length of the string type an ``alter_column`` sets (None: no string type
    with a length); ``type`` that type as SQL.
    """

    name: str
    table: str | None
    schema: str | None = None
    column: str | None = None
    new_name: str | None = None
    nullable: bool | None = None
    length: int | None = None
    type: str | None = None
    batch: bool = False


@dataclass
class RecordedStep:
    """A step's operations; ``unfollowed`` says why the recording stopped (None: every call was recorded)."""

    revision: str
    direction: str
    ops: list[RecordedOp] = field(default_factory=list)
    unfollowed: str | None = None


class _Unfollowable(Exception):
    pass


_DATA_OPS = {"ExecuteSQLOp": "op.execute", "BulkInsertOp": "op.bulk_insert"}


def _as_recorded(operation: Any, batch: bool, dialect_name: str) -> RecordedOp:
    from alembic.operations import ops

    schema = getattr(operation, "schema", None)
    table = getattr(operation, "table_name", None)
    if isinstance(operation, ops.DropColumnOp):
        return RecordedOp("drop_column", table, schema, operation.column_name, batch=batch)
    if isinstance(operation, ops.AddColumnOp):
        return RecordedOp("add_column", table, schema, operation.column.name, batch=batch)
    if isinstance(operation, ops.RenameTableOp):
        return RecordedOp("rename_table", table, schema, new_name=operation.new_table_name)
    if isinstance(operation, ops.AlterColumnOp):
        new_type = operation.modify_type
        length = getattr(new_type, "length", None) if new_type is not None else None
        shown = None
        if new_type is not None:
            try:
                shown = str(new_type.compile(dialect=_dialect(dialect_name)))
            except Exception:  # a type this dialect cannot render: as SQLAlchemy names it
                shown = repr(new_type)
        return RecordedOp(
            "alter_column", table, schema, operation.column_name, new_name=operation.modify_name,
            nullable=operation.modify_nullable, length=length if isinstance(length, int) else None, type=shown, batch=batch,
        )
    name = {"DropTableOp": "drop_table", "CreateTableOp": "create_table"}.get(type(operation).__name__)
    if name is None:
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", type(operation).__name__.removesuffix("Op")).lower()
    return RecordedOp(name, table, schema, batch=batch)


def _dialect(name: str) -> Any:
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    return {"sqlite": sqlite, "postgresql": postgresql, "mysql": mysql, "mariadb": mysql}.get(name, sqlite).dialect()


_SQLALCHEMY_ROOTS = {"op", "sa", "sqlalchemy", "postgresql", "mysql", "sqlite", "mssql", "oracle"}
_DATA_CALLS = {
    "execute": "it reads or writes data itself (op.execute)",
    "bulk_insert": "it reads or writes data itself (op.bulk_insert)",
    "get_bind": "it reads or writes data itself (op.get_bind())",
    "get_context": "it uses the migration context itself (op.get_context())",
    "run_async": "it runs code on the connection itself (op.run_async)",
    "invoke": "it invokes operations itself (op.invoke)",
}


def _not_plain(source: str, function: str) -> str | None:
    """Why ``function`` of a revision is more than ``op`` calls with SQLAlchemy arguments (None: it is not).

    Such code (a loop, a sleep, a helper, data work) is not called to record its
    operations: running it once more, outside the real run, could have effects.
    """
    tree = ast.parse(source)
    roots = set(_SQLALCHEMY_ROOTS)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("sqlalchemy", "alembic"):
            roots |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            roots |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.split(".")[0] == "sqlalchemy"}
    found = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function), None)
    if found is None:
        return f"its {function}() is not a plain function"

    def calls_ok(node: ast.AST, names: set[str]) -> str | None:
        for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
            func = call.func
            while isinstance(func, ast.Attribute | ast.Call | ast.Subscript):
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "op" and func.attr in _DATA_CALLS:
                    return _DATA_CALLS[func.attr]
                func = func.func if isinstance(func, ast.Call) else func.value
            if not (isinstance(func, ast.Name) and func.id in names):
                return f"it runs code besides op calls (line {call.lineno})"
        return None

    def body_ok(statements: list[ast.stmt], names: set[str]) -> str | None:
        for statement in statements:
            if isinstance(statement, ast.Pass) or (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)):
                continue
            if isinstance(statement, ast.Expr | ast.Assign) and isinstance(statement.value, ast.Call | ast.List | ast.Tuple | ast.Constant):
                why = calls_ok(statement.value, names)
                if isinstance(statement, ast.Assign):
                    names = names | {t.id for t in statement.targets if isinstance(t, ast.Name)}
            elif isinstance(statement, ast.With) and all(isinstance(i.context_expr, ast.Call) for i in statement.items):
                why = next((w for i in statement.items if (w := calls_ok(i.context_expr, names))), None)
                inner = names | {i.optional_vars.id for i in statement.items if isinstance(i.optional_vars, ast.Name)}
                why = why or body_ok(statement.body, inner)
            else:
                why = f"it runs code besides op calls (line {statement.lineno})"
            if why:
                return why
        return None

    return body_ok(found.body, roots)


def record_operations(scripts: Scripts, steps: Sequence[Step], dialect_name: str) -> list[RecordedStep]:
    """The ``op`` calls of each upgrade or downgrade step, recorded without running them (stamps are skipped).

    A step whose code reads or writes data itself, or raises while recorded,
    has ``unfollowed`` set and the operations recorded before that point.
    """
    from alembic.operations import BatchOperations, Operations, ops

    with quiet():  # Alembic logs the offline context it makes
        ctx = MigrationContext.configure(dialect_name=dialect_name, opts={"as_sql": True, "output_buffer": io.StringIO()})
    out: list[RecordedStep] = []
    for step in steps:
        if step.direction not in ("upgrade", "downgrade") or step.revision not in scripts:
            continue
        recorded = RecordedStep(step.revision, step.direction)
        out.append(recorded)

        def stop(why: str, recorded: RecordedStep = recorded) -> Any:
            recorded.unfollowed = recorded.unfollowed or why
            raise _Unfollowable(why)

        def recorder(batch: bool, recorded: RecordedStep = recorded) -> Callable[[Any], Any]:
            def invoke(operation: Any) -> Any:
                kind = type(operation).__name__
                if kind in _DATA_OPS:
                    stop(f"it reads or writes data itself ({_DATA_OPS[kind]})")
                if type(operation).__module__ != ops.__name__:
                    stop(f"it calls a custom operation ({kind})")
                recorded.ops.append(_as_recorded(operation, batch, dialect_name))
                return operation.to_table(ctx) if isinstance(operation, ops.CreateTableOp) else None

            return invoke

        operations = Operations(ctx)

        @contextlib.contextmanager
        def batch_alter_table(table_name: str, schema: str | None = None, **_kw: Any) -> Iterator[Any]:
            batch = BatchOperations(ctx, impl=types.SimpleNamespace(table_name=table_name, schema=schema))  # type: ignore[arg-type]
            batch.invoke = recorder(True)  # type: ignore[method-assign,assignment]
            yield batch

        overrides: dict[str, Any] = {
            "invoke": recorder(False),
            "batch_alter_table": batch_alter_table,
            "get_bind": lambda: stop("it reads or writes data itself (op.get_bind())"),
            "get_context": lambda: stop("it uses the migration context itself (op.get_context())"),
            "run_async": lambda *a, **k: stop("it runs code on the connection itself (op.run_async)"),
        }
        for name, value in overrides.items():
            setattr(operations, name, value)
        module = scripts.directory.revision_map.get_revision(step.revision).module  # type: ignore[union-attr]
        fn = getattr(module, step.direction, None)
        if fn is None:
            recorded.unfollowed = f"it has no {step.direction}()"
            continue
        why = _not_plain(scripts.info(step.revision).source, step.direction)
        if why:  # the revision's own code is not run twice just to look at it
            recorded.unfollowed = why
            continue
        operations._install_proxy()
        try:
            with quiet(), contextlib.redirect_stdout(io.StringIO()):
                fn()
        except _Unfollowable:
            pass
        except Exception as exc:
            recorded.unfollowed = recorded.unfollowed or f"it raised {type(exc).__name__} when recorded: {_tidy(exc)}"
        finally:
            operations._remove_proxy()
    return out


# =========================================================================== rendering a cell offline
#
# ``%%revision`` checks, before anything is written, that the cell's operations
# compile for the session's database: ``sa.String()`` without a length, say, is
# refused on MySQL/MariaDB while the cell is being written, not at upgrade time.
# Only a body of plain ``op`` calls is rendered (the same test as the guard's),
# with Alembic's offline (``--sql``) context: nothing reaches a database.


def compile_problem(body: str, dialect_name: str) -> str | None:
    """Why ``body``'s ``upgrade()`` does not compile for ``dialect_name`` (None: it does, or it is not plain op calls)."""
    from alembic.operations import Operations
    from sqlalchemy.exc import CompileError

    source = "from alembic import op\nimport sqlalchemy as sa\n\n" + body
    try:
        if _not_plain(source, "upgrade") is not None:
            return None
        namespace: dict[str, Any] = {"__name__": "migmagic_cell_check"}
        exec(compile(source, "<%%revision cell>", "exec", dont_inherit=True), namespace)
        upgrade = namespace.get("upgrade")
        if not callable(upgrade):
            return None
        with quiet():
            ctx = MigrationContext.configure(dialect_name=dialect_name, opts={"as_sql": True, "output_buffer": io.StringIO()})
            with Operations.context(ctx):
                upgrade()
    except CompileError as exc:
        text = " ".join(str(exc).split())
        text = re.sub(r"\(Background on this error at: [^)]*\)", "", text).strip()
        return re.sub(r"Compiler <[^>]*> ", "", text).rstrip(".")
    except Exception:  # anything else (batch mode offline, say) is for the real run to say
        return None
    return None


# =========================================================================== a revision's statements, by line
#
# ``%%revision`` and ``%migrate lint`` hand a revision's SQL to a linter
# (:mod:`migmagic.lint`), each statement with the line of the revision that sent
# it. Rendered as the compile check renders a cell (Alembic's offline context,
# nothing reaches a database), for the same bodies, plus ``op.execute`` (its SQL
# is what is linted) and ``op.get_context().autocommit_block()`` (offline it
# emits COMMIT and BEGIN, as Alembic's ``--sql`` does).


def offline_statements(
    source: str, filename: str, dialect_name: str, function: str = "upgrade", *, plain_only: bool = True
) -> list[tuple[int | None, str]] | str:
    """Each statement ``function()`` of revision ``source`` sends to ``dialect_name``, with its line in ``source``; or why it is not rendered.

    ``plain_only``: only a body the compile check would render (a cell not yet
    written); without, any code, as Alembic's ``--sql`` runs it (a revision file).
    ``op`` and ``sa`` are there without imports, as in a ``%%revision`` cell.
    """
    import sys

    from alembic.operations import Operations

    # op.execute and op.get_context() are safe offline: the rest is looked at as the compile check does (lines kept).
    why = _not_plain(re.sub(r"\bop\s*\.\s*(?:execute|get_context)\b", "op.f", source), function) if plain_only else None
    if why:
        return why
    out: list[tuple[int | None, str]] = []

    class Lines(io.StringIO):
        def write(self, text: str) -> int:
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_filename != filename:
                frame = frame.f_back  # type: ignore[assignment]
            out.append((frame.f_lineno if frame is not None else None, text.strip()))
            return len(text)

    try:
        import sqlalchemy as sa
        from alembic import op

        namespace: dict[str, Any] = {"__name__": "migmagic_offline_statements", "__file__": filename, "op": op, "sa": sa}
        exec(compile(source, filename, "exec", dont_inherit=True), namespace)
        with quiet(), contextlib.redirect_stdout(io.StringIO()):
            ctx = MigrationContext.configure(dialect_name=dialect_name, opts={"as_sql": True, "output_buffer": Lines(), "literal_binds": True})
            with Operations.context(ctx):
                namespace[function]()
    except Exception as exc:
        return f"it raised {type(exc).__name__} when rendered offline: {_tidy(exc)}"
    return [(line, text) for line, text in out if text]
