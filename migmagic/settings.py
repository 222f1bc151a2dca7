"""Where things live: which database URL and which revision folder a session uses.

Nothing here opens a connection or imports Alembic. The order is the spec's:

URL: the URL given to ``init`` (or to :class:`~migmagic.Migrator`), else
``%config Migrate.url``, else ``DATABASE_URL``, else ``sqlalchemy.url`` from an
``alembic.ini`` in the working directory or in the folder, else
``sqlite:///migmagic.db``.

Folder: the one given, else the ``script_location`` of an Alembic project in the
working directory (``alembic.ini`` or ``[tool.alembic]`` in ``pyproject.toml``),
else ``migrations/``.
"""

from __future__ import annotations

import configparser
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from .errors import ConfigurationError, UsageError

DEFAULT_URL = "sqlite:///migmagic.db"
DEFAULT_FOLDER = "migrations"
# alembic.ini's option naming the models (module:attribute) that env.py gives Alembic.
METADATA_OPTION = "migmagic.metadata"
_METADATA_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

# scheme://user:password@host... When typed raw the password may hold '@', '/',
# '?', '#', ':' and '%', so it runs from the first ':' after the user name to the
# *last* '@' in the URL. An '@' in the query of a URL with a password therefore
# reads as part of the password: that masks too much, never too little (write it
# %40 to connect).
_URL_PASSWORD = re.compile(r"^(?P<head>[\w+.-]+://[^:/]*:)(?P<password>.*)(?P<tail>@[^@]*)$", re.DOTALL)
# The same with the slashes after the scheme mistyped (``postgresql:/u:pw@h``,
# ``postgresql:u:pw@h``, ``postgresql:///u:pw@h``): such a URL does not connect,
# but its password must not show either. Only for masking: a well-formed URL is
# read with the pattern above, and a SQLite URL (a path, no password) never is.
_LOOSE_PASSWORD = re.compile(r"^(?!sqlite)(?P<head>[A-Za-z][\w+.-]*:/{0,3}[^:/]*:)(?P<password>.*)(?P<tail>@[^@]*)$", re.DOTALL)
# Whatever the shape otherwise (the ':' after the scheme missing, a space in the
# scheme, ':' typed as '@' between user and password): anything between the
# first '//' and the last '@' past the user name is a secret. The user name ends
# at its first ':' or '@'. Masks too much rather than too little; never a SQLite
# URL (a path may hold '@' and ':').
_SLASHES_PASSWORD = re.compile(r"^(?!\s*sqlite)(?P<head>[^/]*//[^:@/]*[:@])(?P<password>.*)(?P<tail>@[^@]*)$", re.DOTALL | re.IGNORECASE)
# ...?password=... : the query keys the drivers read a secret from: psycopg
# (libpq's ``password``, ``sslpassword``), PyMySQL (``password``, ``passwd``),
# ODBC (``PWD``), and anything else named like a password, secret, token or key
# to an API; and any value that itself sets one (``options=-c password=...``).
_QUERY_PASSWORD = re.compile(
    r"(?P<key>[?&](?:[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential)[\w.-]*"
    r"|[\w.-]+(?==[^&]*(?:password|passwd|pwd|secret|token)(?:=|%3D)))=)(?P<password>[^&]*)",
    re.IGNORECASE | re.DOTALL,
)
_INNER_PASSWORD = re.compile(r"(?:password|passwd|pwd|secret|token)=([^\s&]+)", re.IGNORECASE)


@dataclass(frozen=True)
class Location:
    """The database URL and folder a session is bound to, and where each came from."""

    url: str = field(repr=False)
    url_source: str
    folder: Path
    adopted_ini: Path | None = None

    def __post_init__(self) -> None:
        check_sqlite_url(self.url)

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    def __repr__(self) -> str:
        return (
            f"Location(url={self.masked_url!r}, url_source={self.url_source!r}, "
            f"folder={str(self.folder)!r}, adopted_ini={self.adopted_ini and str(self.adopted_ini)!r})"
        )


def _sqlalchemy_password(url: str, load: bool = False) -> str | None:
    """The password SQLAlchemy itself reads in ``url``: a cross-check of ours.

    Only when SQLAlchemy is already imported (or ``load``): importing it just to
    mask a URL would slow ``%load_ext``.
    """
    if load:
        import sqlalchemy.engine.url  # noqa: F401
    module = sys.modules.get("sqlalchemy.engine.url")
    if module is None:
        return None
    try:
        password = module.make_url(url).password
    except Exception:
        return None
    return str(password) if password else None


def _userinfo_match(url: str) -> re.Match[str] | None:
    for pattern in (_URL_PASSWORD, _LOOSE_PASSWORD, _SLASHES_PASSWORD):
        m = pattern.match(url)
        if m and m.group("password"):
            return m
    return None


def passwords_of(url: str, *, load_sqlalchemy: bool = False) -> list[str]:
    """Every secret in ``url`` (decoded): the password after the user name and every password-like query value.

    Malformed URLs count: ``postgresql:user:pw@host`` has the password ``pw``.
    ``load_sqlalchemy`` also asks SQLAlchemy's own parser when ours finds none,
    importing SQLAlchemy if needed (before a password could be written to a file).
    """
    found: list[str] = []
    m = _userinfo_match(url)
    if m:
        found.append(unquote(m.group("password")))
    for q in _QUERY_PASSWORD.finditer(url):
        if q.group("password"):
            value = unquote(q.group("password"))
            found.append(value)
            found += _INNER_PASSWORD.findall(value)  # options=-c password=PW: PW alone, as an error may show it
    if not found:
        theirs = _sqlalchemy_password(url, load_sqlalchemy)
        if theirs:
            found.append(theirs)
    return list(dict.fromkeys(found))


def password_of(url: str, *, load_sqlalchemy: bool = False) -> str | None:
    """The (first) password in ``url`` (decoded), or None. See :func:`passwords_of`."""
    found = passwords_of(url, load_sqlalchemy=load_sqlalchemy)
    return found[0] if found else None


def mask_url(url: str) -> str:
    """``url`` with its password and every password-like query value replaced by ``***``.

    Also for a URL that does not parse (a slash missing after the scheme, an
    unknown driver): masking never depends on the URL being usable.
    """
    masked = url
    m = _userinfo_match(url)
    if m:
        masked = f"{m.group('head')}***{m.group('tail')}"
    masked = _QUERY_PASSWORD.sub(lambda q: f"{q.group('key')}***" if q.group("password") else q.group(0), masked)
    return masked if masked != url else scrub(url, url)


# What may follow '?' in a SQLite URL: key=value pairs (mode=ro, uri=true, timeout=...).
_SQLITE_QUERY = re.compile(r"[^=&/]+=[^&/]*(?:&[^=&/]+=[^&/]*)*")


def check_sqlite_url(url: str) -> None:
    """Refuse a SQLite URL whose path holds a ``?``: SQLAlchemy would cut the path there and open another file.

    ``sqlite:///dir with ?/x.db`` opens ``dir with `` (the rest is read as the
    URL's query). Written ``%3F`` the ``?`` works, as ``%25`` does for ``%``.
    """
    if not url.startswith("sqlite") or "?" not in url:
        return
    path, _, query = url.partition("?")
    if _SQLITE_QUERY.fullmatch(query):
        return
    raise UsageError(
        f"The SQLite URL {url!r} holds '?' in its path, where a URL's query starts: it would open {path.split(':///', 1)[-1]!r}.",
        hint=f"Write '?' in a path as %3F (and '%' as %25): {url.replace('?', '%3F')!r}.",
    )


_SQLITE_RELATIVE = re.compile(r"^(?P<scheme>\s*sqlite(?:\+\w+)?:///)(?P<path>[^/?][^?]*)(?P<query>\?.*)?$", re.DOTALL | re.IGNORECASE)


def bound_url(url: str, cwd: str | os.PathLike[str] | None = None) -> str:
    """``url`` with a relative SQLite file made absolute (from ``cwd``, default the working directory), once, at binding.

    A relative path would otherwise be read again from wherever the working
    directory is when a connection opens (after ``%cd``): another, empty file.
    Other URLs, in-memory and ``file:`` URI databases are returned as they are.
    """
    m = _SQLITE_RELATIVE.match(url)
    if not m:
        return url
    path = m.group("path")
    if path == ":memory:" or path.startswith("file:") or os.path.isabs(unquote(path)):
        return url
    absolute = os.path.abspath(os.path.join(cwd if cwd is not None else os.getcwd(), unquote(path)))
    return f"{m.group('scheme')}{quote(absolute, safe='/:~')}{m.group('query') or ''}"


def engine_url(url: str) -> str:
    """``url`` as migmagic connects with it: the password percent-encoded as SQLAlchemy
    parses URLs. The driver is the one the URL names, async ones included
    (:mod:`migmagic.asyncdriver`).

    A password typed raw, with ``@``, ``/``, ``?`` or ``:`` in it, would otherwise
    be cut at the first ``@`` and its pieces taken for the host, the database or
    the query (and then shown in connection errors).
    """
    m = _URL_PASSWORD.match(url)
    if not m or not m.group("password"):
        return url
    encoded = quote(unquote(m.group("password")), safe="")
    return f"{m.group('head')}{encoded}{m.group('tail')}"


def parses(url: str) -> bool:
    """Whether SQLAlchemy reads ``url`` as a database URL (imports SQLAlchemy's URL module)."""
    from sqlalchemy.engine import make_url

    try:
        make_url(engine_url(url))
    except Exception:
        return False
    return True


def secret_forms(url: str) -> list[str]:
    """Every spelling of the URL's password that could end up in text, longest first."""
    secrets = passwords_of(url)
    if not secrets:
        return []
    typed = [m.group("password") for m in (_userinfo_match(url), *_QUERY_PASSWORD.finditer(url)) if m]
    forms = set(typed)
    for pw in secrets:
        forms |= {pw, quote(pw, safe=""), quote(pw), quote(pw, safe=" +")}
    # Where SQLAlchemy reads the URL differently, its reading is a secret too
    # (unless it is a piece of ours: scrubbing a fragment would garble the text).
    theirs = _sqlalchemy_password(url)
    if theirs and not any(theirs in pw for pw in secrets):
        forms |= {theirs, quote(theirs, safe=""), quote(theirs, safe=" +")}
    # As a failed statement quotes it: '%' doubled for the driver, "'" doubled in SQL.
    forms |= {f.replace("%", "%%") for f in forms}
    forms |= {f.replace("'", "''") for f in forms}
    return sorted((f for f in forms if f), key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` with any form of ``url``'s password replaced by ``***``."""
    for form in secret_forms(url):
        text = text.replace(form, "***")
    return text


def _read_ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(defaults={"here": str(path.parent.resolve())})
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        reason = " ".join(str(exc).split())
        raise ConfigurationError(f"{path} is not a valid ini file: {reason}", path=str(path), hint="Fix or remove it.") from None
    return parser


def _ini_alembic(path: Path) -> dict[str, str]:
    """The non-empty options of the ``[alembic]`` section of ``path`` (empty without one)."""
    if not path.is_file():
        return {}
    parser = _read_ini(path)
    if not parser.has_section("alembic"):
        return {}
    return {k: v.strip() for k, v in parser.items("alembic") if k != "here" and v.strip()}


def _ini_option(path: Path, option: str) -> str | None:
    return _ini_alembic(path).get(option)


def _toml() -> Any:
    """The TOML reader: ``tomllib`` from Python 3.11 on, the ``tomli`` package before."""
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    import tomli

    return tomli


def _pyproject_alembic(cwd: Path) -> dict[str, Any]:
    """The ``[tool.alembic]`` table of ``cwd/pyproject.toml`` (empty without one)."""
    path = cwd / "pyproject.toml"
    if not path.is_file():
        return {}
    toml = _toml()
    try:
        with path.open("rb") as f:
            data = toml.load(f)
    except toml.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}.", path=str(path), hint="Fix or remove it.") from None
    table = data.get("tool", {}).get("alembic", {})
    return table if isinstance(table, dict) else {}


# Options of an adopted project that would change which revisions exist; migmagic
# reads ``<script_location>/versions`` only, so it refuses them rather than see
# half the graph.
_UNREAD_OPTIONS = ("version_locations", "recursive_version_locations", "sourceless")


def _check_adoptable(source: Path, cwd: Path, folder: Path, options: dict[str, Any]) -> None:
    """Refuse an adopted project whose revisions live where migmagic does not look."""
    for option in _UNREAD_OPTIONS:
        value = options.get(option)
        if value is None:
            continue
        if option == "version_locations":
            places = value if isinstance(value, list) else re.split(rf"[\s,{re.escape(os.pathsep)}]+", str(value).strip())
            resolved = {(cwd / str(p).replace("%(here)s", str(cwd.resolve()))).resolve() for p in places if p}
            if resolved <= {(folder / "versions").resolve()}:
                continue  # the default place, spelled out
        elif str(value).strip().lower() in ("false", "0", "no", "off", ""):
            continue
        raise ConfigurationError(
            f"{source} sets {option} = {value}: migmagic reads revisions only from {folder / 'versions'}.",
            path=str(source),
            hint="Remove the option to adopt this project, or run it with the alembic command.",
        )


def _usable_ini_url(url: str | None) -> str | None:
    # Alembic's template placeholder is not a database.
    if not url or url.startswith("driver://"):
        return None
    return url


def _sys_paths(base: Path, options: dict[str, Any]) -> list[str]:
    """The project's ``prepend_sys_path`` entries, as Alembic splits them, from ``base``."""
    value = options.get("prepend_sys_path")
    if not value:
        return []
    if isinstance(value, list):
        entries = [str(v) for v in value]
    elif str(options.get("path_separator", "")).strip() == "os":
        entries = str(value).split(os.pathsep)
    else:
        entries = re.split(r", *| +|:", str(value))
    return [str(base / e.strip()) for e in entries if e.strip()]


def _package_folder(location: str, base: Path, source: Path, options: dict[str, Any]) -> Path:
    """The folder ``package:path/in/it`` names, found as Alembic finds it (import machinery), on disk."""
    import importlib.util

    package, *parts = location.split(":")
    extra = [p for p in _sys_paths(base, options) if p not in sys.path]
    sys.path[:0] = extra
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    finally:
        for p in extra:
            sys.path.remove(p)
    places = list(spec.submodule_search_locations or []) if spec is not None else []
    if not places:
        raise ConfigurationError(
            f"{source} sets script_location = {location}, but {package!r} is not an importable package here.",
            path=str(source),
            hint=f"Install the project (pip install -e .) or run from the folder that holds {package.split('.')[0]}/.",
        )
    candidates = [Path(place, *parts) for place in places]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def _script_location(location: str, base: Path, source: Path, options: dict[str, Any]) -> Path:
    """The folder an adopted project's ``script_location`` names: a path (``%(here)s`` expanded,
    relative to ``base``) or, like Alembic, a package resource ``package:path`` when it is not
    absolute and has a colon."""
    location = location.replace("%(here)s", str(base.resolve()))
    if not os.path.isabs(location) and ":" in location:
        folder = _package_folder(location, base, source, options)
    else:
        folder = Path(location)
        if not folder.is_absolute():
            folder = base / folder
    return folder


def _check_exists(source: Path, options: dict[str, Any], folder: Path) -> None:
    if not folder.is_dir():
        value = str(options["script_location"])
        where = "" if Path(value) == folder else f" ({folder})"
        raise ConfigurationError(
            f"{source} sets script_location = {value}, which is not a folder{where}.",
            path=str(source),
            hint="Fix script_location, or use another folder: %migrate init --dir DIR.",
        )


def resolve(
    url: str | None = None,
    folder: str | os.PathLike[str] | None = None,
    configured_url: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Location:
    """Work out the database URL and revision folder, in the spec's order."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    ini = base / "alembic.ini"
    adopted: Path | None = None

    if folder is not None:
        folder_path = Path(folder)
        if not folder_path.is_absolute():
            folder_path = base / folder_path
    else:
        options: dict[str, Any] = _ini_alembic(ini)
        adopted = ini
        if "script_location" not in options:
            options, adopted = _pyproject_alembic(base), base / "pyproject.toml"
        location = options.get("script_location")
        if isinstance(location, str):
            folder_path = _script_location(location, base, adopted, options)
            _check_adoptable(adopted, base, folder_path, options)
            _check_exists(adopted, options, folder_path)  # adopting never creates the folder
        else:
            folder_path, adopted = base / DEFAULT_FOLDER, None

    if url:
        return Location(url, "given", folder_path, adopted)
    if configured_url:
        return Location(configured_url, "%config Migrate.url", folder_path, adopted)
    env = os.environ.get("DATABASE_URL")
    if env:
        return Location(env, "DATABASE_URL", folder_path, adopted)
    for candidate in (ini, folder_path / "alembic.ini"):
        ini_url = _usable_ini_url(_ini_option(candidate, "sqlalchemy.url"))
        if ini_url:
            return Location(ini_url, str(candidate), folder_path, adopted)
    return Location(DEFAULT_URL, "default", folder_path, adopted)


def metadata_spec(spec: str) -> str:
    """``spec`` checked to be ``module:attribute`` (``myapp.models:Base``), as env.py imports it."""
    spec = spec.strip()
    if not _METADATA_SPEC.match(spec) or ".." in spec or spec.endswith("."):
        raise UsageError(
            f"--metadata {spec!r} is not module:attribute.",
            hint="Name the module and its MetaData or declarative base, e.g. --metadata myapp.models:Base.",
        )
    return spec


def folder_metadata(folder: str | os.PathLike[str]) -> str | None:
    """The models the folder's ``alembic.ini`` names in ``migmagic.metadata`` (``module:attribute``), or None."""
    return _ini_option(Path(folder) / "alembic.ini", METADATA_OPTION)


def project_options(adopted: Path | None, folder: Path) -> tuple[dict[str, str], list[str]]:
    """An adopted project's Alembic options, as the ``alembic`` command would give them to its ``env.py``, and its
    ``prepend_sys_path`` entries: the ``[alembic]`` section of its ``alembic.ini`` (``adopted``, else the folder's own),
    or its ``[tool.alembic]`` table."""
    ini = adopted if adopted is not None else folder / "alembic.ini"
    base = ini.parent
    options: dict[str, Any] = _pyproject_alembic(base) if ini.name == "pyproject.toml" else _ini_alembic(ini)
    plain = {k: str(v) for k, v in options.items() if isinstance(v, str | int | float | bool)}
    return plain, _sys_paths(base, options)
