"""A real Flask app (Flask-SQLAlchemy + Flask-Migrate) adopted in a notebook: its ``db`` is the models.

The project is made the way its users make it: ``app.py`` with ``db = SQLAlchemy(app)``
and ``Migrate(app, db)``, then ``flask db init``, ``flask db migrate`` and ``flask db
upgrade``. The notebook adopts that folder and database, imports ``db``, and
``check``, ``diff`` and ``revision --autogenerate`` compare with ``db``,
``db.Model``, ``app:db``, or what they find in the notebook.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Shell, columns, tables

APP = '''import sqlalchemy as sa
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///app.db"  # Flask-SQLAlchemy: in the instance folder
db = SQLAlchemy(app)
migrate = Migrate(app, db)


class User(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80))
'''

TAG = """
class Tag(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(sa.String(40))
"""

URL = "sqlite:///instance/app.db"


def flask(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``flask`` command as the app's developers run it, from the project's folder."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = [str(Path(sys.executable).parent / "flask"), "--app", "app", *args]
    run = subprocess.run(command, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return run


def make_flask_project(folder: Path) -> None:
    """``app.py``, then the project's own ``flask db init``, ``flask db migrate``, ``flask db upgrade``."""
    (folder / "app.py").write_text(APP)
    flask("db", "init")
    flask("db", "migrate", "-m", "users")
    flask("db", "upgrade")
    assert (folder / "instance" / "app.db").exists()


@pytest.fixture(scope="module")
def made_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project made once by its own commands (they take seconds), copied for each test."""
    folder = tmp_path_factory.mktemp("flask-project")
    old = Path.cwd()
    os.chdir(folder)
    try:
        make_flask_project(folder)
    finally:
        os.chdir(old)
    return folder


@pytest.fixture
def flask_project(made_project: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A Flask-Migrate project at ``users``; its ``app`` module importable as from a notebook started there."""
    shutil.copytree(made_project, workdir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.syspath_prepend(str(workdir))
    sys.modules.pop("app", None)
    yield workdir
    sys.modules.pop("app", None)


@pytest.fixture
def ip_flask(ip_empty: Shell, flask_project: Path) -> Shell:
    """The notebook: the project's folder and database adopted, its models imported."""
    ip_empty.ok(f"%migrate init {URL}")
    ip_empty.ok("import sqlalchemy as sa\nfrom sqlalchemy.orm import Mapped, mapped_column\nfrom app import db")
    return ip_empty


@pytest.mark.parametrize("name", ["db", "db.Model", "app:db"])
def test_check_diff_and_autogenerate_with_the_apps_db(ip_flask: Shell, name: str) -> None:
    option = f"--metadata {name}"
    assert "No pending model changes" in repr(ip_flask.ok(f"%migrate check {option}"))

    ip_flask.ok(TAG)
    d = ip_flask.ok(f"%migrate diff {option}")
    assert d.table.to_dict("records")[0]["what"] == "add table" and list(d.table["table"]) == ["tag"]
    pending = ip_flask.run(f"%migrate check {option}")
    assert pending.failed and "PendingModelChanges: 1 pending model change" in pending.output

    written = ip_flask.ok(f'%migrate revision --autogenerate -m "tags" {option}')
    assert "op.create_table('tag'" in written.cell
    ip_flask.ok("%migrate upgrade head")
    assert columns(URL, "tag") == ["id", "label"]
    assert "No pending model changes" in repr(ip_flask.ok(f"%migrate check {option}"))


def test_without_metadata_the_notebook_finds_db(ip_flask: Shell) -> None:
    assert "No pending model changes: sqlite:///instance/app.db matches the models (1 table)" in repr(ip_flask.ok("%migrate check"))
    ip_flask.ok(TAG)
    assert list(ip_flask.ok("%migrate diff").table["table"]) == ["tag"]
    ip_flask.ok('%migrate revision --autogenerate -m "tags"')
    ip_flask.ok("%migrate upgrade head")
    assert {"user", "tag"} <= tables(URL)
    # The project's own command runs the revision written in the notebook: down and up again.
    flask("db", "downgrade")
    assert "tag" not in tables(URL)
    flask("db", "upgrade")
    assert "tag" in tables(URL)


def test_db_and_a_plain_base_together_is_one_line_naming_both(ip_flask: Shell) -> None:
    ip_flask.ok(
        "from sqlalchemy.orm import DeclarativeBase\n"
        "class Base(DeclarativeBase):\n    pass\n"
        "class Venue(Base):\n    __tablename__ = 'venues'\n    id: Mapped[int] = mapped_column(primary_key=True)\n"
    )
    run = ip_flask.run("%migrate check")
    line = run.output.strip()
    assert run.failed and len(line.splitlines()) == 1, run.output
    assert line == (
        "MetadataError: 2 different MetaData in the notebook: db (1 table), Base (1 table). "
        "Choose one with --metadata NAME, e.g. --metadata db."
    )


def test_names_that_lead_nowhere_are_one_line_naming_the_fix(ip_flask: Shell) -> None:
    wrong = ip_flask.run("%migrate check --metadata app:nodb")
    assert wrong.failed and len(wrong.output.strip().splitlines()) == 1
    assert wrong.output.startswith("MetadataError: --metadata app:nodb cannot be imported: module 'app' has no attribute 'nodb'.")
    flask_app = ip_flask.run("%migrate check --metadata app:app")
    assert "MetadataError: --metadata app:app is a Flask, not a MetaData, a declarative base, Flask-SQLAlchemy's db or SQLModel." in flask_app.output
    attr = ip_flask.run("%migrate diff --metadata db.Modle")
    assert attr.output.startswith("MetadataError: --metadata db.Modle: db has no attribute 'Modle'. Candidates: db (1 table).")


def test_verify_compares_head_with_app_db(ip_flask: Shell) -> None:
    checked = ip_flask.ok("%migrate verify --metadata app:db")
    rows = {row["check"]: row for row in checked.checks.to_dict("records")}
    assert rows["models match head"]["result"] == "ok", rows


def test_init_metadata_app_db_names_the_models_for_the_notebook_and_the_alembic_command(ip_empty: Shell, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Flask app without Flask-Migrate: migmagic's folder names app:db once, for its commands and alembic's."""
    (workdir / "app.py").write_text(APP)
    (workdir / "instance").mkdir()
    monkeypatch.syspath_prepend(str(workdir))
    monkeypatch.delitem(sys.modules, "app", raising=False)
    ip_empty.ok(f"%migrate init {URL} --metadata app:db")
    written = ip_empty.ok('%migrate revision --autogenerate -m "users"')  # no --metadata: the folder names it
    assert "op.create_table('user'" in written.cell
    ip_empty.ok("%migrate upgrade head")
    assert "No pending model changes" in repr(ip_empty.ok("%migrate check"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["DATABASE_URL"] = URL
    alembic = str(Path(sys.executable).parent / "alembic")
    run = subprocess.run([alembic, "-c", "migrations/alembic.ini", "check"], env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "No new upgrade operations detected" in run.stdout + run.stderr, run.stderr
    sys.modules.pop("app", None)
