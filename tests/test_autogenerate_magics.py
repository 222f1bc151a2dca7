"""``%migrate revision --autogenerate``, ``check``, ``diff`` and ``schema`` from notebook cells."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Shell, columns, tables, version

MODELS_2 = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

class Base(DeclarativeBase):
    pass

class Venue(Base):
    __tablename__ = "venues"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))
"""

MODELS_CLASSIC = """
import sqlalchemy as sa
from sqlalchemy.orm import declarative_base

Base = declarative_base()

class Venue(Base):
    __tablename__ = "venues"
    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(50), nullable=False)
"""

ADD_CITY = """
Venue.__table__.append_column(sa.Column("city", sa.String(40)))
"""


@pytest.fixture
def next_cells(ip_with_db: Shell, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What %migrate put into the next cell (set_next_input), in order, as in a notebook front end.

    (The in-process test shell is a terminal shell; JupyterLab, Notebook and VS Code place the cell.)
    """
    monkeypatch.setattr("migmagic.frontend.will_place_next_cell", lambda shell: True)
    cells: list[str] = []
    ip_with_db.ip.set_next_input = lambda text, replace=False: cells.append(text)
    yield cells
    del ip_with_db.ip.set_next_input


@pytest.mark.parametrize("models", [MODELS_2, MODELS_CLASSIC], ids=["DeclarativeBase", "declarative_base"])
def test_autogenerate_review_upgrade_check(ip_with_db: Shell, next_cells: list[str], models: str) -> None:
    url = ip_with_db.ns["TEST_DB_URL"]
    ip_with_db.ok(models)
    run = ip_with_db.run('%migrate revision --autogenerate -m "add venues"')
    assert not run.failed, run.output
    result = run.result
    assert repr(result).startswith(f"Wrote revision {result.revision.revision} ('add venues') to migrations/versions/")
    assert "add table venues" in repr(result)
    assert "in the next cell" in repr(result)
    assert next_cells == [result.cell]
    assert next_cells[0].startswith('%%revision -m "add venues"\n')
    assert "op.create_table('venues'" in next_cells[0]

    # The cell placed below, run as it is, changes nothing: it is the revision.
    assert ip_with_db.ok(next_cells[0]).action == "unchanged"
    # Run All: the line again finds the revision by its message.
    again = ip_with_db.ok('%migrate revision --autogenerate -m "add venues"')
    assert "is unchanged: nothing written" in repr(again)
    assert len(list(Path("migrations/versions").glob("*.py"))) == 1

    pending = ip_with_db.run("%migrate check")
    assert pending.failed and "NotAtHead" in pending.output and "%migrate upgrade head" in pending.output
    ip_with_db.ok("%migrate upgrade head")
    assert tables(url) == {"venues"}
    assert "No pending model changes" in repr(ip_with_db.ok("%migrate check"))
    assert "is already applied: nothing written" in repr(ip_with_db.ok('%migrate revision --autogenerate -m "add venues"'))

    ip_with_db.ok(ADD_CITY)
    failed = ip_with_db.run("%migrate check")
    assert failed.failed
    assert "PendingModelChanges: 1 pending model change" in failed.output
    assert "add column venues city" in " ".join(failed.output.split()) and "NaN" not in failed.output
    ip_with_db.ok("d = %migrate diff")
    d = ip_with_db.ns["d"]
    assert list(d.table.columns) == ["what", "table", "column", "from", "to"]
    assert d.table.to_dict("records") == [{"what": "add column", "table": "venues", "column": "city", "from": None, "to": "VARCHAR(40)"}]
    assert "city" not in columns(url, "venues")  # diff writes nothing

    second = ip_with_db.ok('%migrate revision --autogenerate -m "add city"')
    assert second.revision.parents == (result.revision.revision,)
    ip_with_db.ok("%migrate upgrade")
    assert "city" in columns(url, "venues")
    nothing = ip_with_db.ok('%migrate revision --autogenerate -m "nothing new"')
    assert repr(nothing).startswith("No changes: the models match")
    assert "Nothing to generate, nothing written" in repr(nothing)
    assert len(list(Path("migrations/versions").glob("*.py"))) == 2


def test_unmanaged_tables_are_left_alone_and_said_to_be(ip_with_db: Shell, next_cells: list[str]) -> None:
    url = ip_with_db.ns["TEST_DB_URL"]
    ip_with_db.ok(MODELS_2)
    ip_with_db.ok("import pandas as pd\npd.DataFrame({'x': [1, 2, 3]}).to_sql('scratch', sa.create_engine(TEST_DB_URL), index=False)")
    gen = ip_with_db.ok('%migrate revision --autogenerate -m "add venues"')
    assert "scratch" not in gen.cell
    assert "Left alone 1 table the models do not know: scratch" in repr(gen)
    ip_with_db.ok("%migrate upgrade")
    ok = ip_with_db.ok("%migrate check")
    assert "Left alone 1 table" in repr(ok)
    asked = ip_with_db.ok("%migrate diff --include-unmanaged")
    assert list(asked.table["what"]) == ["drop table"] and list(asked.table["table"]) == ["scratch"]
    assert "scratch" in tables(url)


def test_schema_views(ip_with_db: Shell) -> None:
    ip_with_db.ok(MODELS_2 + ADD_CITY)
    ip_with_db.ok("Venue.__table__.append_constraint(sa.UniqueConstraint('name', name='uq_venues_name'))")
    ip_with_db.ok(
        "class Event(Base):\n"
        "    __tablename__ = 'events'\n"
        "    id: Mapped[int] = mapped_column(primary_key=True)\n"
        "    venue_id: Mapped[int] = mapped_column(sa.ForeignKey('venues.id'), index=True)\n"
        "    kind: Mapped[str] = mapped_column(sa.String(20), server_default='talk')\n"
    )
    ip_with_db.ok('%migrate revision --autogenerate -m "models"')
    ip_with_db.ok("%migrate upgrade")
    ip_with_db.ok("import pandas as pd\npd.DataFrame({'id': [1, 2], 'name': ['Hall', 'Club'], 'city': ['Oslo', None]}).to_sql('venues', sa.create_engine(TEST_DB_URL), index=False, if_exists='append')")

    overview = ip_with_db.ok("%migrate schema")
    assert overview.to_dict("records") == [{"name": "events", "columns": 3, "rows": 0}, {"name": "venues", "columns": 3, "rows": 2}]

    venues = ip_with_db.ok("%migrate schema venues")
    assert list(venues.columns.columns) == ["name", "type", "nullable", "default", "primary key"]
    assert list(venues.columns["name"]) == ["id", "name", "city"]
    assert list(venues.columns["primary key"]) == [True, False, False]
    assert list(venues.columns["nullable"]) == [False, False, True]
    assert "uq_venues_name" in list(venues.indexes["name"])

    events = ip_with_db.ok("%migrate schema events")
    assert "talk" in str(events.columns.loc[2, "default"])
    assert list(events.foreign_keys["references"]) == ["venues(id)"]
    assert "ix_events_venue_id" in list(events.indexes["name"])
    text, page = repr(events), events._repr_html_()
    assert "foreign keys:" in text and "<table" in page and "NaN" not in text and "NaN" not in page

    missing = ip_with_db.run("%migrate schema venue")
    assert missing.failed and "No table 'venue'" in missing.output and "venues" in missing.output


# ---------------------------------------------------------------------- finding the metadata and bad input


def test_no_models_is_a_one_line_error(ip_with_db: Shell) -> None:
    run = ip_with_db.run('%migrate revision --autogenerate -m "x"')
    assert run.failed
    assert run.output.strip().startswith("MetadataError: No SQLAlchemy models in the notebook")
    assert len(run.output.strip().splitlines()) == 1
    assert not Path("migrations/versions").exists() or not list(Path("migrations/versions").glob("*.py"))


def test_several_metadata_names_candidates_and_metadata_picks_one(ip_with_db: Shell) -> None:
    url = ip_with_db.ns["TEST_DB_URL"]
    ip_with_db.ok(MODELS_2)
    ip_with_db.ok("audit = sa.MetaData()\nsa.Table('audit_log', audit, sa.Column('id', sa.Integer, primary_key=True))")
    run = ip_with_db.run("%migrate diff")
    assert run.failed
    line = run.output.strip()
    assert line.startswith("MetadataError: 2 different MetaData in the notebook: Base (1 table), audit (1 table).")
    assert "--metadata" in line and len(line.splitlines()) == 1

    d = ip_with_db.ok("%migrate diff --metadata audit")
    assert list(d.table["table"]) == ["audit_log"]
    ip_with_db.ok('%migrate revision --autogenerate -m "audit" --metadata audit')
    ip_with_db.ok("%migrate upgrade")
    assert tables(url) == {"audit_log"}


def test_metadata_name_unknown_or_not_metadata(ip_with_db: Shell) -> None:
    ip_with_db.ok(MODELS_2 + "\nnumber = 3")
    unknown = ip_with_db.run("%migrate check --metadata Bsae")
    assert unknown.failed
    assert "MetadataError: --metadata Bsae: there is no variable 'Bsae' in the notebook. Candidates: Base (1 table)." in unknown.output
    wrong = ip_with_db.run("%migrate revision --autogenerate -m x --metadata number")
    assert wrong.failed
    assert "MetadataError: --metadata number: number is a int, not a MetaData, a declarative base, Flask-SQLAlchemy's db or SQLModel." in wrong.output


def test_autogenerate_refuses_a_database_not_at_head(ip_with_db: Shell) -> None:
    url = ip_with_db.ns["TEST_DB_URL"]
    ip_with_db.ok(MODELS_2)
    ip_with_db.ok('%migrate revision --autogenerate -m "add venues"')
    ip_with_db.ok(ADD_CITY)
    run = ip_with_db.run('%migrate revision --autogenerate -m "add city"')
    assert run.failed
    out = run.output.strip()
    assert out.startswith("NotAtHead: Target database is not up to date:") and "is at base" in out
    assert "%migrate upgrade head" in out and len(out.splitlines()) == 1
    assert len(list(Path("migrations/versions").glob("*.py"))) == 1
    assert version(url) == set()


def test_models_that_do_not_compile_for_the_database(ip_with_db: Shell) -> None:
    url = ip_with_db.ns["TEST_DB_URL"]
    dialect = url.split(":")[0].split("+")[0]
    if dialect == "postgresql":
        # A MySQL-only type PostgreSQL cannot render.
        ip_with_db.ok(MODELS_2 + "\nfrom sqlalchemy.dialects import mysql\nVenue.__table__.append_column(sa.Column('flags', mysql.SET('a', 'b')))")
    else:
        ip_with_db.ok(MODELS_2 + "\nVenue.__table__.append_column(sa.Column('tags', sa.ARRAY(sa.String(20))))")
    run = ip_with_db.run('%migrate revision --autogenerate -m "add venues"')
    assert run.failed
    out = run.output.strip()
    assert out.startswith("MetadataError: Table 'venues' does not compile for ")
    assert "object at 0x" not in out and len(out.splitlines()) == 1 and len(out) < 400
    assert "Nothing was written" in out
    assert not list(Path("migrations/versions").glob("*.py"))


def test_edited_models_offer_new_code_without_overwriting(ip_with_db: Shell, next_cells: list[str]) -> None:
    ip_with_db.ok(MODELS_2)
    first = ip_with_db.ok('%migrate revision --autogenerate -m "add venues"')
    ip_with_db.ok(ADD_CITY)
    again = ip_with_db.ok('%migrate revision --autogenerate -m "add venues"')
    assert "exists and was kept: nothing written" in repr(again)
    assert "city" in again.cell and "city" not in Path(first.revision.path).read_text()
    assert next_cells[-1] == again.cell
    # Running the offered cell rewrites the unapplied revision in place.
    assert ip_with_db.ok(next_cells[-1]).action == "rewrote"
    assert "city" in Path(first.revision.path).read_text()


def test_help_lists_the_new_commands(ip_empty: Shell) -> None:
    ip_empty.ok("%migrate -h")
    out = ip_empty.run("%migrate -h").output
    for name in ("check", "diff", "schema"):
        assert f"  {name} " in out
    assert "--autogenerate" in ip_empty.run("%migrate revision -h").output
    assert "--include-unmanaged" in ip_empty.run("%migrate check -h").output
