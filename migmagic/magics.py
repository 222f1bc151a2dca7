"""``%migrate`` and ``%%revision``: parse the line, call the engine, render the result.

The commands' options and help live in :data:`COMMANDS`; ``%migrate -h``,
``%migrate?`` and ``%migrate COMMAND -h`` are generated from it. The work is
done by :class:`migmagic.engine.Migrator`.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import re
import shlex
import sys
from collections.abc import Iterator
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Bool, Float, Int, Unicode, observe

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
    (("--metadata",), dict(metavar="NAME", help="the models to compare with: a name in the notebook (Base, db, db.Model) or module:attribute (app:db); default: the one in the notebook")),
    (("--include-unmanaged",), dict(action="store_true", help="also propose dropping tables the models do not know")),
]
_DRY_RUN_ARGS: list[Arg] = [
    (("--dry-run",), dict(action="store_true", help="rehearse on a scratch copy and show what would change; the database is not touched")),
    (("--copy",), dict(action="store_true", help="with --dry-run on PostgreSQL: rehearse on a template clone, not in a rolled-back transaction")),
    (("--sample",), dict(type=int, default=1000, metavar="N", help="with --dry-run on MySQL/MariaDB: rows copied per table (default 1000)")),
    (("--full",), dict(action="store_true", help="with --dry-run on MySQL/MariaDB: copy every row")),
]
_ACCEPT_DATA_LOSS: Arg = (("--accept-data-loss",), dict(action="store_true", help="run it even if it drops rows, values or NULLs (the data-loss guard refuses otherwise)"))
COMMANDS: dict[str, tuple[str, list[Arg]]] = {
    "init": (
        "Create (or adopt) the revision folder and bind this session to a database.",
        [
            (("url",), dict(nargs="?", help="database URL (default: %%config Migrate.url, DATABASE_URL, alembic.ini, sqlite:///migmagic.db)")),
            (("--dir",), dict(help="revision folder (default: migrations/)")),
            (("--metadata",), dict(metavar="MODULE:ATTR", help="your models, e.g. myapp.models:Base: the folder's env.py gives them to alembic check and revision --autogenerate")),
            (("--update-env",), dict(action="store_true", help="update env.py: rewrite an older migmagic's from the current template; in a project's own, add lines that keep migmagic's tables out of its autogenerate")),
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
            *_DRY_RUN_ARGS,
            _ACCEPT_DATA_LOSS,
        ],
    ),
    "downgrade": (
        "Downgrade the database; shows the steps as a table.",
        [
            (("target",), dict(help=_TARGET + "; with --sql, FROM:TO")),
            (("--sql",), dict(action="store_true", help="show the SQL instead of running it")),
            *_DRY_RUN_ARGS,
            _ACCEPT_DATA_LOSS,
        ],
    ),
    "verify": (
        "Upgrade, downgrade and upgrade again each revision on a throwaway database; the cell fails if a downgrade does not restore the schema.",
        [
            (("rev_range",), dict(nargs="?", metavar="RANGE", help="revisions FROM:TO (default: all, base to head)")),
            (("--metadata",), dict(metavar="NAME", help="the models to compare the schema at head with: a name in the notebook (Base, db) or module:attribute (app:db); default: the one in the notebook, if any")),
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
    "graph": (
        "The revision graph as a picture: branches, merges, heads; applied filled, pending hollow.",
        [(("rev_range",), dict(nargs="?", metavar="RANGE", help="a range FROM:TO, e.g. base:head or abc1:"))],
    ),
    "diagram": (
        "The schema as an entity-relationship diagram (needs pip install 'migmagic[diagrams]').",
        [
            (("tables",), dict(nargs="*", metavar="TABLE", help="draw these tables and their direct neighbours (default: all)")),
            (("--dry-run",), dict(metavar="TARGET", help="the schema after upgrading (or downgrading) to TARGET, rehearsed on a scratch copy: added green, removed red")),
        ],
    ),
    "lint": (
        "squawk's findings in revisions' PostgreSQL SQL as a table: rule, statement, line, why, the safer way.",
        [(("rev_range",), dict(nargs="?", metavar="RANGE", help="revisions FROM:TO (default: all)"))],
    ),
    "resume": ("MySQL/MariaDB: finish a half-applied revision, skipping the statements that committed (checked against the file).", []),
    "repair": (
        "MySQL/MariaDB: record a half-applied revision as applied or not applied, once the database was put right by hand; nothing runs.",
        [
            (("rev",), dict(help="the half-applied revision")),
            (("--applied",), dict(dest="applied", action="store_const", const=True, default=None, help="its work is all there: record it as applied")),
            (("--not-applied",), dict(dest="applied", action="store_const", const=False, help="none of its work is left: record it as not applied")),
        ],
    ),
    "restore": (
        "SQLite: put the database back as it was before an earlier command (the latest restore point, or POINT).",
        [
            (("point",), dict(nargs="?", help="the restore point's number (default: the latest); see --list")),
            (("--list",), dict(action="store_true", help="list the restore points: point, taken at, before which command, revision then, size")),
        ],
    ),
}


class _HelpShown(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so a bad line is a one-line error."""

    def error(self, message: str) -> Any:
        unrecognized = re.match(r"unrecognized arguments: (\S+)", message)
        if unrecognized and unrecognized.group(1).startswith("-"):
            word = unrecognized.group(1).split("=")[0]
            options = [o for action in self._actions for o in action.option_strings if o.startswith("--")]
            raise UsageError(f"{self.prog}: unknown option {word!r}.", hint=_did_you_mean(word, options) or f"See {self.prog} -h.")
        raise UsageError(f"{self.prog}: {message}.", hint=f"See {self.prog} -h.")

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        raise _HelpShown()


def _did_you_mean(word: str, choices: list[str]) -> str | None:
    """``Did you mean X?`` for the choice closest to ``word`` (None when none is close)."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"Did you mean {close[0]}?" if close else None


NOT_SET_UP = "Nothing is set up here yet: no migrations/ folder and no database URL."
RUN_INIT = "Run %migrate init [URL] first."


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
        "Settings: %config Migrate.url = '...', %config Migrate.lock_timeout = 30, %config Migrate.restore_points = 3, %config Migrate.replay = False.",
    ]
    return "\n".join(lines)


_REVISION_CELL_ARGS: list[Arg] = [
    (("-m", "--message"), dict(help="the revision's message (names it within the folder)")),
    (("--apply",), dict(action="store_true", help="also upgrade the database to this revision")),
    (("--reapply",), dict(action="store_true", help="for an applied revision: downgrade with the old code, rewrite, upgrade with the new (all or nothing on SQLite and PostgreSQL)")),
    (("--strict",), dict(action="store_true", help="PostgreSQL: refuse the write when squawk finds anything in its SQL (default: %%config Migrate.strict_lint)")),
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
    restore_points = Int(3, help="SQLite: restore points kept, taken before each command that changes the database (0: none).").tag(config=True)
    replay = Bool(True, help="Run pure-DDL revisions from the SQL recorded when Alembic first ran them.").tag(config=True)
    strict_lint = Bool(False, help="PostgreSQL: a %%revision cell whose SQL squawk finds anything in is refused (as --strict).").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        # Set before the traits load: a configured value notifies _settings_changed.
        self._migrator: Any = None
        self._bound: tuple[str | None, str | None] = (None, None)
        super().__init__(shell=shell, **kwargs)

    @observe("url", "directory", "lock_timeout", "restore_points", "replay")
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
            self._migrator = Migrator(
                url, folder or self.directory, configured_url=self.url, lock_timeout=self.lock_timeout,
                restore_points=self.restore_points, replay=self.replay,
            )
        return self._migrator

    def _bind(self, url: str | None, folder: str | None) -> Any:
        if self._migrator is not None:
            self._migrator.close()
        self._migrator = None
        self._bound = (url, folder)
        return self.migrator

    # ---- %migrate

    @no_var_expand  # a '$' or '{' in a URL or message stays as typed
    @line_cell_magic
    def migrate(self, line: str, cell: str | None = None) -> Any:
        if cell is not None:
            raise UsageError(
                "%migrate is a line magic, but it was used as the cell magic %%migrate.",
                hint='Use %migrate COMMAND on one line, or %%revision -m "..." for a cell holding upgrade().',
            )
        tokens = _split(line)
        _warn_literal_password(tokens + line.split())  # a password in the comment is saved too
        name, rest = (tokens[0], tokens[1:]) if tokens else ("status", [])
        if name in ("-h", "--help", "help"):
            print(overview())
            return None
        if name not in COMMANDS:
            raise UsageError(f"Unknown command {name!r}.", hint=_did_you_mean(name, list(COMMANDS)) or "Commands: " + ", ".join(COMMANDS) + ".")
        try:
            args = _command_parser(name).parse_args(rest)
        except _HelpShown:
            return None
        if name != "init" and self._nothing_set_up():
            if name == "status":
                from .display import Message

                return Message(f"{NOT_SET_UP} {RUN_INIT}")
            raise UsageError(NOT_SET_UP, hint=RUN_INIT)
        return getattr(self, f"_cmd_{name}")(args)

    def _nothing_set_up(self) -> bool:
        """True before anything says where the revisions and the database are.

        That is: no ``init`` in this session, no ``%config Migrate.url`` or
        ``directory``, no ``DATABASE_URL``, no Alembic project in the working
        directory, and no ``migrations/`` folder. Commands then refuse rather
        than create ``migmagic.db`` and report on a folder that does not exist.
        """
        if self._bound != (None, None) or self.url or self.directory:
            return False
        from .settings import resolve

        location = resolve()
        return location.url_source == "default" and location.adopted_ini is None and not location.folder.exists()

    def _cmd_init(self, a: argparse.Namespace) -> Any:
        m = self._bind(a.url, a.dir)
        m.ensure_folder(metadata=a.metadata, update_env=a.update_env)
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
        from . import frontend

        if result.cell and self.shell is not None and frontend.will_place_next_cell(self.shell):
            self.shell.set_next_input(result.cell, replace=False)
            result.notes.append("The code is in the next cell as a %%revision cell: review it, edit it, run it to rewrite the revision.")
        elif result.cell and frontend.is_terminal(self.shell):
            print(result.cell)
            result.notes.append(f"The code is above as a %%revision cell: %migrate edit {result.revision.revision} loads the revision at the prompt.")
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
        if a.sql:
            return self.migrator.upgrade(a.target, sql=True, **_dry_run(a))
        with _progress() as progress:
            return _rehearsed(self.migrator.upgrade(a.target, progress=progress, accept_data_loss=a.accept_data_loss, **_dry_run(a)))

    def _cmd_downgrade(self, a: argparse.Namespace) -> Any:
        if a.sql:
            return self.migrator.downgrade(a.target, sql=True, **_dry_run(a))
        with _progress() as progress:
            return _rehearsed(self.migrator.downgrade(a.target, progress=progress, accept_data_loss=a.accept_data_loss, **_dry_run(a)))

    def _cmd_verify(self, a: argparse.Namespace) -> Any:
        return self.migrator.verify(a.rev_range, metadata=a.metadata, namespace=self._namespace())

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

    def _cmd_graph(self, a: argparse.Namespace) -> Any:
        return self.migrator.graph(a.rev_range)

    def _cmd_diagram(self, a: argparse.Namespace) -> Any:
        return self.migrator.diagram(a.tables, dry_run=a.dry_run)

    def _cmd_lint(self, a: argparse.Namespace) -> Any:
        return self.migrator.lint(a.rev_range)

    def _cmd_resume(self, a: argparse.Namespace) -> Any:
        with _progress() as progress:
            return self.migrator.resume(progress=progress)

    def _cmd_repair(self, a: argparse.Namespace) -> Any:
        return self.migrator.repair(a.rev, _either(a.applied, "%migrate repair REV needs --applied or --not-applied."))

    def _cmd_restore(self, a: argparse.Namespace) -> Any:
        if a.list:
            if a.point is not None:
                raise UsageError("%migrate restore takes a POINT or --list, not both.", hint="See %migrate restore -h.")
            return self.migrator.restore_points()
        return self.migrator.restore(a.point)

    # ---- %%revision

    @no_var_expand
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
        from .revisionfile import check_body

        # Line numbers as the notebook shows them: the %%revision line is line 1 of the cell.
        check_body(cell, first_line=2, where="the cell")
        with _progress() if args.apply or args.reapply else contextlib.nullcontext() as progress:
            result = self.migrator.revision(
                args.message,
                cell,
                head=args.head,
                branch_label=args.branch_label,
                depends_on=args.depends_on,
                rev_id=args.rev_id,
                apply=args.apply,
                reapply=args.reapply,
                progress=progress,
                strict=args.strict or self.strict_lint,
            )
            _offer_safer(self.shell, result)
            return result

    # ---- tab completion

    def complete(self, line: str) -> list[str]:
        """What Tab offers after ``%migrate`` on ``line`` (the text up to the cursor), in order.

        Commands; then for a command its options (from :data:`COMMANDS`), revision
        targets where its positional is one, or table names for ``schema`` and
        ``diagram``. Fast on a fresh kernel: ids are read from the file names'
        ``revision = ...`` lines without loading Alembic; tables with one
        inspector call (none when nothing is set up or the database is not there).
        """
        words = line.split()
        fragment = "" if not words or line[-1:].isspace() else words[-1]
        done = words[: len(words) - (1 if fragment else 0)]
        if not done:
            return [c for c in COMMANDS if c.startswith(fragment)]
        name = done[0]
        if name not in COMMANDS:
            return []
        _, args = COMMANDS[name]
        options = [f for flags, _ in args for f in flags if f.startswith("--")] + ["--help"]
        if fragment.startswith("-"):
            return [o for o in options if o.startswith(fragment)]
        previous = done[-1] if len(done) > 1 else ""
        takes_value = {f for flags, kw in args for f in flags if f.startswith("-") and kw.get("action") != "store_true"}
        if previous in takes_value:
            candidates = self._targets() if previous in _TARGET_OPTIONS else []
        elif name in _TARGET_COMMANDS:
            candidates = self._targets()
        elif name in _TABLE_COMMANDS:
            candidates = self._tables()
        else:
            candidates = options
        return [c for c in candidates if c.startswith(fragment)]

    def _folder(self) -> Any:
        from .settings import resolve

        if self._migrator is not None:
            return self._migrator.folder
        url, folder = self._bound
        return resolve(url, folder or self.directory, self.url).folder

    def _targets(self) -> list[str]:
        """``head``, ``heads``, ``base``, the revision ids (newest file first), the branch labels."""
        from .revisionfile import rev_id_of

        try:
            files = sorted((self._folder() / "versions").glob("*.py"), key=lambda p: p.stat().st_mtime, reverse=True)
        except Exception:
            files = []
        ids: list[str] = []
        labels: set[str] = set()
        for path in files:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            found = rev_id_of(text)
            if found:
                ids.append(found)
            labelled = _LABELS_LINE.search(text)
            if labelled:
                labels.update(re.findall(r"""['"]([^'"]+)['"]""", labelled.group(1)))
        return ["head", "heads", "base", *ids, *sorted(labels)]

    def _tables(self) -> list[str]:
        """The database's table names (nothing on any error, nor before anything is set up)."""
        from .schema import BOOKKEEPING

        if self._nothing_set_up():
            return []
        try:
            db = self.migrator.db
            if db.dialect_name == "sqlite":
                from sqlalchemy.engine import make_url

                name = make_url(db.url).database
                if name and name != ":memory:" and not os.path.exists(name):
                    return []  # connecting would create the file
            from sqlalchemy import inspect

            with db.engine.connect() as conn:
                names = inspect(conn).get_table_names()
        except Exception:
            return []
        return sorted(n for n in names if n not in BOOKKEEPING)


def _offer_safer(shell: Any, result: Any) -> None:
    """The safer revision squawk's findings have, placed in the next cell where the front end shows it."""
    from . import frontend

    findings = getattr(result, "findings", None)
    if findings and findings.cell and frontend.will_place_next_cell(shell):
        shell.set_next_input(findings.cell, replace=False)
        findings.notes.append("The safer way is in the next cell: same message, so running it rewrites the revision.")


_TARGET_COMMANDS = {"upgrade", "downgrade", "show", "stamp", "edit", "accept", "merge"}
_TABLE_COMMANDS = {"schema", "diagram"}
_TARGET_OPTIONS = {"-r", "--rev-range", "--head", "--depends-on"}
_LABELS_LINE = re.compile(r"""^branch_labels\s*(?::[^=\n]*)?=\s*(.+)$""", re.MULTILINE)


Migrate.migrate.__doc__ = overview()


def _dry_run(a: argparse.Namespace) -> dict[str, Any]:
    return dict(dry_run=a.dry_run, copy=a.copy, sample=a.sample, full=a.full)


def _rehearsed(result: Any) -> Any:
    """A dry run that failed fails the cell (so Run All and papermill stop), showing its report."""
    if getattr(result, "failed", False) and hasattr(result, "failure"):
        from IPython.display import display

        from .rehearse import failed

        display(result)  # the report a person reads (HTML in a notebook), then the one-line error
        error = failed(result)
        error.shown = True
        raise error
    return result


@contextlib.contextmanager
def _progress() -> Iterator[Any]:
    """A progress callback for one command (see :mod:`migmagic.progress`), closed when the command ends.

    In a kernel: a display updated in place; on a terminal: a line on stderr;
    otherwise (stderr redirected) None, and nothing is drawn.
    """
    from IPython import get_ipython

    from .progress import DisplaySink, Progress, Sink, TerminalSink

    ip = get_ipython()
    sink: Sink | None = None
    if ip is not None and getattr(ip, "kernel", None) is not None:
        from IPython.display import display

        sink = DisplaySink(display)
    elif sys.stderr.isatty():
        sink = TerminalSink(sys.stderr)
    if sink is None:
        yield None
        return
    with Progress(sink) as progress:
        yield progress


def _either(value: bool | None, missing: str) -> bool:
    """A choice between two flags that is required."""
    if value is None:
        raise UsageError(missing, hint="See %migrate repair -h.")
    return value


_loaded: dict[int, Migrate] = {}
_MATCHER_ID = "migmagic.migrate"
_MIGRATE_LINE = re.compile(r"^\s*%migrate\s+(.*)$", re.DOTALL)


def _matcher(shell: Any) -> Any:
    """An IPython completion matcher for ``%migrate`` lines whose matches suppress all others.

    IPython's ``complete_command`` hook keeps Jedi (Python names, keywords, and a
    slow first call in a fresh kernel) beside custom matches; a matcher of API
    version 2 with ``suppress`` drops the rest, Jedi included, and runs first.
    """
    from IPython.core.completer import SimpleCompletion, context_matcher

    @context_matcher(priority=1000, identifier=_MATCHER_ID)
    def migrate_matcher(context: Any) -> dict[str, Any]:
        found = _MIGRATE_LINE.match(context.text_until_cursor.split("\n")[-1])
        if not found and context.token and context.line_with_cursor.endswith(context.token):
            # IPython's older complete(text, line) puts the cursor at len(text): the line is all there is.
            found = _MIGRATE_LINE.match(context.line_with_cursor)
        magics = _loaded.get(id(shell))
        if not found or magics is None:
            return {"completions": [], "suppress": False}
        rest = found.group(1)
        words = magics.complete(rest)
        fragment = "" if not rest or rest[-1:].isspace() else rest.split()[-1]
        return {
            "completions": [SimpleCompletion(w, type="migrate") for w in words],
            "matched_fragment": fragment,
            "suppress": True,
            "ordered": True,
        }

    return migrate_matcher


def load(ipython: Any) -> None:
    previous = _loaded.get(id(ipython))
    if previous is not None:  # %reload_ext: the old instance lets go of its connections
        unload(ipython)
    magics = Migrate(shell=ipython, parent=ipython)
    ipython.register_magics(magics)
    ipython.configurables[:] = [c for c in ipython.configurables if not isinstance(c, Migrate)] + [magics]
    completer = getattr(ipython, "Completer", None)
    if completer is not None and not any(getattr(m, "matcher_identifier", None) == _MATCHER_ID for m in completer.custom_matchers):
        completer.custom_matchers.append(_matcher(ipython))
    _loaded[id(ipython)] = magics


def unload(ipython: Any) -> None:
    magics = _loaded.pop(id(ipython), None)
    if magics is not None and magics._migrator is not None:
        magics._migrator.close()
