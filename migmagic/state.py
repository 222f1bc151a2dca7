"""Where the database stands against the folder: computed in one place, read by every command.

A :class:`State` says which revisions are applied, pending, edited since they
were applied, missing from the folder, or applied by something other than
migmagic (the ``alembic`` command, say). ``status``, ``history``, ``log``,
``current``, ``accept``, ``--reapply``, autogenerate and the checks before a run
all read it; none recomputes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from . import journal, ledger, watch

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .adapter import Scripts


@dataclass(frozen=True)
class State:
    """The database's version table read against the folder's revision graph (and the ledger)."""

    heads: tuple[str, ...]
    """The revisions in the version table, as the database holds them."""
    applied: frozenset[str]
    """Every revision at or below a head the folder knows."""
    pending: list[str]
    """Revisions of the folder not applied, newest first."""
    missing: list[str]
    """Heads of the version table whose file is not in the folder."""
    edited: list[str]
    """Applied revisions whose source differs from the one the ledger recorded."""
    outside: list[str]
    """Applied revisions whose application migmagic did not make (the ``alembic`` command, a version row typed by hand)."""
    entries: Mapping[str, ledger.Entry] = field(default_factory=dict, repr=False)
    """What the ledger last recorded for each applied revision (with the changes the watch saw since, see :mod:`migmagic.watch`)."""
    unrecorded: list[watch.Event] = field(default_factory=list)
    """What changes to the version table made outside migmagic since its last command did, not yet in the ledger."""
    half_applied: list[journal.HalfApplied] = field(default_factory=list)
    """MySQL/MariaDB: revisions whose step stopped after some of its statements committed (always empty elsewhere)."""
    reapplying: list[str] = field(default_factory=list)
    """Applied revisions whose file holds the code of a re-apply that has not committed (running elsewhere, or
    killed before its commit): the database has the old code, kept beside the file, which the next command
    under the lock puts back (see :func:`migmagic.reapply.settle`). Never in :attr:`edited`: accepting the
    file's code would record code the database did not commit."""

    def is_applied(self, rev: str) -> bool:
        return rev in self.applied

    @property
    def where(self) -> str:
        """The version table in words: ``abc1, def2`` or ``base``."""
        return ", ".join(self.heads) or "base"


def of(conn: Connection, scripts: Scripts, *, with_ledger: bool = True, kept: Mapping[str, str] | None = None) -> State:
    """The state of the database on ``conn`` (inside the caller's transaction).

    ``kept``: revision id -> checksum of the old code a re-apply kept beside its file (:meth:`Folder.kept_checksums`).
    """
    from .adapter import current_heads

    heads = current_heads(conn, scripts.environment)
    entries = ledger.latest(conn) if with_ledger else {}
    seen = watch.events(scripts, heads, watch.changes(conn)) if with_ledger else []
    st = compute(scripts, heads, _seen(entries, seen), with_ledger=with_ledger, kept=kept or {})
    if seen:
        st = replace(st, unrecorded=seen)
    if with_ledger and journal.keeps_journal(conn):
        half = [replace(h, message=scripts.info(h.revision).message if h.revision in scripts else "") for h in journal.half_applied(conn)]
        st = replace(st, half_applied=half)
    return st


def _seen(entries: dict[str, ledger.Entry], seen: list[watch.Event]) -> dict[str, ledger.Entry]:
    """The ledger's entries after the changes the watch saw (oldest first)."""
    for e in seen:
        if e.direction == "applied":
            entries[e.revision] = ledger.Entry(e.revision, None, ledger.OUTSIDE, e.at)
        else:
            entries.pop(e.revision, None)
    return entries


def compute(
    scripts: Scripts, heads: tuple[str, ...], entries: Mapping[str, ledger.Entry], *, with_ledger: bool = True, kept: Mapping[str, str] | None = None
) -> State:
    """The state of a database at ``heads`` whose ledger holds ``entries`` (``kept``: see :func:`of`)."""
    known = [h for h in heads if h in scripts]
    missing = [h for h in heads if h not in scripts]
    applied = scripts.applied(known)
    pending = [r for r in scripts.ids() if r not in applied]
    ordered = sorted(applied)
    changed = [r for r in ordered if _edited(scripts, entries, r)]
    kept = kept or {}
    reapplying = [r for r in changed if r in kept and entries[r].checksum == kept[r]]
    edited = [r for r in changed if r not in reapplying]
    outside = [r for r in ordered if r not in entries or entries[r].direction == ledger.OUTSIDE] if with_ledger else []
    return State(heads, frozenset(applied), pending, missing, edited, outside, entries, reapplying=reapplying)


HISTORY_COLUMNS = ["revision", "parent", "message", "created", "applied", "markers", "branch labels"]


def history_rows(scripts: Scripts, st: State, ids: list[str]) -> list[dict[str, Any]]:
    """``history``'s rows for revisions ``ids``: parent, message, created, applied, markers, branch labels."""
    from .display import timestamp

    rows = []
    outside = set(st.outside)
    for rev in ids:
        info = scripts.info(rev)
        entry = st.entries.get(rev)
        applied = st.is_applied(rev)
        flags = (
            ("head", info.is_head), ("current", rev in st.heads), ("merge", info.is_merge),
            ("branch point", info.is_branch_point), ("applied outside migmagic", rev in outside),
        )
        rows.append(
            {
                "revision": rev,
                "parent": ", ".join(info.down_revisions) or "base",
                "message": info.message,
                "created": timestamp(info.created),
                "applied": (timestamp(entry.applied_at) if entry else None) if applied else None,
                "markers": ", ".join(m for m, on in flags if on) or None,
                "branch labels": ", ".join(info.branch_labels) or None,
            }
        )
    return rows


def outside_rows(scripts: Scripts, st: State) -> list[dict[str, Any]]:
    """``log``'s first rows: applied revisions the ledger has no row for (applied before anything watched), oldest first."""
    unknown = {r for r in st.outside if r not in st.entries}
    return [{"revision": r, "direction": ledger.WORDS[ledger.OUTSIDE], "message": scripts.info(r).message} for r in reversed(scripts.ids()) if r in unknown]


def unrecorded_rows(scripts: Scripts, st: State) -> list[dict[str, Any]]:
    """``log``'s last rows: what the watch saw done outside migmagic since its last command, oldest first."""
    return [
        {"revision": e.revision, "direction": e.words, "message": scripts.info(e.revision).message, "applied_at": e.at}
        for e in st.unrecorded
    ]


def _edited(scripts: Scripts, entries: Mapping[str, ledger.Entry], rev: str) -> bool:
    entry = entries.get(rev)
    if entry is None or entry.checksum is None or rev not in scripts:
        return False
    return entry.checksum != scripts.info(rev).checksum


def log_rows(conn: Connection, scripts: Scripts) -> list[dict[str, Any]]:
    """``log``'s rows, read in one transaction: revisions applied before any ledger row, the ledger, then what was done outside migmagic."""
    st = of(conn, scripts)
    return outside_rows(scripts, st) + ledger.rows(conn) + unrecorded_rows(scripts, st)
