"""``%migrate init``: the revision folder as a complete Alembic environment.

Writes ``alembic.ini``, ``env.py``, ``script.py.mako``, ``README`` and
``versions/`` so that ``alembic -c FOLDER/alembic.ini upgrade head`` runs the
same revisions. An existing folder is never overwritten; a missing
``versions/`` is added. The URL goes into ``alembic.ini`` only when it parses
and has no password; otherwise ``env.py`` reads it from ``DATABASE_URL``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from . import settings


def _template(name: str) -> str:
    return resources.files("migmagic").joinpath("templates", name).read_text(encoding="utf-8")


def _url_line(url: str) -> str:
    if settings.password_of(url, load_sqlalchemy=True):
        return "# sqlalchemy.url is not written: the URL has a password. Set DATABASE_URL."
    if not settings.parses(url):
        # A mistyped URL may hold a password our patterns do not see.
        return "# sqlalchemy.url is not written: the URL does not parse. Set DATABASE_URL."
    return f"sqlalchemy.url = {url}".replace("%", "%%")


def write(folder: Path, url: str) -> bool:
    """Create what is missing of ``folder``; True when anything was written."""
    wrote = False
    versions = folder / "versions"
    if not versions.is_dir():
        versions.mkdir(parents=True)
        wrote = True
    is_alembic_env = (folder / "env.py").exists()
    if is_alembic_env:
        return wrote
    try:
        label = str(folder.relative_to(Path.cwd()))
    except ValueError:
        label = str(folder)
    files = {
        "alembic.ini": _template("alembic.ini.tmpl").replace("{folder}", label).replace("{url_line}", _url_line(url)),
        "env.py": _template("env.py"),
        "script.py.mako": _template("script.py.mako"),
        "README": _template("README.tmpl").replace("{folder}", label),
    }
    for name, text in files.items():
        path = folder / name
        if not path.exists():
            path.write_text(text, encoding="utf-8")
            wrote = True
    return wrote
