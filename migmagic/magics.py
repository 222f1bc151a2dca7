"""``%migrate`` and ``%%revision``: parse the line, call the engine, render the result.

The commands' options and help live in :data:`COMMANDS`; ``%migrate -h``,
``%migrate?`` and ``%migrate COMMAND -h`` are generated from it. The work is
done by :class:`migmagic.engine.Migrator`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class
from traitlets import Bool, Float, Unicode, observe

from .errors import UsageError

# name -> (one-line help, [(flags, argparse kwargs), ...])
Arg = tuple[tuple[str, ...], dict[str, Any]]
_TARGET = "a revision target: head, heads, base, +N, -N, REV+N, an id or unique prefix, label@head"
_COMMON_REVISION_ARGS: list[Arg] = [
    (("--head",), dict(help="parent revision (default: the folder's single head); 'base' starts a new root")),
    (("--branch-label",), dict(help="a branch label for the new revision")),
    (("--depends-on",), dict(help="revision(s) this one depends on, comma-separated")),
    (("--rev-id",), dict(help="the revision id to use (default: derived from message and parent)")),
]
_MODEL_ARGS: list[Arg] = [
    (("--metadata",), dict(metavar="NAME", help="the MetaData or declarative base to compare with (default: the one in the notebook)")),
    (("--include-unmanaged",), dict(action="store_true", help="also propose dropping tables the models do not know")),
]
COMMANDS: dict[str, tuple[str, list[Arg]]] = {
    "init": (
        "Create (or adopt) the revision folder and bind this session to a database.",
        [
            (("url",), dict(nargs="?", help="database URL (default: %%config Migrate.url, DATABASE_URL, alembic.ini, sqlite:///migmagic.db)")),
            (("--dir",), dict(help="revision folder (default: migrations/)")),
        ],
    ),
    "status": ("The database (password masked), folder, current, heads, pending, edited, lock.", []),
    "current": ("The revision(s) the database is at.", []),
    "history": (
        "All revisions as a table: revision, parent, message, created, applied, markers, branch labels.",
        [(("-r", "--rev-range"), dict(help="a range FROM:TO, e.g. base:head or abc1:"))],
    ),
    "show": ("A revision's details and source.", [(("rev",), dict(help=_TARGET))]),
    "heads": ("The folder's heads as a table.", []),
    "branches": ("Branch points as a table.", []),
    "revision": (
        "Write a new revision named MESSAGE (running it again finds it and writes nothing).",
        [
            (("-m", "--message"), dict(help="the revision's message (names it within the folder)")),
            *_COMMON_REVISION_ARGS,
            (("--autogenerate",), dict(action="store_true", help="write what brings the database to the notebook's models; the code also goes to the next cell")),
            *_MODEL_ARGS,
        ],
    ),
    "upgrade": (
        "Upgrade the database; shows the steps as a table.",
        [
            (("target",), dict(nargs="?", default="head", help=_TARGET + " (default: head); with --sql, [FROM:]TO")),
            (("--sql",), dict(action="store_true", help="show the SQL instead of running it")),
        ],
    ),
    "downgrade": (
        "Downgrade the database; shows the steps as a table.",
        [
            (("target",), dict(help=_TARGET + "; with --sql, FROM:TO")),
            (("--sql",), dict(action="store_true", help="show the SQL instead of running it")),
        ],
    ),
    "merge": (
        "Write a merge revision joining two or more revisions.",
        [
            (("revisions",), dict(nargs="+", help="revisions to join, or 'heads'")),
            (("-m", "--message"), dict(help="the merge revision's message")),
            (("--rev-id",), dict(help="the revision id to use")),
        ],
    ),
    "stamp": (
        "Set the version table to a revision without running any.",
        [
            (("target",), dict(help=_TARGET)),
            (("--purge",), dict(action="store_true", help="empty the version table first")),
        ],
    ),
    "edit": ("Load a revision into the next cell as a %%revision cell.", [(("rev",), dict(help=_TARGET))]),
    "log": ("The ledger: every step migmagic applied, with checksums.", []),
    "check": ("Pending model changes as a table; the cell fails if there are any.", [*_MODEL_ARGS]),
    "diff": ("Model-versus-database differences as a table (what, table, column, from, to); writes nothing.", [*_MODEL_ARGS]),
    "schema": (
        "The database's tables (name, columns, rows), or one table's columns, indexes and foreign keys.",
        [(("table",), dict(nargs="?", help="a table name"))],
    ),
    "accept": ("Record an edited, applied revision's new source on purpose.", [(("rev",), dict(help=_TARGET))]),
}


class _HelpShown(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so a bad line is a one-line error."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{self.prog}: {message}.", hint=f"See {self.prog} -h.")

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        raise _HelpShown()


def _command_parser(name: str) -> _Parser:
    help_text, args = COMMANDS[name]
    parser = _Parser(prog=f"%migrate {name}", description=help_text, add_help=True)
    for flags, kwargs in args:
        parser.add_argument(*flags, **kwargs)
    return parser


def overview() -> str:
    """The text of ``%migrate -h`` and ``%migrate?``."""
    width = max(len(n) for n in COMMANDS)
    lines = [
        "%migrate COMMAND [options]: Alembic's commands in a notebook. %migrate alone shows status.",
        "",
        "Commands:",
        *(f"  {name.ljust(width)}  {help_text}" for name, (help_text, _) in COMMANDS.items()),
        "",
        "%migrate COMMAND -h shows a command's options.",
        '%%revision -m "MESSAGE" [--apply] [--reapply] [--head REV] ...: a cell holding upgrade()/downgrade().',
        "Settings: %config Migrate.url = '...', %config Migrate.lock_timeout = 30, %config Migrate.replay = False.",
    ]
    return "\n".join(lines)


_REVISION_CELL_ARGS: list[Arg] = [
    (("-m", "--message"), dict(help="the revision's message (names it within the folder)")),
    (("--apply",), dict(action="store_true", help="also upgrade the database to this revision")),
    (("--reapply",), dict(action="store_true", help="for an applied revision: downgrade with the old code, rewrite, upgrade with the new (all or nothing on SQLite and PostgreSQL)")),
    *_COMMON_REVISION_ARGS,
]


def _revision_parser() -> _Parser:
    parser = _Parser(prog="%%revision", description="Write the cell's upgrade()/downgrade() as an Alembic revision script.")
    for flags, kwargs in _REVISION_CELL_ARGS:
        parser.add_argument(*flags, **kwargs)
    return parser


def _without_comment(line: str) -> str:
    """``line`` without a trailing ``# comment``, as a shell reads it.

    A comment starts at an unquoted ``#`` at the start of the line or after
    whitespace; a ``#`` inside quotes or inside a word (a URL's password or
    fragment) is kept.
    """
    quote: str | None = None
    escaped = False
    word_start = True
    for i, ch in enumerate(line):
        was_escaped, escaped = escaped, False
        if was_escaped:
            pass
        elif ch == "\\" and quote != "'":
            escaped = True
        elif quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and word_start:
            return line[:i]
        word_start = quote is None and not was_escaped and ch.isspace()
    return line


def _split(line: str) -> list[str]:
    """The words of a magic line, quotes removed and a trailing ``# comment`` dropped."""
    try:
        return shlex.split(_without_comment(line))
    except ValueError as exc:
        raise UsageError(f"Cannot read the line: {exc}.") from None


def _warn_literal_password(tokens: list[str]) -> None:
    from .settings import password_of

    if any("://" in t and password_of(t) for t in tokens):
        print(
            "Warning: this line holds a password, which is saved with the notebook. "
            "Put the URL in the DATABASE_URL environment variable instead.",
            file=sys.stderr,
        )


class _MaskedURL(str):
    """A URL that is itself when used, and shows with its password masked."""

    def __repr__(self) -> str:
        from .settings import mask_url

        return repr(mask_url(str(self)))


class URL(Unicode):
    """A URL setting: ``%config Migrate`` and ``%config Migrate.url`` show it masked."""

    info_text = "a database URL"

    def validate(self, obj: Any, value: Any) -> Any:
        value = super().validate(obj, value)
        return value if value is None else _MaskedURL(value)


@magics_class
class Migrate(Magics):
    """The ``%migrate`` and ``%%revision`` magics. Settings: ``%config Migrate``."""

    url = URL(None, allow_none=True, help="Database URL (after the one given to %migrate init).").tag(config=True)
    directory = Unicode(None, allow_none=True, help="Revision folder (default: migrations/).").tag(config=True)
    lock_timeout = Float(30.0, help="Seconds to wait for another migration of the same database.").tag(config=True)
    replay = Bool(True, help="Run pure-DDL revisions from the SQL recorded when Alembic first ran them.").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        # Set before the traits load: a configured value notifies _settings_changed.
        self._migrator: Any = None
        self._bound: tuple[str | None, str | None] = (None, None)
        super().__init__(shell=shell, **kwargs)

    @observe("url", "directory", "lock_timeout", "replay")
    def _settings_changed(self, _change: Any) -> None:
        if self._migrator is not None:
            self._migrator.close()
        self._migrator = None

    # ---- the session's Migrator

    @property
    def migrator(self) -> Any:
        if self._migrator is None:
            from .engine import Migrator

            url, folder = self._bound
            self._migrator = Migrator(url, folder or self.directory, configured_url=self.url, lock_timeout=self.lock_timeout, replay=self.replay)
        return self._migrator

    def _bind(self, url: str | None, folder: str | None) -> Any:
        if self._migrator is not None:
            self._migrator.close()
        self._migrator = None
        self._bound = (url, folder)
        return self.migrator

    # ---- %migrate

    @line_cell_magic
    def migrate(self, line: str, cell: str | None = None) -> Any:
        if cell is not None:
            raise UsageError(
                "%migrate is a line magic, but it was used as the cell magic %%migrate.",
                hint='Use %migrate COMMAND on one line, or %%revision -m "..." for a cell holding upgrade().',
            )
        tokens = _split(line)
        _warn_literal_password(tokens + line.split())  # a password in the comment is saved too
        if not tokens:
            return self.migrator.status()
        name, rest = tokens[0], tokens[1:]
        if name in ("-h", "--help", "help"):
            print(overview())
            return None
        if name not in COMMANDS:
            raise UsageError(f"Unknown command {name!r}.", hint="Commands: " + ", ".join(COMMANDS) + ".")
        try:
            args = _command_parser(name).parse_args(rest)
        except _HelpShown:
            return None
        return getattr(self, f"_cmd_{name}")(args)

    def _cmd_init(self, a: argparse.Namespace) -> Any:
        m = self._bind(a.url, a.dir)
        m.ensure_folder()
        return m.status()

    def _cmd_status(self, a: argparse.Namespace) -> Any:
        return self.migrator.status()

    def _cmd_current(self, a: argparse.Namespace) -> Any:
        return self.migrator.current()

    def _cmd_history(self, a: argparse.Namespace) -> Any:
        return self.migrator.history(a.rev_range)

    def _cmd_show(self, a: argparse.Namespace) -> Any:
        return self.migrator.show(a.rev)

    def _cmd_heads(self, a: argparse.Namespace) -> Any:
        return self.migrator.heads()

    def _cmd_branches(self, a: argparse.Namespace) -> Any:
        return self.migrator.branches()

    def _cmd_revision(self, a: argparse.Namespace) -> Any:
        if a.autogenerate:
            return self._autogenerate(a)
        return self.migrator.revision(
            a.message or "", None, head=a.head, branch_label=a.branch_label, depends_on=a.depends_on, rev_id=a.rev_id,
            metadata=a.metadata, include_unmanaged=a.include_unmanaged,
        )

    def _autogenerate(self, a: argparse.Namespace) -> Any:
        result = self.migrator.revision(
            a.message or "", None, head=a.head, branch_label=a.branch_label, depends_on=a.depends_on, rev_id=a.rev_id,
            autogenerate=True, metadata=a.metadata, namespace=self._namespace(), include_unmanaged=a.include_unmanaged,
        )
        if result.cell and self.shell is not None:
            self.shell.set_next_input(result.cell, replace=False)
            result.notes.append("The code is in the next cell as a %%revision cell: review it, edit it, run it to rewrite the revision.")
        return result

    def _cmd_check(self, a: argparse.Namespace) -> Any:
        return self.migrator.check(a.metadata, namespace=self._namespace(), include_unmanaged=a.include_unmanaged)

    def _cmd_diff(self, a: argparse.Namespace) -> Any:
        return self.migrator.diff(a.metadata, namespace=self._namespace(), include_unmanaged=a.include_unmanaged)

    def _namespace(self) -> dict[str, Any]:
        """The notebook's variables, where the models are looked for."""
        return self.shell.user_ns if self.shell is not None else {}

    def _cmd_schema(self, a: argparse.Namespace) -> Any:
        return self.migrator.schema(a.table)

    def _cmd_upgrade(self, a: argparse.Namespace) -> Any:
        return self.migrator.upgrade(a.target, sql=a.sql, progress=None if a.sql else _progress())

    def _cmd_downgrade(self, a: argparse.Namespace) -> Any:
        return self.migrator.downgrade(a.target, sql=a.sql, progress=None if a.sql else _progress())

    def _cmd_merge(self, a: argparse.Namespace) -> Any:
        return self.migrator.merge(a.revisions, a.message or "", rev_id=a.rev_id)

    def _cmd_stamp(self, a: argparse.Namespace) -> Any:
        return self.migrator.stamp(a.target, purge=a.purge)

    def _cmd_edit(self, a: argparse.Namespace) -> Any:
        from .display import Message

        text = self.migrator.edit(a.rev)
        assert self.shell is not None
        self.shell.set_next_input(text, replace=False)
        return Message(f"Revision {a.rev} is in the next cell: edit it and run it to rewrite the revision.")

    def _cmd_log(self, a: argparse.Namespace) -> Any:
        return self.migrator.log()

    def _cmd_accept(self, a: argparse.Namespace) -> Any:
        return self.migrator.accept(a.rev)

    # ---- %%revision

    @line_cell_magic
    def revision(self, line: str, cell: str | None = None) -> Any:
        if cell is None and {"-h", "--help"} & set(line.split()):
            cell = ""  # help for the cell magic, asked on a line
        if cell is None:
            raise UsageError(
                "%%revision is a cell magic, but it was used as the line magic %revision.",
                hint='Put %%revision -m "..." on the first line of a cell holding def upgrade(), '
                'or use %migrate revision -m "..." for an empty revision.',
            )
        try:
            args = _revision_parser().parse_args(_split(line))
        except _HelpShown:
            return None
        if not args.message:
            raise UsageError("%%revision needs a message: -m MESSAGE.", hint='For example %%revision -m "create events table".')
        return self.migrator.revision(
            args.message,
            cell,
            head=args.head,
            branch_label=args.branch_label,
            depends_on=args.depends_on,
            rev_id=args.rev_id,
            apply=args.apply,
            reapply=args.reapply,
            progress=_progress(),
        )

    # ---- tab completion

    def complete(self, event: Any) -> list[str]:
        words = event.line.split()
        typing_first = len(words) == 1 or (len(words) == 2 and not event.line.endswith(" "))
        if typing_first:
            return list(COMMANDS)
        try:
            scripts = self.migrator.scripts()
        except Exception:
            return []
        names = ["head", "heads", "base", *scripts.ids(), *sorted(scripts.branch_labels())]
        return [n for n in names if n.startswith(event.symbol)] or names


Migrate.migrate.__doc__ = overview()


def _progress() -> Any:
    """A progress callback: a display that updates in a notebook, a line on a terminal's stderr."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover
        return None
    ip = get_ipython()
    in_kernel = ip is not None and getattr(ip, "kernel", None) is not None
    handle: list[Any] = []

    def report(done: int, total: int, step: Any) -> None:
        if total < 2:
            return
        text = f"{done}/{total} steps" + (f": {step.direction} {step.revision} {step.message}" if step else "")
        if in_kernel:
            if not handle:
                handle.append(display({"text/plain": text}, raw=True, display_id=True))
            else:
                handle[0].update({"text/plain": text if done < total else ""}, raw=True)
        elif sys.stderr.isatty():
            end = "\n" if done == total else ""
            print(f"\r{text[:100]:<100}", end=end, file=sys.stderr, flush=True)

    return report


_loaded: dict[int, Migrate] = {}


def _complete(shell: Any, event: Any) -> list[str]:
    """The ``%migrate`` completer: registered once per shell, answered by the loaded magics."""
    from IPython.core.error import TryNext

    magics = _loaded.get(id(shell))
    matches = magics.complete(event) if magics is not None else []
    if not matches:
        raise TryNext()
    return matches


def load(ipython: Any) -> None:
    previous = _loaded.get(id(ipython))
    if previous is not None:  # %reload_ext: the old instance lets go of its connections
        unload(ipython)
    magics = Migrate(shell=ipython, parent=ipython)
    ipython.register_magics(magics)
    ipython.configurables[:] = [c for c in ipython.configurables if not isinstance(c, Migrate)] + [magics]
    if previous is None and not getattr(ipython, "_migmagic_completer", False):
        ipython.set_hook("complete_command", _complete, str_key="%migrate")
        ipython._migmagic_completer = True
    _loaded[id(ipython)] = magics


def unload(ipython: Any) -> None:
    magics = _loaded.pop(id(ipython), None)
    if magics is not None and magics._migrator is not None:
        magics._migrator.close()
