"""A fresh kernel reads a big folder from compiled code kept in migmagic's cache; an edit is never missed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from migmagic import Migrator, adapter
from migmagic.cache import cache_dir


def _folder(workdir: Path, n: int = 15) -> Migrator:
    m = Migrator.init("sqlite:///app.db")
    for i in range(n):
        m.revision(f"create t{i}", f'def upgrade():\n    op.create_table("t{i}", sa.Column("id", sa.Integer, primary_key=True))\n\n\ndef downgrade():\n    op.drop_table("t{i}")\n')
    m.close()
    return m


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The scripts compiled from their text (not taken from the cache), as they are."""
    seen: list[Path] = []
    original = adapter.scripts._compile

    def counting(path: Path, source: str) -> Any:
        seen.append(path)
        return original(path, source)

    monkeypatch.setattr(adapter.scripts, "_compile", counting)
    return seen


def test_a_fresh_read_uses_the_compiled_code(workdir: Path, compiles: list[Path]) -> None:
    _folder(workdir)
    compiles.clear()
    first = Migrator("sqlite:///app.db").scripts()
    assert len(compiles) == 15 and (cache_dir() / "code.sqlite3").exists()
    compiles.clear()
    again = Migrator("sqlite:///app.db").scripts()  # a new kernel
    assert compiles == []
    assert [i.checksum for i in again.all()] == [i.checksum for i in first.all()]


def test_an_edited_script_is_compiled_anew(workdir: Path, compiles: list[Path]) -> None:
    m = _folder(workdir)
    Migrator("sqlite:///app.db").scripts()
    info = m.scripts().by_message("create t3")
    assert info is not None
    info.path.write_text(info.path.read_text().replace('"t3"', '"t3x"'))
    compiles.clear()
    fresh = Migrator("sqlite:///app.db").scripts()
    assert compiles == [info.path]
    fresh.directory.get_revision(info.id).module.upgrade  # noqa: B018 - loaded
    assert '"t3x"' in fresh.info(info.id).source
    fresh_m = Migrator("sqlite:///app.db")
    fresh_m.upgrade("head")
    import sqlalchemy as sa

    assert "t3x" in sa.inspect(fresh_m.db.engine).get_table_names()
    fresh_m.close()


def test_a_damaged_cache_is_a_miss(workdir: Path, compiles: list[Path]) -> None:
    _folder(workdir)
    Migrator("sqlite:///app.db").scripts()
    (cache_dir() / "code.sqlite3").write_bytes(b"not a database")
    compiles.clear()
    assert len(Migrator("sqlite:///app.db").scripts()) == 15
    assert len(compiles) == 15
