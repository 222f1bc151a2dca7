"""The env.py that `%migrate init` writes: a connection handed in wins; older ones are noticed, updated only when asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import EVENTS, Shell, tables, version

OLD = sorted((Path(__file__).parent / "old_env").glob("env_*.py.txt"))


def _alembic_config(folder: Path, **attributes: Any) -> Any:
    from alembic.config import Config

    cfg = Config(str(folder / "alembic.ini"))
    cfg.attributes.update(attributes)
    return cfg


@pytest.mark.parametrize("handed", ["connection", "engine"])
def test_a_connection_handed_in_is_the_one_migrated(handed: str, workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Alembic's recipe (config.attributes["connection"]): DATABASE_URL and the ini's URL are not used."""
    import sqlalchemy as sa
    from alembic import command

    from migmagic import Migrator

    user, other = f"sqlite:///{tmp_path / 'user.db'}", f"sqlite:///{tmp_path / 'other.db'}"
    m = Migrator.init(user)
    head = m.revision("create events table", EVENTS).revision
    m.close()
    monkeypatch.setenv("DATABASE_URL", user)
    engine = sa.create_engine(other)
    if handed == "engine":
        command.upgrade(_alembic_config(m.folder, connection=engine), "head")
    else:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(m.folder, connection=conn), "head")
    engine.dispose()
    assert version(other) == {head} and tables(other) == {"events"}
    assert version(user) == set() and tables(user) == set()


@pytest.mark.parametrize("old", OLD, ids=[p.name.split("_")[1].split(".")[0] for p in OLD])
def test_an_older_env_py_is_noticed_and_updated_when_asked(old: Path, workdir: Path, sqlite_url: str) -> None:
    from migmagic import Migrator, environment

    m = Migrator.init(sqlite_url)
    env = m.folder / "env.py"
    assert m.status().notes == []
    env.write_text(old.read_text())

    (note,) = m.status().notes
    assert "older migmagic" in note and "%migrate init --update-env" in note and "\n" not in note
    assert "%migrate init --update-env" in repr(m.status())
    assert env.read_text() == old.read_text()  # noticed, never rewritten on its own

    assert m.ensure_folder(update_env=True) is True
    assert environment.env_kind(m.folder) == "current"
    assert m.status().notes == []
    assert m.ensure_folder(update_env=True) is False
    m.close()


def test_an_older_env_py_edited_since_is_left_alone(workdir: Path, sqlite_url: str) -> None:
    from migmagic import Migrator
    from migmagic.errors import ConfigurationError

    m = Migrator.init(sqlite_url)
    env = m.folder / "env.py"
    edited = OLD[-1].read_text().replace("poolclass=pool.NullPool", "poolclass=pool.NullPool, echo=True")
    env.write_text(edited)
    (note,) = m.status().notes
    assert "edited since" in note and 'config.attributes["connection"]' in note
    with pytest.raises(ConfigurationError, match="edited since migmagic wrote it"):
        m.ensure_folder(update_env=True)
    assert env.read_text() == edited
    m.close()


def test_a_projects_own_env_py_gets_migmagic_s_lines_only_when_asked(workdir: Path, sqlite_url: str) -> None:
    """SQLite: the project's env.py would show migmagic's tables to its autogenerate; --update-env adds marked lines."""
    from migmagic import Migrator, environment
    from migmagic.errors import ConfigurationError

    m = Migrator.init(sqlite_url)
    env = m.folder / "env.py"
    env.write_text("from alembic import context\n\ncontext.configure(url='sqlite://')\n")
    (note,) = m.status().notes
    assert "the project's own" in note and "migmagic_*" in note and "%migrate init --update-env" in note
    assert m.ensure_folder(update_env=True) is True
    text = env.read_text()
    assert text.startswith("from alembic import context\n") and environment.FILTER in text
    assert text.endswith("context.configure(url='sqlite://')\n")
    assert m.status().notes == []
    assert m.ensure_folder(update_env=True) is False and env.read_text() == text  # once
    env.write_text("import alembic.context as ctx\n")
    with pytest.raises(ConfigurationError, match="has no line `from alembic import context`"):
        m.ensure_folder(update_env=True)
    m.close()


def test_init_update_env_in_a_notebook(ip_empty: Shell, sqlite_url: str) -> None:
    ip_empty.ok(f"%migrate init {sqlite_url}")
    env = Path("migrations/env.py")
    env.write_text(OLD[0].read_text())
    status = ip_empty.run("%migrate status")
    assert "%migrate init --update-env" in status.output or "%migrate init --update-env" in repr(status.result)
    run = ip_empty.run(f"%migrate init {sqlite_url} --update-env")
    assert not run.failed, run.output
    assert "--update-env" not in repr(run.result)
    assert Path("migrations/env.py").read_text() != OLD[0].read_text()
    env.write_text(OLD[-1].read_text().replace("import os", "import os  # ours"))
    run = ip_empty.run(f"%migrate init {sqlite_url} --update-env")
    assert run.failed and "edited since migmagic wrote it" in run.output and "Traceback" not in run.output
