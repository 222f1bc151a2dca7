"""``verify``: upgrade, downgrade, upgrade again on a throwaway database, revision by revision.

The defects below are real ones; each has its expected verdict per database
(``None``: the history passes there). A verdict is a phrase that must appear in
the failing row's "what differs" cell.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from conftest import ADD_VENUE, EVENTS, PG_ADMIN, Shell, tables, version

from migmagic import Migrator
from migmagic.errors import VerifyFailed

TWO_TABLES = '''def upgrade():
    op.create_table("parent", sa.Column("id", sa.Integer, primary_key=True))
    op.create_table("child", sa.Column("id", sa.Integer, primary_key=True), sa.Column("parent_id", sa.Integer))


def downgrade():
    op.drop_table("child")
    op.drop_table("parent")
'''

DEFECTS: dict[str, tuple[list[tuple[str, str]], dict[str, str | None]]] = {
    "a downgrade that does not restore a unique constraint": (
        [
            ("create codes", '''def upgrade():
    op.create_table("codes", sa.Column("id", sa.Integer, primary_key=True), sa.Column("code", sa.String(20)), sa.UniqueConstraint("code", name="uq_codes_code"))


def downgrade():
    op.drop_table("codes")
'''),
            ("drop unique", '''def upgrade():
    with op.batch_alter_table("codes") as batch:
        batch.drop_constraint("uq_codes_code", type_="unique")


def downgrade():
    pass
'''),
        ],
        dict.fromkeys(["sqlite", "postgresql", "mariadb"], "unique constraint uq_codes_code on codes not restored"),
    ),
    "a batch downgrade re-creating an index on a dropped column": (
        [
            ("create t", '''def upgrade():
    op.create_table("t", sa.Column("id", sa.Integer, primary_key=True), sa.Column("a", sa.Integer))


def downgrade():
    op.drop_table("t")
'''),
            ("add indexed c", '''def upgrade():
    with op.batch_alter_table("t") as batch:
        batch.add_column(sa.Column("c", sa.Integer))
    op.create_index("ix_t_c", "t", ["c"])


def downgrade():
    with op.batch_alter_table("t") as batch:
        batch.drop_column("c")
'''),
        ],
        {"sqlite": "downgrade failed: OperationalError: no such column: c", "postgresql": None, "mariadb": None},
    ),
    "an unnamed CHECK constraint dropped by a batch rebuild": (
        [
            ("create items", '''def upgrade():
    op.create_table("items", sa.Column("id", sa.Integer, primary_key=True), sa.Column("qty", sa.Integer, nullable=False), sa.CheckConstraint("qty > 0"))


def downgrade():
    op.drop_table("items")
'''),
            ("widen qty", '''def upgrade():
    with op.batch_alter_table("items") as batch:
        batch.alter_column("qty", type_=sa.BigInteger(), existing_nullable=False)


def downgrade():
    with op.batch_alter_table("items") as batch:
        batch.alter_column("qty", type_=sa.Integer(), existing_nullable=False)
'''),
        ],
        {"sqlite": "check constraint qty > 0 on items not restored", "postgresql": None, "mariadb": None},
    ),
    "a downgrade dropping an index a foreign key needs": (
        [
            ("create parent and child", TWO_TABLES),
            ("link child", '''def upgrade():
    op.create_index("ix_child_parent", "child", ["parent_id"])
    with op.batch_alter_table("child") as batch:
        batch.create_foreign_key("fk_child_parent", "parent", ["parent_id"], ["id"])


def downgrade():
    op.drop_index("ix_child_parent", table_name="child")
    with op.batch_alter_table("child") as batch:
        batch.drop_constraint("fk_child_parent", type_="foreignkey")
'''),
        ],
        {"sqlite": None, "postgresql": None, "mariadb": "downgrade failed: OperationalError: (1553"},
    ),
    "a foreign key's automatic index left behind": (
        [
            ("create parent and child", TWO_TABLES),
            ("link child", '''def upgrade():
    with op.batch_alter_table("child") as batch:
        batch.create_foreign_key("fk_child_parent", "parent", ["parent_id"], ["id"])


def downgrade():
    with op.batch_alter_table("child") as batch:
        batch.drop_constraint("fk_child_parent", type_="foreignkey")
'''),
        ],
        {"sqlite": None, "postgresql": None, "mariadb": "index fk_child_parent on child left behind"},
    ),
    "a CURRENT_TIMESTAMP default lost by a rename": (
        [
            ("create log", '''def upgrade():
    op.create_table("log", sa.Column("id", sa.Integer, primary_key=True), sa.Column("created", sa.DateTime, server_default=sa.text("CURRENT_TIMESTAMP")))


def downgrade():
    op.drop_table("log")
'''),
            ("rename created", '''def upgrade():
    op.alter_column("log", "created", new_column_name="created_at", existing_type=sa.DateTime())


def downgrade():
    op.alter_column("log", "created_at", new_column_name="created", existing_type=sa.DateTime())
'''),
        ],
        {"sqlite": None, "postgresql": None, "mariadb": "default of created on log lost"},
    ),
    "a clean history": (
        [("create events", EVENTS), ("add venue", ADD_VENUE)],
        dict.fromkeys(["sqlite", "postgresql", "mariadb"]),
    ),
}


def _kind(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql" if url.startswith("postgresql") else "mariadb"


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_verify_finds_each_defect_where_it_is_one(migrator: Migrator, defect: str) -> None:
    revisions, verdicts = DEFECTS[defect]
    ids = [migrator.revision(message, body).revision for message, body in revisions]
    expected = verdicts[_kind(migrator.db.url)]
    if expected is None:
        report = migrator.verify()
        assert not report.failed, repr(report)
        assert list(report.revisions["revision"]) == ids
        assert set(report.revisions["upgrade"]) == {"ok"} and set(report.revisions["downgrade"]) == {"ok"}
        assert set(report.revisions["round trip"]) == {"ok"}
    else:
        with pytest.raises(VerifyFailed) as caught:
            migrator.verify()
        report = caught.value.report
        row = report.revisions.set_index("revision").loc[ids[-1]]
        assert expected in (row["what differs"] or ""), repr(report)
        assert "failed" in row["downgrade"] or row["downgrade"] == "not restored", repr(report)
        first = report.revisions.set_index("revision").loc[ids[0]]
        assert (first["upgrade"], first["downgrade"], first["round trip"]) == ("ok", "ok", "ok")
        assert caught.value.failures and ids[-1] in caught.value.failures[0]
        assert expected in "\n".join(caught.value._render_traceback_())
    # The real database was never touched: verify runs on a throwaway one.
    assert tables(migrator.db.url) == set() and version(migrator.db.url) == set()


def test_verify_checks_single_head_and_the_models_at_head(workdir: Any, sqlite_url: str) -> None:
    m = Migrator.init(sqlite_url)
    a = m.revision("create events", EVENTS)
    models = sa.MetaData()
    sa.Table("events", models, sa.Column("id", sa.Integer, primary_key=True), sa.Column("title", sa.String(100), nullable=False), sa.Column("event_type", sa.String(50), nullable=False))
    report = m.verify(namespace={"models": models})
    assert list(report.checks["check"]) == ["single head", "models match head"]
    assert set(report.checks["result"]) == {"ok"}

    sa.Table("venues", models, sa.Column("id", sa.Integer, primary_key=True))
    with pytest.raises(VerifyFailed, match="models match head: add table venues"):
        m.verify(namespace={"models": models})
    assert m.verify().notes[-1].startswith("No models found")  # no models: that check is skipped, not failed

    m.revision("other root", EVENTS.replace('"events"', '"others"'), head="base")
    with pytest.raises(VerifyFailed) as caught:
        m.verify()
    assert "single head: 2 heads" in str(caught.value)
    assert a.revision in list(caught.value.report.revisions["revision"])


def test_verify_a_range_and_stops_after_a_failed_upgrade(workdir: Any, sqlite_url: str) -> None:
    m = Migrator.init(sqlite_url)
    a = m.revision("create events", EVENTS)
    b = m.revision("broken", 'def upgrade():\n    op.execute("INSERT INTO no_such_table VALUES (1)")\n\n\ndef downgrade():\n    pass\n')
    c = m.revision("add venue", ADD_VENUE)
    with pytest.raises(VerifyFailed) as caught:
        m.verify()
    rows = caught.value.report.revisions.set_index("revision")
    assert rows.loc[b.revision, "upgrade"] == "failed" and "no_such_table" in rows.loc[b.revision, "what differs"]
    assert rows.loc[c.revision, "upgrade"] == "not run"
    report = m.verify(f"{a.revision}:{a.revision}")
    assert list(report.revisions["revision"]) == [a.revision]


def test_verify_magic_fails_the_cell_and_shows_the_table(ip_empty: Shell, sqlite_url: str) -> None:
    ip_empty.ok(f"%migrate init {sqlite_url}")
    rev = ip_empty.ok('%%revision -m "create codes"\n' + DEFECTS["a downgrade that does not restore a unique constraint"][0][0][1])
    bad = ip_empty.ok('%%revision -m "drop unique"\n' + DEFECTS["a downgrade that does not restore a unique constraint"][0][1][1])
    cell = ip_empty.run("%migrate verify")
    assert cell.failed and isinstance(cell.error, VerifyFailed)
    assert "unique constraint uq_codes_code on codes not restored" in cell.output
    assert bad.revision in cell.output and rev.revision in cell.output
    assert "Traceback" not in cell.output
    ok = ip_empty.ok(f"%migrate verify {rev.revision}:{rev.revision}")
    assert "every downgrade restores the schema" in repr(ok) and "<script" not in ok._repr_html_()


def test_verify_leaves_no_throwaway_database_behind(workdir: Any, pg_url: str) -> None:
    m = Migrator.init(pg_url)
    m.revision("create events", EVENTS)
    m.verify()
    engine = sa.create_engine(PG_ADMIN)
    try:
        with engine.connect() as conn:
            left = conn.execute(sa.text("SELECT datname FROM pg_database WHERE datname LIKE 'mm_verify_%'")).scalars().all()
    finally:
        engine.dispose()
    assert left == []
