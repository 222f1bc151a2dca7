"""The folder migmagic writes is an Alembic project the `alembic` command runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ADD_VENUE, EVENTS, fresh_database, version

ALEMBIC = str(Path(sys.executable).parent / "alembic")


def schema(url: str) -> dict[str, list[tuple[str, str]]]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        insp = sa.inspect(engine)
        return {
            t: [(c["name"], str(c["type"])) for c in insp.get_columns(t)]
            for t in insp.get_table_names()
            if not t.startswith("migmagic_")
        }
    finally:
        engine.dispose()


def alembic(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=url)
    return subprocess.run([ALEMBIC, "-c", "migrations/alembic.ini", *args], env=env, capture_output=True, text=True)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mariadb"])
def test_alembic_command_builds_the_same_schema(kind: str, workdir: Any, tmp_path: Path) -> None:
    from migmagic import Migrator

    notebook_db = fresh_database(kind, tmp_path / "a")
    shipped_db = fresh_database(kind, tmp_path / "b")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    url, other = next(notebook_db), next(shipped_db)
    try:
        m = Migrator.init(url)
        m.revision("create events table", EVENTS)
        head = m.revision("add venue", ADD_VENUE).revision
        m.upgrade("head")
        m.close()
        result = alembic("upgrade", "head", url=other)
        assert result.returncode == 0, result.stderr
        assert schema(other) == schema(url)
        assert version(other) == {head}
        assert alembic("downgrade", "base", url=other).returncode == 0
        assert set(schema(other)) == {"alembic_version"}
    finally:
        for gen in (notebook_db, shipped_db):
            next(gen, None)


def test_no_password_is_written_into_the_folder(workdir: Any, pg_url: str) -> None:
    from sqlalchemy.engine import make_url

    from migmagic import Migrator

    # PostgreSQL here trusts local connections, so any password gets in.
    with_password = make_url(pg_url).set(password="n0t-in-files@/%").render_as_string(hide_password=False)
    m = Migrator.init(with_password)
    m.revision("create events table", EVENTS, apply=True)
    m.close()
    for path in Path("migrations").rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "n0t-in-files" not in text and "n0t-in-files".replace("-", "%2D") not in text, path
    ini = Path("migrations/alembic.ini").read_text()
    assert "sqlalchemy.url =" not in ini and "Set DATABASE_URL" in ini


def test_url_without_password_goes_into_the_ini(workdir: Any, sqlite_url: str) -> None:
    from migmagic import Migrator

    Migrator.init(sqlite_url).revision("create events table", EVENTS)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [ALEMBIC, "-c", "migrations/alembic.ini", "upgrade", "head"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "events" in schema(sqlite_url)
