"""`%migrate init --metadata myapp.models:Base`: the folder's env.py gives Alembic the models,
so `alembic check` and `alembic revision --autogenerate` work on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from migmagic import environment, settings
from migmagic.errors import ConfigurationError, UsageError

ALEMBIC = str(Path(sys.executable).parent / "alembic")

MODELS = '''import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Venue(Base):
    __tablename__ = "venues"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80))
'''


def alembic(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    """The alembic command as a user runs it from the project's folder (not from the tests')."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["DATABASE_URL"] = url
    return subprocess.run([ALEMBIC, "-c", "migrations/alembic.ini", *args], env=env, capture_output=True, text=True)


@pytest.fixture
def project(workdir: Path) -> Path:
    """A project folder with its models in myapp/models.py."""
    (workdir / "myapp").mkdir()
    (workdir / "myapp" / "__init__.py").write_text("")
    (workdir / "myapp" / "models.py").write_text(MODELS)
    return workdir


def test_alembic_check_and_autogenerate_use_the_named_models(project: Path, sqlite_url: str) -> None:
    environment.write(Path("migrations"), sqlite_url, metadata="myapp.models:Base")
    assert "migmagic.metadata = myapp.models:Base" in Path("migrations/alembic.ini").read_text()
    assert settings.folder_metadata("migrations") == "myapp.models:Base"

    pending = alembic("check", url=sqlite_url)
    assert pending.returncode != 0 and "New upgrade operations detected" in pending.stderr + pending.stdout, pending.stderr
    written = alembic("revision", "--autogenerate", "-m", "create venues", url=sqlite_url)
    assert written.returncode == 0, written.stderr
    [revision] = Path("migrations/versions").glob("*_create_venues.py")
    assert "op.create_table('venues'" in revision.read_text()
    assert alembic("upgrade", "head", url=sqlite_url).returncode == 0
    clean = alembic("check", url=sqlite_url)
    assert clean.returncode == 0 and "No new upgrade operations detected" in clean.stdout + clean.stderr, clean.stderr


def test_alembic_check_ignores_migmagic_bookkeeping(project: Path, sqlite_url: str) -> None:
    from migmagic import Migrator

    m = Migrator.init(sqlite_url, metadata="myapp.models:Base")
    try:
        m.autogenerate("create venues")
        m.upgrade("head")  # the ledger and the version table's watch are in the database now
    finally:
        m.close()
    clean = alembic("check", url=sqlite_url)
    assert clean.returncode == 0 and "No new upgrade operations detected" in clean.stdout + clean.stderr, clean.stderr


def test_models_the_folder_names_that_do_not_import_are_one_clear_error(workdir: Path, sqlite_url: str) -> None:
    from migmagic import Migrator
    from migmagic.errors import MetadataError

    m = Migrator.init(sqlite_url, metadata="nosuchapp.models:Base")
    try:
        with pytest.raises(MetadataError, match=r"nosuchapp.models:Base.*cannot be imported: No module named 'nosuchapp'"):
            m.autogenerate("create venues")
        assert list(Path("migrations/versions").glob("*.py")) == []
    finally:
        m.close()


def test_without_metadata_the_ini_says_how_to_name_the_models(workdir: Path, sqlite_url: str) -> None:
    environment.write(Path("migrations"), sqlite_url)
    ini = Path("migrations/alembic.ini").read_text()
    assert "# migmagic.metadata = myapp.models:Base" in ini
    assert settings.folder_metadata("migrations") is None


def test_metadata_named_later_is_recorded_in_the_folder(project: Path, sqlite_url: str) -> None:
    environment.write(Path("migrations"), sqlite_url)
    assert environment.write(Path("migrations"), sqlite_url, metadata="myapp.models:Base") is True
    assert settings.folder_metadata("migrations") == "myapp.models:Base"
    assert environment.write(Path("migrations"), sqlite_url, metadata="myapp.models:Base") is False
    assert "New upgrade operations detected" in alembic("check", url=sqlite_url).stderr


@pytest.mark.parametrize("spec", ["myapp.models", "myapp.models:", ":Base", "my app:Base", "myapp..models:Base"])
def test_metadata_must_be_module_colon_attribute(workdir: Path, sqlite_url: str, spec: str) -> None:
    with pytest.raises(UsageError, match="is not module:attribute") as err:
        environment.write(Path("migrations"), sqlite_url, metadata=spec)
    assert "--metadata myapp.models:Base" in str(err.value.hint)
    assert not Path("migrations").exists()


def test_a_folder_migmagic_did_not_write_is_not_changed(workdir: Path, sqlite_url: str) -> None:
    folder = Path("db")
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text("target_metadata = None\n")
    (folder / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s\n")
    with pytest.raises(ConfigurationError, match="Set target_metadata"):
        environment.write(folder, sqlite_url, metadata="myapp.models:Base")
    assert (folder / "alembic.ini").read_text() == "[alembic]\nscript_location = %(here)s\n"
