"""Every ``%migrate`` command, declared once.

Alembic derives its command line from ``command.py``; here each command is one
:class:`Command`: its name, its help, the :class:`~migmagic.engine.Migrator`
method it calls, its options (their ``dest`` is the method's keyword), what Tab
completes, and its *modes* — a flag such as ``--sql`` or ``--dry-run`` that
calls another method with a return type of its own (``upgrade`` → an outcome,
``sql`` → a script, ``dry_run`` → a rehearsal). The magics build their
parsers, their dispatch, ``-h``, completion and the spelling of a fix from this
registry; :func:`call` is the one place where a line's options become a call,
and where options that do not go together are refused, in one sentence.

Nothing here imports IPython, Alembic or the engine: the registry is data.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError

Arg = tuple[tuple[str, ...], dict[str, Any]]
"""An option as argparse takes it: its flags and keywords (``complete``, migmagic's own, says what Tab offers for its value)."""

TARGET = "a revision target: head, heads, base, +N, -N, REV+N, an id or unique prefix, label@head"


@dataclass(frozen=True)
class Mode:
    """A flag that runs the command another way: ``method`` is called instead, with ``options`` (which only it takes)."""

    flag: str  # the option's dest: "sql", "dry_run", "list", "autogenerate"
    method: str
    command_argument: bool = False  # the method's first argument is the command's name: sql("upgrade", ...)


@dataclass(frozen=True)
class Command:
    """One ``%migrate`` command."""

    name: str
    help: str
    method: str  # the Migrator method of the plain mode ("" for init, which binds the session)
    args: tuple[Arg, ...] = ()
    modes: tuple[Mode, ...] = ()
    completes: str | None = None  # what Tab offers for the positional: "targets" | "tables"
    only: Mapping[str, str] = field(default_factory=dict)  # option dest -> the mode flag it belongs to ("" : the plain mode)

    @property
    def spelled(self) -> str:
        """The command as a line starts it: ``%migrate upgrade``, ``%%revision``."""
        return self.name if self.name.startswith("%") else f"%migrate {self.name}"

    def flags(self) -> list[str]:
        return [f for flags, _ in self.args for f in flags if f.startswith("--")]

    def flag_of(self, dest: str) -> str:
        """How a line spells option ``dest``: its long flag, or a positional's name in capitals."""
        for flags, kwargs in self.args:
            if _dest(flags, kwargs) == dest:
                return next((f for f in flags if f.startswith("--")), str(kwargs.get("metavar") or flags[0].upper()))
        return "--" + dest.replace("_", "-")

    def value_completions(self) -> dict[str, str]:
        """Option flag -> what Tab offers for its value."""
        return {f: kw["complete"] for flags, kw in self.args if "complete" in kw for f in flags if f.startswith("-")}

    def takes_value(self) -> set[str]:
        return {f for flags, kw in self.args for f in flags if f.startswith("-") and kw.get("action") not in ("store_true", "store_const")}


def _dest(flags: tuple[str, ...], kwargs: dict[str, Any]) -> str:
    if "dest" in kwargs:
        return str(kwargs["dest"])
    long = next((f for f in flags if f.startswith("--")), flags[0])
    return long.lstrip("-").replace("-", "_")


def argparse_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` without migmagic's own keys, for ``add_argument``."""
    return {k: v for k, v in kwargs.items() if k != "complete"}


# --------------------------------------------------------------------------- shared options

_REVISION_ARGS: tuple[Arg, ...] = (
    (("--head",), dict(help="parent revision (default: the folder's single head); 'base' starts a new root", complete="targets")),
    (("--branch-label",), dict(help="a branch label for the new revision")),
    (("--depends-on",), dict(help="revision(s) this one depends on, comma-separated", complete="targets")),
    (("--rev-id",), dict(help="the revision id to use (default: derived from message and parent)")),
)
_MODEL_ARGS: tuple[Arg, ...] = (
    (("--metadata",), dict(metavar="NAME", help="the models to compare with: a name in the notebook (Base, db, db.Model) or module:attribute (app:db); default: the one in the notebook")),
    (("--include-unmanaged",), dict(action="store_true", help="also propose dropping tables the models do not know")),
)
_RUN_ARGS: tuple[Arg, ...] = (
    (("--sql",), dict(action="store_true", help="show the SQL instead of running it")),
    (("--dry-run",), dict(action="store_true", help="rehearse on a scratch copy and show what would change; the database is not touched")),
    (("--copy",), dict(action="store_true", help="with --dry-run on PostgreSQL: rehearse on a template clone, not in a rolled-back transaction")),
    (("--sample",), dict(type=int, metavar="N", help="with --dry-run on MySQL/MariaDB: rows copied per table (default 1000)")),
    (("--full",), dict(action="store_true", help="with --dry-run on MySQL/MariaDB: copy every row")),
    (("--accept-data-loss",), dict(action="store_true", help="run it even if it drops rows, values or NULLs (the data-loss guard refuses otherwise)")),
)
_RUN_MODES = (Mode("sql", "sql", command_argument=True), Mode("dry_run", "dry_run", command_argument=True))
_RUN_ONLY = {"copy": "dry_run", "sample": "dry_run", "full": "dry_run", "accept_data_loss": ""}

# --------------------------------------------------------------------------- the registry

COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command(
            "init", "Create (or adopt) the revision folder and bind this session to a database.", "",
            (
                (("url",), dict(nargs="?", help="database URL (default: %%config Migrate.url, DATABASE_URL, alembic.ini, sqlite:///migmagic.db)")),
                (("--dir",), dict(help="revision folder (default: migrations/)")),
                (("--metadata",), dict(metavar="MODULE:ATTR", help="your models, e.g. myapp.models:Base: the folder's env.py gives them to alembic check and revision --autogenerate")),
                (("--update-env",), dict(action="store_true", help="update env.py: rewrite an older migmagic's from the current template; in a project's own, add lines that keep migmagic's tables out of its autogenerate")),
            ),
        ),
        Command("status", "The database (password masked), folder, current, heads, pending, edited, lock.", "status"),
        Command("current", "The revision(s) the database is at.", "current"),
        Command(
            "history", "All revisions as a table: revision, parent, message, created, applied, markers, branch labels.", "history",
            ((("-r", "--rev-range"), dict(help="a range FROM:TO, e.g. base:head or abc1:", complete="targets")),),
        ),
        Command("show", "A revision's details and source.", "show", ((("rev",), dict(help=TARGET)),), completes="targets"),
        Command("heads", "The folder's heads as a table.", "heads"),
        Command("branches", "Branch points as a table.", "branches"),
        Command(
            "revision", "Write a new revision named MESSAGE (running it again finds it and writes nothing).", "revision",
            (
                (("-m", "--message"), dict(help="the revision's message (names it within the folder)")),
                *_REVISION_ARGS,
                (("--autogenerate",), dict(action="store_true", help="write what brings the database to the notebook's models; the code also goes to the next cell")),
                *_MODEL_ARGS,
            ),
            modes=(Mode("autogenerate", "autogenerate"),),
            only={"metadata": "autogenerate", "include_unmanaged": "autogenerate"},
        ),
        Command(
            "upgrade", "Upgrade the database; shows the steps as a table.", "upgrade",
            ((("target",), dict(nargs="?", help=TARGET + " (default: head); with --sql, [FROM:]TO")), *_RUN_ARGS),
            modes=_RUN_MODES, completes="targets", only=_RUN_ONLY,
        ),
        Command(
            "downgrade", "Downgrade the database; shows the steps as a table.", "downgrade",
            ((("target",), dict(help=TARGET + "; with --sql, FROM:TO")), *_RUN_ARGS),
            modes=_RUN_MODES, completes="targets", only=_RUN_ONLY,
        ),
        Command(
            "verify",
            "Upgrade, downgrade and upgrade again each revision on a throwaway database; the cell fails if a downgrade does not restore the schema.",
            "verify",
            (
                (("rev_range",), dict(nargs="?", metavar="RANGE", help="revisions FROM:TO (default: all, base to head)")),
                (("--metadata",), dict(metavar="NAME", help="the models to compare the schema at head with: a name in the notebook (Base, db) or module:attribute (app:db); default: the one in the notebook, if any")),
            ),
        ),
        Command(
            "merge", "Write a merge revision joining two or more revisions.", "merge",
            (
                (("revisions",), dict(nargs="+", help="revisions to join, or 'heads'")),
                (("-m", "--message"), dict(help="the merge revision's message")),
                (("--rev-id",), dict(help="the revision id to use")),
            ),
            completes="targets",
        ),
        Command(
            "stamp", "Set the version table to a revision without running any.", "stamp",
            ((("target",), dict(help=TARGET)), (("--purge",), dict(action="store_true", help="empty the version table first"))),
            completes="targets",
        ),
        Command("edit", "Load a revision into the next cell as a %%revision cell.", "edit", ((("rev",), dict(help=TARGET)),), completes="targets"),
        Command("log", "The ledger: every step migmagic applied, with checksums.", "log"),
        Command("check", "Pending model changes as a table; the cell fails if there are any.", "check", _MODEL_ARGS),
        Command("diff", "Model-versus-database differences as a table (what, table, column, from, to); writes nothing.", "diff", _MODEL_ARGS),
        Command(
            "schema", "The database's tables (name, columns, rows), or one table's columns, indexes and foreign keys.", "schema",
            ((("table",), dict(nargs="?", help="a table name")),), completes="tables",
        ),
        Command("accept", "Record an edited, applied revision's new source on purpose.", "accept", ((("rev",), dict(help=TARGET)),), completes="targets"),
        Command(
            "graph", "The revision graph as a picture: branches, merges, heads; applied filled, pending hollow.", "graph",
            ((("rev_range",), dict(nargs="?", metavar="RANGE", help="a range FROM:TO, e.g. base:head or abc1:")),),
        ),
        Command(
            "diagram", "The schema as an entity-relationship diagram (needs pip install 'migmagic[diagrams]').", "diagram",
            (
                (("tables",), dict(nargs="*", metavar="TABLE", help="draw these tables and their direct neighbours (default: all)")),
                (("--dry-run",), dict(metavar="TARGET", help="the schema after upgrading (or downgrading) to TARGET, rehearsed on a scratch copy: added green, removed red", complete="targets")),
            ),
            completes="tables",
        ),
        Command(
            "lint", "squawk's findings in revisions' PostgreSQL SQL as a table: rule, statement, line, why, the safer way.", "lint",
            ((("rev_range",), dict(nargs="?", metavar="RANGE", help="revisions FROM:TO (default: all)")),),
        ),
        Command(
            "resume", "MySQL/MariaDB: finish a half-applied revision, skipping the statements that committed (checked against the file).", "resume",
            ((("--accept-data-loss",), dict(action="store_true", help="run it even if what it runs now drops rows, values or NULLs (the data-loss guard refuses otherwise)")),),
        ),
        Command(
            "repair",
            "MySQL/MariaDB: record a half-applied revision as applied or not applied, once the database was put right by hand; nothing runs.",
            "repair",
            (
                (("rev",), dict(help="the half-applied revision")),
                (("--applied",), dict(dest="applied", action="store_const", const=True, help="its work is all there: record it as applied")),
                (("--not-applied",), dict(dest="applied", action="store_const", const=False, help="none of its work is left: record it as not applied")),
            ),
        ),
        Command(
            "replay", "The store of recorded plans that fresh databases replay: where it is, what it holds; --clear empties it.", "replay",
            ((("--clear",), dict(action="store_true", help="drop every recording (always safe: the next fresh database runs through Alembic)")),),
        ),
        Command(
            "restore", "SQLite: put the database back as it was before an earlier command (the latest restore point, or POINT).", "restore",
            (
                (("point",), dict(nargs="?", help="the restore point's number (default: the latest); see --list")),
                (("--list",), dict(action="store_true", help="list the restore points: point, taken at, before which command, revision then, size")),
            ),
            modes=(Mode("list", "restore_points"),),
            only={"point": ""},
        ),
    )
}

REVISION_CELL = Command(
    "%%revision", "Write the cell's upgrade()/downgrade() as an Alembic revision script.", "revision",
    (
        (("-m", "--message"), dict(help="the revision's message (names it within the folder)")),
        (("--apply",), dict(action="store_true", help="also upgrade the database to this revision")),
        (("--reapply",), dict(action="store_true", help="for an applied revision: downgrade with the old code, rewrite, upgrade with the new (all or nothing on SQLite and PostgreSQL)")),
        (("--accept-data-loss",), dict(action="store_true", help="with --reapply: run it even if the downgrade with the old code drops rows, values or NULLs")),
        (("--strict",), dict(action="store_true", help="PostgreSQL: refuse the write when squawk finds anything in its SQL (default: %%config Migrate.strict_lint)")),
        *_REVISION_ARGS,
    ),
)


# --------------------------------------------------------------------------- a line's options, as a call


def _given(value: Any) -> bool:
    return value is not None and value is not False and value != []


def call(command: Command, options: Mapping[str, Any], target: Any, context: Mapping[str, Callable[[], Any]]) -> Any:
    """Call ``target``'s method for ``command`` with the ``options`` a line gave; the one place a line becomes a call.

    The mode flag given (at most one) picks the method; options that belong to
    another mode are refused in one sentence. Only the options given are passed,
    so the method's own defaults apply. ``context`` supplies what a line cannot
    say (the notebook's namespace, a progress display), for methods that take it.
    """
    given_modes = [m for m in command.modes if _given(options.get(m.flag))]
    if len(given_modes) > 1:
        a, b = (command.flag_of(m.flag) for m in given_modes[:2])
        raise UsageError(f"{a} and {b} do not go together: give one.", hint=f"See {command.spelled} -h.")
    mode = given_modes[0] if given_modes else None
    chosen = mode.flag if mode else ""
    for dest, belongs in command.only.items():
        if _given(options.get(dest)) and belongs != chosen:
            flag = command.flag_of(dest)
            if belongs:
                raise UsageError(f"{flag} only applies to {command.name} {command.flag_of(belongs)}.", hint=f"Add {command.flag_of(belongs)}, or leave the option out.")
            raise UsageError(f"{flag} does not apply to {command.name} {command.flag_of(chosen)}.", hint="Leave the option out.")
    method = getattr(target, mode.method if mode else command.method)
    parameters = inspect.signature(method).parameters
    kwargs: dict[str, Any] = {}
    args: list[Any] = [command.name] if mode and mode.command_argument else []
    mode_flags = {m.flag for m in command.modes}
    for name, value in options.items():
        if name in mode_flags:
            continue
        if not _given(value) and (name not in parameters or parameters[name].default is not inspect.Parameter.empty):
            continue  # not given: the method's default applies (a required one gets None, and says what is missing)
        if name not in parameters:
            raise UsageError(f"{command.spelled}: {command.flag_of(name)} does not apply here.", hint=f"See {command.spelled} -h.")
        kwargs[name] = value
    for name, supply in context.items():
        if name in parameters and name not in kwargs:
            kwargs[name] = supply()
    return method(*args, **kwargs)
