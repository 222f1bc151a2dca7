"""The database kinds as classes (issue 19, item 5): one per database, each complete; an unknown one fails once, naming the supported ones."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from migmagic import Migrator, kinds
from migmagic.database import Database
from migmagic.errors import ConnectionFailed

CONCRETE = [kinds.SQLite, kinds.PostgreSQL, kinds.MySQL, kinds.MariaDB]


def test_the_supported_kinds_are_registered_and_mariadb_is_a_mysql() -> None:
    assert list(kinds.KINDS) == ["sqlite", "postgresql", "mysql", "mariadb"]
    assert issubclass(kinds.MariaDB, kinds.MySQL)
    assert [k.label for k in CONCRETE] == ["SQLite", "PostgreSQL", "MySQL", "MariaDB"]


def _abstract(name: str) -> bool:
    """Whether ``Kind.name`` is left for each kind to implement (its body raises NotImplementedError)."""
    member = inspect.getattr_static(kinds.Kind, name)
    func = getattr(member, "__wrapped__", member)
    return callable(func) and "raise NotImplementedError" in inspect.getsource(func)


@pytest.mark.parametrize("kind", CONCRETE, ids=lambda k: k.name)
def test_every_kind_implements_the_whole_interface(kind: type[kinds.Kind]) -> None:
    required = [n for n in vars(kinds.Kind) if not n.startswith("__") and _abstract(n)]
    assert {"held", "bound_waits", "gave_up_waiting", "lock_holder", "scratch_copy", "throwaway", "remove_stale"} <= set(required)
    for name in required:
        assert getattr(kind, name) is not getattr(kinds.Kind, name), f"{kind.__name__} does not implement {name}"
    for attribute in ("name", "label", "transactional_ddl", "restore_points", "string_length"):
        assert getattr(kind, attribute) not in ("", None), f"{kind.__name__}.{attribute}"


def test_what_differs_lives_in_the_kind() -> None:
    sqlite, pg = Database("sqlite:///x.db"), Database("postgresql+psycopg://u@h/d")
    mysql, maria = Database("mysql+pymysql://u@h/d"), Database("mariadb+pymysql://u@h/d")
    assert [d.transactional_ddl for d in (sqlite, pg, mysql, maria)] == [True, True, False, False]
    assert [d.dialect_name for d in (sqlite, pg, mysql, maria)] == ["sqlite", "postgresql", "mysql", "mariadb"]
    assert [d.kind.restore_points for d in (sqlite, pg, mysql, maria)] == [True, False, False, False]
    assert [d.kind.string_length for d in (sqlite, pg, mysql, maria)] == ["length", "length", "char_length", "char_length"]
    assert isinstance(maria.kind, kinds.MariaDB)


@pytest.mark.parametrize("url", ["mssql+pymssql://sa:Sekr1t@127.0.0.1:1/db", "oracle://scott@127.0.0.1:1/orcl", "firebird://u@h/db"])
def test_an_unsupported_database_fails_at_connect_in_one_line_naming_the_supported_ones(workdir: Path, url: str) -> None:
    m = Migrator(url)
    try:
        with pytest.raises(ConnectionFailed) as caught:
            m.status()
    finally:
        m.close()
    error = caught.value
    lines = error._render_traceback_()
    assert len(lines) == 1, lines
    for name in ("sqlite", "postgresql", "mysql", "mariadb"):
        assert name in lines[0]
    assert "Sekr1t" not in lines[0]
    assert url.split(":")[0].split("+")[0] in lines[0]  # it says which kind it is
