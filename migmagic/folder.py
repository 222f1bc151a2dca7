"""The revision folder on disk: its scripts, read through a cache, and every write to it.

A write is atomic (a temporary file beside the target, renamed over it) and
checked: the folder must still load afterwards, or the file is put back byte
for byte. Nothing here opens a database connection, but :meth:`Folder.learn`: a
project's own ``env.py`` is run once (per checksum) on a connection of its own, to
learn what it passes to ``context.configure`` (:mod:`migmagic.adapter.envpy`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import display, environment, revisionfile
from .display import short_path
from .errors import (
    Fix,
    MigmagicError,
    RevisionCellError,
    RevisionChanged,
    RevisionWriteFailed,
    UsageError,
)

if TYPE_CHECKING:
    from .adapter import Environment, RevisionInfo, Scripts
    from .database import Database

EMPTY_BODY = "def upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n"


class Folder:
    """One revision folder: ``versions/`` holds the scripts; the rest is the Alembic environment."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: Any = None
        self.said: list[str] = []  # what ensure() changed in an existing folder, for the next status
        self._env: tuple[str, Any] | None = None  # (env.py's checksum, what it configures), once learned

    def __repr__(self) -> str:
        return f"Folder({str(self.path)!r})"

    def scripts(self) -> Scripts:
        """The folder's checked revision graph (cached; re-read only what changed on disk)."""
        if self._cache is None:
            from .adapter import ScriptCache

            self._cache = ScriptCache(self.path)
        scripts = self._cache.load()
        scripts.environment = self._env[1] if self._env is not None else type(scripts.environment)()
        return scripts

    # ------------------------------------------------------------------ what a project's own env.py configures

    def learn(self, db: Database, adopted_ini: Path | None = None) -> Environment | None:
        """What the folder's own ``env.py`` passes to ``context.configure`` (None: migmagic's own, or no env.py).

        Run once per checksum of ``env.py``, on a connection of its own that is rolled back
        (:func:`migmagic.adapter.learn`), with the project's Alembic options (``adopted_ini``,
        else the folder's ``alembic.ini``) and its ``prepend_sys_path``, as the ``alembic``
        command runs it; from then on :meth:`scripts` carries it. A database that cannot be
        reached is left to the command to report: nothing is kept.
        """
        kind = environment.env_kind(self.path)
        env = self.path / "env.py"
        if kind != "other" or not env.is_file():
            self._env = None
            return None
        digest = environment.checksum_of(env)
        if self._env is None or self._env[0] != digest:
            from .adapter import learn
            from .settings import project_options

            try:
                options, sys_paths = project_options(adopted_ini, self.path)
                with db.connect() as conn:
                    learned = learn(self.path, conn, options, sys_paths)
            except MigmagicError:  # the database cannot be reached: the command says so itself
                return None
            self._env = (digest, learned)
        return self._env[1]

    def env_configures(self) -> list[str]:
        """One line for each thing the folder's own ``env.py`` configures that migmagic does not apply (once learned)."""
        if self._env is None:
            return []
        env = self.path / "env.py"
        ours = environment.written_by_migmagic(env)  # edited by hand: its template's own settings are not news
        return self._env[1].notes(short_path(env), unsaid=frozenset({"include_name", "render_as_batch"}) if ours else frozenset())

    # ------------------------------------------------------------------ a re-apply's old bytes

    @staticmethod
    def kept_path(path: Path) -> Path:
        from .adapter import LEFTOVER_SUFFIX

        return path.with_name(f".{path.name}{LEFTOVER_SUFFIX}")

    def keep_old(self, path: Path, old: bytes, new: bytes | None = None) -> None:
        """Keep ``path``'s old bytes beside it until a re-apply committed (see :mod:`migmagic.reapply`).

        ``new``: the bytes the re-apply is about to write, kept too, so that a file edited
        by hand after a killed re-apply is told from the re-apply's own (:meth:`written_by_reapply`).
        """
        replace(self.kept_path(path), lambda tmp: tmp.write_bytes(old))
        if new is not None:
            replace(self._written_path(path), lambda tmp: tmp.write_bytes(new))

    def drop_old(self, path: Path) -> None:
        self.kept_path(path).unlink(missing_ok=True)
        self._written_path(path).unlink(missing_ok=True)

    @staticmethod
    def _written_path(path: Path) -> Path:
        return path.with_name(f".{path.name}.written-by-reapply")

    def written_by_reapply(self, path: Path) -> bytes | None:
        """The bytes a re-apply that has not committed wrote into ``path`` (None: not known)."""
        try:
            return self._written_path(path).read_bytes()
        except OSError:
            return None

    def leftovers(self) -> list[tuple[Path, bytes]]:
        """(revision file, old bytes) a re-apply kept and did not get to drop (it was killed part-way), as last read."""
        kept = self._cache.leftovers if self._cache is not None else []
        out = []
        for leftover in kept:
            from .adapter import LEFTOVER_SUFFIX

            out.append((leftover.with_name(leftover.name[1:].removesuffix(LEFTOVER_SUFFIX)), leftover.read_bytes()))
        return out

    def kept_checksums(self) -> dict[str, str]:
        """Revision id -> checksum of the old code a re-apply kept beside its file (one that has not committed)."""
        kept = {}
        for _path, old in self.leftovers():
            text = old.decode("utf-8-sig", errors="replace")
            rev = revisionfile.rev_id_of(text)
            if rev:
                kept[rev] = revisionfile.checksum(text)
        return kept

    def ensure(self, url: str, metadata: str | None = None, *, update_env: bool = False, record_url: bool = False) -> bool:
        """Write the Alembic environment if missing (``update_env``: see :func:`migmagic.environment.update_env`); True when files were written.

        ``record_url`` (``init`` with a URL that works): an ``alembic.ini`` migmagic wrote
        earlier is made to name it; what changed is said once in :attr:`said`.
        """
        existed = (self.path / "alembic.ini").is_file()
        wrote = environment.write(self.path, url, metadata=metadata)
        if record_url and existed:
            old = environment.record_url(self.path, url)
            if old is not None:
                from .settings import mask_url

                self.said.append(f"{self.path.name}/alembic.ini now names {mask_url(url)} for the alembic command (it had: {mask_url(old)}).")
                wrote = True
        return environment.update_env(self.path) or wrote if update_env else wrote

    def env_notes(self, dialect: str | None = None) -> list[str]:
        """One line when ``env.py`` comes from an older migmagic template, or would show migmagic's tables to the project's autogenerate."""
        return environment.env_notes(self.path, dialect)

    # ------------------------------------------------------------------ new revisions

    def parents_for(self, scripts: Scripts, head: str | None) -> tuple[str, ...]:
        """The parents of a new revision: ``head`` (``base`` for none), else the folder's single head."""
        if head == "base":
            return ()
        if head:
            return (scripts.resolve(head).id,)
        if len(scripts.heads) > 1:
            raise UsageError(
                f"The folder has {len(scripts.heads)} heads ({', '.join(scripts.heads)}): which one is the parent?",
                hint="Name it with --head REV, or join them first with {0}.",
                fixes=[Fix("merge", ("heads",), (("message", "MESSAGE"),))],
            )
        return tuple(scripts.heads)

    def write_new(
        self,
        scripts: Scripts,
        message: str,
        body: str,
        *,
        head: str | None = None,
        branch_label: str | None = None,
        depends_on: str | None = None,
        rev_id: str | None = None,
    ) -> display.RevisionWritten:
        """Write a new revision named ``message`` holding ``body``; nothing is written if it is refused."""
        parents = self.parents_for(scripts, head)
        labels = scripts.branch_labels()
        deps = tuple(scripts.resolve(d).id if d not in labels else d for d in (depends_on or "").split(",") if d.strip())
        new_id = rev_id or revisionfile.deterministic_id(message, parents)
        if new_id in scripts:
            raise UsageError(f"Revision id {new_id} is taken.", hint="Pick another with --rev-id ID.")
        if branch_label and branch_label in labels:
            raise UsageError(f"Branch label {branch_label!r} is taken.", hint="Pick another label.")
        path = self.path / "versions" / f"{new_id}_{revisionfile.slug(message)}.py"
        text = revisionfile.render(
            message=message,
            rev_id=new_id,
            down_revision=parents[0] if len(parents) == 1 else (parents or None),
            body=body,
            branch_labels=branch_label,
            depends_on=deps or None,
        )
        self.write_checked(path, text, previous=None)
        return display.RevisionWritten("wrote", new_id, message, short_path(path), parents)

    def merge(self, scripts: Scripts, refs: list[str], message: str, rev_id: str | None = None) -> display.RevisionWritten:
        """Write a merge revision whose parents are ``refs`` (``heads``, or ids); kept if one has this message."""
        parents: list[str] = []
        for ref in refs:
            parents.extend(scripts.heads if ref == "heads" else [scripts.resolve(ref).id])
        parents = list(dict.fromkeys(parents))
        existing = scripts.by_message(message)
        if existing is not None:
            return unchanged(existing)
        if len(parents) < 2:
            raise UsageError(
                f"A merge joins two or more revisions; got {', '.join(parents) or 'none'}.",
                hint="For example {0}.",
                fixes=[Fix("merge", ("heads",), (("message", "MESSAGE"),))],
            )
        new_id = rev_id or revisionfile.deterministic_id(message, parents)
        path = self.path / "versions" / f"{new_id}_{revisionfile.slug(message)}.py"
        text = revisionfile.render(message=message, rev_id=new_id, down_revision=tuple(parents), body=EMPTY_BODY)
        self.write_checked(path, text, previous=None)
        return display.RevisionWritten("wrote", new_id, message, short_path(path), tuple(parents))

    # ------------------------------------------------------------------ existing revisions

    @staticmethod
    def check_compiles(body: str, dialect_name: str) -> None:
        """Refuse a body whose operations do not compile for ``dialect_name`` (rendered offline; nothing written)."""
        from .adapter import compile_problem

        problem = compile_problem(body, dialect_name)
        if problem:
            raise RevisionCellError(
                f"The revision does not compile for {dialect_name}: {problem}.",
                hint="Give the type what this database needs (for a string, a length: sa.String(255)). Nothing was written.",
            )

    @staticmethod
    def same_body(existing: RevisionInfo, body: str | None) -> bool:
        """Whether ``body`` (None: no body given) is what ``existing`` holds, as compared."""
        return body is None or revisionfile.normalize(revisionfile.body_of(existing.source)) == revisionfile.normalize(body)

    @staticmethod
    def rewritten(existing: RevisionInfo, body: str) -> str:
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

    def rewrite(self, existing: RevisionInfo, body: str) -> display.RevisionWritten:
        """Rewrite a revision that is not applied, in place."""
        self.write_checked(existing.path, self.rewritten(existing, body), previous=existing.path.read_bytes())
        return display.RevisionWritten("rewrote", existing.id, existing.message, short_path(existing.path), existing.down_revisions)

    @staticmethod
    def refuse_applied(existing: RevisionInfo, body: str, where: str, applied_source: str | None = None) -> RevisionChanged:
        """The error for a changed body of a revision applied to ``where`` (``applied_source``: as the ledger has it)."""
        from .run import diff_text

        path = short_path(existing.path)
        return RevisionChanged(
            f"Revision {existing.id} ({existing.message!r}) is applied to {where}; the new code differs from it.",
            revision=existing.id,
            diff=diff_text(revisionfile.body_of(applied_source or existing.source), body, f"{path} (applied)", "new code"),
            hint="Downgrade first ({0}), or {1}.",
            fixes=[Fix("downgrade", (f"{existing.id}-1",)), Fix("revision", options=(("reapply", True),), cell=True)],
        )

    # ------------------------------------------------------------------ writing files

    def write_checked(self, path: Path, text: str, previous: bytes | None) -> Scripts:
        """Write ``text`` to ``path`` atomically; put ``previous`` back if the folder no longer loads."""
        try:
            return self.write(path, text)
        except MigmagicError:
            self.put_back(path, previous)
            raise
        except OSError as exc:  # a full disk, an unwritable folder: the temporary file is gone, the old file kept
            raise RevisionWriteFailed.of(path, exc, existed=previous is not None) from None

    def write(self, path: Path, text: str) -> Scripts:
        """Write ``text`` to ``path`` atomically and return the folder as it now loads."""
        path.parent.mkdir(parents=True, exist_ok=True)
        replace(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        return self.scripts()

    def put_back(self, path: Path, previous: bytes | None) -> None:
        """Put ``path`` back byte for byte (``previous`` None: it did not exist); the cache re-reads it.

        The old bytes go through a new file renamed over ``path``, so the file's
        inode changes and the cache cannot take the restored file for the one it
        replaced, whatever its size and mtime.
        """
        if previous is None:
            path.unlink(missing_ok=True)
        elif not path.exists() or path.read_bytes() != previous:
            replace(path, lambda tmp: tmp.write_bytes(previous))
        if self._cache is not None:
            self._cache.forget()


def unchanged(existing: RevisionInfo) -> display.RevisionWritten:
    """The result for a revision that was found as it is: nothing written."""
    return display.RevisionWritten("unchanged", existing.id, existing.message, short_path(existing.path), existing.down_revisions)


def replace(path: Path, write: Callable[[Path], object]) -> None:
    """Replace ``path`` atomically: ``write`` fills a temp file beside it, then it is renamed over ``path``.

    A failed write leaves ``path`` as it was and no temp file behind.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
