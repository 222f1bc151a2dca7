"""The dry run's report says what each statement locked, rewrote or copied, with the real table's size (issue 22)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import DATABASES, fresh_database

from migmagic import Migrator

EVENTS = '''def upgrade():
    op.create_table("events", sa.Column("id", sa.Integer, primary_key=True), sa.Column("title", sa.String(50)), sa.Column("n", sa.Integer))


def downgrade():
    op.drop_table("events")
'''


def _seed(url: str, rows: int) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO events (id, title, n) VALUES (:i, 't', :i)"), [{"i": i} for i in range(1, rows + 1)])
    finally:
        engine.dispose()


HAZARD = {
    "postgresql": ('    op.create_index("ix_events_title", "events", ["title"])\n', "SHARE on events"),
    "sqlite": ('    with op.batch_alter_table("events") as b:\n        b.alter_column("title", type_=sa.String(80))\n', "copies events"),
    "mariadb": ('    op.alter_column("events", "n", existing_type=sa.Integer, type_=sa.BigInteger)\n', "COPY"),
}


@pytest.mark.parametrize("kind", DATABASES)
def test_the_dry_run_reports_what_each_statement_did_to_a_seeded_table(kind: str, workdir: Path, tmp_path: Path) -> None:
    for url in fresh_database(kind, tmp_path):
        m = Migrator.init(url)
        try:
            m.revision("events", EVENTS, apply=True)
            _seed(url, 2000)
            up, said = HAZARD[kind]
            m.revision("the change", f"def upgrade():\n{up}\n\ndef downgrade():\n    pass\n")
            report = m.dry_run("upgrade", "head")
            assert not report.failed, report.failure
            shown = repr(report)
            assert report.review is not None and len(report.review), shown
            text = report.review.to_string()
            assert said in text and "2,000" in text.replace("2000", "2,000"), text
            assert "locks, rewrites and copies" in shown and "Locks, rewrites and copies" in report._repr_html_()
        finally:
            m.close()
