"""``%migrate`` and ``%%revision``: parse the line, call the engine, render the result.

Every command is declared once, in :mod:`migmagic.commands`: the parsers,
the dispatch, ``%migrate -h``, ``%migrate?``, ``%migrate COMMAND -h`` and Tab
completion are built from it. The work is done by :class:`migmagic.engine.Migrator`.
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

from .commands import COMMANDS, REVISION_CELL, Command, argparse_kwargs, call
from .errors import UsageError


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
        needs = re.match(r"argument (-\w)/--\w[\w-]*: expected one argument", message)
        if needs:  # argparse reads a value that starts with "-" as an option
            flag = needs.group(1)
            raise UsageError(f"{self.prog}: {flag} needs a value after it.", hint=f'A value that starts with "-" is written {flag}="-x".')
        raise UsageError(f"{self.prog}: {message}.", hint=f"See {self.prog} -h.")

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        raise _HelpShown()


def _did_you_mean(word: str, choices: list[str]) -> str | None:
    """``Did you mean X?`` for the choice closest to ``word`` (None when none is close)."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"Did you mean {close[0]}?" if close else None


NOT_SET_UP = "Nothing is set up here yet: no migrations/ folder and no database URL."
RUN_INIT = "Run %migrate init [URL] first."


def _parser(command: Command, prog: str) -> _Parser:
    parser = _Parser(prog=prog, description=command.help, add_help=True)
    for flags, kwargs in command.args:
        parser.add_argument(*flags, **argparse_kwargs(kwargs))
    return parser


def _command_parser(name: str) -> _Parser:
    return _parser(COMMANDS[name], f"%migrate {name}")


def _revision_parser() -> _Parser:
    return _parser(REVISION_CELL, "%%revision")


def overview() -> str:
    """The text of ``%migrate -h`` and ``%migrate?``."""
    width = max(len(n) for n in COMMANDS)
    lines = [
        "%migrate COMMAND [options]: Alembic's commands in a notebook. %migrate alone shows status.",
        "",
        "Commands:",
        *(f"  {name.ljust(width)}  {c.help}" for name, c in COMMANDS.items()),
        "",
        "%migrate COMMAND -h shows a command's options.",
        '%%revision -m "MESSAGE" [--apply] [--reapply] [--head REV] ...: a cell holding upgrade()/downgrade().',
        "Settings: %config Migrate.url = '...', %config Migrate.lock_timeout = 30, %config Migrate.restore_points = 3, %config Migrate.replay = False.",
    ]
    return "\n".join(lines)


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
        self._cwd: str | None = None
        super().__init__(shell=shell, **kwargs)

    @observe("url", "directory", "lock_timeout", "restore_points", "replay", "strict_lint")
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
            if self._cwd is None:  # the session's files are bound once: %cd later does not move them
                self._cwd = os.getcwd()
            self._migrator = Migrator(
                url, folder or self.directory, configured_url=self.url, lock_timeout=self.lock_timeout,
                restore_points=self.restore_points, replay=self.replay, cwd=self._cwd,
            )
        return self._migrator

    def _bind(self, url: str | None, folder: str | None) -> Any:
        if self._migrator is not None:
            self._migrator.close()
        self._migrator = None
        self._bound = (url, folder)
        self._cwd = os.getcwd()  # %migrate init binds where it is run
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
        return self._run(COMMANDS[name], args)

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

    def _run(self, command: Command, a: argparse.Namespace) -> Any:
        """The command's method called with the line's options (see :func:`migmagic.commands.call`); its result placed or shown."""
        if command.name == "init":  # binds the session: the one command that is not a Migrator method
            m = self._bind(a.url, a.dir)
            m.ensure_folder(metadata=a.metadata, update_env=a.update_env, record_url=True)
            return m.status()
        with contextlib.ExitStack() as stack:
            context = {"namespace": self._namespace, "progress": lambda: stack.enter_context(_progress())}
            result = call(command, vars(a), self.migrator, context)
        return self._placed(_rehearsed(result))

    def _placed(self, result: Any) -> Any:
        """A result holding a ``%%revision`` cell (``edit``, ``revision --autogenerate``): the cell goes where the front end puts it."""
        from . import display, frontend

        if isinstance(result, display.NextCell):
            assert self.shell is not None
            self.shell.set_next_input(result.cell, replace=False)
            return display.Message(result.message)
        cell = getattr(result, "cell", None)
        if isinstance(result, display.Autogenerated) and cell:
            if self.shell is not None and frontend.will_place_next_cell(self.shell):
                self.shell.set_next_input(cell, replace=False)
                result.notes.append("The code is in the next cell as a %%revision cell: review it, edit it, run it to rewrite the revision.")
            elif frontend.is_terminal(self.shell) and result.revision is not None:
                print(cell)
                result.notes.append(f"The code is above as a %%revision cell: %migrate edit {result.revision.revision} loads the revision at the prompt.")
        return result

    def _namespace(self) -> dict[str, Any]:
        """The notebook's variables, where the models are looked for."""
        return self.shell.user_ns if self.shell is not None else {}

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
        with contextlib.ExitStack() as stack:
            context = {"progress": (lambda: stack.enter_context(_progress())) if args.apply or args.reapply else (lambda: None)}
            result = call(REVISION_CELL, {**vars(args), "body": cell, "strict": args.strict or self.strict_lint}, self.migrator, context)
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
        command = COMMANDS[name]
        options = [*command.flags(), "--help"]
        if fragment.startswith("-"):
            return [o for o in options if o.startswith(fragment)]
        previous = done[-1] if len(done) > 1 else ""
        offers = {"targets": self._targets, "tables": self._tables}
        if previous in command.takes_value():
            what = command.value_completions().get(previous)
            candidates = offers[what]() if what else []
        elif command.completes:
            candidates = offers[command.completes]()
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

            names = db.read(lambda conn: inspect(conn).get_table_names())
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


_LABELS_LINE = re.compile(r"""^branch_labels\s*(?::[^=\n]*)?=\s*(.+)$""", re.MULTILINE)


Migrate.migrate.__doc__ = overview()


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
