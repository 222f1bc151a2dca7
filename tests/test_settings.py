"""Where things live: which URL and folder a session uses, and how passwords are masked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from migmagic import settings


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
    (workdir / "alembic.ini").write_text("[alembic]\nscript_location = db\nsqlalchemy.url = sqlite:///from-ini.db\n")
    assert settings.resolve().url == "sqlite:///from-ini.db"
    monkeypatch.setenv("DATABASE_URL", "sqlite:///from-env.db")
    assert settings.resolve().url == "sqlite:///from-env.db"
    assert settings.resolve(configured_url="sqlite:///from-config.db").url == "sqlite:///from-config.db"
    assert settings.resolve("sqlite:///given.db", configured_url="sqlite:///c.db").url == "sqlite:///given.db"


def test_existing_alembic_project_is_adopted(workdir: Path, monkeypatch: Any) -> None:
    (workdir / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s/db_migrations\n")
    loc = settings.resolve()
    assert loc.folder == workdir / "db_migrations"
    assert loc.adopted_ini == workdir / "alembic.ini"


def test_pyproject_tool_alembic_is_adopted(workdir: Path) -> None:
    (workdir / "pyproject.toml").write_text('[tool.alembic]\nscript_location = "%(here)s/alembic"\n')
    assert settings.resolve().folder == workdir / "alembic"


def test_adopted_project_runs_without_its_env_py(workdir: Path, sqlite_url: str) -> None:
    """An `alembic init` project: migmagic uses its versions/ in-process."""
    import subprocess
    import sys

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
