"""Workloads: a revision folder of N linear revisions, written as ``%%revision`` would.

Revision ``i`` creates table ``t{i}`` with eight columns and an index; every
fifth revision also adds a column to a table created three revisions earlier.
Downgrades undo both. The folder is a complete Alembic environment (written by
:meth:`migmagic.Migrator.ensure_folder`), so the ``alembic`` command runs it too.
"""

from __future__ import annotations

from pathlib import Path

from migmagic import revisionfile
from migmagic.environment import write as write_environment

_CREATE = '''def upgrade():
    op.create_table(
        "{t}",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("email", sa.String(200)),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False, server_default="0"),
        sa.Column("quantity", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("notes", sa.Text),
    )
    op.create_index("ix_{t}_name", "{t}", ["name"])
{extra_up}

def downgrade():
{extra_down}    op.drop_index("ix_{t}_name", table_name="{t}")
    op.drop_table("{t}")
'''

_ADD_COLUMN = '    op.add_column("{earlier}", sa.Column("extra_{i}", sa.String(50)))\n'
_DROP_COLUMN = '    op.drop_column("{earlier}", "extra_{i}")\n'


def table_name(i: int) -> str:
    return f"t{i:04d}"


def body(i: int) -> str:
    """The ``%%revision`` cell body of revision ``i`` (0-based)."""
    t = table_name(i)
    extra_up = extra_down = ""
    if i % 5 == 4 and i >= 3:
        earlier = table_name(i - 3)
        extra_up = _ADD_COLUMN.format(earlier=earlier, i=i)
        extra_down = _DROP_COLUMN.format(earlier=earlier, i=i)
    return _CREATE.format(t=t, extra_up=extra_up, extra_down=extra_down)


def make_folder(folder: Path, n: int, url: str) -> list[str]:
    """Write ``folder`` as an Alembic environment holding ``n`` linear revisions; return their ids."""
    write_environment(folder, url)
    versions = folder / "versions"
    ids: list[str] = []
    parent: str | None = None
    for i in range(n):
        message = f"create {table_name(i)}"
        rev_id = revisionfile.deterministic_id(message, [parent] if parent else [])
        text = revisionfile.render(
            message=message,
            rev_id=rev_id,
            down_revision=parent,
            body=body(i),
            create_date="2024-01-01 00:00:00.000000",
        )
        (versions / f"{rev_id}_{revisionfile.slug(message)}.py").write_text(text, encoding="utf-8")
        ids.append(rev_id)
        parent = rev_id
    return ids
