"""Finding the models: the SQLAlchemy ``MetaData`` behind what a user names or has in the notebook.

One place says what counts as models, for ``revision --autogenerate``, ``check``,
``diff`` and ``verify`` (the ``env.py`` that ``%migrate init`` writes runs where
migmagic may not be installed, and spells the same rule for ``module:attribute``
itself: the ``.metadata`` of what it imports):

* a ``MetaData``, or anything that carries one in ``.metadata``: a declarative
  base (a ``DeclarativeBase`` subclass or ``declarative_base()``), a mapped
  class, a ``registry``, Flask-SQLAlchemy's ``db`` and ``db.Model``, SQLModel's
  ``SQLModel`` and its table models;
* named (``--metadata``): a notebook variable, or an attribute of one
  (``db``, ``db.Model``), or ``module:attribute`` imported from the project
  (``app:db``, ``myapp.models:Base``);
* not named: the one such object in the notebook's namespace. Several distinct
  ones, or none, is a :class:`~migmagic.errors.MetadataError` naming the
  candidates and the fix. SQLModel's ``SQLModel`` counts only once a table
  model exists (importing it is not having models).

SQLAlchemy is imported inside functions: nothing here loads on ``%load_ext``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import MetadataError

if TYPE_CHECKING:
    from sqlalchemy import MetaData

WHAT = "a MetaData, a declarative base, Flask-SQLAlchemy's db or SQLModel"
"""What ``--metadata`` may name, as errors say it."""

_NOT_MODELS = ("In", "Out", "exit", "quit", "get_ipython")
_LIBRARY_BASES = ("sqlmodel",)
"""Packages whose own base class carries a MetaData shared by every user of it: counted only with tables."""


def metadata_of(value: Any) -> MetaData | None:
    """The ``MetaData`` ``value`` is or carries in ``.metadata``; None for anything else.

    Only an attribute that the object's class (or the object itself) really
    defines is read: a proxy's ``__getattr__`` (Flask's ``current_app``, say)
    is never called.
    """
    import sqlalchemy as sa
    from sqlalchemy.orm import registry
    from sqlalchemy.sql.schema import SchemaItem

    if isinstance(value, sa.MetaData):
        return value
    if isinstance(value, registry):
        return value.metadata
    if value is None or isinstance(value, types.ModuleType | SchemaItem):
        return None  # a Table carries a MetaData too, but is not anyone's models
    # A class (a base, a mapped class, SQLModel) holds it; an instance's class defines it (db's property).
    owner = value if isinstance(value, type) else type(value)
    try:
        if inspect.getattr_static(owner, "metadata", None) is None:
            return None
        md = value.metadata
    except Exception:  # a property that needs a context it does not have: not models we can use
        return None
    return md if isinstance(md, sa.MetaData) else None


def _is_mapped_class(value: Any) -> bool:
    return isinstance(value, type) and ("__table__" in vars(value) or "__tablename__" in vars(value))


def _is_library_base(value: Any) -> bool:
    return isinstance(value, type) and value.__module__.split(".")[0] in _LIBRARY_BASES


def _shares_a_library_base(value: Any) -> bool:
    """``SQLModel`` itself, or a class built on it (a table model or not)."""
    return isinstance(value, type) and any(_is_library_base(k) for k in value.__mro__)


def describe(md: MetaData) -> str:
    n = len(md.tables)
    return f"{n} table{'s' if n != 1 else ''}"


def candidates(namespace: Mapping[str, Any]) -> dict[int, tuple[MetaData, list[str]]]:
    """Distinct MetaData objects in ``namespace`` with the names that lead to them (models' owners first)."""
    ranked: dict[int, tuple[MetaData, list[tuple[int, str]]]] = {}
    for key, value in list(namespace.items()):
        if key.startswith("_") or key in _NOT_MODELS:
            continue
        md = metadata_of(value)
        if md is None or (_shares_a_library_base(value) and not md.tables):
            continue
        # Name a MetaData, a base, a db or SQLModel before classes built on it, and those before mapped classes.
        rank = 0 if _is_library_base(value) else 2 if _is_mapped_class(value) else 1 if _shares_a_library_base(value) else 0
        ranked.setdefault(id(md), (md, []))[1].append((rank, key))
    return {key: (md, [name for _, name in sorted(names, key=lambda n: n[0])]) for key, (md, names) in ranked.items()}


def _listed(found: Mapping[int, tuple[MetaData, list[str]]]) -> str:
    return ", ".join(f"{names[0]} ({describe(md)})" for md, names in found.values())


def _candidates_hint(namespace: Mapping[str, Any]) -> str:
    found = candidates(namespace)
    if not found:
        return "The notebook has no models yet: import them (from app import db) or name them as module:attribute (--metadata app:db)."
    return f"Candidates: {_listed(found)}."


def find(namespace: Mapping[str, Any]) -> MetaData:
    """The one MetaData in ``namespace``; none, or several distinct ones, is a :class:`MetadataError`."""
    found = candidates(namespace)
    if len(found) == 1:
        return next(iter(found.values()))[0]
    if not found:
        raise MetadataError(
            "No SQLAlchemy models in the notebook: nothing that carries a MetaData (a declarative base, Flask-SQLAlchemy's db, SQLModel table models) to compare the database with.",
            hint="Define or import your models in a cell (from app import db), or name them: --metadata NAME, or --metadata module:attribute (e.g. --metadata app:db).",
        )
    first = next(iter(found.values()))[1][0]
    raise MetadataError(
        f"{len(found)} different MetaData in the notebook: {_listed(found)}.",
        hint=f"Choose one with --metadata NAME, e.g. --metadata {first}.",
    )


def _project_on_path() -> None:
    """The project's own modules importable, as in a notebook or a shell started in its folder."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())


def imported(spec: str, label: str | None = None) -> Any:
    """The object ``spec`` (``module:attribute``, e.g. ``myapp.models:Base`` or ``app:db``) names, imported.

    ``label`` is how errors name ``spec`` (default ``--metadata SPEC``).
    """
    from .settings import metadata_spec

    label = label or f"--metadata {spec}"
    module, _, attribute = metadata_spec(spec).partition(":")
    _project_on_path()
    try:
        value: Any = importlib.import_module(module)
        for name in attribute.split("."):
            value = getattr(value, name)
    except (ImportError, AttributeError) as exc:
        raise MetadataError(
            f"{label} cannot be imported: {exc}.",
            hint=f"Name a module importable from {Path.cwd()} and its models, as module:attribute (e.g. app:db, myapp.models:Base).",
        ) from None
    return value


def imported_metadata(spec: str, label: str | None = None) -> MetaData:
    """The MetaData behind ``spec`` (``module:attribute``), as ``env.py`` gives it to Alembic as ``target_metadata``."""
    label = label or f"--metadata {spec}"
    value = imported(spec, label)
    md = metadata_of(value)
    if md is None:
        raise MetadataError(f"{label} is a {type(value).__name__}, not {WHAT}.", hint="Name your models' MetaData, declarative base or db.")
    return md


def named(name: str, namespace: Mapping[str, Any] | None) -> MetaData:
    """The MetaData behind ``name``: ``module:attribute`` imported, else a notebook variable or its attribute (``db.Model``)."""
    if ":" in name:
        return imported_metadata(name)
    namespace = namespace or {}
    head, *attributes = name.strip().split(".")
    if head not in namespace:
        raise MetadataError(f"--metadata {name}: there is no variable {head!r} in the notebook.", hint=_candidates_hint(namespace))
    value = namespace[head]
    for i, attribute in enumerate(attributes):
        try:
            value = getattr(value, attribute)
        except Exception:
            where = ".".join([head, *attributes[:i]])
            raise MetadataError(f"--metadata {name}: {where} has no attribute {attribute!r}.", hint=_candidates_hint(namespace)) from None
    md = metadata_of(value)
    if md is None:
        raise MetadataError(f"--metadata {name}: {name} is a {type(value).__name__}, not {WHAT}.", hint=_candidates_hint(namespace))
    return md


def resolve(metadata: Any, namespace: Mapping[str, Any] | None, folder_spec: str | None = None) -> MetaData:
    """The models to compare with, from what the user gave.

    ``metadata``: an object (:func:`metadata_of`), or a name (:func:`named`).
    Without it: the models the folder names (``folder_spec``, ``migmagic.metadata``
    in its ``alembic.ini``), else the one found in ``namespace`` (:func:`find`).
    """
    if metadata is None and folder_spec is not None:
        return imported_metadata(folder_spec, f"The models the folder names ({folder_spec}, migmagic.metadata in alembic.ini)")
    if isinstance(metadata, str):
        return named(metadata, namespace)
    if metadata is None:
        if namespace is None:
            raise MetadataError("No metadata to compare with.", hint="Pass metadata=Base.metadata (or Base, or db), or namespace=globals() to find it.")
        return find(namespace)
    md = metadata_of(metadata)
    if md is None:
        raise MetadataError(f"metadata= is a {type(metadata).__name__}, not {WHAT}.")
    return md
