"""``%migrate init``: the revision folder as a complete Alembic environment.

Writes ``alembic.ini``, ``env.py``, ``script.py.mako``, ``README`` and
``versions/`` so that ``alembic -c FOLDER/alembic.ini upgrade head`` runs the
same revisions. An existing folder is never overwritten; a missing
``versions/`` is added. The URL goes into ``alembic.ini`` only when it parses
and has no password; otherwise ``env.py`` reads it from ``DATABASE_URL``.

The models (``--metadata myapp.models:Base``) go into ``alembic.ini`` as
``migmagic.metadata``; ``env.py`` imports them as ``target_metadata``, so
``alembic check`` and ``alembic revision --autogenerate`` compare with them.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from . import settings
from .errors import ConfigurationError

_WRITTEN_BY_MIGMAGIC = "# Written by migmagic"


def _template(name: str) -> str:
    return resources.files("migmagic").joinpath("templates", name).read_text(encoding="utf-8")


def _url_line(url: str) -> str:
    if settings.password_of(url, load_sqlalchemy=True):
        return "# sqlalchemy.url is not written: the URL has a password. Set DATABASE_URL."
    if not settings.parses(url):
        # A mistyped URL may hold a password our patterns do not see.
        return "# sqlalchemy.url is not written: the URL does not parse. Set DATABASE_URL."
    return f"sqlalchemy.url = {url}".replace("%", "%%")


def _metadata_line(metadata: str | None) -> str:
    if metadata:
        return f"{settings.METADATA_OPTION} = {metadata}"
    return (
        "# Your models, for alembic check and alembic revision --autogenerate (module:attribute):\n"
        f"# {settings.METADATA_OPTION} = myapp.models:Base"
    )


def _record_metadata(folder: Path, metadata: str) -> bool:
    """Set ``migmagic.metadata`` in the ``alembic.ini`` of an existing folder migmagic wrote."""
    ini = folder / "alembic.ini"
    env = folder / "env.py"
    text = ini.read_text(encoding="utf-8") if ini.is_file() else ""
    if not text.startswith(_WRITTEN_BY_MIGMAGIC) or settings.METADATA_OPTION not in env.read_text(encoding="utf-8"):
        raise ConfigurationError(
            f"{folder} was not written by this version of migmagic: its env.py does not read {settings.METADATA_OPTION}.",
            path=str(folder),
            hint=f"Set target_metadata in {env} to your models' MetaData.",
        )
    if settings.folder_metadata(folder) == metadata:
        return False
    line = _metadata_line(metadata)
    option = re.compile(rf"^#? ?{re.escape(settings.METADATA_OPTION)} =.*$", re.MULTILINE)
    text = option.sub(lambda _m: line, text, count=1) if option.search(text) else text.replace("[alembic]\n", f"[alembic]\n{line}\n", 1)
    ini.write_text(text, encoding="utf-8")
    return True


def write(folder: Path, url: str, metadata: str | None = None) -> bool:
    """Create what is missing of ``folder``; True when anything was written.

    ``metadata`` (``module:attribute``) names the models ``env.py`` gives Alembic;
    given for a folder migmagic wrote earlier, it is recorded in its ``alembic.ini``.
    """
    if metadata is not None:
        metadata = settings.metadata_spec(metadata)
    wrote = False
    versions = folder / "versions"
    if not versions.is_dir():
        versions.mkdir(parents=True)
        wrote = True
    is_alembic_env = (folder / "env.py").exists()
    if is_alembic_env:
        if metadata:
            wrote = _record_metadata(folder, metadata) or wrote
        return wrote
    try:
        label = str(folder.relative_to(Path.cwd()))
    except ValueError:
        label = str(folder)
    files = {
        "alembic.ini": _template("alembic.ini.tmpl")
        .replace("{folder}", label)
        .replace("{url_line}", _url_line(url))
        .replace("{metadata_line}", _metadata_line(metadata)),
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
