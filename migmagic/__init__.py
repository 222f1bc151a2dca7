"""migmagic: Alembic's migration workflow as IPython/Jupyter magics.

``%load_ext migmagic`` registers ``%migrate`` and ``%%revision``. The same
workflow is a plain Python API: :class:`migmagic.Migrator`. Loading the
extension imports neither Alembic, SQLAlchemy nor pandas; they load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Migrator", "MigmagicError", "__version__", "load_ipython_extension"]

if TYPE_CHECKING:
    from .engine import Migrator
    from .errors import MigmagicError


def __getattr__(name: str) -> Any:
    if name == "Migrator":
        from .engine import Migrator

        return Migrator
    if name == "MigmagicError":
        from .errors import MigmagicError

        return MigmagicError
    raise AttributeError(f"module 'migmagic' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext migmagic``: register ``%migrate``, ``%%revision`` and ``%config Migrate``."""
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unload

    unload(ipython)
