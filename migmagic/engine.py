"""The Python API: one :class:`Migrator` bound to a database and a revision folder.

Methods are named after Alembic's commands and return DataFrames or small
result objects (see :mod:`migmagic.display`). Nothing here knows IPython.

Every command that touches the database first loads and checks the whole
revision folder (syntax, ``upgrade()``, parents, cycles, duplicate ids), so a
broken folder is reported before any connection is made.
"""

from __future__ import annotations

import difflib
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import display, environment, ledger, revisionfile, settings
from .database import Database
from .errors import (
    InvalidTarget,
    MigmagicError,
    MigrationFailed,
    RevisionChanged,
    RevisionMissing,
    UsageError,
)

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection

    from .adapter import Scripts, Step

Progress = Callable[[int, int, "Step | None"], None]
"""Called as ``progress(done, total, step)``: before the first step (``step`` None) and after each."""

EMPTY_BODY = "def upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n"


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
    ) -> None:
        self.location = settings.resolve(url, directory, configured_url, cwd)
        self.db = Database(self.location.url, lock_timeout)
        self._cache: Any = None

    def __repr__(self) -> str:
        return f"Migrator({self.db.masked_url!r}, {str(self.folder)!r})"

    @property
    def folder(self) -> Path:
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

    # ------------------------------------------------------------------ internals

    def scripts(self) -> Scripts:
        """The folder's checked revision graph (cached; re-read only what changed on disk)."""
        if self._cache is None:
            from .adapter import ScriptCache

            self._cache = ScriptCache(self.folder)
        return self._cache.load()

    def _adapter(self) -> Any:
        from . import adapter

        return adapter

    def _heads_in_db(self, conn: Connection) -> tuple[str, ...]:
        return self._adapter().current_heads(conn)

    def _read(self, with_ledger: bool = True) -> tuple[Scripts, tuple[str, ...], dict[str, ledger.Entry]]:
        """The checked folder, the database's heads and (unless not needed) the ledger's entries."""
        scripts = self.scripts()
        with self.db.reading() as conn:
            heads = self._heads_in_db(conn)
            entries = ledger.latest(conn) if with_ledger else {}
        return scripts, heads, entries

    # ------------------------------------------------------------------ init & status

    @classmethod
    def init(
        cls,
        url: str | None = None,
        directory: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> Migrator:
        """Bind to ``url`` and ``directory``; write the folder as an Alembic environment if new."""
        m = cls(url, directory, **kwargs)
        m.ensure_folder()
        return m

    def ensure_folder(self) -> bool:
        """Write the folder (``alembic.ini``, ``env.py``, ``script.py.mako``, ``versions/``) if missing.

        An existing Alembic folder is used as it is. Returns True when files were written.
        """
        return environment.write(self.folder, self.db.url)

    def status(self) -> display.Status:
        """Database (masked), folder, current, heads, pending, edited, missing, lock."""
        scripts = self.scripts()
        with self.db.reading() as conn:
            heads = self._heads_in_db(conn)
            entries = ledger.latest(conn)
        known = [h for h in heads if h in set(scripts.ids())]
        missing = [h for h in heads if h not in set(scripts.ids())]
        applied = scripts.applied(known)
        pending = [r for r in reversed(scripts.ids()) if r not in applied]
        edited = [r for r in sorted(applied) if self._edited(scripts, entries, r)]
        outside = [r for r in sorted(applied) if r not in entries]
        lock = self.db.lock_holder()
        fields = [
            ("database", self.db.masked_url),
            ("folder", _short(self.folder)),
            ("current", ", ".join(heads) or "base (nothing applied)"),
            ("heads", ", ".join(scripts.heads) or "(no revisions)"),
            ("applied", str(len(applied))),
            ("pending", ", ".join(pending) or "none"),
            ("edited since applied", ", ".join(edited) or "none"),
            ("applied outside migmagic", ", ".join(outside) or "none"),
            ("lock", lock or "free"),
        ]
        problems = [f"Revision {r} is applied but its file is missing from {_short(self.folder)}." for r in missing]
        problems += [f"Revision {r} was edited after it was applied: upgrade will refuse (%migrate accept {r})." for r in edited]
        return display.Status(fields, problems)

    def current(self) -> display.Current:
        """The revision(s) the database is at."""
        scripts, heads, _ = self._read(with_ledger=False)
        rows = []
        for h in heads:
            info = scripts.info(h) if h in set(scripts.ids()) else None
            rows.append((h, info.message if info else "(file missing)", bool(info and info.is_head)))
        return display.Current(self.db.masked_url, rows)

    # ------------------------------------------------------------------ reading the folder

    def history(self, rev_range: str | None = None) -> pd.DataFrame:
        """Every revision, newest first: revision, parent, message, created, applied, markers, branch labels."""
        scripts, heads, entries = self._read()
        applied = scripts.applied([h for h in heads if h in set(scripts.ids())])
        ids = scripts.ids()
        if rev_range:
            lower, sep, upper = rev_range.partition(":")
            if not sep:
                raise UsageError(f"{rev_range!r} is not a range.", hint="Use FROM:TO, e.g. -r base:head or -r abc1:.")
            ids = scripts.between(upper or "heads", lower or "base")
        rows = []
        for rev in ids:
            info = scripts.info(rev)
            entry = entries.get(rev)
            markers = [m for m, on in (("head", info.is_head), ("current", rev in heads), ("merge", info.is_merge), ("branch point", info.is_branch_point), ("applied outside migmagic", rev in applied and entry is None)) if on]
            when = display.timestamp(entry.applied_at) if entry else None
            rows.append(
                {
                    "revision": rev,
                    "parent": ", ".join(info.down_revisions) or "base",
                    "message": info.message,
                    "created": display.timestamp(info.created),
                    "applied": when if rev in applied else None,
                    "markers": ", ".join(markers) or None,
                    "branch labels": ", ".join(info.branch_labels) or None,
                }
            )
        return display.table(rows, ["revision", "parent", "message", "created", "applied", "markers", "branch labels"], "No revisions yet.", times=("created", "applied"))

    def show(self, rev: str) -> display.RevisionDetails:
        """A revision's details and source."""
        scripts = self.scripts()
        info = scripts.resolve(rev)
        children = [r for r in scripts.ids() if info.id in scripts.info(r).down_revisions]
        fields = [
            ("revision", info.id),
            ("message", info.message),
            ("parent", ", ".join(info.down_revisions) or "base"),
            ("children", ", ".join(children) or "none"),
            ("branch labels", ", ".join(info.branch_labels) or "none"),
            ("depends on", ", ".join(info.depends_on) or "none"),
            ("created", info.created or ""),
            ("path", _short(info.path)),
        ]
        return display.RevisionDetails(info.id, fields, info.source)

    def heads(self) -> pd.DataFrame:
        """The folder's heads: revision, message, branch labels, whether the database is there."""
        scripts, db_heads, _ = self._read(with_ledger=False)
        rows = [
            {"revision": h, "message": scripts.info(h).message, "branch labels": ", ".join(scripts.info(h).branch_labels) or None, "current": "yes" if h in db_heads else None}
            for h in scripts.heads
        ]
        return display.table(rows, ["revision", "message", "branch labels", "current"])

    def branches(self) -> pd.DataFrame:
        """Branch points: the revision, its message and the revisions that branch from it."""
        scripts = self.scripts()
        rows = []
        for info in scripts.all():
            if info.is_branch_point:
                children = [r for r in scripts.ids() if info.id in scripts.info(r).down_revisions]
                rows.append({"revision": info.id, "message": info.message, "branches": ", ".join(children)})
        return display.table(rows, ["revision", "message", "branches"])

    def edit(self, rev: str) -> str:
        """The text of a ``%%revision`` cell that rewrites revision ``rev``."""
        info = self.scripts().resolve(rev)
        return f"%%revision -m {_quote(info.message)}\n{revisionfile.body_of(info.source)}"

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
        progress: Progress | None = None,
        autogenerate: bool = False,
        metadata: Any = None,
        namespace: Mapping[str, Any] | None = None,
        include_unmanaged: bool = False,
    ) -> Any:
        """Write the revision named ``message`` holding ``body`` (default: empty upgrade/downgrade).

        A revision with that message already in the folder is kept when the body
        is the same, rewritten in place when it is not applied, and refused when
        it is applied — unless ``reapply``: then it is downgraded with its old
        code, rewritten, and upgraded with the new, in one transaction on SQLite
        and PostgreSQL (on failure nothing changes, file included); on
        MySQL/MariaDB step by step, undone as far as possible on failure (see
        :mod:`migmagic.reapply`).

        With ``autogenerate``, the body is what brings the database to the models
        (``metadata``: a MetaData, a declarative base, or a name in ``namespace``;
        without it, the one found in ``namespace``), and the result is a
        :class:`~migmagic.display.Autogenerated`; see :func:`migmagic.autogen.revision`.
        """
        if autogenerate:
            from . import autogen

            return autogen.revision(
                self, message, metadata=metadata, namespace=namespace, include_unmanaged=include_unmanaged,
                head=head, branch_label=branch_label, depends_on=depends_on, rev_id=rev_id,
            )
        if metadata is not None or include_unmanaged:
            option = "--metadata" if metadata is not None else "--include-unmanaged"
            raise UsageError(f"{option} only applies to revision --autogenerate.", hint="Add --autogenerate, or leave the option out.")
        message = (message or "").strip()
        if not message:
            raise UsageError("A revision needs a message: -m MESSAGE.", hint='For example %%revision -m "create users table".')
        if body is not None:
            revisionfile.check_body(body)
        self.ensure_folder()
        scripts = self.scripts()
        existing = scripts.by_message(message)
        if existing is None:
            return self._write_new(scripts, message, body or EMPTY_BODY, head, branch_label, depends_on, rev_id, apply, progress)

        unchanged = body is None or revisionfile.normalize(revisionfile.body_of(existing.source)) == revisionfile.normalize(body)
        result_path = _short(existing.path)
        if unchanged:
            result = display.RevisionWritten("unchanged", existing.id, message, result_path, existing.down_revisions)
        else:
            assert body is not None
            applied = self._is_applied(existing.id)
            if applied and not reapply:
                diff = _diff(revisionfile.body_of(existing.source), body, f"{result_path} (applied)", "this cell")
                raise RevisionChanged(
                    f"Revision {existing.id} ({message!r}) is applied to {self.db.masked_url}; the cell differs from it.",
                    revision=existing.id,
                    diff=diff,
                    hint=f"Downgrade first (%migrate downgrade {existing.id}-1), or re-run the cell with --reapply.",
                )
            if applied:
                return self._reapply(existing, body, progress)
            self._rewrite(existing, body)
            result = display.RevisionWritten("rewrote", existing.id, message, result_path, existing.down_revisions)
        if apply:
            result.applied = self.upgrade(existing.id, progress=progress)
        return result

    def _write_new(
        self,
        scripts: Scripts,
        message: str,
        body: str,
        head: str | None,
        branch_label: str | None,
        depends_on: str | None,
        rev_id: str | None,
        apply: bool,
        progress: Progress | None,
    ) -> display.RevisionWritten:
        if head == "base":
            parents: tuple[str, ...] = ()
        elif head:
            parents = (scripts.resolve(head).id,)
        elif len(scripts.heads) > 1:
            raise UsageError(
                f"The folder has {len(scripts.heads)} heads ({', '.join(scripts.heads)}): which one is the parent?",
                hint="Name it with --head REV, or join them first with %migrate merge heads -m MESSAGE.",
            )
        else:
            parents = tuple(scripts.heads)
        deps = tuple(scripts.resolve(d).id if d not in scripts.branch_labels() else d for d in (depends_on or "").split(",") if d.strip())
        new_id = rev_id or revisionfile.deterministic_id(message, parents)
        if new_id in set(scripts.ids()):
            raise UsageError(f"Revision id {new_id} is taken.", hint="Pick another with --rev-id ID.")
        if branch_label and branch_label in scripts.branch_labels():
            raise UsageError(f"Branch label {branch_label!r} is taken.", hint="Pick another label.")
        path = self.folder / "versions" / f"{new_id}_{revisionfile.slug(message)}.py"
        text = revisionfile.render(
            message=message,
            rev_id=new_id,
            down_revision=parents[0] if len(parents) == 1 else (parents or None),
            body=body,
            branch_labels=branch_label,
            depends_on=deps or None,
        )
        self._write_checked(path, text, previous=None)
        result = display.RevisionWritten("wrote", new_id, message, _short(path), parents)
        if apply:
            result.applied = self.upgrade(new_id, progress=progress)
        return result

    def _rewrite(self, existing: Any, body: str) -> None:
        self._write_checked(existing.path, self._rewritten(existing, body), previous=existing.path.read_bytes())

    def _rewritten(self, existing: Any, body: str) -> str:
        """The text of revision ``existing`` with ``body``: same id, parents, labels and date."""
        return revisionfile.render(
            message=existing.message,
            rev_id=existing.id,
            down_revision=existing.down_revisions[0] if len(existing.down_revisions) == 1 else (existing.down_revisions or None),
            body=body,
            branch_labels=existing.branch_labels or None,
            depends_on=existing.depends_on or None,
            create_date=existing.created,
        )

    def _write_checked(self, path: Path, text: str, previous: bytes | None) -> Scripts:
        """Write ``text`` to ``path`` atomically; put ``previous`` back if the folder no longer loads."""
        try:
            return self._write(path, text)
        except MigmagicError:
            self._restore(path, previous)
            raise

    def _write(self, path: Path, text: str) -> Scripts:
        """Write ``text`` to ``path`` atomically and return the folder as it now loads."""
        path.parent.mkdir(parents=True, exist_ok=True)
        _replace(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        return self.scripts()

    def _restore(self, path: Path, previous: bytes | None) -> None:
        """Put ``path`` back byte for byte (``previous`` None: it did not exist); the cache re-reads it.

        The old bytes go through a new file renamed over ``path``, so the file's
        inode changes and the cache cannot take the restored file for the one it
        replaced, whatever its size and mtime.
        """
        if previous is None:
            path.unlink(missing_ok=True)
        elif not path.exists() or path.read_bytes() != previous:
            _replace(path, lambda tmp: tmp.write_bytes(previous))
        if self._cache is not None:
            self._cache.forget()

    def _is_applied(self, rev: str) -> bool:
        scripts, heads, _ = self._read()
        return rev in scripts.applied([h for h in heads if h in set(scripts.ids())])

    def _reapply(self, existing: Any, body: str, progress: Progress | None) -> display.RevisionWritten:
        """Downgrade ``existing`` with its old code, rewrite it with ``body``, upgrade with the new code.

        All or nothing on SQLite and PostgreSQL; step by step, then undone as far
        as it can be, on MySQL/MariaDB. See :mod:`migmagic.reapply`.
        """
        from . import reapply

        return reapply.run(self, existing, body, progress)

    def merge(self, revisions: str | list[str], message: str, rev_id: str | None = None) -> display.RevisionWritten:
        """Write a merge revision whose parents are ``revisions`` (e.g. ``heads``, or ids)."""
        message = (message or "").strip()
        if not message:
            raise UsageError("A merge needs a message: -m MESSAGE.")
        scripts = self.scripts()
        refs = revisions.split() if isinstance(revisions, str) else list(revisions)
        parents: list[str] = []
        for ref in refs:
            if ref == "heads":
                parents.extend(scripts.heads)
            else:
                parents.append(scripts.resolve(ref).id)
        parents = list(dict.fromkeys(parents))
        existing = scripts.by_message(message)
        if existing is not None:
            return display.RevisionWritten("unchanged", existing.id, message, _short(existing.path), existing.down_revisions)
        if len(parents) < 2:
            raise UsageError(f"A merge joins two or more revisions; got {', '.join(parents) or 'none'}.", hint="For example %migrate merge heads -m MESSAGE.")
        new_id = rev_id or revisionfile.deterministic_id(message, parents)
        path = self.folder / "versions" / f"{new_id}_{revisionfile.slug(message)}.py"
        text = revisionfile.render(message=message, rev_id=new_id, down_revision=tuple(parents), body=EMPTY_BODY)
        self._write_checked(path, text, previous=None)
        return display.RevisionWritten("wrote", new_id, message, _short(path), tuple(parents))

    # ------------------------------------------------------------------ running revisions

    def upgrade(self, target: str = "head", *, sql: bool = False, progress: Progress | None = None) -> Any:
        """Upgrade to ``target`` (``head``, ``+1``, an id...). With ``sql``, return the SQL instead."""
        if sql:
            return self._sql(True, target)
        scripts = self.scripts()
        return self._run("upgrade", target, lambda heads: scripts.upgrade_plan(target, heads), scripts, progress)

    def downgrade(self, target: str, *, sql: bool = False, progress: Progress | None = None) -> Any:
        """Downgrade to ``target`` (``-1``, ``base``, an id...). With ``sql``, a ``FROM:TO`` range."""
        if sql:
            return self._sql(False, target)
        scripts = self.scripts()
        return self._run("downgrade", target, lambda heads: scripts.downgrade_plan(target, heads), scripts, progress)

    def stamp(self, target: str, *, purge: bool = False) -> display.Outcome:
        """Set the version table to ``target`` without running any revision."""
        scripts = self.scripts()
        if not purge:
            scripts.check_target(target)
        return self._run("stamp", target, lambda heads: scripts.stamp_plan(target, () if purge else heads), scripts, None, purge=purge)

    def _sql(self, upgrade: bool, target: str) -> display.SQLScript:
        """Offline SQL for ``[FROM:]TO``; without FROM, from where the database is now."""
        scripts = self.scripts()
        start, sep, end = target.rpartition(":")
        if not sep:
            with self.db.reading() as conn:
                heads = self._heads_in_db(conn)
            if len(heads) > 1:
                raise UsageError(
                    f"The database is at {len(heads)} heads ({', '.join(heads)}).", hint="Give the start: FROM:TO --sql."
                )
            start = heads[0] if heads else ""
        sql, ran = self._adapter().render_sql(
            scripts, self.db.dialect_name, upgrade, start or None, end, transactional_ddl=self.db.transactional_ddl
        )
        if not ran:
            sql = f"-- Nothing to run: {start or 'base'} is already at {end}.\n"
        return display.SQLScript(sql)

    def _verify(self, conn: Connection, scripts: Scripts, heads: tuple[str, ...]) -> None:
        """Refuse to run when an applied revision is missing or was edited since it was applied."""
        ids = set(scripts.ids())
        missing = [h for h in heads if h not in ids]
        if missing:
            raise RevisionMissing(
                f"The database is at {', '.join(missing)}, which is not in {_short(self.folder)}.",
                hint="Restore the revision file, or point %migrate at the folder that has it.",
            )
        entries = ledger.latest(conn)
        for rev in sorted(scripts.applied(heads)):
            if self._edited(scripts, entries, rev):
                info = scripts.info(rev)
                raise RevisionChanged(
                    f"Revision {rev} ({info.message!r}) was edited after it was applied.",
                    revision=rev,
                    diff=_diff(ledger.applied_source(conn, rev) or "", info.source, "as applied", _short(info.path)),
                    hint=f"Undo the edit, or record it on purpose with %migrate accept {rev}. Nothing was run.",
                )

    @staticmethod
    def _edited(scripts: Scripts, entries: Mapping[str, ledger.Entry], rev: str) -> bool:
        entry = entries.get(rev)
        if entry is None or entry.checksum is None or rev not in scripts:
            return False
        return entry.checksum != scripts.info(rev).checksum

    def _run(
        self,
        command: str,
        target: str,
        plan: Callable[[tuple[str, ...]], list[Step]],
        scripts: Scripts,
        progress: Progress | None,
        purge: bool = False,
    ) -> display.Outcome:
        adapter = self._adapter()
        per_step = not self.db.transactional_ddl
        phase: Phase | None = None
        started = time.perf_counter()
        try:
            with self.db.migrating() as conn:
                ledger.ensure(conn)
                if per_step:
                    conn.commit()
                phase = Phase(conn, scripts, [], per_step=per_step, progress=progress)
                # Before planning: a plan from a head whose file is gone is Alembic's error, not ours.
                check = None if command == "stamp" else (lambda heads: self._verify(conn, scripts, heads))
                phase.run(plan, check=check, purge=purge)
                ledger.insert(conn, phase.rows)  # one transaction: the whole command's rows, before it commits
                after_heads = adapter.current_heads(conn)
        except MigmagicError:
            raise
        except Exception as exc:
            failure = self._failure(command, exc, phase)
            raise failure from failure.cause
        seconds = time.perf_counter() - started
        done = phase.done
        where = ", ".join(after_heads) or "base"
        if not done:
            summary = f"Nothing to {command}: {self.db.masked_url} is at {where}."
        else:
            n = len(done)
            summary = f"{_PAST[command]} {self.db.masked_url} to {where}: {n} step{'s' if n != 1 else ''} in {seconds:.2f} s."
        return display.Outcome(summary, steps_table(done))

    def _failure(self, command: str, exc: BaseException, phase: Phase | None) -> MigrationFailed:
        planned, done = (phase.planned, phase.done) if phase else ([], [])
        what, rev, statement = self._what_failed(command, exc, planned, done)
        if self.db.transactional_ddl:
            where = ", ".join(phase.before if phase else ()) or "base"
            hint = f"Nothing was applied: the database is still at {where}."
        else:
            # DDL commits itself here: completed steps stay, and so does any DDL
            # the failed revision ran before it failed.
            kept = f"{', '.join(s.revision for s in done)} stayed applied and " if done else ""
            where = ", ".join(phase.where if phase else ()) or "base"
            hint = (
                f"{self.db.dialect_name} cannot roll back DDL: {kept}the version table is at {where}; "
                f"DDL that {rev} ran before it failed was not undone."
            )
        return MigrationFailed(
            what, revision=rev, original=exc, statement=statement, completed=[s.revision for s in done],
            hint=hint + statement_hint(statement), scrub=self._scrub,
        )

    def _scrub(self, text: str) -> str:
        """``text`` without the database password, in any of its spellings."""
        return settings.scrub(text, self.db.url)

    def _described(self, exc: BaseException, limit: int = 300) -> str:
        """``exc`` as ``Type: reason`` on one line, the password scrubbed, the reason cut at ``limit``."""
        # Scrubbed before and after the whitespace is folded: a password may hold spaces.
        reason = self._scrub(" ".join(self._scrub(str(getattr(exc, "orig", None) or exc)).split()))
        return f"{type(exc).__name__}: {reason[:limit]}"

    def _failed_statement(self, exc: BaseException) -> str | None:
        """The SQL statement the database refused, scrubbed (None when ``exc`` is not a database error)."""
        from sqlalchemy.exc import DBAPIError

        statement = getattr(exc, "statement", None) if isinstance(exc, DBAPIError) else None
        return self._scrub(statement) if statement else None

    def _what_failed(self, command: str, exc: BaseException, planned: list[Step], done: list[Step]) -> tuple[str, str, str | None]:
        """What went wrong during ``command`` (a sentence), the revision it names, and the failed SQL statement."""
        described, statement = self._described(exc), self._failed_statement(exc)
        if len(done) < len(planned):
            failed = planned[len(done)]
            return f"Revision {failed.revision} ({failed.message!r}) failed during {command}: {described}", failed.revision, statement
        if planned:
            return f"The {command} failed when committing: {described}", planned[-1].revision, statement
        return f"The {command} failed before any revision ran: {described}", "", statement

    # ------------------------------------------------------------------ models and schema

    def check(self, metadata: Any = None, *, namespace: Mapping[str, Any] | None = None, include_unmanaged: bool = False) -> display.ModelDiff:
        """Compare the models with the database; raise :class:`~migmagic.errors.PendingModelChanges` if they differ.

        Like ``alembic check``, the database must be at the folder's head.
        """
        from . import autogen

        return autogen.check(self, metadata, namespace, include_unmanaged)

    def diff(self, metadata: Any = None, *, namespace: Mapping[str, Any] | None = None, include_unmanaged: bool = False) -> display.ModelDiff:
        """Model-versus-database differences as a table (what, table, column, from, to); writes nothing."""
        from . import autogen

        return autogen.diff(self, metadata, namespace, include_unmanaged)

    def schema(self, table: str | None = None) -> Any:
        """The tables (name, columns, rows), or one table's columns, indexes and foreign keys."""
        from . import schema

        with self.db.reading() as conn:
            return schema.tables(conn) if table is None else schema.table(conn, table, self.db.masked_url)

    # ------------------------------------------------------------------ integrity

    def accept(self, rev: str) -> display.Message:
        """Record the current source of an applied, edited revision as the one applied."""
        scripts = self.scripts()
        info = scripts.resolve(rev)
        adapter = self._adapter()
        with self.db.migrating() as conn:
            ledger.ensure(conn)
            heads = adapter.current_heads(conn)
            if info.id not in scripts.applied([h for h in heads if h in set(scripts.ids())]):
                raise InvalidTarget(f"Revision {info.id} is not applied: there is nothing to accept.", hint="Just upgrade.")
            ledger.insert(conn, [ledger.row(revision=info.id, direction="accept", message=info.message, seconds=None, source=info.source, alembic_version=adapter.ALEMBIC_VERSION)])
            if not self.db.transactional_ddl:
                conn.commit()
        return display.Message(f"Accepted the current source of {info.id} ({info.message!r}) as applied.")

    def log(self) -> pd.DataFrame:
        """The ledger: every step migmagic applied, oldest first.

        Applied revisions the ledger has no row for (applied by the ``alembic``
        command) come first, with direction ``applied outside migmagic``.
        """
        scripts = self.scripts()
        with self.db.reading() as conn:
            rows = ledger.rows(conn)
            recorded = ledger.latest(conn)
            heads = self._heads_in_db(conn)
        applied = scripts.applied([h for h in heads if h in set(scripts.ids())])
        outside = [
            {"revision": r, "direction": "applied outside migmagic", "message": scripts.info(r).message}
            for r in reversed(scripts.ids())
            if r in applied and r not in recorded
        ]
        cols = ["id", "revision", "direction", "message", "applied_at", "seconds", "checksum", "checksum_version", "migmagic_version", "alembic_version"]
        frame = display.table(outside + rows, cols)
        for col in ("id", "checksum_version"):
            frame[col] = frame[col].astype("Int64")  # blank, not NaN, on the outside rows
        return frame


_STEP_COLUMNS = ["revision", "message", "direction", "seconds"]
_PAST = {"upgrade": "Upgraded", "downgrade": "Downgraded", "stamp": "Stamped"}


class Phase:
    """One plan run on a migration connection: each step timed, its ledger row made, progress reported.

    Where DDL rolls back, the ledger rows wait in ``rows`` (a list the caller
    may share between phases) to be inserted just before the caller's
    transaction commits. With ``per_step`` (MySQL/MariaDB) each step's row is
    inserted and committed together with that step's version-table update.
    """

    def __init__(
        self,
        conn: Connection,
        scripts: Scripts,
        rows: list[dict[str, Any]],
        *,
        per_step: bool,
        progress: Progress | None = None,
    ) -> None:
        self.conn = conn
        self.scripts = scripts
        self.rows = rows
        self.per_step = per_step
        self.progress = progress
        self.planned: list[Step] = []
        self.done: list[Step] = []
        self.before: tuple[str, ...] = ()  # the version table when the plan was made
        self._position: tuple[str, ...] | None = None
        self._clock = 0.0

    @property
    def where(self) -> tuple[str, ...]:
        """The version table's revisions after the steps done so far."""
        return self.before if self._position is None else self._position

    def run(
        self,
        plan: Callable[[tuple[str, ...]], list[Step]],
        *,
        check: Callable[[tuple[str, ...]], None] | None = None,
        purge: bool = False,
    ) -> list[Step]:
        """Run ``plan(heads)`` (after ``check(heads)``, heads read on this connection); return the steps done."""
        from . import adapter

        def plan_and_remember(heads: tuple[str, ...]) -> list[Step]:
            self.before = heads
            if check is not None:
                check(heads)
            self.planned[:] = plan(heads)
            return self.planned

        adapter.run(
            self.conn, self.scripts, plan_and_remember,
            before=self._before, after_step=self._after_step, transaction_per_migration=self.per_step, purge=purge,
        )
        return self.done

    def _before(self, steps: list[Step], _heads: tuple[str, ...]) -> None:
        if self.progress:
            self.progress(0, len(steps), None)
        self._clock = time.perf_counter()

    def _after_step(self, step: Step) -> None:
        from .adapter import ALEMBIC_VERSION

        now = time.perf_counter()
        step.seconds = now - self._clock
        self._clock = now
        source = self.scripts.info(step.revision).source if step.revision in self.scripts else None
        self.rows.append(ledger.row(revision=step.revision, direction=step.direction, message=step.message, seconds=step.seconds, source=source, alembic_version=ALEMBIC_VERSION))
        if self.per_step:  # this step's own transaction: version table and ledger row commit together
            ledger.insert(self.conn, self.rows)
            self.rows.clear()
            self.conn.commit()
        self._position = _position_after(self.where, step, self.scripts)
        self.done.append(step)
        if self.progress:
            self.progress(len(self.done), len(self.planned), step)


def statement_hint(statement: str | None) -> str:
    """The failed SQL statement as the end of a hint (nothing without one)."""
    return f" Failed statement: {' '.join(statement.split())[:200]}" if statement else ""


def steps_table(steps: list[Step]) -> pd.DataFrame:
    """Steps as a user sees them: revision, message, direction, seconds."""
    return display.table(
        [{"revision": s.revision, "message": s.message, "direction": s.direction, "seconds": round(s.seconds or 0.0, 4)} for s in steps],
        _STEP_COLUMNS,
    )


def _position_after(heads: tuple[str, ...], step: Step, scripts: Scripts) -> tuple[str, ...]:
    """The version table's revisions after ``step`` ran on a database at ``heads``."""
    if step.direction not in ("upgrade", "downgrade") or step.revision not in scripts:
        return heads
    info = scripts.info(step.revision)
    if step.direction == "upgrade":
        kept = [h for h in heads if h not in info.down_revisions]
        return (*kept, step.revision)
    kept = [h for h in heads if h != step.revision]
    return tuple(kept) + tuple(d for d in info.down_revisions if d not in kept)


def _replace(path: Path, write: Callable[[Path], object]) -> None:
    """Replace ``path`` atomically: ``write`` fills a temp file beside it, then it is renamed over ``path``.

    A failed write leaves ``path`` as it was and no temp file behind.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _short(path: Path) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _quote(message: str) -> str:
    return '"' + message.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _diff(old: str, new: str, old_name: str, new_name: str) -> str:
    lines = difflib.unified_diff(
        revisionfile.normalize(old).splitlines(keepends=True),
        revisionfile.normalize(new).splitlines(keepends=True),
        fromfile=old_name,
        tofile=new_name,
    )
    return "".join(lines)
