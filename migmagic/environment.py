"""``%migrate init``: the revision folder as a complete Alembic environment.

Writes ``alembic.ini``, ``env.py``, ``script.py.mako``, ``README`` and
``versions/`` so that ``alembic -c FOLDER/alembic.ini upgrade head`` runs the
same revisions. An existing folder is never overwritten; a missing
``versions/`` is added. The URL goes into ``alembic.ini`` only when it parses
and has no password; otherwise ``env.py`` reads it from ``DATABASE_URL``.

The models (``--metadata myapp.models:Base``) go into ``alembic.ini`` as
``migmagic.metadata``; ``env.py`` imports them as ``target_metadata``, so
``alembic check`` and ``alembic revision --autogenerate`` compare with them.

An ``env.py`` written by an older migmagic is recognised by its checksum
(:data:`OLDER_ENV`): :func:`env_notes` says so in one line, and
:func:`update_env` rewrites it from the current template when asked
(``%migrate init --update-env``), never on its own.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from pathlib import Path

from . import settings
from .errors import ConfigurationError

_WRITTEN_BY_MIGMAGIC = "# Written by migmagic"


ENV_HEADER = '"""Alembic environment written by migmagic\'s %migrate init.'
OLDER_ENV = {
    # sha256 of env.py as earlier migmagic versions wrote it (git log -p -- migmagic/templates/env.py).
    # None of them uses a connection handed in as config.attributes["connection"]: pytest-alembic,
    # Flask-Migrate and scripts that hand one in get DATABASE_URL's (or the ini's) database migrated.
    "d79b76e18a71bc9456e77d52cd3da32c37f6fb39b2a5492ae6884ddea45b8445": "da204f7",
    "60012d6c6d25ac960bf823adbf39196fbab6c86e99650fd9b7d7cc52c7d09c05": "9c475ed",
    "8e7f943a72bc3a33f56e924152ffa80eed9c4c787ffa6a8d6e9b137e9d382237": "fcfb41c",
    # Uses a connection handed in, but the `alembic` command on it runs plain Alembic.
    "832fd9c3ccb047e60591882353ad3f8413b9850b3cc1fe78f050497b4460cb54": "d20a6b9",
}
_PLAIN = "the alembic command run on it gets none of migmagic's guarantees (lock, ledger, refusal of edited revisions)"
UPDATE_ENV = "%migrate init --update-env"
_IGNORES = "it ignores a connection handed to it (pytest-alembic's test database, Flask-Migrate's) and migrates DATABASE_URL's database instead"


def _template(name: str) -> str:
    return resources.files("migmagic").joinpath("templates", name).read_text(encoding="utf-8")


def _url_line(url: str) -> str:
    if settings.password_of(url, load_sqlalchemy=True):
        return "# sqlalchemy.url is not written: the URL has a password. Set DATABASE_URL."
    if not settings.parses(url):
        # A mistyped URL may hold a password our patterns do not see.
        return "# sqlalchemy.url is not written: the URL does not parse. Set DATABASE_URL."
    if any(c in url for c in "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"):
        # An ini value ends at a line break: the rest would be read as another option, or break the file.
        return "# sqlalchemy.url is not written: the URL holds a line break. Set DATABASE_URL."
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


def record_url(folder: Path, url: str) -> str | None:
    """Make the ``sqlalchemy.url`` line of an ``alembic.ini`` migmagic wrote say ``url`` (as :func:`_url_line` writes it).

    ``%migrate init`` with a corrected URL: the folder, the next kernel and the ``alembic``
    command then use it. Returns the line it replaced, or None when nothing changed (or the
    ini is not migmagic's: a project's own is never edited).
    """
    ini = folder / "alembic.ini"
    text = ini.read_text(encoding="utf-8") if ini.is_file() else ""
    if not text.startswith(_WRITTEN_BY_MIGMAGIC):
        return None
    line = _url_line(url)
    found = re.search(r"^(?:sqlalchemy\.url = .*|# sqlalchemy\.url is not written: .*)$", text, re.MULTILINE)
    if found is None or found.group(0) == line:
        return None
    ini.write_text(text[: found.start()] + line + text[found.end():], encoding="utf-8")
    return found.group(0)


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


def _checksum(text: str) -> str:
    return hashlib.sha256(text.replace("\r\n", "\n").encode("utf-8")).hexdigest()


def checksum_of(path: Path) -> str:
    """The checksum of a file's text (line ends as written on any system), as :func:`env_kind` compares them."""
    return _checksum(path.read_text(encoding="utf-8", errors="replace"))


def written_by_migmagic(env: Path) -> bool:
    """Whether ``env`` began as the env.py ``%migrate init`` writes (edited since or not)."""
    try:
        return env.read_text(encoding="utf-8").startswith(ENV_HEADER)
    except (OSError, UnicodeDecodeError):
        return False


def env_kind(folder: Path) -> str:
    """What ``folder/env.py`` is: ``current``, ``older`` (an earlier migmagic's, unedited),
    ``edited`` (an earlier migmagic's, edited since), or ``other`` (not migmagic's, or missing)."""
    env = folder / "env.py"
    try:
        text = env.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return "other"
    digest = _checksum(text)
    if digest == _checksum(_template("env.py")):
        return "current"
    if digest in OLDER_ENV:
        return "older"
    if text.startswith(ENV_HEADER) and 'config.attributes.get("connection")' not in text:
        return "edited"
    return "other"


def _shown(path: Path) -> str:
    """``path`` relative to the working directory where it is below it (as the user typed the folder)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


FILTER_BEGIN = "# --- Added by migmagic (%migrate init --update-env)"
FILTER = f'''
{FILTER_BEGIN}, with your consent: this project's autogenerate and
# `alembic check` leave migmagic's bookkeeping tables (migmagic_*) alone. Delete these lines to undo.
def _migmagic_leaves_out(configure):
    if getattr(configure, "leaves_out_migmagic", False):
        return configure

    def configure_without_migmagic(*args, **kwargs):
        theirs = kwargs.get("include_name")

        def include_name(name, type_, parent_names):
            if type_ == "table" and (name or "").startswith("migmagic_"):
                return False
            return theirs is None or theirs(name, type_, parent_names)

        kwargs["include_name"] = include_name
        return configure(*args, **kwargs)

    configure_without_migmagic.leaves_out_migmagic = True
    return configure_without_migmagic


context.configure = _migmagic_leaves_out(context.configure)
# --- End of migmagic's lines.
'''
_CONTEXT_IMPORT = re.compile(r"^from alembic import context[ \t]*$", re.MULTILINE)


def _leaves_out_migmagic(text: str) -> bool:
    """Whether a project's env.py already keeps migmagic's tables from its autogenerate (our lines, or its own mention of them)."""
    return "migmagic_" in text


def env_notes(folder: Path, dialect: str | None = None) -> list[str]:
    """One line when ``folder/env.py`` comes from an older migmagic template, or (``dialect`` other than
    PostgreSQL, where migmagic's tables sit beside the project's) is a project's own that would show
    migmagic's tables to its autogenerate; none otherwise."""
    kind = env_kind(folder)
    env = _shown(folder / "env.py")
    if kind == "other" and dialect not in (None, "postgresql") and (folder / "env.py").is_file():
        if not _leaves_out_migmagic((folder / "env.py").read_text(encoding="utf-8")):
            return [
                f"{env} is the project's own: its autogenerate and alembic check would propose dropping migmagic's tables (migmagic_*). "
                f"{UPDATE_ENV} adds {FILTER.count(chr(10)) - 1} lines to it that leave them out."
            ]
    if kind == "older":
        reason = _PLAIN if OLDER_ENV[_checksum((folder / "env.py").read_text(encoding="utf-8"))] == "d20a6b9" else _IGNORES
        return [f"{env} was written by an older migmagic: {reason}. Run {UPDATE_ENV} to rewrite it."]
    if kind == "edited":
        return [
            f"{env} was written by an older migmagic and edited since: {_IGNORES}. "
            f'Make it use config.attributes["connection"] as migmagic\'s template does ({_template_path()}).'
        ]
    return []


def _template_path() -> str:
    return str(resources.files("migmagic").joinpath("templates", "env.py"))


def update_env(folder: Path) -> bool:
    """Rewrite ``folder/env.py`` from the current template if an older migmagic wrote it, unedited;
    in a project's own env.py, add :data:`FILTER` (after ``from alembic import context``).

    True when it was changed; False when there was nothing to do. An env.py of
    migmagic's edited since is left alone: :class:`ConfigurationError` says what to do.
    """
    path = folder / "env.py"
    env = _shown(path)
    kind = env_kind(folder)
    if kind == "current":
        return False
    if kind == "older":
        tmp = path.with_name(f".{path.name}.migmagic-new")
        tmp.write_text(_template("env.py"), encoding="utf-8")
        tmp.replace(path)
        return True
    if kind == "edited":
        raise ConfigurationError(
            f"{env} was edited since migmagic wrote it, so --update-env leaves it alone.",
            path=env,
            hint=f'Make it use config.attributes["connection"] as migmagic\'s template does ({_template_path()}).',
        )
    if not path.is_file():
        raise ConfigurationError(f"{env} does not exist.", path=env, hint="Run %migrate init without --update-env to write it.")
    text = path.read_text(encoding="utf-8")
    if _leaves_out_migmagic(text):
        return False
    found = _CONTEXT_IMPORT.search(text)
    if found is None:
        raise ConfigurationError(
            f"{env} has no line `from alembic import context`, so --update-env cannot add its lines to it.",
            path=env,
            hint=f"Pass include_name that leaves out tables named migmagic_* to context.configure in {env}.",
        )
    tmp = path.with_name(f".{path.name}.migmagic-new")
    tmp.write_text(text[: found.end()] + "\n" + FILTER + text[found.end() :], encoding="utf-8")
    tmp.replace(path)
    return True
