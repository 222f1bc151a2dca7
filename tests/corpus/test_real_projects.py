"""Real projects' shipped Alembic folders, adopted as shipped, build the schema plain Alembic builds.

For each project (pinned in ``realprojects.PROJECTS``) and database: a copy of its folder
is adopted with ``Migrator.init(url, folder)`` and upgraded to head, downgraded as far as
the project's own downgrades go, and upgraded again; plain Alembic runs the same steps on
another fresh database, driven programmatically with the project's own env.py (or the
test's minimal one where the project's needs its application). After every step the two
schemas must be equal (``schemadump.schema_of``). Then a second fresh database upgraded by
migmagic (which may replay what the first run recorded) must equal plain Alembic's head.

Each project's quirks are handled here, as a user adopting the folder would: mlflow's
initial tables, prefect's per-dialect version folders and async drivers, env.py's
logging set-up. The projects come from a cache made by ``prepare.py`` (``.ci/run`` runs it).
Select with ``-m corpus``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REQUIRE_SERVERS, fresh_database
from realprojects import CACHE, MINIMAL_ENV, PROJECTS, Project

DRIVER = Path(__file__).resolve().parent / "driver.py"

pytestmark = pytest.mark.corpus

# Known migmagic bugs a project's folder finds; each is a failing test until fixed (strict xfail).
KNOWN: dict[tuple[str, str], str] = {}


def _cases() -> list[Any]:
    cases = []
    for project in PROJECTS:
        for db in ("sqlite", "postgresql", "mariadb"):
            if db == "mariadb" and db not in project.databases:
                continue
            marks: list[Any] = [pytest.mark.servers] if db != "sqlite" else []
            if (project.name, db) in KNOWN:
                marks.append(pytest.mark.xfail(strict=True, reason=KNOWN[(project.name, db)]))
            cases.append(pytest.param(project, db, id=f"{project.key}-{db}", marks=marks))
    return cases


def _folder_copy(project: Project, db: str, where: Path, *, minimal_env: bool) -> Path:
    """The project's shipped folder copied to ``where``; prefect: the dialect's own version folder as ``versions/``."""
    folder = where / Path(project.folder).name
    shutil.copytree(project.source_folder(), folder, ignore=shutil.ignore_patterns("__pycache__"))
    if project.dialect_versions:
        dialect = "postgresql" if db == "postgresql" else "sqlite"
        versions = folder / "versions"
        staged = where / "staged-versions"
        shutil.move(versions / dialect, staged)
        shutil.rmtree(versions)
        shutil.move(staged, versions)
    if minimal_env:
        (folder / "env.py").write_text(MINIMAL_ENV)
    return folder


def _url(project: Project, url: str) -> str:
    """The URL the project's users write: its async drivers where it uses them (prefect)."""
    if not project.async_driver:
        return url
    return url.replace("postgresql+psycopg://", "postgresql+asyncpg://").replace("sqlite:///", "sqlite+aiosqlite:///")


def _drive(project: Project, tool: str, url: str, folder: Path, steps: list[list[str]], cwd: Path) -> list[dict[str, Any]]:
    spec = {"project": project.name, "tool": tool, "url": url, "folder": str(folder), "steps": steps}
    env = {**os.environ, "MIGMAGIC_CORPUS_CACHE": str(CACHE), "PREFECT_HOME": str(cwd / "prefect-home")}
    done = subprocess.run(
        [sys.executable, str(DRIVER), json.dumps(spec)], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800
    )
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"step"')]
    if not results:
        raise AssertionError(f"{tool} driver gave nothing (exit {done.returncode}): {done.stderr[-3000:]}")
    return results


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two schema values differ, as readable paths (the first few)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                out.append(f"{path}/{key}: only under {'plain Alembic' if key in a else 'migmagic'}")
            else:
                out += _diff(a[key], b[key], f"{path}/{key}")
        return out
    return [] if a == b else [f"{path}: plain Alembic {a!r} != migmagic {b!r}"]


@pytest.mark.parametrize(("project", "db"), _cases())
def test_the_shipped_folder_builds_what_plain_alembic_builds(project: Project, db: str, tmp_path: Path) -> None:
    if not project.ready.exists():
        message = f"{project.key} is not in the corpus cache: run python tests/corpus/prepare.py"
        if REQUIRE_SERVERS:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    down = project.downgrade_to.get(db)
    steps = [["upgrade", "head"], *([["downgrade", down], ["upgrade", "head"]] if down else [])]
    for i in range(3):
        (tmp_path / str(i)).mkdir()
    # fresh_database is a generator that drops the database when closed: keep them open for the test.
    generators = [fresh_database(db, tmp_path / str(i)) for i in range(3)]
    urls = [_url(project, next(g)) for g in generators]
    try:
        plain_dir, mm_dir, again_dir = (tmp_path / name for name in ("plain", "migmagic", "again"))
        for d in (plain_dir, mm_dir, again_dir):
            d.mkdir()
        plain = _drive(project, "alembic", urls[0], _folder_copy(project, db, plain_dir, minimal_env=not project.own_env), steps, plain_dir)
        assert all("schema" in r for r in plain), f"plain Alembic failed at step {len(plain)} (the test's set-up, not migmagic): {plain[-1]}"
        mm = _drive(project, "migmagic", urls[1], _folder_copy(project, db, mm_dir, minimal_env=False), steps, mm_dir)
        for theirs, ours in zip(plain, mm, strict=False):
            assert "schema" in ours, f"migmagic failed at {ours['step']} where plain Alembic succeeded: {ours['error']}\n{ours['traceback']}"
            differences = _diff(theirs["schema"], ours["schema"])
            assert not differences, f"after {ours['step']}: " + "\n".join(differences[:20])
        again = _drive(project, "migmagic", urls[2], _folder_copy(project, db, again_dir, minimal_env=False), steps[:1], again_dir)
        assert "schema" in again[0], f"migmagic failed on a second fresh database: {again[0]['error']}\n{again[0]['traceback']}"
        differences = _diff(plain[0]["schema"], again[0]["schema"])
        assert not differences, "second fresh database: " + "\n".join(differences[:20])
    finally:
        for g in generators:
            g.close()
