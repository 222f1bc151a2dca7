"""A generated revision imports every module its code names, and runs in a fresh process.

Alembic renders a type from outside SQLAlchemy by its module's path
(``moneytypes.Money(...)``) without importing that module; the revision
migmagic writes imports it. A type defined in the notebook cannot be imported
by any file: autogenerate refuses it and writes nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Shell, columns

MONEY = '''import sqlalchemy as sa


class Money(sa.types.TypeDecorator):
    impl = sa.Numeric(12, 2)
    cache_ok = True
'''

PRICES = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from moneytypes import Money

class Base(DeclarativeBase):
    pass

class Price(Base):
    __tablename__ = "prices"
    id: Mapped[int] = mapped_column(primary_key=True)
    amount = mapped_column(Money())
"""

LOCAL_TYPE = """
class Code(sa.types.TypeDecorator):
    impl = sa.String(10)
    cache_ok = True

class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    code = mapped_column(Code())
"""


@pytest.fixture
def ip_money(ip_empty: Shell, workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Shell:
    (workdir / "moneytypes.py").write_text(MONEY)
    monkeypatch.syspath_prepend(str(workdir))
    monkeypatch.delitem(sys.modules, "moneytypes", raising=False)
    ip_empty.ok(f"%migrate init sqlite:///{tmp_path / 'notebook.db'}")
    ip_empty.ok(PRICES)
    return ip_empty


def test_a_type_from_a_project_module_is_imported(ip_money: Shell, tmp_path: Path) -> None:
    written = ip_money.ok('%migrate revision --autogenerate -m "prices"')
    [path] = Path("migrations/versions").glob("*_prices.py")
    source = path.read_text()
    assert "moneytypes.Money(precision=12, scale=2)" in source and "\nimport moneytypes\n" in source
    assert written.cell.startswith('%%revision -m "prices"\nimport moneytypes\n')
    # The plain alembic command, in a fresh process, upgrades another database with it.
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["DATABASE_URL"] = url
    alembic = str(Path(sys.executable).parent / "alembic")
    run = subprocess.run([alembic, "-c", "migrations/alembic.ini", "upgrade", "head"], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert columns(url, "prices") == ["id", "amount"]


def test_a_type_defined_in_the_notebook_is_refused_with_nothing_written(ip_money: Shell) -> None:
    ip_money.ok(LOCAL_TYPE)
    run = ip_money.run('%migrate revision --autogenerate -m "items"')
    line = run.output.strip()
    assert run.failed and len(line.splitlines()) == 1, run.output
    assert line == (
        "MetadataError: The generated code names __main__.Code, a type defined in the notebook: a revision file cannot import it. "
        "Define the type in a module of the project and import it in the notebook from there. Nothing was written."
    )
    assert list(Path("migrations/versions").glob("*.py")) == []
