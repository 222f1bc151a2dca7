"""A ``%%revision`` cell whose functions read a name nothing binds is refused before anything is written.

Such a name is a ``NameError`` only when ``upgrade()`` or ``downgrade()`` runs: the
classic one is ``sqlmodel.sql.sqltypes.AutoString()`` pasted from generated code
without ``import sqlmodel``. Python's own scoping decides what is bound, so
ordinary code (comprehensions, loops, ``with``/``except`` targets, nested
functions, ``global``, lambdas, the walrus) is never refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Shell

from migmagic import revisionfile
from migmagic.errors import RevisionCellError
from migmagic.revisionfile import check_body

SQLMODEL_COLUMN = '''def upgrade():
    op.create_table(
        "hero",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    )


def downgrade():
    op.drop_table("hero")
'''


def _versions() -> list[Path]:
    return sorted(Path("migrations/versions").glob("*.py"))


def test_a_module_the_cell_never_imports_is_refused_with_its_line(ip_empty: Shell, sqlite_url: str) -> None:
    ip_empty.ok(f"%migrate init {sqlite_url}")
    run = ip_empty.run(f'%%revision -m "heroes"\n{SQLMODEL_COLUMN}')
    lines = [line for line in run.output.strip().splitlines() if line.strip()]
    assert run.failed and len(lines) == 1, run.output
    # The notebook numbers the %%revision line 1: the sqlmodel line is line 6 of the cell.
    assert lines[0] == (
        "RevisionCellError: Line 6 of the cell: upgrade() uses sqlmodel, which the cell never imports or defines. "
        "Import or define sqlmodel in the cell (op and sa need no import). Nothing was written."
    )
    assert _versions() == []
    fixed = ip_empty.ok(f'%%revision -m "heroes" --apply\nimport sqlmodel\n\n\n{SQLMODEL_COLUMN}')
    assert fixed.action == "wrote" and fixed.applied is not None


def test_the_python_api_refuses_it_too(migrator: object) -> None:
    with pytest.raises(RevisionCellError, match=r"^Line 5 of the body: upgrade\(\) uses sqlmodel"):
        migrator.revision("heroes", SQLMODEL_COLUMN)  # type: ignore[attr-defined]
    assert _versions() == []


def test_a_helper_and_a_downgrade_are_checked_as_well() -> None:
    body = "def upgrade():\n    pass\n\n\ndef downgrade():\n    op.execute(render_sql())\n"
    with pytest.raises(RevisionCellError, match=r"^Line 6 of the body: downgrade\(\) uses render_sql, which the body never imports or defines"):
        check_body(body)
    helper = "def _backfill():\n    return [row for row in rows_missing]\n\n\ndef upgrade():\n    _backfill()\n"
    assert revisionfile.unbound_name(helper) == ("rows_missing", 2)


BOUND = {
    "module names defined after the functions": "def upgrade():\n    op.execute(SQL)\n\n\nSQL = 'select 1'\n",
    "imports at the top and inside": "import json\n\n\ndef upgrade():\n    from datetime import date\n    print(json.dumps(str(date.today())))\n",
    "comprehensions": "def upgrade():\n    names = [n for n in ('a', 'b') if n]\n    d = {k: v for k, v in zip(names, names)}\n    s = {c for c in names}\n    g = sum(len(x) for x in names)\n",
    "for, with-as and except-as": (
        "def upgrade():\n    for name in ('a',):\n        print(name)\n"
        "    with op.batch_alter_table('t') as batch:\n        batch.drop_column('x')\n"
        "    try:\n        pass\n    except ValueError as exc:\n        print(exc)\n"
    ),
    "nested defs and classes, super()": (
        "def upgrade():\n    def step(t):\n        return helper(t)\n\n    def helper(t):\n        return t\n\n"
        "    class Row:\n        kind = 'x'\n\n        def __init__(self):\n            super().__init__()\n\n    step(Row())\n"
    ),
    "global statements": "def upgrade():\n    global DONE\n    DONE = True\n\n\ndef downgrade():\n    print(DONE)\n",
    "lambdas and defaults": "LIMIT = 3\n\n\ndef upgrade():\n    f = lambda n, m=LIMIT: n + m\n    print(f(1))\n",
    "the walrus": "def upgrade():\n    if (n := len('abc')) > 2:\n        print(n)\n    print([y for x in 'ab' if (y := x)])\n    print(y)\n",
    "builtins, identifiers and module names": "def upgrade():\n    print(len(revision), down_revision, branch_labels, depends_on, __name__, __file__)\n",
    "local annotations, never evaluated": "def upgrade():\n    conn: Connection = op.get_bind()\n    print(conn)\n",
    "postponed annotations": "from __future__ import annotations\n\n\ndef upgrade():\n    def f(c: Connection) -> Result:\n        return c\n",
    "match captures": "def upgrade():\n    match op.get_context().dialect.name:\n        case 'sqlite':\n            pass\n        case other:\n            print(other)\n",
    "a class body's own names": "def upgrade():\n    class Row:\n        where = __module__ + __qualname__\n    print(Row.where)\n",
    "a conditional import": "try:\n    import sqlmodel\nexcept ImportError:\n    sqlmodel = None\n\n\ndef upgrade():\n    print(sqlmodel)\n",
    "a star import (not checkable: passes)": "from sqlalchemy import *\n\n\ndef upgrade():\n    op.add_column('t', Column('x', Integer))\n",
}


@pytest.mark.parametrize("body", list(BOUND.values()), ids=list(BOUND))
def test_what_python_binds_is_never_refused(body: str) -> None:
    assert revisionfile.unbound_name(body) is None
    check_body(body)


def test_no_tutorial_cell_is_refused() -> None:
    """Every ``%%revision`` cell of the tutorials passes (cells that show a refusal on purpose aside)."""
    notebooks = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
    checked = 0
    for notebook in notebooks:
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            if cell["cell_type"] != "code" or not source.startswith("%%revision") or "raises-exception" in cell.get("metadata", {}).get("tags", []):
                continue
            body = source.split("\n", 1)[1] if "\n" in source else ""
            if body.strip():
                assert revisionfile.unbound_name(body) is None, f"{notebook.name}: {source[:80]!r}"
                checked += 1
    assert checked >= 1
