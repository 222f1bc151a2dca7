"""Review at the cell: a revision's PostgreSQL SQL through squawk, and the safer way as a revision.

`squawk <https://squawkhq.com>`_ (the ``squawk-cli`` package) is a maintained
linter for PostgreSQL migrations. migmagic renders a revision's ``upgrade()``
offline for PostgreSQL (as the compile check does: nothing reaches a database),
wraps it as migmagic runs it — one transaction, ``SET lock_timeout`` first,
``autocommit_block()`` as a COMMIT/BEGIN pair — and hands it to squawk. Each
finding comes back with the line of the cell (or file) whose ``op`` call sent
the statement.

Configuration is squawk's: a ``.squawk.toml`` in the revision folder or its
parents, else in the working directory or its parents, is used as it is (its
``excluded_rules``, ``pg_version``...). Without one, migmagic leaves out the
rules in :data:`LEFT_OUT` (style rules that fire on every ``create_table``,
and what migmagic itself does). Ignore comments work too: squawk's own in
``op.execute`` SQL, and a Python comment ``# squawk-ignore RULE`` on the lines
right above an ``op`` call (``# squawk-ignore-file RULE`` anywhere) for the
statements that call sends.

Nothing here opens a connection; the only process started is squawk.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import display, revisionfile
from .errors import RevisionCellError, UsageError

if TYPE_CHECKING:
    import pandas as pd

    from .adapter import Scripts

LEFT_OUT: dict[str, str] = {
    "prefer-bigint-over-int": "a choice of type, not a hazard of the change",
    "prefer-bigint-over-smallint": "a choice of type, not a hazard of the change",
    "prefer-identity": "a choice of type (Alembic's Integer primary key is SERIAL)",
    "prefer-text-field": "a choice of type; fires on every sa.String(n) of a new table",
    "prefer-timestamp-tz": "a choice of type; fires on every sa.DateTime()",
    "require-statement-timeout": "migmagic bounds waits with lock_timeout; a statement_timeout is the deployment's policy",
}
"""Rules left out when the project has no ``.squawk.toml`` (with one, the file decides), and why."""

SAFER: dict[str, str] = {
    "require-concurrent-index-creation": (
        "Build it CONCURRENTLY (postgresql_concurrently=True, if_not_exists=True) inside "
        "`with op.get_context().autocommit_block():`: reads and writes go on while it builds."
    ),
    "adding-field-with-default": (
        "Add the column nullable with no default (or a constant one: PostgreSQL 11+ adds those without a rewrite), "
        "backfill in batches, then set the default and NOT NULL."
    ),
    "changing-column-type": (
        "Add a column of the new type, backfill it, move readers and writers to it, then drop the old one "
        "(varchar(n) to text, or a longer varchar, needs no rewrite)."
    ),
    "adding-foreign-key-constraint": (
        "Add it with postgresql_not_valid=True (new rows are checked, no scan), then "
        "VALIDATE CONSTRAINT in its own transaction (autocommit_block): the scan then blocks no writes."
    ),
    "constraint-missing-not-valid": (
        "Add it NOT VALID (postgresql_not_valid=True), then VALIDATE CONSTRAINT in its own transaction (autocommit_block)."
    ),
    "adding-not-nullable-field": (
        "Add CHECK (column IS NOT NULL) NOT VALID, VALIDATE it in its own transaction, then SET NOT NULL "
        "(PostgreSQL 12+ uses the valid check and skips the scan) and drop the check."
    ),
}
"""migmagic's safer way for the hazards it knows; other rules get squawk's own help."""

COLUMNS = ["rule", "statement", "line", "why", "safer way"]
_CELL = "<%%revision cell>"
_IGNORE = re.compile(r"#\s*(squawk-ignore(?:-file)?\s+[a-z0-9\-]+(?:\s*,\s*[a-z0-9\-]+)*)\s*$")


@dataclass(frozen=True)
class Finding:
    """One squawk finding: the rule, the SQL statement, the line that sent it, why it matters, the safer way."""

    rule: str
    statement: str
    line: int | None
    why: str
    safer: str
    revision: str | None = None

    def row(self) -> dict[str, Any]:
        return {"revision": self.revision, "rule": self.rule, "statement": self.statement, "line": self.line, "why": self.why, "safer way": self.safer}


# =========================================================================== squawk


_BINARY: list[Path] = []  # found once per process


def squawk_binary() -> Path:
    """The ``squawk`` executable the ``squawk-cli`` package installed (found through the package, not PATH)."""
    from importlib import metadata

    if _BINARY and _BINARY[0].exists():
        return _BINARY[0]

    try:
        dist = metadata.distribution("squawk-cli")
    except metadata.PackageNotFoundError:
        raise UsageError(
            "squawk is not installed: migmagic lints PostgreSQL revisions with it.",
            hint="pip install 'migmagic[lint]' (or squawk-cli).",
        ) from None
    for file in dist.files or ():
        if file.name in ("squawk", "squawk.exe") and file.parent.name in ("bin", "Scripts"):
            path = Path(str(dist.locate_file(file))).resolve()
            if path.exists():
                _BINARY[:] = [path]
                return path
    raise UsageError("The squawk-cli package has no squawk executable.", hint="Reinstall it: pip install --force-reinstall squawk-cli.")


def config_file(folder: Path, cwd: Path | None = None) -> Path | None:
    """The ``.squawk.toml`` squawk would use: in the revision folder or its parents, else the working directory or its parents."""
    for start in (Path(folder).resolve(), Path(cwd or os.getcwd()).resolve()):
        for place in (start, *start.parents):
            if (place / ".squawk.toml").is_file():
                return place / ".squawk.toml"
    return None


def _run_squawk(files: dict[str, str], folder: Path) -> list[dict[str, Any]]:
    """squawk's JSON findings for ``files`` (name: SQL), each finding's ``file`` the name given."""
    config = config_file(folder)
    options = ["--config", str(config)] if config else ["--exclude", ",".join(LEFT_OUT)]
    with tempfile.TemporaryDirectory(prefix="migmagic-lint-") as tmp:
        paths: dict[str, str] = {}
        for name, sql in files.items():
            path = Path(tmp) / f"{len(paths)}.sql"
            path.write_text(sql, encoding="utf-8")
            paths[str(path)] = name
        try:
            done = subprocess.run(
                [str(squawk_binary()), "--reporter", "json", "--no-assume-in-transaction", *options, *paths],
                capture_output=True, text=True, cwd=tmp, timeout=120,
            )
        except subprocess.TimeoutExpired:
            raise UsageError("squawk took more than 120 s and was stopped.", hint="Lint fewer revisions at once (a RANGE).") from None
    try:  # exit code 1 also means "found something": only the output tells a failure apart
        found = json.loads(done.stdout) if done.stdout.strip() or done.returncode == 0 else None
    except json.JSONDecodeError:
        found = None
    if not isinstance(found, list):
        why = (done.stderr or done.stdout).strip().splitlines()
        raise UsageError(
            f"squawk failed: {why[0].rstrip('.') if why else 'exit code ' + str(done.returncode)}.",
            hint=f"Fix {config}, or move it away." if config else "Nothing was linted.",
        )
    for item in found:
        item["file"] = paths.get(item.get("file", ""), item.get("file"))
    return found


# =========================================================================== a revision's SQL as squawk reads it


@dataclass
class _Script:
    """The SQL of one revision as handed to squawk, and which statement (line, text) each SQL line belongs to."""

    sql: str
    owners: list[tuple[int | None, str] | None]


def _script(statements: Sequence[tuple[int | None, str]], source: str, lock_timeout: float) -> _Script:
    lines = source.splitlines()
    head = ["BEGIN;", f"SET lock_timeout = {max(1, int(lock_timeout * 1000))};"]  # as migmagic runs a revision
    head += [f"-- {m.group(1)}" for m in map(_IGNORE.search, lines) if m and m.group(1).startswith("squawk-ignore-file")]
    out: list[str] = list(head)
    owners: list[tuple[int | None, str] | None] = [None] * len(head)
    for line, text in statements:
        for comment in _ignores(lines, line):
            out.append(f"-- {comment}")
            owners.append(None)
        for part in text.splitlines():
            out.append(part)
            owners.append((line, text))
    out.append("COMMIT;")
    owners.append(None)
    return _Script("\n".join(out) + "\n", owners)


def _ignores(lines: list[str], line: int | None) -> list[str]:
    """The ``# squawk-ignore RULE`` comments on ``line`` and on the comment lines right above it."""
    if line is None or not 0 < line <= len(lines):
        return []
    found = []
    i = line - 1
    while True:
        match = _IGNORE.search(lines[i])
        if match and not match.group(1).startswith("squawk-ignore-file"):
            found.append(match.group(1))
        i -= 1
        if i < 0 or not lines[i].lstrip().startswith("#"):
            return found


def _findings(raw: Iterable[dict[str, Any]], script: _Script, revision: str | None = None) -> list[Finding]:
    out = []
    for item in raw:
        index = item.get("line", 0)
        owner = script.owners[index] if 0 <= index < len(script.owners) else None
        line, text = owner if owner else (None, script.sql.splitlines()[index] if 0 <= index < len(script.sql.splitlines()) else "")
        rule = item.get("rule_name") or "squawk"
        out.append(Finding(
            rule=rule, statement=" ".join(text.split()), line=line,
            why=item.get("message") or "", safer=SAFER.get(rule) or item.get("help") or "", revision=revision,
        ))
    return out


# =========================================================================== at the cell and for existing revisions


def at_cell(body: str, db: Any, folder: Path, *, message: str, strict: bool = False) -> display.Findings | None:
    """squawk's findings for the ``upgrade()`` of a ``%%revision`` cell, on PostgreSQL (None elsewhere).

    Lines are the cell's (the ``%%revision`` line is line 1). With ``strict``, any
    finding refuses the cell with :class:`~migmagic.errors.RevisionCellError`
    (nothing written), and so does a cell that could not be linted (code besides
    ``op`` calls, squawk missing or failing); without, they are advice shown
    under the written revision, and what was not linted is a note.
    """
    if db.dialect_name != "postgresql":
        return None
    from .adapter import offline_statements

    source = "\n" + body  # line 1 stands for the %%revision line: lines are the cell's
    statements = offline_statements(source, _CELL, "postgresql")
    if isinstance(statements, str) and strict:
        raise RevisionCellError(
            f"The revision's SQL could not be linted at the cell ({statements}) and --strict is on: nothing was written.",
            hint="Write upgrade() as plain op calls, or leave --strict out and review it with %migrate lint.",
        )
    if isinstance(statements, str):
        return display.Findings([], notes=[f"Not linted at the cell: {statements}; %migrate lint renders it as --sql would, now that it is written."])
    if not statements:
        return None
    if not strict and not _installed():
        return display.Findings([], notes=["Not linted: squawk is not installed (pip install 'migmagic[lint]')."])
    script = _script(statements, source, db.lock_timeout)
    try:
        found = _findings(_run_squawk({_CELL: script.sql}, folder), script)
    except UsageError as exc:  # a broken .squawk.toml: advice cannot refuse, --strict can
        if strict:
            raise
        return display.Findings([], notes=[f"Not linted: {exc}"])
    if found and strict:
        rules = ", ".join(dict.fromkeys(f.rule for f in found))
        raise RevisionCellError(
            f"squawk found {rules} in the revision's SQL (--strict): nothing was written.",
            hint="Write it the safer way (run the cell without --strict to see it), or put '# squawk-ignore RULE' above the line.",
            line=found[0].line,
        )
    return display.Findings(found, cell=safer_cell(message, body, found)) if found else None


def _installed() -> bool:
    try:
        squawk_binary()
    except UsageError:
        return False
    return True


def revisions(scripts: Scripts, rev_range: str | None, folder: Path, lock_timeout: float) -> pd.DataFrame:
    """squawk's findings for the ``upgrade()`` of the revisions in ``rev_range`` (FROM:TO; None: all), as a table.

    Each revision is rendered offline for PostgreSQL, whatever the session's
    database (squawk reads PostgreSQL only), oldest first; lines are the revision
    files'. Each ``upgrade()`` runs in Alembic's offline context, as ``--sql`` runs
    it; one that cannot (it reads the database, say) is a row whose rule is
    ``not linted``, with the reason.
    """
    from .adapter import offline_statements

    ids = scripts.ids()
    if rev_range:
        lower, sep, upper = rev_range.partition(":")
        if not sep:
            raise UsageError(f"{rev_range!r} is not a range.", hint="Use FROM:TO, e.g. base:head or abc1:.")
        ids = scripts.between(upper or "heads", lower or "base")
    ids = list(reversed(ids))

    files: dict[str, str] = {}
    scripts_by_id: dict[str, _Script] = {}
    rows: list[dict[str, Any]] = []
    for rev in ids:
        info = scripts.info(rev)
        statements = offline_statements(info.source, str(info.path), "postgresql", plain_only=False)
        if isinstance(statements, str):
            rows.append({"revision": rev, "rule": "not linted", "why": statements})
        elif statements:
            scripts_by_id[rev] = _script(statements, info.source, lock_timeout)
            files[rev] = scripts_by_id[rev].sql
    found = _run_squawk(files, folder) if files else []
    for rev in ids:
        if rev in scripts_by_id:
            rows += [f.row() for f in _findings((i for i in found if i["file"] == rev), scripts_by_id[rev], rev)]
    table = display.table(rows, ["revision", *COLUMNS], f"squawk found nothing in {len(ids)} revision(s).")
    table["line"] = table["line"].astype("Int64")
    return table


# =========================================================================== the safer way, as a revision


def safer_cell(message: str, body: str, findings: Sequence[Finding]) -> str | None:
    """A ``%%revision`` cell (same message: running it rewrites the revision) doing the safer way, where there is a standard one.

    An index becomes CONCURRENTLY inside ``autocommit_block()``; a foreign key is
    added NOT VALID and validated in its own transaction; a SET NOT NULL is
    preceded by a validated ``CHECK (col IS NOT NULL)``. None when no finding has one.
    """
    try:
        tree = ast.parse(body)
    except SyntaxError:
        return None
    upgrade = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade"), None)
    if upgrade is None:
        return None
    lines = body.splitlines()
    edits: dict[int, tuple[int, str]] = {}  # first line index -> (last line index, new text)
    for statement in upgrade.body:
        call = statement.value if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call) else None
        func = call.func if call else None
        if call is None or not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "op"):
            continue
        span = range(statement.lineno + 1, (statement.end_lineno or statement.lineno) + 2)  # cell lines
        rules = {f.rule for f in findings if f.line in span}
        text = ast.get_source_segment(body, call)
        fixed = _fixed(func.attr, call, text or "", rules)
        if fixed:
            indent = " " * statement.col_offset
            edits[statement.lineno - 1] = ((statement.end_lineno or statement.lineno) - 1, "\n".join(indent + x if x else x for x in fixed))
    if not edits:
        return None
    out, i = [], 0
    while i < len(lines):
        if i in edits:
            last, text = edits[i]
            out.append(text)
            i = last + 1
        else:
            out.append(lines[i])
            i += 1
    return revisionfile.cell(message, "\n".join(out) + "\n")


def _fixed(name: str, call: ast.Call, text: str, rules: set[str]) -> list[str] | None:
    """The lines replacing ``op.<name>(...)`` (``text``) for ``rules``, or None."""
    given = {k.arg for k in call.keywords}
    if name == "create_index" and "require-concurrent-index-creation" in rules and "postgresql_concurrently" not in given:
        extra = ["postgresql_concurrently=True"] + ([] if "if_not_exists" in given else ["if_not_exists=True"])
        return [
            "# CONCURRENTLY cannot run in a transaction: what the revision did before commits here.",
            "with op.get_context().autocommit_block():",
            "    " + _with_keywords(text, extra).replace("\n", "\n    "),
        ]
    if name == "create_foreign_key" and rules & {"adding-foreign-key-constraint", "constraint-missing-not-valid"}:
        constraint, source = _arg(call, 0, "constraint_name"), _arg(call, 1, "source_table")
        if not source or not constraint or "postgresql_not_valid" in given or "source_schema" in given:
            return None
        return [
            "# NOT VALID: rows written from now on are checked; the existing ones are not scanned under the lock.",
            _with_keywords(text, ["postgresql_not_valid=True"]),
            *_validate(source, constraint),
        ]
    if name == "alter_column" and "adding-not-nullable-field" in rules:
        table, column = _arg(call, 0, "table_name"), _arg(call, 1, "column_name")
        if not table or not column or "schema" in given:
            return None
        check = f"ck_{table}_{column}_not_null"[:63]
        return [
            "# A CHECK (... IS NOT NULL) added NOT VALID and validated in its own transaction lets",
            "# PostgreSQL 12+ SET NOT NULL without scanning the table under an ACCESS EXCLUSIVE lock.",
            f"op.create_check_constraint({check!r}, {table!r}, {_quoted(column) + ' IS NOT NULL'!r}, postgresql_not_valid=True)",
            *_validate(table, check),
            text,
            "# squawk-ignore ban-drop-constraint",
            f"op.drop_constraint({check!r}, {table!r}, type_='check')",
        ]
    return None


def _validate(table: str, constraint: str) -> list[str]:
    sql = f"ALTER TABLE {_quoted(table)} VALIDATE CONSTRAINT {_quoted(constraint)}"
    return [
        "with op.get_context().autocommit_block():  # the scan in its own transaction: it blocks no writes",
        "    # VALIDATE runs outside the revision's transaction; running it again is harmless.",
        "    # squawk-ignore prefer-robust-stmts",
        f"    op.execute({sql!r})",
    ]


def _arg(call: ast.Call, index: int, keyword: str) -> str | None:
    """Argument ``index`` (or ``keyword=``) of ``call`` when it is a string literal."""
    node = call.args[index] if len(call.args) > index else next((k.value for k in call.keywords if k.arg == keyword), None)
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _with_keywords(text: str, keywords: list[str]) -> str:
    head = text[: text.rindex(")")].rstrip()
    return f"{head}{'' if head.endswith(('(', ',')) else ','} {', '.join(keywords)})".replace("( ", "(")


def _quoted(name: str) -> str:
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else '"' + name.replace('"', '""') + '"'
