"""verify walks any graph Alembic accepts: branch points, several heads, merges, depends_on — each revision proven from its own parents."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import DATABASES, fresh_database, table_revision, tables

from migmagic import Migrator
from migmagic.errors import VerifyFailed


def _graph(m: Migrator, leaky: str | None = None) -> dict[str, str]:
    ids: dict[str, str] = {}

    def rev(name: str, **where: str) -> None:
        body = table_revision(name)
        if name == leaky:  # its downgrade forgets its table
            body = body.replace(f'op.drop_table("{name}")', "pass")
        ids[name] = m.revision(name, body, **where).revision

    rev("root")
    rev("a", head=ids["root"])
    rev("b", head=ids["root"])
    ids["m"] = m.merge([ids["a"], ids["b"]], "join a and b").revision
    rev("h1", head=ids["m"])
    rev("h2", head=ids["m"], depends_on=ids["a"])
    return ids


@pytest.mark.parametrize("kind", DATABASES)
def test_verify_proves_each_revision_of_a_branched_graph(kind: str, workdir: Path, tmp_path: Path) -> None:
    for url in fresh_database(kind, tmp_path):
        m = Migrator.init(url)
        try:
            ids = _graph(m)
            with pytest.raises(VerifyFailed) as failed:  # two heads: the single-head check says so, and only it
                m.verify()
            report = failed.value.report
            assert [f.split(":")[0] for f in report.failures] == ["single head"], report.failures
            rows = report.revisions.set_index("revision")
            assert set(rows.index) == set(ids.values())
            assert set(rows["downgrade"]) == {"ok"} and set(rows["round trip"]) == {"ok"}, rows
            assert tables(url) == set()  # the real database was not touched
        finally:
            m.close()


@pytest.mark.parametrize("kind", DATABASES)
def test_verify_names_the_branch_revision_whose_downgrade_leaks(kind: str, workdir: Path, tmp_path: Path) -> None:
    for url in fresh_database(kind, tmp_path):
        m = Migrator.init(url)
        try:
            ids = _graph(m, leaky="b")
            with pytest.raises(VerifyFailed) as failed:
                m.verify()
            rows = failed.value.report.revisions.set_index("revision")
            assert rows.loc[ids["b"], "downgrade"] == "not restored" and "b" in str(rows.loc[ids["b"], "what differs"])
            others = rows.drop(index=ids["b"])
            assert set(others["downgrade"]) <= {"ok", "not run"} and "ok" in set(others["downgrade"]), others  # after b: not run (b cannot upgrade again)
        finally:
            m.close()
