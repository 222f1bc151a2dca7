"""``%migrate lint`` over the real projects' shipped folders (tests/corpus): no crash, every revision accounted for.

Each project runs in a process of its own, its packages at the end of ``sys.path``
(as the corpus driver does), its revisions rendered for PostgreSQL whatever
databases it supports. The counts per rule are printed (``-s``) for the record.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REQUIRE_SERVERS

CORPUS = Path(__file__).resolve().parent / "corpus"
sys.path.insert(0, str(CORPUS))

from realprojects import PROJECTS, Project  # noqa: E402

pytestmark = pytest.mark.corpus

SCRIPT = """
import collections, json, sys
from pathlib import Path
sys.path.append(sys.argv[2]) if sys.argv[2] else None
from migmagic import lint
from migmagic.adapter import ScriptCache
folder = Path(sys.argv[1])
scripts = ScriptCache(folder).load()
table = lint.revisions(scripts, None, folder, 30.0)
print(json.dumps({
    "revisions": len(scripts), "ids": sorted(scripts.ids()), "rows": table.astype(object).where(table.notna(), None).to_dict("records"),
    "counts": dict(collections.Counter(table["rule"])),
}, default=str))
"""


def _folder(project: Project, where: Path) -> Path:
    """The project's folder as shipped; prefect: its PostgreSQL versions as ``versions/`` (what PostgreSQL runs)."""
    folder = where / "folder"
    folder.mkdir()
    versions = project.source_folder() / "versions"
    (folder / "versions").symlink_to(versions / "postgresql" if project.dialect_versions else versions)
    return folder


@pytest.mark.parametrize("project", PROJECTS, ids=[p.key for p in PROJECTS])
def test_lint_runs_over_the_shipped_folder(project: Project, tmp_path: Path) -> None:
    if not project.ready.exists():
        message = f"{project.key} is not in the corpus cache: run python tests/corpus/prepare.py"
        if REQUIRE_SERVERS:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    site = str(project.site_dir) if project.site else ""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(_folder(project, tmp_path)), site], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    rows = result["rows"]
    assert {r["revision"] for r in rows} <= set(result["ids"])
    for row in rows:
        if row["rule"] == "not linted":
            assert row["why"], row  # said why, every time
        else:
            assert row["statement"] and row["why"] and isinstance(row["line"], int) and row["line"] > 0, row
    not_linted = result["counts"].get("not linted", 0)
    print(f"\n{project.key}: {result['revisions']} revisions, {result['revisions'] - not_linted} linted, counts {result['counts']}")
