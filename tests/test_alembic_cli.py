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


# ---------------------------------------------------------------- the alembic command through migmagic's core

SLOW = '''def upgrade():
    import time

    time.sleep(2)
    op.create_table("slow", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("slow")
'''

FAILS_HALFWAY = '''def upgrade():
    op.create_table("half", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("INSERT INTO no_such_table VALUES (1)")


def downgrade():
    op.drop_table("half")
'''


def ledger(url: str) -> list[tuple[str, str]]:
    from conftest import ledger_rows

    return [(r, d) for r, d in ledger_rows(url, "revision", "direction")]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mariadb"])
def test_the_ledger_shows_the_notebooks_and_the_commands_runs(kind: str, workdir: Any, tmp_path: Path) -> None:
    from migmagic import Migrator

    for url in fresh_database(kind, tmp_path):
        m = Migrator.init(url)
        first = m.revision("create events table", EVENTS).revision
        m.upgrade("head")
        head = m.revision("add venue", ADD_VENUE).revision
        done = alembic("upgrade", "head", url=url)
        assert done.returncode == 0, done.stderr
        assert f"to {head}: 1 step" in done.stdout
        assert ledger(url) == [(first, "upgrade"), (head, "upgrade")]
        assert m.status().outside == [] and version(url) == {head}
        assert alembic("downgrade", "-1", url=url).returncode == 0
        assert ledger(url)[-1] == (head, "downgrade") and version(url) == {first}
        m.close()


def test_the_command_refuses_an_applied_revision_edited_since(workdir: Any, sqlite_url: str) -> None:
    from migmagic import Migrator

    m = Migrator.init(sqlite_url)
    first = m.revision("create events table", EVENTS)
    m.upgrade("head")
    m.revision("add venue", ADD_VENUE)
    m.close()
    path = Path(first.path) if hasattr(first, "path") else next(Path("migrations/versions").glob(f"{first.revision}_*.py"))
    path.write_text(path.read_text().replace("sa.String(50)", "sa.String(60)"))
    done = alembic("upgrade", "head", url=sqlite_url)
    assert done.returncode == 255  # Alembic's own exit code and error line for a CommandError
    assert "ERROR [alembic.util.messaging]" in done.stderr and first.revision in done.stderr and "edited" in done.stderr
    assert version(sqlite_url) == {first.revision}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_failure_in_the_command_leaves_nothing_applied(kind: str, workdir: Any, tmp_path: Path) -> None:
    from conftest import tables

    from migmagic import Migrator

    for url in fresh_database(kind, tmp_path):
        m = Migrator.init(url)
        first = m.revision("create events table", EVENTS).revision
        m.upgrade("head")
        m.revision("add venue", ADD_VENUE)
        m.revision("fails halfway", FAILS_HALFWAY)
        m.close()
        done = alembic("upgrade", "head", url=url)
        assert done.returncode == 255 and "ERROR [alembic.util.messaging]" in done.stderr
        assert version(url) == {first}
        assert tables(url) == {"events"} and "venue" not in [c for c, _ in schema(url)["events"]]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_commands_at_once_apply_each_revision_once(kind: str, workdir: Any, tmp_path: Path) -> None:
    from migmagic import Migrator

    for url in fresh_database(kind, tmp_path):
        m = Migrator.init(url)
        m.revision("create events table", EVENTS)
        slow = m.revision("slow", SLOW).revision
        m.close()
        env = dict(os.environ, DATABASE_URL=url)
        command = [ALEMBIC, "-c", "migrations/alembic.ini", "upgrade", "head"]
        both = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in both]
        assert [p.returncode for p in both] == [0, 0], outs
        assert version(url) == {slow}
        assert sorted(r for r, d in ledger(url) if d == "upgrade") == sorted(m.scripts().ids())


def test_without_migmagic_the_command_runs_plain_alembic_and_says_so(workdir: Any, sqlite_url: str, tmp_path: Path) -> None:
    from conftest import without_migmagic

    from migmagic import Migrator

    m = Migrator.init(sqlite_url)
    head = m.revision("create events table", EVENTS).revision
    m.close()
    env = without_migmagic(dict(os.environ, DATABASE_URL=sqlite_url), tmp_path)
    done = subprocess.run([ALEMBIC, "-c", "migrations/alembic.ini", "upgrade", "head"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "migmagic" in line]
    assert said == ["migmagic is not importable here: plain Alembic runs (no lock, ledger or check of edited revisions)."]
    assert version(sqlite_url) == {head} and ledger(sqlite_url) == []


def test_migmagic_alembic_plain_runs_plain_alembic(workdir: Any, sqlite_url: str) -> None:
    from migmagic import Migrator

    m = Migrator.init(sqlite_url)
    head = m.revision("create events table", EVENTS).revision
    m.close()
    env = dict(os.environ, DATABASE_URL=sqlite_url, MIGMAGIC_ALEMBIC="plain")
    done = subprocess.run([ALEMBIC, "-c", "migrations/alembic.ini", "upgrade", "head"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert version(sqlite_url) == {head} and ledger(sqlite_url) == []
