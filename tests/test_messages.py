"""Messages say what is true for the command and the settings at hand (issue 23, item 11)."""

from __future__ import annotations

from pathlib import Path

from conftest import EVENTS, Shell


def test_a_graph_range_error_names_graphs_own_spelling(ip_empty: Shell, sqlite_url: str) -> None:
    """`graph` takes its range as a plain argument and rejects -r: its error must not suggest -r."""
    ip_empty.ok(f"%migrate init {sqlite_url}")
    ip_empty.ok(f'%%revision -m "create events table"\n{EVENTS}')
    run = ip_empty.run("%migrate graph head")
    assert run.failed and "is not a range" in run.output
    assert "-r" not in run.output and "base:head" in run.output
    # What it names works.
    assert not ip_empty.run("%migrate graph base:head").failed


def test_restore_with_restore_points_off_says_they_are_off(ip_empty: Shell, sqlite_url: str) -> None:
    ip_empty.ok("%config Migrate.restore_points = 0")
    ip_empty.ok(f"%migrate init {sqlite_url}")
    ip_empty.ok(f'%%revision -m "create events table" --apply\n{EVENTS}')
    run = ip_empty.run("%migrate restore")
    assert run.failed
    assert "taken before each" not in run.output  # not true: none is taken
    assert "restore_points = 0" in run.output and "%config Migrate.restore_points = 3" in run.output


def test_stamp_names_what_it_stamped_over(workdir: Path, sqlite_url: str) -> None:
    """Issue 23 item 11: a stamp to base says which revisions it unstamped, not 'base' twice."""
    from conftest import table_revision

    from migmagic import Migrator

    m = Migrator.init(sqlite_url)
    m.revision("a", table_revision("a"))
    b = m.revision("b", table_revision("b")).revision
    m.upgrade("head")
    down = m.stamp("base")
    assert "to base: 1 step" in down.summary and f"It was at {b}." in down.summary
    assert list(down.steps["message"]) == [f"stamped over {b}"]
    up = m.stamp("head")
    assert f"to {b}: 1 step" in up.summary and "It was at base." in up.summary
    m.close()


def test_a_message_that_starts_with_a_dash_is_explained(ip_empty: Shell, sqlite_url: str) -> None:
    """Issue 21 (rough): -m "-x" gave argparse's "expected one argument"."""
    ip_empty.ok(f"%migrate init {sqlite_url}")
    run = ip_empty.run('%%revision -m "-x"\ndef upgrade():\n    pass\n')
    assert run.failed and '-m needs a value after it' in run.output and '-m="-x"' in run.output, run.output
    written = ip_empty.ok('%%revision -m="-x"\ndef upgrade():\n    pass\n')
    assert written.message == "-x"


def test_a_nul_in_a_message_writes_nothing_and_says_so(workdir: Path, sqlite_url: str) -> None:
    """Issue 21 (rough): a NUL character in a message said "Fix the file" though nothing was written."""
    import pytest

    from migmagic import Migrator
    from migmagic.errors import UsageError

    m = Migrator.init(sqlite_url)
    with pytest.raises(UsageError) as refused:
        m.revision("bad\x00name", "def upgrade():\n    pass\n")
    assert "Nothing was written" in str(refused.value) and "Fix the file" not in str(refused.value)
    assert not list((m.folder / "versions").glob("*.py"))
    m.close()


def test_sql_captured_from_base_creates_the_version_table_first(workdir: Path, sqlite_url: str, tmp_path: Path) -> None:
    """Issue 23 item 4: ``--sql base:head`` captured from a rehearsal (SQLite batch mode) runs on an empty database."""
    import sqlite3

    from migmagic import Migrator

    m = Migrator.init(sqlite_url)
    m.revision("a", 'def upgrade():\n    op.create_table("a", sa.Column("id", sa.Integer, primary_key=True), sa.Column("n", sa.String(10)))\n\n\ndef downgrade():\n    op.drop_table("a")\n')
    b = m.revision("b", 'def upgrade():\n    with op.batch_alter_table("a") as t:\n        t.alter_column("n", type_=sa.String(20))\n\n\ndef downgrade():\n    pass\n').revision
    m.upgrade("head")
    script = str(m.sql("upgrade", "base:head"))
    assert "Captured instead from a rehearsal" in script and "CREATE TABLE alembic_version" in script
    fresh = sqlite3.connect(tmp_path / "fresh.db")
    fresh.executescript(script)
    assert fresh.execute("SELECT version_num FROM alembic_version").fetchall() == [(b,)]
    fresh.close()
    m.close()


def test_accept_data_loss_names_the_restore_point_it_took(workdir: Path, sqlite_url: str) -> None:
    """Issue 23 item 11: --accept-data-loss says how to get the data back (SQLite's restore point)."""
    import sqlalchemy as sa
    from conftest import table_revision

    from migmagic import Migrator

    m = Migrator.init(sqlite_url)
    m.revision("t", table_revision("t"), apply=True)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO t (id) VALUES (1), (2)"))
    engine.dispose()
    done = m.downgrade("base", accept_data_loss=True)
    said = [n for n in done.notes if "Restore point" in n]
    assert said and "%migrate restore" in said[0], done.notes
    number = int(said[0].split()[2])
    m.restore(number)
    assert "t" in {str(r) for r in m.schema()["name"]}
    m.close()


def test_a_corrected_init_fixes_the_url_a_mistyped_one_wrote(ip_empty: Shell, workdir: Path, tmp_path: Path) -> None:
    """Issue 23 item 6: the alembic.ini a failed init wrote names the mistyped URL; a corrected init makes it name the one that works, and says so."""
    wrong = ip_empty.run("%migrate init postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    assert wrong.failed and "ConnectionFailed" in wrong.output
    assert "127.0.0.1:1/nowhere" in (workdir / "migrations" / "alembic.ini").read_text()
    good = f"sqlite:///{tmp_path / 'good.db'}"
    status = ip_empty.ok(f"%migrate init {good}")
    ini = (workdir / "migrations" / "alembic.ini").read_text()
    assert f"sqlalchemy.url = {good}" in ini and "nowhere" not in ini
    assert any("alembic.ini now names" in n for n in status.notes), status.notes
    again = ip_empty.ok(f"%migrate init {good}")  # nothing more to say
    assert not any("alembic.ini now names" in n for n in again.notes)
