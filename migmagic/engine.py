"""The Python API: one :class:`Migrator` bound to a database and a revision folder.

A façade, as Alembic's ``command.py`` is for Alembic: one short method per
command and mode (``upgrade``, ``sql``, ``dry_run``...; the magics' registry,
:mod:`migmagic.commands`, names which), gluing the modules that do the work —

* :mod:`migmagic.folder`: the revision folder on disk (scripts, writes);
* :mod:`migmagic.state`: where the database stands against the folder;
* :mod:`migmagic.run`: the one execution path (lock, plan, observers, steps, ledger, commit);
* :mod:`migmagic.observers`: which observers (data-loss guard, restore point, progress) each command gets;
* :mod:`migmagic.reapply`, :mod:`migmagic.autogen`, :mod:`migmagic.schema`: the rest.

The façade opens no connection and takes no lock: it reads through
:meth:`migmagic.database.Database.read` and changes through :func:`migmagic.run.migrate`.
Methods return DataFrames or small result objects (see :mod:`migmagic.display`).
Nothing here knows IPython. Every command that touches the database first loads
and checks the whole revision folder (syntax, ``upgrade()``, parents, cycles,
duplicate ids), so a broken folder is reported before any connection is made.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import display, ledger, lint, observers, rehearse, revisionfile, run, settings, state
from .database import Database
from .display import short_path
from .errors import Fix, InvalidTarget, UsageError, upgrade_after_write
from .folder import EMPTY_BODY, Folder, unchanged

if TYPE_CHECKING:
    import pandas as pd

    from .adapter import Scripts
    from .state import State

OnProgress = run.OnProgress


class Migrator:
    """Alembic's workflow on one database and one revision folder.

    >>> m = Migrator("sqlite:///app.db")          # folder: ./migrations
    >>> m.revision("create users", body)           # writes migrations/versions/<id>_create_users.py
    >>> m.upgrade("head")                          # one transaction on SQLite and PostgreSQL
    >>> m.history()                                # a DataFrame
    """

    def __init__(
        self,
        url: str | None = None,
        directory: str | os.PathLike[str] | None = None,
        *,
        configured_url: str | None = None,
        lock_timeout: float = 30.0,
        cwd: str | os.PathLike[str] | None = None,
        restore_points: int = 3,
        replay: bool = True,
    ) -> None:
        self.location = settings.resolve(url, directory, configured_url, cwd)
        self.db = Database(self.location.url, lock_timeout, replay=replay, cwd=cwd)
        self.files = Folder(self.location.folder)
        self.kept_restore_points = restore_points  # SQLite: how many restore points to keep (0: none taken)

    def __repr__(self) -> str:
        return f"Migrator({self.db.masked_url!r}, {str(self.folder)!r})"

    @property
    def folder(self) -> Path:
        """The revision folder's path (``versions/`` holds the scripts)."""
        return self.location.folder

    @property
    def lock_timeout(self) -> float:
        return self.db.lock_timeout

    @lock_timeout.setter
    def lock_timeout(self, seconds: float) -> None:
        self.db.lock_timeout = seconds

    def close(self) -> None:
        """Close the connections this object holds."""
        self.db.dispose()

    def scripts(self) -> Scripts:
        """The folder's checked revision graph (cached; re-read only what changed on disk).

        A re-apply killed before its commit left its old code beside the file: it is settled first.
        """
        scripts = self.files.scripts()
        if self.files.leftovers():
            from .reapply import settle

            settle(self.db, self.files)
            scripts = self.files.scripts()
        if self.files.learn(self.db, self.location.adopted_ini) is not None:  # a project's own env.py: what it configures, learned once
            scripts = self.files.scripts()
        return scripts

    def state(self, *, with_ledger: bool = True) -> State:
        """Where the database stands against the folder: applied, pending, edited, missing, outside."""
        scripts = self.scripts()
        return self.db.read(state.of, scripts, with_ledger=with_ledger, kept=self.files.kept_checksums())

    # ------------------------------------------------------------------ init & status

    @classmethod
    def init(
        cls, url: str | None = None, directory: str | os.PathLike[str] | None = None, *, metadata: str | None = None, **kwargs: Any
    ) -> Migrator:
        """Bind to ``url`` and ``directory``; write the folder as an Alembic environment if new.

        ``metadata`` (``module:attribute``, e.g. ``myapp.models:Base``) names the models
        the folder's ``env.py`` gives the ``alembic`` command.
        """
        m = cls(url, directory, **kwargs)
        m.ensure_folder(metadata)
        return m

    def ensure_folder(self, metadata: str | None = None, *, update_env: bool = False, record_url: bool = False) -> bool:
        """Write the folder (``alembic.ini``, ``env.py``, ``script.py.mako``, ``versions/``) if missing.

        An existing Alembic folder is used as it is (``update_env``: an older migmagic's env.py rewritten, a project's own told to leave out migmagic's tables). True when files were written.
        ``record_url`` (``init``): an ``alembic.ini`` migmagic wrote earlier is made to name this
        URL, so a corrected ``init`` fixes a mistyped one (and the next status says so).
        """
        return self.files.ensure(self.db.url, metadata, update_env=update_env, record_url=record_url)

    def status(self) -> display.Status:
        """Database (masked), folder, current, heads, pending, edited, missing, lock."""
        scripts = self.scripts()
        st = self.state()
        shown = display.Status(
            database=self.db.described_url, folder=short_path(self.folder), current=list(st.heads), heads=list(scripts.heads),
            applied=len(st.applied), pending=list(reversed(st.pending)), edited=st.edited, outside=st.outside,
            lock=self.db.lock_holder(), missing=st.missing, half_applied=st.half_applied, reapplying=st.reapplying,
            notes=[*self.files.said, *self.files.env_notes(self.db.dialect_name), *self.files.env_configures()],
        )
        self.files.said.clear()
        return shown

    def current(self) -> display.Current:
        """The revision(s) the database is at."""
        scripts, st = self.scripts(), self.state(with_ledger=False)
        rows = [(h, scripts.info(h).message, scripts.info(h).is_head) if h in scripts else (h, "(file missing)", False) for h in st.heads]
        return display.Current(self.db.masked_url, rows)

    # ------------------------------------------------------------------ reading the folder

    def history(self, rev_range: str | None = None) -> pd.DataFrame:
        """Every revision, newest first: revision, parent, message, created, applied, markers, branch labels."""
        scripts, st = self.scripts(), self.state()
        ids = scripts.ids()
        if rev_range:
            lower, sep, upper = rev_range.partition(":")
            if not sep:
                raise UsageError(f"{rev_range!r} is not a range.", hint="Use FROM:TO, e.g. base:head or abc1:.")  # graph's, history -r's, Python's
            ids = scripts.between(upper or "heads", lower or "base")
        from . import graph  # pictures: the graph drawn beside the table

        layout = graph.layout(graph.nodes((scripts.info(r) for r in ids), st.applied, st.heads))
        return display.history(state.history_rows(scripts, st, ids), state.HISTORY_COLUMNS, layout, times=("created", "applied"))

    def graph(self, rev_range: str | None = None) -> display.Graph:
        """The revision graph alone, as a picture (SVG) and as text; ``rev_range`` as for :meth:`history`."""
        return display.Graph(self.history(rev_range)._graph)

    def show(self, rev: str) -> display.RevisionDetails:
        """A revision's details and source."""
        scripts = self.scripts()
        info = scripts.resolve(rev)
        fields = [
            ("revision", info.id),
            ("message", info.message),
            ("parent", ", ".join(info.down_revisions) or "base"),
            ("children", ", ".join(scripts.children(info.id)) or "none"),
            ("branch labels", ", ".join(info.branch_labels) or "none"),
            ("depends on", ", ".join(info.depends_on) or "none"),
            ("created", info.created or ""),
            ("path", short_path(info.path)),
        ]
        return display.RevisionDetails(info.id, fields, info.source)

    def heads(self) -> pd.DataFrame:
        """The folder's heads: revision, message, branch labels, whether the database is there."""
        scripts, st = self.scripts(), self.state(with_ledger=False)
        rows = [
            {"revision": h, "message": scripts.info(h).message, "branch labels": ", ".join(scripts.info(h).branch_labels) or None, "current": "yes" if h in st.heads else None}
            for h in scripts.heads
        ]
        return display.table(rows, ["revision", "message", "branch labels", "current"], "No heads: the folder has no revisions yet.")

    def branches(self) -> pd.DataFrame:
        """Branch points: the revision, its message and the revisions that branch from it."""
        scripts = self.scripts()
        rows = [{"revision": i.id, "message": i.message, "branches": ", ".join(scripts.children(i.id))} for i in scripts.all() if i.is_branch_point]
        return display.table(rows, ["revision", "message", "branches"], "No branch points.")

    def edit(self, rev: str) -> display.NextCell:
        """The ``%%revision`` cell that rewrites revision ``rev`` (the notebook places it in the next cell)."""
        info = self.scripts().resolve(rev)
        return display.NextCell(
            revisionfile.cell(info.message, revisionfile.body_of(info.source)),
            f"Revision {rev} is in the next cell: edit it and run it to rewrite the revision.",
        )

    # ------------------------------------------------------------------ writing revisions

    def revision(
        self,
        message: str,
        body: str | None = None,
        *,
        head: str | None = None,
        branch_label: str | None = None,
        depends_on: str | None = None,
        rev_id: str | None = None,
        apply: bool = False,
        reapply: bool = False,
        accept_data_loss: bool = False,
        progress: OnProgress | None = None,
        strict: bool = False,
    ) -> display.RevisionWritten:
        """Write the revision named ``message`` holding ``body`` (default: empty upgrade/downgrade).

        A revision with that message already in the folder is kept when the body
        is the same, rewritten in place when it is not applied, and refused when
        it is applied — unless ``reapply``: then it is downgraded with its old
        code, rewritten, and upgraded with the new, in one transaction on SQLite
        and PostgreSQL (on failure nothing changes, file included); on
        MySQL/MariaDB step by step, undone as far as possible on failure (see
        :mod:`migmagic.reapply`). The data-loss guard looks at both plans of a
        re-apply (``accept_data_loss`` runs it anyway), as at any upgrade.
        On PostgreSQL, squawk's findings come with the result (:mod:`migmagic.lint`); with ``strict`` they refuse the write.
        """
        message = revisionfile.check_message(message)
        if body is not None:
            revisionfile.check_body(body)
            self.files.check_compiles(body, self.db.dialect_name)
        findings = lint.at_cell(body, self.db, self.folder, message=message, strict=strict) if body is not None else None
        revisionfile.check_rev_id(rev_id)
        if accept_data_loss and not (reapply or apply):
            raise UsageError("--accept-data-loss only applies with --apply or --reapply.", hint="Leave it out, or add --reapply.")
        self.ensure_folder()
        scripts = self.scripts()
        existing = scripts.by_message(message)
        st = self.state() if existing is not None else None
        if existing is None or st is None:
            options = dict(head=head, branch_label=branch_label, depends_on=depends_on, rev_id=rev_id)
            result = self.files.write_new(scripts, message, body or EMPTY_BODY, **options)
        elif self.files.same_body(existing, body) and existing.id not in st.edited:  # unchanged: as in the file AND as applied
            result = unchanged(existing)
        elif not st.is_applied(existing.id):
            assert body is not None
            result = self.files.rewrite(existing, body)
        elif reapply:
            from .reapply import reapply as reapply_revision

            assert body is not None
            watching = self._observers("reapply", progress=progress, accept_data_loss=accept_data_loss, label=f"--reapply {existing.id}")
            return reapply_revision(self.db, self.files, existing, body, watching)
        else:
            applied_source = self.db.read(ledger.applied_source, existing.id)
            raise self.files.refuse_applied(existing, body or revisionfile.body_of(existing.source), self.db.masked_url, applied_source)
        result.findings = findings
        if apply:
            with upgrade_after_write(result.revision, result.path, written=result.action != "unchanged"):
                result.applied = self.upgrade(result.revision, progress=progress, accept_data_loss=accept_data_loss)
        return result

    def autogenerate(
        self,
        message: str,
        *,
        metadata: Any = None,
        namespace: Mapping[str, Any] | None = None,
        include_unmanaged: bool = False,
        head: str | None = None,
        branch_label: str | None = None,
        depends_on: str | None = None,
        rev_id: str | None = None,
    ) -> display.Autogenerated:
        """Write the revision that brings the database to the models; see :func:`migmagic.autogen.revision`.

        ``metadata``: a MetaData, a declarative base, or a name in ``namespace``;
        without it, the models the folder names, else the one found in ``namespace``.
        """
        from . import autogen

        return autogen.revision(
            self.db, self.files, message, metadata=metadata, namespace=namespace, include_unmanaged=include_unmanaged,
            head=head, branch_label=branch_label, depends_on=depends_on, rev_id=rev_id,
        )

    def merge(self, revisions: str | list[str], message: str, rev_id: str | None = None) -> display.RevisionWritten:
        """Write a merge revision whose parents are ``revisions`` (e.g. ``heads``, or ids)."""
        message = revisionfile.check_message(message, "A merge", hint=None)
        revisionfile.check_rev_id(rev_id)
        refs = revisions.split() if isinstance(revisions, str) else list(revisions)
        return self.files.merge(self.scripts(), refs, message, rev_id)

    # ------------------------------------------------------------------ running revisions

    def plan(self, command: str = "upgrade", target: str = "head") -> run.Plan:
        """What ``upgrade``, ``downgrade`` or ``stamp`` to ``target`` would run now: a :class:`~migmagic.run.Plan`, nothing run."""
        scripts = self.scripts()
        scripts.check_target(target)
        return run.plan(command, target, scripts, self.db.read(state.of, scripts))

    def upgrade(self, target: str = "head", *, progress: OnProgress | None = None, accept_data_loss: bool = False) -> display.Outcome:
        """Upgrade to ``target`` (``head``, ``+1``, an id...); refused if it would destroy data, unless ``accept_data_loss``."""
        return self._migrate("upgrade", target, progress=progress, accept_data_loss=accept_data_loss)

    def downgrade(self, target: str, *, progress: OnProgress | None = None, accept_data_loss: bool = False) -> display.Outcome:
        """Downgrade to ``target`` (``-1``, ``base``, an id...); refused if it would destroy data, unless ``accept_data_loss``."""
        return self._migrate("downgrade", target, progress=progress, accept_data_loss=accept_data_loss)

    def stamp(self, target: str, *, purge: bool = False) -> display.Outcome:
        """Set the version table to ``target`` without running any revision."""
        return run.migrate(self.db, self.scripts(), "stamp", target, purge=purge, observers=self._observers("stamp"))

    def dry_run(
        self, command: str, target: str, *, copy: bool = False, sample: int | None = None, full: bool = False, progress: OnProgress | None = None
    ) -> display.Rehearsal:
        """``command`` (``upgrade`` or ``downgrade``) to ``target`` rehearsed on a scratch copy: a :class:`~migmagic.display.Rehearsal`; the database is not changed.

        ``copy``: PostgreSQL rehearses on a template clone instead of a rolled-back
        transaction; ``sample``/``full``: rows copied per table on MySQL/MariaDB.
        """
        if command not in ("upgrade", "downgrade"):
            raise UsageError(f"A dry run rehearses an upgrade or a downgrade, not {command!r}.")
        return rehearse.dry_run(self.db, self.scripts(), command, target, copy=copy, sample=rehearse.sample_of(sample, full), progress=progress)

    def sql(self, command: str, target: str) -> display.SQLScript:
        """The SQL ``command`` (``upgrade`` or ``downgrade``) to ``[FROM:]TO`` would run, nothing executed; without FROM, from where the database is now."""
        if command not in ("upgrade", "downgrade"):
            raise UsageError(f"--sql shows an upgrade or a downgrade, not {command!r}.")
        start, sep, end = target.rpartition(":")
        heads = None if sep else self.state(with_ledger=False).heads
        return rehearse.sql(self.db, self.scripts(), command == "upgrade", start if sep else None, end, heads)

    def verify(self, rev_range: str | None = None, metadata: Any = None, namespace: Mapping[str, Any] | None = None) -> display.Verification:
        """Upgrade, downgrade, upgrade again each revision on a throwaway database; :class:`~migmagic.errors.VerifyFailed` if one fails."""
        return rehearse.verify(self.db, self.scripts(), rev_range, metadata=metadata, namespace=namespace)

    def _observers(self, command: str, **asked: Any) -> list[run.Observer]:
        """The observers :data:`migmagic.observers.TABLE` gives ``command`` in this session."""
        return observers.build(command, restore_points=self.kept_restore_points, wait=self.lock_timeout, **asked)

    def _migrate(self, command: str, target: str, *, progress: OnProgress | None, accept_data_loss: bool) -> display.Outcome:
        watching = self._observers(command, progress=progress, accept_data_loss=accept_data_loss)
        return run.migrate(self.db, self.scripts(), command, target, observers=watching)

    def restore(self, point: int | str | None = None) -> display.Restored:
        """SQLite: put back restore ``point`` (default: the latest): schema, rows, version table and ledger."""
        from .restore import put_back

        return put_back(self.db, point, kept=self.kept_restore_points)

    def restore_points(self) -> pd.DataFrame:
        """SQLite: the restore points, oldest first (point, taken at, before, revision then, size)."""
        from .restore import listing

        return listing(self.db)

    # ------------------------------------------------------------------ models and schema

    def check(self, metadata: Any = None, *, namespace: Mapping[str, Any] | None = None, include_unmanaged: bool = False) -> display.ModelDiff:
        """Compare the models with the database; raise :class:`~migmagic.errors.PendingModelChanges` if they differ.

        Like ``alembic check``, the database must be at the folder's head.
        """
        from . import autogen

        return autogen.check(self.db, self.files, metadata, namespace, include_unmanaged)

    def diff(self, metadata: Any = None, *, namespace: Mapping[str, Any] | None = None, include_unmanaged: bool = False) -> display.ModelDiff:
        """Model-versus-database differences as a table (what, table, column, from, to); writes nothing."""
        from . import autogen

        return autogen.diff(self.db, self.files, metadata, namespace, include_unmanaged)

    def schema(self, table: str | None = None) -> Any:
        """The tables (name, columns, rows), or one table's columns, indexes and foreign keys."""
        from . import schema

        return self.db.read(schema.tables) if table is None else self.db.read(schema.table, table, self.db.masked_url)

    def diagram(self, tables: Sequence[str] = (), *, dry_run: str | None = None) -> display.Diagram:
        """The schema as an entity-relationship diagram (``tables``: those and their neighbours); needs Graphviz's dot.

        With ``dry_run`` (a target), the schema after upgrading (or downgrading) there, rehearsed on a
        scratch copy as ``upgrade(dry_run=True)`` does: what it adds marked green, what it removes red.
        """
        from . import diagram, schema

        described = self.db.read(schema.describe)
        if dry_run is None:
            return diagram.draw(described, tables)
        direction = "upgrade" if rehearse.is_upgrade(self.plan, dry_run) else "downgrade"
        report = self.dry_run(direction, dry_run)
        if report.failed:
            raise rehearse.failed(report)
        drawn, added, removed = diagram.changes(described, report.described)
        return diagram.draw(drawn, tables, added=added, removed=removed)

    def lint(self, rev_range: str | None = None) -> pd.DataFrame:
        """squawk's findings for revisions' PostgreSQL SQL (``rev_range`` FROM:TO, default all): revision, rule, statement, line, why, safer way."""
        return lint.revisions(self.scripts(), rev_range, self.folder, self.lock_timeout)

    # ------------------------------------------------------------------ integrity

    def accept(self, rev: str) -> display.Message:
        """Record the current source of an applied, edited revision as the one applied."""
        from .adapter import ALEMBIC_VERSION

        scripts = self.scripts()
        info = scripts.resolve(rev)

        def make_plan(ex: run.Execution, before: State) -> run.Plan:
            if not before.is_applied(info.id):
                raise InvalidTarget(
                    f"Revision {info.id} is not applied: there is nothing to accept.", target=info.id,
                    hint="Just upgrade: {0}.", fixes=[Fix("upgrade")],
                )
            if info.id in self.files.kept_checksums():  # the lock came free after scripts() could settle
                raise InvalidTarget(
                    f"Revision {info.id}'s file holds code a re-apply did not commit: there is nothing to accept. Nothing was changed.",
                    target=info.id, hint="{0} puts its old code back; then re-run the --reapply cell.", fixes=[Fix("status")],
                )
            row = ledger.row(revision=info.id, direction="accept", message=info.message, seconds=None, source=info.source, alembic_version=ALEMBIC_VERSION)
            return run.Plan("accept", info.id, before, [], scripts, bookkeeping=lambda ex: ex.ledger_row(row))

        run.migrate(self.db, scripts, "accept", info.id, observers=self._observers("accept"), make_plan=make_plan)
        return display.Message(f"Accepted the current source of {info.id} ({info.message!r}) as applied.")

    def resume(self, *, progress: OnProgress | None = None, accept_data_loss: bool = False) -> display.Outcome:
        """MySQL/MariaDB: finish the half-applied revision, skipping the statements that committed (checked against the file).

        Refused if what it runs now would destroy data (its code may have changed since it failed), unless ``accept_data_loss``.
        """
        from . import halfway

        return halfway.resume(self.db, self.scripts(), self._observers("resume", progress=progress, accept_data_loss=accept_data_loss))

    def repair(self, rev: str, applied: bool | None) -> display.Message:
        """MySQL/MariaDB: record the half-applied revision ``rev`` as applied (True) or not (False); nothing runs on the schema."""
        from . import halfway

        if applied is None:
            raise UsageError(
                f"Say whether {rev} is to be recorded as applied or not applied.",
                hint="{0} or {1}.", fixes=[Fix("repair", (rev,), (("applied", True),)), Fix("repair", (rev,), (("applied", False),))],
            )
        return halfway.repair(self.db, self.scripts(), rev, applied, self._observers("repair"))

    def replay(self, *, clear: bool = False) -> display.Message:
        """The store of recorded plans (see :mod:`migmagic.replay`): where it is and what it holds; ``clear`` empties it (always safe)."""
        from . import replay

        path, count = replay.held()
        where = short_path(path)
        if clear:
            dropped = replay.clear()
            return display.Message(f"Emptied the replay store ({where}): {dropped} recorded plan{'s' if dropped != 1 else ''} dropped. The next fresh database runs through Alembic.")
        state = "on" if self.db.replay else "off in this session (%config Migrate.replay = False)"
        return display.Message(
            f"The replay store ({where}) holds {count} recorded plan{'s' if count != 1 else ''}; replay is {state}. "
            "Deleting it is always safe: %migrate replay --clear."
        )

    def log(self) -> pd.DataFrame:
        """The ledger: every step migmagic applied, oldest first.

        Applied revisions the ledger has no row for come first, and what was done
        outside migmagic since its last command (the ``alembic`` command, say)
        last, with directions ``applied outside migmagic`` / ``unapplied outside migmagic``.
        """
        scripts = self.scripts()
        return display.log_table(self.db.read(state.log_rows, scripts))


def _one_unit(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def one_unit(self: Migrator, *args: Any, **kwargs: Any) -> Any:
        return self.db.session(method, self, *args, **kwargs)

    return one_unit


# Each call of the Python API is one unit of work on its database (Database.session): with
# an async driver (asyncpg, aiosqlite) that is where its connections work, as under Alembic's
# run_sync; with a sync driver the method is just called.
for _name, _method in list(vars(Migrator).items()):
    if inspect.isfunction(_method) and not _name.startswith("_"):
        setattr(Migrator, _name, _one_unit(_method))
