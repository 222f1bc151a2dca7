"""Adopting a project as it ships: `script_location = package:path` resolved as Alembic resolves it,
never a folder created while adopting, and async driver URLs run through the matching sync driver."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import Shell, tables, version

from migmagic import Migrator, settings
from migmagic.errors import ConfigurationError

REVISION = '''"""create orders

Revision ID: 0a1b2c3d4e5f
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0a1b2c3d4e5f"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("orders", sa.Column("id", sa.Integer, primary_key=True), sa.Column("item", sa.String(80)))


def downgrade():
    op.drop_table("orders")
'''

ASYNC_ENV = '''# The project's own env.py runs migrations with an async engine; migmagic never runs it.
import asyncio
from sqlalchemy.ext.asyncio import async_engine_from_config
raise RuntimeError("migmagic must not execute env.py")
'''


def make_package(root: Path, *parts: str) -> tuple[str, Path]:
    """A package with a migrations folder at ``parts`` inside it; its name and that folder."""
    name = f"shopapp_{uuid.uuid4().hex[:8]}"
    package = root / name
    folder = package.joinpath(*parts)
    (folder / "versions").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (folder / "env.py").write_text(ASYNC_ENV)
    (folder / "versions" / "0a1b2c3d4e5f_create_orders.py").write_text(REVISION)
    return name, folder


def adopt(workdir: Path, script_location: str, url: str, extra: str = "") -> None:
    (workdir / "alembic.ini").write_text(f"[alembic]\nscript_location = {script_location}\n{extra}sqlalchemy.url = {url}\n")


@pytest.mark.parametrize("layout", ["on sys.path", "prepend_sys_path"])
def test_package_resource_folder_is_adopted_as_alembic_reads_it(
    layout: str, workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if layout == "on sys.path":
        site = tmp_path / "site"
        name, folder = make_package(site, "db", "migrations")
        monkeypatch.syspath_prepend(str(site))
        location = f"{name}:db:migrations"
        extra = ""
    else:  # a src/ layout, found through the project's prepend_sys_path as the alembic command finds it
        name, folder = make_package(workdir / "src", "migrations")
        location = f"{name}:migrations"
        extra = "prepend_sys_path = src\npath_separator = os\n"
    adopt(workdir, location, "sqlite+aiosqlite:///shop.db", extra)

    m = Migrator()
    assert m.folder == folder
    assert m.location.adopted_ini == workdir / "alembic.ini"
    assert list(m.history()["revision"]) == ["0a1b2c3d4e5f"]
    assert len(m.upgrade("head").steps) == 1
    m.close()
    assert tables("sqlite:///shop.db") == {"orders"}
    made = sorted(p.name for p in workdir.iterdir() if p.is_dir() and not p.name.endswith(".migmagic-restore"))  # restore points are not a revision folder
    assert made == (["src"] if layout != "on sys.path" else [])


def test_async_urls_run_through_their_own_driver_on_sqlite(ip_empty: Shell, workdir: Path) -> None:
    name, folder = make_package(workdir, "migrations")
    adopt(workdir, f"{name}:migrations", "sqlite+aiosqlite:///shop.db", "prepend_sys_path = .\npath_separator = os\n")
    ip_empty.ok("%migrate upgrade head")
    status = ip_empty.ok("%migrate status")
    assert dict(status.fields)["database"] == "sqlite+aiosqlite:///shop.db"  # issue 25: no sync driver swapped in
    assert version("sqlite:///shop.db") == {"0a1b2c3d4e5f"}
    assert not list(folder.parent.glob("*.db")) and "MissingGreenlet" not in repr(status)


def test_async_urls_run_through_their_own_driver_on_postgresql(
    workdir: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, _ = make_package(workdir, "migrations")
    adopt(workdir, f"{name}:migrations", "driver://user:pass@localhost/dbname", "prepend_sys_path = .\npath_separator = os\n")
    async_url = pg_url.replace("postgresql+psycopg://", "postgresql+asyncpg://", 1)
    monkeypatch.setenv("DATABASE_URL", async_url)
    m = Migrator()
    assert m.upgrade("head").steps["revision"].tolist() == ["0a1b2c3d4e5f"]
    fields = dict(m.status().fields)
    assert fields["database"] == async_url
    assert m.db.engine.dialect.driver == "asyncpg"
    m.close()
    assert tables(pg_url) == {"orders"} and version(pg_url) == {"0a1b2c3d4e5f"}


@pytest.mark.parametrize(
    "url, runs_as",
    [
        ("sqlite+aiosqlite:///app.db", "sqlite+aiosqlite:///app.db"),
        ("postgresql+asyncpg://app@db/shop?ssl=require", "postgresql+asyncpg://app@db/shop?ssl=require"),
        ("postgresql+asyncpg://app:p@ss/w@db/shop", "postgresql+asyncpg://app:p%40ss%2Fw@db/shop"),
        ("mysql+asyncmy://root:pw@db/shop?charset=utf8mb4", "mysql+asyncmy://root:pw@db/shop?charset=utf8mb4"),
        ("postgresql+psycopg://app@db/shop?ssl=require", "postgresql+psycopg://app@db/shop?ssl=require"),
    ],
)
def test_engine_url_keeps_the_driver_the_user_named(url: str, runs_as: str) -> None:
    assert settings.engine_url(url) == runs_as


def test_async_url_password_stays_masked() -> None:
    from migmagic.database import Database

    db = Database("postgresql+asyncpg://app:hunter2@db/shop")
    assert "hunter2" not in db.described_url + db.masked_url + repr(db)
    assert db.described_url == "postgresql+asyncpg://app:***@db/shop"
    assert db.is_async and not Database("postgresql+psycopg://app:hunter2@db/shop").is_async


def test_missing_folder_is_one_line_and_never_created(ip_empty: Shell, workdir: Path) -> None:
    adopt(workdir, "%(here)s/alembic", "sqlite:///shop.db")
    with pytest.raises(ConfigurationError, match=r"alembic.ini sets script_location = /.*/alembic, which is not a folder\. Fix script_location"):
        Migrator()
    run = ip_empty.run("%migrate status")
    assert isinstance(run.error, ConfigurationError) and len(run.output.strip().splitlines()) == 1
    assert ip_empty.run("%migrate init").failed
    assert sorted(p.name for p in workdir.iterdir()) == ["alembic.ini"]


def test_package_without_the_folder_is_one_line_and_never_created(workdir: Path, monkeypatch: Any) -> None:
    name, folder = make_package(workdir, "migrations")
    monkeypatch.syspath_prepend(str(workdir))
    adopt(workdir, f"{name}:alembic", "sqlite:///shop.db")
    with pytest.raises(ConfigurationError, match=rf"sets script_location = {name}:alembic, which is not a folder \(/.*/{name}/alembic\)\. Fix script_location"):
        Migrator()
    assert not (workdir / name / "alembic").exists()
    assert not any(":" in p.name for p in workdir.iterdir())


def test_package_that_is_not_importable_is_one_line(workdir: Path) -> None:
    adopt(workdir, "no_such_shopapp:migrations", "sqlite:///shop.db")
    with pytest.raises(ConfigurationError, match="'no_such_shopapp' is not an importable package here") as err:
        Migrator()
    assert "pip install -e ." in str(err.value.hint)
    assert sorted(p.name for p in workdir.iterdir()) == ["alembic.ini"]
