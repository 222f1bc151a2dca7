"""Where things live: which URL and folder a session uses, and how passwords are masked."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest
from conftest import Shell

from migmagic import settings
from migmagic.errors import ConfigurationError


@pytest.mark.parametrize(
    "url, masked, password",
    [
        ("postgresql://app:secret@db/app", "postgresql://app:***@db/app", "secret"),
        ("postgresql+psycopg://app:p@ss/w%40rd@db:5432/app", "postgresql+psycopg://app:***@db:5432/app", "p@ss/w@rd"),
        ("mysql+pymysql://root@127.0.0.1/test", "mysql+pymysql://root@127.0.0.1/test", None),
        ("sqlite:///app.db", "sqlite:///app.db", None),
        ("postgresql://u:pw@h/db?sslmode=require", "postgresql://u:***@h/db?sslmode=require", "pw"),
        ("postgresql://u:pa?ss@h/db?sslmode=require", "postgresql://u:***@h/db?sslmode=require", "pa?ss"),
        ("postgresql://me@srv:pw@h/db", "postgresql://me@srv:***@h/db", "pw"),
        # The password runs to the last '@': an '@' in the query masks too much, never too little.
        ("postgresql://u:pw@h/db?application_name=me@laptop", "postgresql://u:***@laptop", "pw@h/db?application_name=me"),
    ],
)
def test_mask_and_password(url: str, masked: str, password: str | None) -> None:
    assert settings.mask_url(url) == masked
    assert settings.password_of(url) == password


def test_scrub_removes_every_spelling() -> None:
    url = "postgresql://u:a%40b%2Fc@h/db"
    text = "failed for a@b/c and a%40b%2Fc"
    assert settings.scrub(text, url) == "failed for *** and ***"


def test_default_is_sqlite_and_migrations(workdir: Path) -> None:
    loc = settings.resolve()
    assert loc.url == "sqlite:///migmagic.db" and loc.url_source == "default"
    assert loc.folder == workdir / "migrations"


def test_url_precedence(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "db").mkdir()
    (workdir / "alembic.ini").write_text("[alembic]\nscript_location = db\nsqlalchemy.url = sqlite:///from-ini.db\n")
    assert settings.resolve().url == "sqlite:///from-ini.db"
    monkeypatch.setenv("DATABASE_URL", "sqlite:///from-env.db")
    assert settings.resolve().url == "sqlite:///from-env.db"
    assert settings.resolve(configured_url="sqlite:///from-config.db").url == "sqlite:///from-config.db"
    assert settings.resolve("sqlite:///given.db", configured_url="sqlite:///c.db").url == "sqlite:///given.db"


def test_existing_alembic_project_is_adopted(workdir: Path, monkeypatch: Any) -> None:
    (workdir / "db_migrations").mkdir()
    (workdir / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s/db_migrations\n")
    loc = settings.resolve()
    assert loc.folder == workdir / "db_migrations"
    assert loc.adopted_ini == workdir / "alembic.ini"


def test_pyproject_tool_alembic_is_adopted(workdir: Path) -> None:
    (workdir / "alembic").mkdir()
    (workdir / "pyproject.toml").write_text('[tool.alembic]\nscript_location = "%(here)s/alembic"\n')
    assert settings.resolve().folder == workdir / "alembic"


@pytest.mark.parametrize(
    "settings_file, text",
    [
        ("alembic.ini", "[alembic]\nscript_location = %(here)s/db\nversion_locations = %(here)s/db/versions %(here)s/more\n"),
        ("alembic.ini", "[alembic]\nscript_location = db\nrecursive_version_locations = true\n"),
        ("pyproject.toml", '[tool.alembic]\nscript_location = "db"\nversion_locations = ["more"]\n'),
        ("pyproject.toml", '[tool.alembic]\nscript_location = "db"\nsourceless = true\n'),
    ],
)
def test_project_with_revisions_elsewhere_is_refused(workdir: Path, settings_file: str, text: str) -> None:
    """migmagic reads <script_location>/versions only: it refuses rather than see half the graph."""
    (workdir / settings_file).write_text(text)
    with pytest.raises(ConfigurationError) as err:
        settings.resolve()
    message = str(err.value)
    assert message.startswith(f"{workdir / settings_file} sets ") and "\n" not in message
    assert f"migmagic reads revisions only from {workdir / 'db' / 'versions'}" in message


def test_project_spelling_out_the_default_versions_folder_is_adopted(workdir: Path) -> None:
    (workdir / "db").mkdir()
    (workdir / "alembic.ini").write_text(
        "[alembic]\nscript_location = %(here)s/db\nversion_locations = %(here)s/db/versions\nrecursive_version_locations = false\n"
    )
    assert settings.resolve().folder == workdir / "db"


def test_adopted_project_runs_without_its_env_py(workdir: Path, sqlite_url: str) -> None:
    """An `alembic init` project: migmagic uses its versions/ in-process."""
    import subprocess

    alembic = str(Path(sys.executable).parent / "alembic")
    subprocess.run([alembic, "init", "alembic"], check=True, capture_output=True)
    subprocess.run([alembic, "revision", "-m", "made by the cli"], check=True, capture_output=True)
    from migmagic import Migrator

    m = Migrator(sqlite_url)
    assert m.folder == workdir / "alembic"
    assert list(m.history()["message"]) == ["made by the cli"]
    assert len(m.upgrade("head").steps) == 1


def test_reprs_never_show_the_password(workdir: Path) -> None:
    from migmagic import Migrator

    m = Migrator("postgresql+psycopg://app:hunter2@127.0.0.1:1/x")
    for text in (repr(m), repr(m.location), repr(m.db), str(m.location)):
        assert "hunter2" not in text and "***" in text


def test_malformed_pyproject_is_one_line_naming_the_file(ip_empty: Shell, workdir: Path) -> None:
    (workdir / "pyproject.toml").write_text('[tool.alembic\nscript_location = "db"\n')
    with pytest.raises(ConfigurationError) as caught:
        settings.resolve()
    assert caught.value.path == str(workdir / "pyproject.toml")
    assert str(caught.value).startswith(f"{workdir / 'pyproject.toml'} is not valid TOML: ")
    run = ip_empty.run("%migrate status")
    assert isinstance(run.error, ConfigurationError)
    assert run.output.strip().splitlines() == [f"ConfigurationError: {caught.value}"]


def test_malformed_alembic_ini_is_one_line_naming_the_file(workdir: Path) -> None:
    (workdir / "alembic.ini").write_text("script_location = db\n")
    with pytest.raises(ConfigurationError, match="alembic.ini is not a valid ini file: ") as caught:
        settings.resolve()
    assert caught.value.path == str(workdir / "alembic.ini")
    assert len(caught.value._render_traceback_()) == 1


def test_python_310_reads_pyproject_with_tomli(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before 3.11 there is no tomllib: the tomli package (same API) reads pyproject.toml."""
    import tomllib

    reads: list[str] = []
    tomli = types.ModuleType("tomli")
    tomli.TOMLDecodeError = tomllib.TOMLDecodeError  # type: ignore[attr-defined]
    tomli.load = lambda f: reads.append(f.name) or tomllib.load(f)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tomli", tomli)
    monkeypatch.setattr(sys, "version_info", (3, 10, 13, "final", 0))
    (workdir / "alembic").mkdir()
    (workdir / "pyproject.toml").write_text('[tool.alembic]\nscript_location = "%(here)s/alembic"\n')
    assert settings.resolve().folder == workdir / "alembic"
    (workdir / "pyproject.toml").write_text("[tool.alembic\n")
    with pytest.raises(ConfigurationError, match="is not valid TOML"):
        settings.resolve()
    assert len(reads) == 2


def test_scrub_removes_the_spellings_of_a_failed_statement() -> None:
    url = "postgresql://u:it's%2510%25@h/db"  # the password: it's%10%
    statement = "SELECT 'it''s%%10%%' FROM t -- it's%10%"
    assert settings.scrub(statement, url) == "SELECT '***' FROM t -- ***"
