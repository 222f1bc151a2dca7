"""Alembic's scripts and revision graph: loading a folder (with a code cache), checking the graph, plans as step lists."""

from __future__ import annotations

import ast
import contextlib
import copy
import linecache
import logging
import os
import re
import traceback
import types
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import alembic
from alembic.config import Config
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError

from .. import revisionfile
from ..cache import CodeCache
from ..display import short_path
from ..errors import AmbiguousMessage, InvalidTarget, RevisionNotFound, ScriptDirectoryError
from .configured import Environment

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
    heads_after: tuple[str, ...] | None = None  # the version table once it ran, by Alembic's bookkeeping
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
        self.environment = Environment()  # what the folder's own env.py configures, once learned (migmagic.folder)

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
                was = ", ".join(getattr(s, "from_", ()) or ()) or "base"
                steps.append(Step(rev or "base", f"stamped over {was}", "stamp", _alembic=s))
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



def _config(folder: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(folder).replace("%", "%%"))
    return config


