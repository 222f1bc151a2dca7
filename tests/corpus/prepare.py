"""Fetch the real projects of the corpus into their cache, once per pinned version.

    python tests/corpus/prepare.py            # what is missing; says how long each took
    python tests/corpus/prepare.py --check    # exit 1 when something is missing

Only package registries are used, through pip: ``pip download --no-deps`` for the
shipped folder, ``pip install --target`` for the projects whose revisions or env.py
import them. A project's directory is complete when it holds ``.ready``; a half-made
one (interrupted) is made again.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from realprojects import CACHE, PROJECTS, Project  # noqa: E402


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True)


def _site(project: Project) -> None:
    """The project and its dependencies, installed into its ``site`` (a half-made one is made again)."""
    half = project.root / "site-partial"
    shutil.rmtree(half, ignore_errors=True)
    _pip("install", "--no-compile", "--target", str(half), f"{project.name}=={project.version}")
    half.rename(project.site_dir)


def prepare(project: Project) -> float | None:
    """Make ``project``'s cache directory; the seconds it took, or None when it was there."""
    if project.ready.exists() and (project.site_dir.is_dir() or not project.site):
        return None
    start = time.monotonic()
    if project.ready.exists():  # made before the project needed its site: add it, the folder stays
        _site(project)
        return time.monotonic() - start
    shutil.rmtree(project.root, ignore_errors=True)
    download = project.root / "download"
    _pip("download", "--no-deps", "-d", str(download), f"{project.name}=={project.version}")
    (wheel,) = download.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(project.wheel)
    if project.site:
        _site(project)
    shutil.rmtree(download)
    took = time.monotonic() - start
    project.ready.write_text(f"{took:.1f} s\n")
    return took


def main(argv: list[str]) -> int:
    if "--check" in argv:
        missing = [p.key for p in PROJECTS if not p.ready.exists() or (p.site and not p.site_dir.is_dir())]
        print("missing: " + ", ".join(missing) if missing else f"all {len(PROJECTS)} projects in {CACHE}")
        return 1 if missing else 0
    for project in PROJECTS:
        took = prepare(project)
        print(f"{project.key}: " + ("cached" if took is None else f"fetched in {took:.0f} s") + f" ({project.root})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
