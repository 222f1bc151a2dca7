"""Replay earns its default: over a corpus of folders, every way of building a database builds the same one.

For each folder and database kind: plain Alembic (the expectation nobody here wrote), migmagic
with replay off, with replay recording, and replaying twice in fresh processes that share one
store. Schemas (tables, columns with types and defaults, keys, indexes, unique and check
constraints, PostgreSQL enum types), version tables and ledgers must be identical, at head and
again at base.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import plain
import pytest
import sqlalchemy as sa
from conftest import DATABASES, fresh_database, ledger_rows

from migmagic import Migrator
from migmagic.schema import BOOKKEEPING

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- the corpus


def _generated(kind: str, pure: bool, n: int = 44) -> list[tuple[str, str, str, str]]:
    """``n`` revisions as (message, helper code, upgrade body, downgrade body): tables with keys, indexes, constraints
    and defaults, columns added, ``op.execute``; PostgreSQL enums shared by two tables; with ``pure`` off, batch blocks,
    a helper, ``sa.text`` and data work too (never replayed, still compared)."""
    out: list[tuple[str, str, str, str]] = []
    for i in range(n):
        t, prev, base = f"t{i:02d}", f"t{i - 7:02d}", f"t{i - i % 7:02d}"
        helper = ""
        step = i % 7
        if step == 0:
            fk = f', sa.Column("{prev}_id", sa.Integer, sa.ForeignKey("{prev}.id", name="fk_{t}_{prev}"))' if i else ""
            enum = ', sa.Column("state", sa.Enum("new", "done", name="state_kind"))' if kind == "postgresql" and i in (7, 14) else ""
            up = (
                f'    op.create_table("{t}", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(40), nullable=False, server_default="x"),\n'
                f'                    sa.Column("score", sa.Integer, server_default="0"){fk}{enum}, sa.UniqueConstraint("name", name="uq_{t}_name"),\n'
                f'                    sa.CheckConstraint("score >= 0", name="ck_{t}_score"))\n'
                f'    op.create_index("ix_{t}_score", "{t}", ["score"])\n'
            )
            down = f'    op.drop_index("ix_{t}_score", table_name="{t}")\n    op.drop_table("{t}")\n'
            if enum and i == 7:  # the first of the two tables sharing the type: the last to go
                down += '    op.execute("DROP TYPE IF EXISTS state_kind")\n'
        elif step == 1:
            up = f'    op.add_column("{base}", sa.Column("c{i}", sa.String(20), nullable=True))\n'
            down = f'    op.drop_column("{base}", "c{i}")\n' if kind != "sqlite" else f'    with op.batch_alter_table("{base}") as b:\n        b.drop_column("c{i}")\n'
        elif step == 2:
            up = f'    op.execute("CREATE INDEX ix_{base}_name_score ON {base} (name, score)")\n'
            down = f'    op.drop_index("ix_{base}_name_score", table_name="{base}")\n'
        elif step == 3 and not pure:
            up = f'    op.bulk_insert(sa.table("{base}", sa.column("id"), sa.column("name")), [{{"id": {i}, "name": "n{i}"}}])\n'
            down = f'    op.execute(sa.text("DELETE FROM {base} WHERE id = {i}"))\n'
        elif step == 4 and not pure:
            up = f'    with op.batch_alter_table("{base}") as b:\n        b.alter_column("name", existing_type=sa.String(40), type_=sa.String(60), existing_nullable=False)\n'
            down = f'    with op.batch_alter_table("{base}") as b:\n        b.alter_column("name", existing_type=sa.String(60), type_=sa.String(40), existing_nullable=False)\n'
        elif step == 5 and kind != "sqlite":
            up = f'    op.alter_column("{base}", "score", existing_type=sa.Integer, nullable=False, existing_server_default="0")\n'
            down = f'    op.alter_column("{base}", "score", existing_type=sa.Integer, nullable=True, existing_server_default="0")\n'
        else:
            up = f'    op.create_table("{t}", sa.Column("id", sa.Integer, primary_key=True), sa.Column("note", sa.Text))\n'
            down = f'    op.drop_table("{t}")\n'
            if not pure:
                helper = 'def columns():\n    return [sa.Column("id", sa.Integer, primary_key=True), sa.Column("note", sa.Text)]\n\n\n'
                up = f'    op.create_table("{t}", *columns())\n'
        out.append((f"r{i:02d}", helper, up, down))
    return out


def _write(m: Migrator, revisions: list[tuple[str, str, str, str]]) -> None:
    """The revisions as a history with a side branch that depends on the main line, and a merge."""
    ids: list[str] = []
    side: list[str] = []
    sqlite = m.db.dialect_name == "sqlite"
    for i, (message, helper, up, down) in enumerate(revisions):
        body = f"{helper}def upgrade():\n{up}\n\ndef downgrade():\n{down}"
        if i == 19:  # a root of its own, with a table of its own
            body = 'def upgrade():\n    op.create_table("side", sa.Column("id", sa.Integer, primary_key=True))\n\n\ndef downgrade():\n    op.drop_table("side")\n'
            side.append(m.revision(message, body, head="base", branch_label="side").revision)
            continue
        if i == 20:  # on the side branch, and depending on the main line
            drop = '    with op.batch_alter_table("side") as b:\n        b.drop_column("t00_id")\n' if sqlite else '    op.drop_column("side", "t00_id")\n'
            body = f'def upgrade():\n    op.add_column("side", sa.Column("t00_id", sa.Integer))\n\n\ndef downgrade():\n{drop}'
            side.append(m.revision(message, body, head=side[-1], depends_on=ids[-1]).revision)
            continue
        if i == 30:
            ids.append(m.merge([ids[-1], side[-1]], "join the side branch").revision)
        ids.append(m.revision(message, body, head=ids[-1] if ids else "base").revision)


def _tutorial(stem: str) -> list[tuple[str, str]]:
    """The %%revision cells of one tutorial, in order (the last body of each message wins, as in a run).

    One folder per tutorial, as each runs in a folder of its own: two tutorials may both create ``events``.
    """
    cells: dict[str, str] = {}
    for cell in json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())["cells"]:
        text = "".join(cell["source"]) if cell["cell_type"] == "code" else ""
        found = re.match(r'%%revision\s+-m\s+"([^"]+)"[^\n]*\n(.*)', text, re.S)
        if found:
            cells[found.group(1)] = found.group(2)
    return list(cells.items())


TUTORIALS = [nb.stem for nb in sorted((ROOT / "notebooks").glob("*.ipynb")) if _tutorial(nb.stem)]
"""The tutorials with %%revision cells (models-and-autogenerate writes its revisions by autogenerate)."""


# --------------------------------------------------------------------------- what a database holds


def _schema(url: str) -> dict[str, Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            insp = sa.inspect(conn)
            out: dict[str, Any] = {}
            for t in sorted(n for n in insp.get_table_names() if n not in BOOKKEEPING):
                out[t] = (
                    [(c["name"], str(c["type"]), c["nullable"], str(c.get("default"))) for c in insp.get_columns(t)],
                    insp.get_pk_constraint(t)["constrained_columns"],
                    sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(t)),
                    sorted((u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(t)),
                    sorted((f["name"], tuple(f["constrained_columns"]), f["referred_table"]) for f in insp.get_foreign_keys(t)),
                    sorted((c["name"], " ".join(str(c["sqltext"]).split())) for c in insp.get_check_constraints(t)),
                    conn.execute(sa.text(f"SELECT count(*) FROM {conn.dialect.identifier_preparer.quote(t)}")).scalar(),
                )
            if conn.dialect.name == "postgresql":
                out["(enum types)"] = [tuple(r) for r in conn.execute(sa.text(
                    "SELECT t.typname, string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid "
                    "JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = current_schema() GROUP BY t.typname ORDER BY 1"))]
            out["(version table)"] = sorted(r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))) if insp.has_table("alembic_version") else None
            return out
    finally:
        engine.dispose()


def _ledger(url: str) -> list[tuple[Any, ...]]:
    return ledger_rows(url, "revision", "direction", "checksum")


_BUILD = """
import json, sys
from migmagic import Migrator
m = Migrator(sys.argv[1], sys.argv[2])
out = getattr(m, sys.argv[3])(sys.argv[4], **({"accept_data_loss": True} if sys.argv[3] == "downgrade" else {}))
print(json.dumps(out.summary))
m.close()
"""


def _in_a_fresh_process(url: str, folder: Path, command: str, target: str, cache: Path) -> str:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    done = subprocess.run([sys.executable, "-c", _BUILD, url, str(folder), command, target], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return str(json.loads(done.stdout.strip().splitlines()[-1]))


def _replayed(summary: str) -> int:
    found = re.search(r"\((\d+) replayed", summary)
    return int(found.group(1)) if found else 0


# --------------------------------------------------------------------------- the test


FOLDERS = ["generated, pure", "generated, mixed", *(f"tutorial {stem}" for stem in TUTORIALS)]


@pytest.mark.parametrize("kind", DATABASES)
@pytest.mark.parametrize("corpus", FOLDERS)
def test_every_build_of_a_folder_is_the_database_alembic_builds(corpus: str, kind: str, workdir: Path, tmp_path: Path, replay_store: Path) -> None:
    names = ["plain", "off", "record", "replay 1", "replay 2"]
    gens = {n: fresh_database(kind, (tmp_path / n.replace(" ", "_"))) for n in names}
    for n in names:
        (tmp_path / n.replace(" ", "_")).mkdir()
    urls = {n: next(g) for n, g in gens.items()}
    try:
        author = Migrator.init(urls["plain"])  # writes the folder only: the database stays empty for plain Alembic
        if corpus.startswith("tutorial "):
            for message, body in _tutorial(corpus.removeprefix("tutorial ")):
                author.revision(message, body)
        else:
            _write(author, _generated(kind, pure=corpus.endswith("pure")))
        folder = author.folder
        author.close()
        assert len(list((folder / "versions").glob("*.py"))) >= (2 if corpus.startswith("tutorial ") else 40)

        plain.run(urls["plain"], folder, "upgrade", "heads")
        expected = _schema(urls["plain"])
        off = Migrator(urls["off"], folder, replay=False)
        record = Migrator(urls["record"], folder)
        summaries = {"off": off.upgrade("heads").summary, "record": record.upgrade("heads").summary}
        cache = replay_store.parent.parent
        for n in ("replay 1", "replay 2"):
            summaries[n] = _in_a_fresh_process(urls[n], folder, "upgrade", "heads", cache)
        steps = len(_ledger(urls["off"]))
        assert _replayed(summaries["off"]) == _replayed(summaries["record"]) == 0
        replayed = [_replayed(summaries[n]) for n in ("replay 1", "replay 2")]
        assert replayed in ([steps, steps], [0, 0]), summaries  # a whole plan, or none of it
        if corpus == "generated, pure":
            assert replayed == ([0, 0] if kind == "mariadb" else [steps, steps]), summaries
        elif corpus == "generated, mixed" or kind == "mariadb":
            assert replayed == [0, 0], summaries
        for n in names[1:]:
            assert _schema(urls[n]) == expected, (corpus, kind, n)
        ledgers = {n: _ledger(urls[n]) for n in names[1:]}
        assert all(ledgers[n] == ledgers["off"] for n in ledgers), (corpus, kind)

        # And back to base, every one by its own means: the same again.
        plain.run(urls["plain"], folder, "downgrade", "base")
        off.downgrade("base", accept_data_loss=True)
        record.downgrade("base", accept_data_loss=True)
        for n in ("replay 1", "replay 2"):
            _in_a_fresh_process(urls[n], folder, "downgrade", "base", cache)
        at_base = _schema(urls["plain"])
        for n in names[1:]:
            assert _schema(urls[n]) == at_base, (corpus, kind, n, "base")
        off.close()
        record.close()
    finally:
        for g in gens.values():
            next(g, None)
