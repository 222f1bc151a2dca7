"""What a revision's ``upgrade()`` or ``downgrade()`` is, decided once, from one parse of its source.

Every part of migmagic that needs to know what a revision does asks here —
replay (is it *pure DDL*, the same SQL whatever the database holds?), the
data-loss guard (may it destroy data? can its ``op`` calls be traced without
running anything else?), the dry run (does it need to commit part-way:
``autocommit_block()``, ``CONCURRENTLY``?) and the check at the ``%%revision``
cell (are its calls plain enough to render offline?). One :class:`Profile` per
(source, function), cached by the source's SHA-256; no regular expression over
source text, so a docstring, a comment or a string never changes the answer.

What cannot be decided here is said, never guessed: :attr:`Profile.not_plain`
gives the reason a function is more than ``op`` calls (a loop, a call of code
that is not the revision's own plain helper, data work), and the guard turns it
into a note naming the revision.

Nothing here imports Alembic or SQLAlchemy: it reads Python source.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from dataclasses import dataclass

OPERATIONS = frozenset(
    {
        "create_table", "drop_table", "rename_table", "add_column", "drop_column", "alter_column",
        "create_index", "drop_index", "create_unique_constraint", "create_foreign_key",
        "create_check_constraint", "create_primary_key", "drop_constraint",
        "create_table_comment", "drop_table_comment",
    }
)
"""``op.<name>`` calls a pure revision may make (``op.execute`` of a literal string besides)."""

BATCH_OPERATIONS = frozenset(
    {
        "add_column", "drop_column", "alter_column", "create_index", "drop_index", "create_unique_constraint",
        "create_foreign_key", "create_check_constraint", "create_primary_key", "drop_constraint",
    }
)

DESTROYING = frozenset({"drop_table", "drop_column", "alter_column", "execute", "bulk_insert", "get_bind", "get_context", "run_async", "invoke"})
"""Calls that can destroy data, or reach the data some other way: a function naming none of them destroys nothing."""

DATA_CALLS = {
    "execute": "it reads or writes data itself (op.execute)",
    "bulk_insert": "it reads or writes data itself (op.bulk_insert)",
    "get_bind": "it reads or writes data itself (op.get_bind())",
    "get_context": "it uses the migration context itself (op.get_context())",
    "run_async": "it runs code on the connection itself (op.run_async)",
    "invoke": "it invokes operations itself (op.invoke)",
}

_SQLALCHEMY_ROOTS = frozenset({"op", "sa", "sqlalchemy", "postgresql", "mysql", "sqlite", "mssql", "oracle"})

_HARMLESS_IMPORTS = frozenset({"typing", "__future__", "collections.abc"})
"""Modules a pure revision may import names from (besides ``op`` and ``sa``): they run nothing of the revision's."""


@dataclass(frozen=True)
class Profile:
    """What one function (``upgrade`` or ``downgrade``) of one revision source is."""

    function: str
    found: bool  # the module defines it, once, as a plain function
    not_plain: str | None  # why it is more than op calls with SQLAlchemy arguments (None: it is not; its own plain helpers allowed)
    not_offline: str | None  # why it cannot be rendered offline as it stands (op.execute and op.get_context() can be)
    pure: bool  # replayable DDL where batch blocks are allowed (not SQLite)
    pure_without_batch: bool  # the same with no batch block (SQLite)
    may_destroy: bool  # it names an operation that can destroy data, reaches the data, or cannot be followed
    needs_autocommit: bool  # it commits part-way (autocommit_block) or builds an index CONCURRENTLY

    def is_pure(self, *, batch: bool) -> bool:
        return self.pure if batch else self.pure_without_batch


def of(source: str, function: str) -> Profile:
    """The :class:`Profile` of ``function`` in the revision ``source`` (made once per source and function)."""
    return _profile(hashlib.sha256(source.encode("utf-8")).hexdigest(), function, source)


@functools.lru_cache(maxsize=8192)
def _profile(_sha: str, function: str, source: str) -> Profile:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return Profile(function, False, "it does not parse", "it does not parse", False, False, True, False)
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
    fn = found[0] if len(found) == 1 else None
    if fn is None:
        why = f"its {function}() is not a plain function"
        return Profile(function, False, why, why, False, False, True, False)
    not_plain = _not_plain(tree, fn)
    helpers = _helpers(tree)
    pure_module = _names_are_the_modules(tree, function)
    plain_signature = not (fn.decorator_list or fn.args.args or fn.args.vararg or fn.args.kwarg or fn.args.kwonlyargs or fn.args.posonlyargs)
    pure = pure_module and plain_signature and _body(fn.body, set(), batch=True, in_batch=None)
    pure_without_batch = pure_module and plain_signature and _body(fn.body, set(), batch=False, in_batch=None)
    reached = [fn, *(helpers[name] for name in _helpers_called(fn, helpers))]
    return Profile(
        function=function,
        found=True,
        not_plain=not_plain,
        not_offline=_not_plain(tree, fn, offline=frozenset({"execute", "get_context"})),
        pure=pure,
        pure_without_batch=pure_without_batch,
        may_destroy=not_plain is not None or _imports_operations(tree) or any(_names(node, DESTROYING) or _recreates_its_way(node) for node in reached),
        needs_autocommit=any(_names(node, {"autocommit_block"}) or _says_concurrently(node) for node in reached),
    )


def _names(node: ast.AST, attributes: frozenset[str] | set[str]) -> bool:
    """Whether ``node`` calls any of ``attributes`` as a method (``op.drop_table``, ``batch.drop_column``, ``ctx.autocommit_block``)."""
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in attributes for n in ast.walk(node))


def _imports_operations(tree: ast.Module) -> bool:
    """Whether the module imports ``op``'s functions by name (``from alembic.op import drop_table``): calls :func:`_names` cannot see."""
    return any(
        isinstance(n, ast.ImportFrom) and (n.module == "alembic.op" or (n.module or "").startswith("alembic.operations")) for n in ast.walk(tree)
    )


def _recreates_its_way(node: ast.AST) -> bool:
    """Whether ``node`` opens a batch that recreates the table from a definition of its own (``copy_from``, ``reflect_args``)."""
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "batch_alter_table"
        and any(k.arg in ("copy_from", "reflect_args") for k in n.keywords)
        for n in ast.walk(node)
    )


def _says_concurrently(node: ast.AST) -> bool:
    """``postgresql_concurrently=...``, or SQL holding ``CONCURRENTLY`` given to ``execute``/``text`` (not a docstring or comment)."""
    for n in ast.walk(node):
        if isinstance(n, ast.keyword) and n.arg == "postgresql_concurrently":
            return True
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute | ast.Name):
            name = n.func.attr if isinstance(n.func, ast.Attribute) else n.func.id
            if name in ("execute", "text", "exec_driver_sql"):
                for arg in ast.walk(n):
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and "concurrently" in arg.value.lower():
                        return True
    return False


# --------------------------------------------------------------------------- plain op calls (the guard's trace, the cell check)


def _helpers(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name not in ("upgrade", "downgrade")}


def _helpers_called(fn: ast.FunctionDef, helpers: dict[str, ast.FunctionDef]) -> list[str]:
    """The module's own functions ``fn`` calls, directly or through each other."""
    seen: list[str] = []
    todo: list[ast.AST] = [fn]
    while todo:
        node = todo.pop()
        for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
            if isinstance(call.func, ast.Name) and call.func.id in helpers and call.func.id not in seen:
                seen.append(call.func.id)
                todo.append(helpers[call.func.id])
    return seen


def _not_plain(tree: ast.Module, fn: ast.FunctionDef, offline: frozenset[str] = frozenset()) -> str | None:
    """Why ``fn`` is more than ``op`` calls with SQLAlchemy arguments (None: it is not).

    Such code (a loop, a sleep, data work, a call of something else) is not
    called to trace its operations: running it once more, outside the real run,
    could have effects. The module's own helper functions count as plain when
    their bodies are (their parameters are values like any other name).
    ``offline``: ``op`` calls that are plain enough here (rendering offline runs no data work).
    """
    roots = set(_SQLALCHEMY_ROOTS)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("sqlalchemy", "alembic"):
            roots |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            roots |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.split(".")[0] == "sqlalchemy"}
    helpers = _helpers(tree)
    checking: set[str] = set()

    def helper_ok(name: str) -> str | None:
        if name in checking:
            return f"its helper {name}() calls itself"
        checking.add(name)
        helper = helpers[name]
        params = {a.arg for a in [*helper.args.posonlyargs, *helper.args.args, *helper.args.kwonlyargs]}
        if helper.decorator_list or helper.args.vararg or helper.args.kwarg:
            return f"its helper {name}() is not a plain function (line {helper.lineno})"
        return body_ok(helper.body, roots | params)

    def calls_ok(node: ast.AST, names: set[str]) -> str | None:
        for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
            func = call.func
            while isinstance(func, ast.Attribute | ast.Call | ast.Subscript):
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "op" and func.attr in DATA_CALLS:
                    if func.attr not in offline:
                        return DATA_CALLS[func.attr]
                func = func.func if isinstance(func, ast.Call) else func.value
            if isinstance(func, ast.Name) and func.id in helpers and func.id not in names:
                why = helper_ok(func.id)
                if why:
                    return why
                continue
            if not (isinstance(func, ast.Name) and func.id in names):
                return f"it runs code besides op calls (line {call.lineno})"
        return None

    def body_ok(statements: list[ast.stmt], names: set[str]) -> str | None:
        for statement in statements:
            if isinstance(statement, ast.Pass) or (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)):
                continue
            if isinstance(statement, ast.Expr | ast.Assign) and isinstance(statement.value, ast.Call | ast.List | ast.Tuple | ast.Constant):
                why = calls_ok(statement.value, names)
                if isinstance(statement, ast.Assign):
                    names = names | {t.id for t in statement.targets if isinstance(t, ast.Name)}
            elif isinstance(statement, ast.With) and all(isinstance(i.context_expr, ast.Call) for i in statement.items):
                why = next((w for i in statement.items if (w := calls_ok(i.context_expr, names))), None)
                inner = names | {i.optional_vars.id for i in statement.items if isinstance(i.optional_vars, ast.Name)}
                why = why or body_ok(statement.body, inner)
            else:
                why = f"it runs code besides op calls (line {statement.lineno})"
            if why:
                return why
        return None

    return body_ok(fn.body, roots)


# --------------------------------------------------------------------------- the purity proof (replay)


def _names_are_the_modules(tree: ast.Module, function: str) -> bool:
    """``op`` and ``sa`` are Alembic's ``op`` and SQLAlchemy, the module runs nothing else when loaded, and
    ``function`` is defined once (no nested or class definition of that name either).

    Module level may hold a docstring, ``from alembic import op``, ``import
    sqlalchemy as sa``, ``from typing``/``from __future__`` imports, assignments
    of values (see :func:`_value`) and plain function definitions. Any other import
    is refused (it runs code of its own when loaded, which may patch ``op``; a star
    import binds names unseen), and nothing may rebind or change ``op`` or ``sa``.
    """
    op = sa = False
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "alembic" and [(a.name, a.asname) for a in node.names] in ([("op", None)], [("op", "op")]):
            op = True
        elif isinstance(node, ast.Import) and [(a.name, a.asname) for a in node.names] == [("sqlalchemy", "sa")]:
            sa = True
        elif isinstance(node, ast.Import | ast.ImportFrom):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            names = [(a.name, a.asname) for a in node.names]
            if module not in _HARMLESS_IMPORTS or any(n == "*" or (alias or n) in ("op", "sa") for n, alias in names):
                return False
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            pass
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            if node.value is not None and not _value(node.value, set()):
                return False
        elif isinstance(node, ast.FunctionDef):
            defaults = [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
            if node.decorator_list or not all(isinstance(d, ast.Constant) for d in defaults):
                return False
        else:
            return False
    defined = 0
    for any_node in ast.walk(tree):
        if isinstance(any_node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and any_node.name == function:
            defined += 1
        if isinstance(any_node, ast.Name | ast.Attribute) and isinstance(any_node.ctx, ast.Store | ast.Del):
            base: ast.expr = any_node
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in ("op", "sa"):
                return False
        if isinstance(any_node, ast.Global | ast.Nonlocal):
            return False
        if isinstance(any_node, ast.arg) and any_node.arg in ("op", "sa"):
            return False
    return op and sa and defined == 1


def _body(statements: list[ast.stmt], bound: set[str], *, batch: bool, in_batch: str | None) -> bool:
    for i, node in enumerate(statements):
        if isinstance(node, ast.Pass):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and i == 0 and in_batch is None:
            continue  # a docstring
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            if not _operation(node.value, bound, in_batch):
                return False
            continue
        if isinstance(node, ast.Assign) and in_batch is None:
            if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name) or node.targets[0].id in ("op", "sa"):
                return False
            if not _value(node.value, bound):
                return False
            bound.add(node.targets[0].id)
            continue
        if isinstance(node, ast.With) and batch and in_batch is None:
            if len(node.items) != 1:
                return False
            item = node.items[0]
            call, var = item.context_expr, item.optional_vars
            if not (isinstance(call, ast.Call) and _is_op(call.func, "batch_alter_table") and isinstance(var, ast.Name)):
                return False
            if var.id in ("op", "sa") or any(k.arg == "recreate" and not (isinstance(k.value, ast.Constant) and k.value.value in ("auto", "never")) for k in call.keywords):
                return False
            if any(k.arg in ("reflect_args", "reflect_kwargs", "copy_from", "table_args", "table_kwargs") for k in call.keywords):
                return False
            if not _arguments(call, bound):
                return False
            if not _body(node.body, bound, batch=batch, in_batch=var.id):
                return False
            continue
        return False
    return True


def _is_op(func: ast.expr, name: str | None = None) -> bool:
    return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "op" and (name is None or func.attr == name)


def _operation(call: ast.Call, bound: set[str], in_batch: str | None) -> bool:
    func = call.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)):
        return False
    if in_batch is not None:
        if func.value.id != in_batch or func.attr not in BATCH_OPERATIONS:
            return False
    elif func.value.id != "op":
        return False
    elif func.attr == "execute":
        return len(call.args) == 1 and not call.keywords and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)
    elif func.attr not in OPERATIONS:
        return False
    return _arguments(call, bound)


def _arguments(call: ast.Call, bound: set[str]) -> bool:
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return False
    return all(_value(a, bound) for a in call.args) and all(_value(k.value, bound) for k in call.keywords)


def _value(node: ast.expr, bound: set[str]) -> bool:
    """A literal, a container of values, an ``sa.`` constructor or attribute, ``op.f(...)``, or a bound name."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd) and isinstance(node.operand, ast.Constant):
        return True
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return all(_value(e, bound) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and _value(k, bound) for k in node.keys) and all(_value(v, bound) for v in node.values)
    if isinstance(node, ast.Name):
        return node.id in bound
    if isinstance(node, ast.Attribute):
        return _sa_path(node)
    if isinstance(node, ast.Call):
        if _is_op(node.func, "f"):
            return len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.Constant)
        return _sa_path(node.func) and _arguments(node, bound)
    return False


def _sa_path(node: ast.expr) -> bool:
    """``sa.X``, ``sa.X.Y``...: a name under SQLAlchemy's namespace."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name) and node.id == "sa"
