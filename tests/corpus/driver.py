"""Run one real project's folder on one database with one tool, in a process of its own; print what each step built.

    python driver.py '{"project": "optuna", "tool": "migmagic" | "alembic", "url": ..., "folder": ...,
                       "steps": [["upgrade", "head"], ["downgrade", "base"], ...]}'

The project's own packages (its cache's ``site``) go at the end of ``sys.path``, so the
test environment's Alembic, SQLAlchemy and drivers are the ones that run. After each
step, one JSON line: ``{"step": ..., "schema": ...}``, or ``{"step": ..., "error": ...}``
and nothing after it. Plain Alembic is driven programmatically, with the project's own
env.py where it runs without the application (``own_env``), else the test's minimal
env.py written beside the revisions (``env.py`` in the folder copy given).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from realprojects import PROJECTS, Project  # noqa: E402
from schemadump import schema_of  # noqa: E402


def _initial_tables(project: Project, url: str) -> None:
    """mlflow's quirk: the tables its first revision expects, made as mlflow makes them (``create_all``)."""
    import importlib

    import sqlalchemy as sa

    module, _, attribute = (project.initial_tables or "").partition(":")
    metadata = getattr(importlib.import_module(module), attribute).metadata
    engine = sa.create_engine(url)
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()


def _sync(url: str) -> str:
    return url.replace("+asyncpg", "+psycopg").replace("+aiosqlite", "")


def run(spec: dict[str, Any]) -> None:
    project = next(p for p in PROJECTS if p.name == spec["project"])
    if project.site:
        sys.path.append(str(project.site_dir))
    logging.getLogger().addHandler(logging.NullHandler())  # env.py's fileConfig(None) when no handler is set (optuna)
    url, folder = spec["url"], spec["folder"]
    if project.initial_tables:
        _initial_tables(project, _sync(url))
    step_runner = _migmagic(url, folder) if spec["tool"] == "migmagic" else _alembic(url, folder, project)
    for step in spec["steps"]:
        try:
            step_runner(*step)
        except BaseException as exc:  # noqa: B036 - a revision may raise SystemExit
            text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            print(json.dumps({"step": step, "error": text[-2000:], "traceback": traceback.format_exc()[-6000:]}), flush=True)
            return
        print(json.dumps({"step": step, "schema": schema_of(_sync(url))}), flush=True)


def _migmagic(url: str, folder: str) -> Any:
    from migmagic import Migrator

    m = Migrator.init(url, folder)

    def step(command: str, target: str) -> None:
        if command == "upgrade":
            m.upgrade(target)
        else:
            m.downgrade(target, accept_data_loss=True)  # the test compares schemas; the guard has its own tests

    return step


def _alembic(url: str, folder: str, project: Project) -> Any:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", folder)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    options = dict(project.configure)
    if project.naming_convention:
        import sqlalchemy as sa

        options["target_metadata"] = sa.MetaData(naming_convention=project.naming_convention)
    config.attributes["configure"] = options  # read by the test's minimal env.py

    def step(name: str, target: str) -> None:
        getattr(command, name)(config, target)

    return step


if __name__ == "__main__":
    run(json.loads(sys.argv[1]))
