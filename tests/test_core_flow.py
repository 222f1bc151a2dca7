"""The Alembic tutorial, from notebook cells, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from pathlib import Path

from conftest import ADD_VENUE, EVENTS, Shell, columns, tables, version


def test_revision_cell_writes_a_standard_script(ip_with_db: Shell) -> None:
    run = ip_with_db.run(f'%%revision -m "create events table"\n{EVENTS}')
    assert not run.failed, run.output
    written = run.result
    assert written.action == "wrote"
    assert repr(written).startswith(f"Wrote revision {written.revision} ('create events table') to migrations/versions/")
    files = sorted(p.name for p in Path("migrations/versions").glob("*.py"))
    assert files == [f"{written.revision}_create_events_table.py"]
    text = (Path("migrations/versions") / files[0]).read_text()
    assert f"revision = '{written.revision}'" in text
    assert "down_revision = None" in text
    assert "from alembic import op" in text and "import sqlalchemy as sa" in text


def test_upgrade_downgrade_walkthrough(ip_with_db: Shell) -> None:
    url = ip_with_db.ns["TEST_DB_URL"]
    first = ip_with_db.ok(f'%%revision -m "create events table"\n{EVENTS}')
    second = ip_with_db.ok(f'%%revision -m "add venue"\n{ADD_VENUE}')
    assert second.parents == (first.revision,)

    up = ip_with_db.ok("%migrate upgrade head")
    assert list(up.steps["revision"]) == [first.revision, second.revision]
    assert list(up.steps["direction"]) == ["upgrade", "upgrade"]
    assert tables(url) == {"events"}
    assert "venue" in columns(url, "events")
    assert version(url) == {second.revision}

    current = ip_with_db.ok("%migrate current")
    assert current.ids == [second.revision]
    assert "(head)" in repr(current)

    ip_with_db.ok("h = %migrate history")
    h = ip_with_db.ns["h"]
    assert type(h).__mro__[1].__name__ == "DataFrame"
    assert list(h["revision"]) == [second.revision, first.revision]
    assert list(h["message"]) == ["add venue", "create events table"]
    assert h.loc[0, "markers"] == "head, current"
    assert "NaN" not in repr(h) and "None" not in repr(h)

    down = ip_with_db.ok("%migrate downgrade -1")
    assert list(down.steps["revision"]) == [second.revision]
    assert "venue" not in columns(url, "events")
    assert version(url) == {first.revision}

    ip_with_db.ok("%migrate upgrade +1")
    assert version(url) == {second.revision}

    ip_with_db.ok("%migrate downgrade base")
    assert tables(url) == set()
    assert version(url) == set()

    nothing = ip_with_db.ok("%migrate downgrade base")
    assert repr(nothing).startswith("Nothing to downgrade")


def test_apply_flag_and_run_all_twice(ip_with_db: Shell) -> None:
    url = ip_with_db.ns["TEST_DB_URL"]
    cells = [f'%%revision -m "create events table" --apply\n{EVENTS}', f'%%revision -m "add venue" --apply\n{ADD_VENUE}']
    first = [ip_with_db.ok(c) for c in cells]
    assert [r.action for r in first] == ["wrote", "wrote"]
    assert version(url) == {first[1].revision}
    again = [ip_with_db.ok(c) for c in cells]
    assert [r.action for r in again] == ["unchanged", "unchanged"]
    assert [r.revision for r in again] == [r.revision for r in first]
    assert len(list(Path("migrations/versions").glob("*.py"))) == 2


def test_show_heads_branches_merge_stamp(ip_with_db: Shell) -> None:
    url = ip_with_db.ns["TEST_DB_URL"]
    root = ip_with_db.ok(f'%%revision -m "create events table"\n{EVENTS}')
    a = ip_with_db.ok(f'%%revision -m "add venue" --branch-label venues\n{ADD_VENUE}')
    b = ip_with_db.ok(f'%migrate revision -m "empty tweak" --head {root.revision}')
    heads = ip_with_db.ok("%migrate heads")
    assert set(heads["revision"]) == {a.revision, b.revision}
    branches = ip_with_db.ok("%migrate branches")
    assert list(branches["revision"]) == [root.revision]

    refused = ip_with_db.run('%migrate revision -m "third"')
    assert refused.failed and "2 heads" in refused.output

    ip_with_db.ok("%migrate upgrade venues@head")
    assert version(url) == {a.revision}
    ip_with_db.ok("%migrate upgrade heads")
    assert version(url) == {a.revision, b.revision}

    merged = ip_with_db.ok('%migrate merge heads -m "join branches"')
    assert set(merged.parents) == {a.revision, b.revision}
    ip_with_db.ok("%migrate upgrade head")
    assert version(url) == {merged.revision}

    shown = ip_with_db.ok(f"%migrate show {a.revision[:6]}")
    assert ("branch labels", "venues") in shown.fields
    assert "op.add_column" in repr(shown)

    ip_with_db.ok(f"%migrate stamp {root.revision} --purge")
    assert version(url) == {root.revision}
    assert "venue" in columns(url, "events")  # stamp runs nothing


def test_sql_mode_executes_nothing(ip_with_db: Shell) -> None:
    url = ip_with_db.ns["TEST_DB_URL"]
    first = ip_with_db.ok(f'%%revision -m "create events table"\n{EVENTS}')
    sql = ip_with_db.ok("%migrate upgrade head --sql")
    assert "CREATE TABLE events" in str(sql)
    # One transaction where migmagic runs one; MySQL and MariaDB commit each DDL statement.
    transactional = not url.startswith(("mysql", "mariadb"))
    assert ("BEGIN" in str(sql)) == transactional
    assert tables(url) == set() and version(url) == set()
    ip_with_db.ok("%migrate upgrade head")
    down = ip_with_db.ok(f"%migrate downgrade {first.revision}:base --sql")
    assert "DROP TABLE events" in str(down)
    assert tables(url) == {"events"}
    assert "<span" in down._repr_html_()  # highlighted
    nothing = ip_with_db.ok("%migrate upgrade head --sql")
    assert str(nothing).startswith(f"-- Nothing to run: {first.revision} is already at head.")


def test_sql_mode_for_a_mariadb_url_shows_no_transaction(workdir: Path, mariadb_url: str) -> None:
    """``mariadb://`` URLs name the MariaDB dialect: its DDL commits itself, as with ``mysql://``."""
    from migmagic import Migrator

    m = Migrator.init(mariadb_url.replace("mysql+pymysql://", "mariadb+pymysql://", 1))
    try:
        m.revision("create events table", body=EVENTS)
        sql = str(m.sql("upgrade", "head"))
    finally:
        m.close()
    assert "CREATE TABLE events" in sql
    assert "BEGIN" not in sql and "COMMIT" not in sql


def test_edit_puts_the_revision_in_the_next_cell(ip_with_db: Shell) -> None:
    first = ip_with_db.ok(f'%%revision -m "create events table"\n{EVENTS}')
    payloads: list[str] = []
    ip_with_db.ip.set_next_input = lambda text, replace=False: payloads.append(text)
    try:
        ip_with_db.ok(f"%migrate edit {first.revision}")
    finally:
        del ip_with_db.ip.set_next_input
    assert payloads[0].startswith('%%revision -m "create events table"\n')
    # The loaded cell, run as is, changes nothing.
    assert ip_with_db.ok(payloads[0]).action == "unchanged"


def test_unapplied_revision_is_rewritten_in_place(ip_with_db: Shell) -> None:
    first = ip_with_db.ok(f'%%revision -m "create events table"\n{EVENTS}')
    edited = EVENTS.replace('sa.String(50), nullable=False', 'sa.String(80), nullable=True')
    again = ip_with_db.ok(f'%%revision -m "create events table"\n{edited}')
    assert again.action == "rewrote" and again.revision == first.revision
    files = list(Path("migrations/versions").glob("*.py"))
    assert len(files) == 1 and "sa.String(80), nullable=True" in files[0].read_text()


def test_applied_revision_edit_is_refused_then_reapplied(ip_with_db: Shell) -> None:
    url = ip_with_db.ns["TEST_DB_URL"]
    ip_with_db.ok(f'%%revision -m "create events table" --apply\n{EVENTS}')
    ip_with_db.ok(f'%%revision -m "add venue" --apply\n{ADD_VENUE}')
    renamed = ADD_VENUE.replace('"venue"', '"place"')
    refused = ip_with_db.run(f'%%revision -m "add venue"\n{renamed}')
    assert refused.failed
    assert "is applied" in refused.output and "--reapply" in refused.output
    assert '+    op.add_column("events", sa.Column("place"' in refused.output
    assert "venue" in columns(url, "events")

    done = ip_with_db.ok(f'%%revision -m "add venue" --reapply\n{renamed}')
    assert done.action == "rewrote"
    assert list(done.applied.steps["direction"]) == ["downgrade", "upgrade"]
    cols = columns(url, "events")
    assert "place" in cols and "venue" not in cols


def test_stamp_says_what_it_did_and_history_ranges(ip_with_db: Shell) -> None:
    first = ip_with_db.ok(f'%%revision -m "create events table"\n{EVENTS}')
    second = ip_with_db.ok(f'%%revision -m "add venue"\n{ADD_VENUE}')
    stamped = ip_with_db.ok(f"%migrate stamp {first.revision}")
    assert repr(stamped).startswith(f"Stamped {ip_with_db.ns['TEST_DB_URL'].split('@')[-1]}"[:8])
    assert f"to {first.revision}: 1 step" in repr(stamped)
    ranged = ip_with_db.ok(f"%migrate history -r {first.revision}:head")
    assert list(ranged["revision"]) == [second.revision, first.revision]
    only_new = ip_with_db.ok(f"%migrate history -r {second.revision}:")
    assert list(only_new["revision"]) == [second.revision]
