"""The text of a revision script: written from a ``%%revision`` cell, read back for ``edit``.

A revision script is an ordinary Alembic script: a docstring, the ``op``/``sa``
imports, the four identifier assignments, then the *body* — whatever the cell
held (``upgrade()``, ``downgrade()``, helpers, imports). Pure text work: no
Alembic, no database.
"""

from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import re
import symtable
import sys
from collections.abc import Sequence
from datetime import datetime, timezone

from .errors import RevisionCellError, UsageError

CHECKSUM_VERSION = 1
"""Bumped whenever :func:`normalize` changes, and stored with every checksum."""

_IDENTIFIERS = ("revision", "down_revision", "branch_labels", "depends_on")
_STANDARD_IMPORTS = {
    "from alembic import op",
    "import sqlalchemy as sa",
    "from typing import Sequence, Union",
}


@functools.lru_cache(maxsize=4096)  # every step's ledger row normalizes and checksums its revision's source
def normalize(source: str) -> str:
    """Source as compared and checksummed: LF line endings, no trailing blanks.

    Line endings (CRLF, CR) and whitespace at the end of lines or of the file do
    not count as a change; everything else does.
    """
    text = source.replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=4096)
def checksum(source: str) -> str:
    """SHA-256 of the normalized source (version :data:`CHECKSUM_VERSION`)."""
    return hashlib.sha256(normalize(source).encode("utf-8")).hexdigest()


def deterministic_id(message: str, parents: Sequence[str]) -> str:
    """A 12-hex revision id that depends only on the message and the parents.

    A notebook run from scratch twice therefore writes the same ids.
    """
    seed = "\n".join([",".join(sorted(parents)), message])
    return hashlib.sha1(seed.encode("utf-8")).hexdigest()[:12]


REV_ID_MAX = 32
"""Alembic's ``alembic_version.version_num`` is ``VARCHAR(32)``."""

_REV_ID = re.compile(r"[A-Za-z0-9_]+")
RESERVED_IDS = ("base", "head", "heads", "current")
"""Names Alembic reads as targets, never as a revision."""


def check_rev_id(rev_id: str | None) -> None:
    """Refuse a ``--rev-id`` that Alembic, the version table or the file system cannot take.

    ASCII letters, digits and ``_`` only: Alembic reads ``-``, ``+``, ``@`` and
    ``:`` as target grammar (and refuses them in an id), ``,`` separates ids, and
    ``/``, ``\\`` or a leading ``.`` would put the file outside ``versions/`` or hide
    it. At most :data:`REV_ID_MAX` characters (the version table's column); not
    one of :data:`RESERVED_IDS`. ``None`` (no ``--rev-id``) passes.
    """
    if rev_id is None:
        return
    if not rev_id:
        problem = "is empty"
    elif not _REV_ID.fullmatch(rev_id):
        bad = "".join(sorted({c for c in rev_id if not _REV_ID.fullmatch(c)}))
        problem = f"holds {bad!r}: a revision id may hold only ASCII letters, digits and _"
    elif len(rev_id) > REV_ID_MAX:
        problem = f"has {len(rev_id)} characters: at most {REV_ID_MAX} fit the version table (alembic_version.version_num is VARCHAR(32))"
    elif rev_id.lower() in RESERVED_IDS:
        problem = f"is reserved: Alembic reads {', '.join(RESERVED_IDS)} as targets"
    else:
        return
    raise UsageError(f"--rev-id {rev_id!r} {problem}.", hint="Nothing was written.")


def slug(message: str, limit: int = 40) -> str:
    """Alembic's file-name slug: lower-case words joined by ``_``, at most ``limit`` chars."""
    words = re.sub(r"\W", " ", message).lower().split()
    out = ""
    for word in words:
        candidate = f"{out}_{word}" if out else word
        if len(candidate) > limit:
            break
        out = candidate
    return out or "revision"


def check_message(message: str | None, what: str = "A revision", hint: str | None = 'For example %%revision -m "create users table".') -> str:
    """The message, stripped; an empty one is refused (it names the revision within its folder)."""
    message = (message or "").strip()
    if not message:
        raise UsageError(f"{what} needs a message: -m MESSAGE.", hint=hint)
    bad = next((c for c in message if c == "\x00" or (ord(c) < 32 and c not in "\t")), None)
    if bad is not None:
        raise UsageError(
            f"The message {message!r} holds a control character ({bad!r}), which a revision file cannot carry. Nothing was written.",
            hint="Use a message of printable characters.",
        )
    return message


def cell(message: str, body: str) -> str:
    """A ``%%revision`` cell holding ``body``, named ``message``."""
    quoted = '"' + message.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"%%revision -m {quoted}\n{body}"


def check_body(body: str, first_line: int = 1, where: str = "the body") -> None:
    """Refuse a cell body that is empty, does not parse or has no ``upgrade()``.

    Line numbers in the error count from ``first_line`` for the body's first
    line: a ``%%revision`` cell passes 2, since the notebook numbers the magic
    line 1 and IPython hands the magic only the lines below it.
    """
    if not body.strip():
        raise RevisionCellError(
            "The %%revision cell is empty.",
            hint="Write def upgrade(): (and def downgrade():) below the magic line, "
            "or use %migrate revision -m MSG for an empty revision.",
        )
    try:
        tree = ast.parse(body)
    except SyntaxError as exc:
        line = (exc.lineno or 1) + first_line - 1
        raise RevisionCellError(
            f"Line {line} of {where}: {exc.msg}.",
            hint="Nothing was written.",
            line=line,
        ) from None
    if not any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == "upgrade" for n in tree.body):
        raise RevisionCellError(
            "The cell defines no upgrade() function.",
            hint="A revision needs def upgrade(): at the top level of the cell. Nothing was written.",
        )
    problem = async_problem(tree)
    if problem:
        raise RevisionCellError(problem, hint="Nothing was written.")
    unbound = unbound_name(body, tree)
    if unbound is not None:
        name, body_line = unbound
        line = body_line + first_line - 1
        user = next((f"{n.name}() uses" for n in tree.body if isinstance(n, ast.FunctionDef) and n.lineno <= body_line <= (n.end_lineno or n.lineno)), "uses")
        raise RevisionCellError(
            f"Line {line} of {where}: {user} {name}, which {where} never imports or defines.",
            hint=f"Import or define {name} in {where} (op and sa need no import). Nothing was written.",
            line=line,
        )


MODULE_NAMES = frozenset(
    {"op", "sa", *_IDENTIFIERS, "__name__", "__file__", "__doc__", "__builtins__", "__spec__", "__loader__", "__package__", "__cached__", "__annotations__"}
    | {"__module__", "__qualname__"}  # a class body's own
)
"""Names every revision script has: the imports and identifiers :func:`render` writes, and a module's own."""

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_SCOPE_NAMES = {ast.ListComp: "listcomp", ast.SetComp: "setcomp", ast.DictComp: "dictcomp", ast.GeneratorExp: "genexpr", ast.Lambda: "lambda"}


def unbound_name(body: str, tree: ast.Module | None = None) -> tuple[str, int] | None:
    """The first name a function of ``body`` reads that nothing binds, and its line (None: there is none).

    A function's body runs only at upgrade or downgrade time, where such a name is
    a ``NameError``. Bound are: the names Python binds in the function or around
    it (assignments, imports, ``for``, ``with ... as``, ``except ... as``, the
    walrus, comprehensions, nested ``def``/``class``/``lambda``, ``global``),
    the script's module-level names (:data:`MODULE_NAMES` included) and the
    builtins. Scopes are Python's own (:mod:`symtable`). A body with ``from x
    import *`` cannot be checked: it passes.
    """
    tree = tree or ast.parse(body)
    if any(isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names) for n in ast.walk(tree)):
        return None
    top = symtable.symtable(body, "<revision>", "exec")
    tables: list[symtable.SymbolTable] = []
    pending = list(top.get_children())
    while pending:
        table = pending.pop()
        tables.append(table)
        pending.extend(table.get_children())
    known = set(MODULE_NAMES) | set(dir(builtins))
    known |= {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}
    known |= {s.get_name() for t in tables for s in t.get_symbols() if s.is_declared_global() and (s.is_assigned() or s.is_imported() or s.is_namespace())}
    # Annotations are evaluated lazily from Python 3.14 on, and never with the __future__ import.
    future_annotations = sys.version_info >= (3, 14) or any(
        isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names) for n in tree.body
    )
    found: list[tuple[int, str]] = []
    for table in tables:
        names = {s.get_name() for s in table.get_symbols() if s.is_global() and s.is_referenced()} - known
        if not names:
            continue
        for node in _scope_nodes(tree, table):
            found += [(n.lineno, n.id) for n in _own_loads(node, future_annotations) if n.id in names]
    if not found:
        return None
    line, name = min(found)
    return name, line


def _scope_nodes(tree: ast.Module, table: symtable.SymbolTable) -> list[ast.AST]:
    """The syntax nodes that make ``table``'s scope (several lambdas or comprehensions may share a line)."""
    kind, name, line = table.get_type(), table.get_name(), table.get_lineno()
    out: list[ast.AST] = []
    for node in ast.walk(tree):
        if not isinstance(node, _SCOPES) or getattr(node, "lineno", None) != line:
            continue
        own = getattr(node, "name", None) or _SCOPE_NAMES.get(type(node))
        if own == name and (kind == "class") == isinstance(node, ast.ClassDef):
            out.append(node)
    return out


def _own_loads(scope: ast.AST, future_annotations: bool) -> list[ast.Name]:
    """The names ``scope``'s own code reads (not nested scopes' bodies; not annotations Python never evaluates)."""
    if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        roots: list[ast.AST] = list(scope.body)
    elif isinstance(scope, ast.Lambda):
        roots = [scope.body]
    elif isinstance(scope, ast.ListComp | ast.SetComp | ast.GeneratorExp):
        roots = [scope.elt, *_generators_inside(scope.generators)]
    elif isinstance(scope, ast.DictComp):
        roots = [scope.key, scope.value, *_generators_inside(scope.generators)]
    else:
        roots = []
    in_function = not isinstance(scope, ast.ClassDef | ast.Module)
    out: list[ast.Name] = []
    while roots:
        node = roots.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            out.append(node)
        elif isinstance(node, ast.AnnAssign):
            # A local variable's annotation is never evaluated; elsewhere only without the __future__ import.
            roots += [node.target] + ([node.value] if node.value else [])
            if not (in_function or future_annotations):
                roots.append(node.annotation)
        elif isinstance(node, _SCOPES):
            roots += _enclosing_parts(node, future_annotations)
        else:
            roots += list(ast.iter_child_nodes(node))
    return out


def _generators_inside(generators: list[ast.comprehension]) -> list[ast.AST]:
    """A comprehension's own parts: everything but the first iterable (read by the enclosing scope)."""
    out: list[ast.AST] = []
    for i, gen in enumerate(generators):
        out += [gen.target, *gen.ifs] + ([gen.iter] if i else [])
    return out


def _enclosing_parts(node: ast.AST, future_annotations: bool) -> list[ast.AST]:
    """What of a nested scope's node its enclosing scope evaluates: decorators, defaults, bases, the first iterable."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        args = node.args
        parts: list[ast.AST] = [*args.defaults, *[d for d in args.kw_defaults if d is not None]]
        if not isinstance(node, ast.Lambda):
            parts += node.decorator_list
            if not future_annotations:
                every = [*args.posonlyargs, *args.args, *args.kwonlyargs, *[a for a in (args.vararg, args.kwarg) if a]]
                parts += [a.annotation for a in every if a.annotation] + ([node.returns] if node.returns else [])
        return parts
    if isinstance(node, ast.ClassDef):
        return [*node.decorator_list, *node.bases, *node.keywords]
    if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
        return [node.generators[0].iter]
    return []


def async_problem(tree: ast.Module) -> str | None:
    """Why a script whose ``upgrade()`` or ``downgrade()`` is ``async def`` cannot run (None when neither is).

    Alembic calls them without awaiting: the call makes a coroutine and the
    revision would be recorded as applied having run nothing.
    """
    for node in tree.body:
        if isinstance(node, ast.AsyncFunctionDef) and node.name in ("upgrade", "downgrade"):
            name = node.name
            return f"{name}() is async; Alembic calls it without awaiting it, so it would run nothing. Use def {name}():"
    return None


def _literal(value: str | Sequence[str] | None) -> str:
    if value is None:
        return "None"
    if isinstance(value, str):
        return repr(value)
    items = list(value)
    if not items:
        return "None"
    if len(items) == 1:
        return repr(items[0])
    return "(" + ", ".join(repr(v) for v in items) + ")"


def render(
    *,
    message: str,
    rev_id: str,
    down_revision: str | Sequence[str] | None,
    body: str,
    branch_labels: str | Sequence[str] | None = None,
    depends_on: str | Sequence[str] | None = None,
    create_date: str | None = None,
) -> str:
    """The full text of a revision script holding ``body``."""
    if create_date is None:
        create_date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f%z")
    downs = [down_revision] if isinstance(down_revision, str) else list(down_revision or [])
    safe_message = message.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return normalize(
        f'''"""{safe_message}

Revision ID: {rev_id}
Revises: {", ".join(downs)}
Create Date: {create_date}

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = {rev_id!r}
down_revision = {_literal(down_revision)}
branch_labels = {_literal(branch_labels)}
depends_on = {_literal(depends_on)}


{normalize(body).strip(chr(10))}
'''
    )


_REVISION_ID = re.compile(r"""^revision\s*(?::[^=\n]*)?=\s*['"]([^'"]+)['"]""", re.MULTILINE)


def rev_id_of(source: str) -> str | None:
    """The ``revision = '...'`` id a script's text sets, read without running it (None when it sets none)."""
    found = _REVISION_ID.search(source)
    return found.group(1) if found else None


def create_date_of(source: str) -> str | None:
    """The ``Create Date:`` written in a script's docstring, if any."""
    m = re.search(r"^Create Date: (.+)$", source, re.MULTILINE)
    return m.group(1).strip() if m else None


def body_of(source: str) -> str:
    """The part of a revision script a ``%%revision`` cell holds.

    Drops the docstring, the standard ``op``/``sa``/typing imports, the
    identifier assignments and Alembic's comment above them; keeps the rest.
    """
    tree = ast.parse(source)
    drop: set[int] = set()
    for i, node in enumerate(tree.body):
        end = node.end_lineno or node.lineno
        span = range(node.lineno, end + 1)
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            drop.update(span)
        elif isinstance(node, ast.Import | ast.ImportFrom) and ast.unparse(node) in _STANDARD_IMPORTS:
            drop.update(span)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if all(isinstance(t, ast.Name) and t.id in _IDENTIFIERS for t in targets):
                drop.update(span)
    lines = source.replace("\r\n", "\n").split("\n")
    kept = [
        line
        for n, line in enumerate(lines, start=1)
        if n not in drop and line.strip() != "# revision identifiers, used by Alembic."
    ]
    text = "\n".join(kept).strip("\n")
    return re.sub(r"\n{3,}", "\n\n\n", text) + "\n"
