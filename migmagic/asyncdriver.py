"""Async drivers (asyncpg, aiosqlite, psycopg's async mode, asyncmy, aiomysql), run as Alembic's asyncio recipe runs them.

Alembic's async ``env.py`` makes an ``AsyncEngine`` and runs the migrations — synchronous
code — through ``await connection.run_sync(fn)``: SQLAlchemy runs ``fn`` in a greenlet in
which every database call awaits the driver. migmagic does the same for a whole unit of
work (one command): :func:`run` calls it under :func:`sqlalchemy.util.greenlet_spawn`,
the function ``run_sync`` itself calls, and inside it every connection of the async
engine's ``sync_engine`` (:attr:`migmagic.database.Database.engine`) reaches the
user's driver: what a revision sends goes to asyncpg as it would under plain Alembic.

The event loop is migmagic's own, one per unit, in the calling thread. In a notebook
the kernel's loop is already running in that thread (``asyncio.run`` refuses to start
there), but it waits until the cell's code returns; so while a unit runs, the kernel's
loop is set aside as the thread's running loop and put back after. The unit's code,
what it displays and Ctrl-C stay in the kernel's thread, as with a sync driver.
Whatever the unit raises comes out unchanged.

Nothing here is imported until a URL names an async driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# The engines whose pools gave out a connection during this thread's unit: emptied when it ends.
_unit = threading.local()


def in_unit() -> bool:
    """Whether this code already runs where an async driver's calls can be awaited (a unit, or the user's own ``run_sync``)."""
    from sqlalchemy.util.concurrency import in_greenlet

    return bool(in_greenlet())


def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` as ``AsyncConnection.run_sync`` runs it, on an event loop of its own; what it returns or raises.

    Inside a unit already (a command calling another's reads), ``fn`` is simply called.
    Ctrl-C while the driver waits cancels the wait: ``fn`` unwinds (its transaction rolls
    back, its lock is released) before ``KeyboardInterrupt`` comes out.
    """
    if in_unit():
        return fn(*args, **kwargs)
    from sqlalchemy.util import greenlet_spawn

    pooled: list[Any] = []

    def unit() -> T:
        _unit.pooled = pooled
        try:
            return fn(*args, **kwargs)
        finally:
            _unit.pooled = None
            for engine in pooled:  # a pooled connection belongs to this unit's loop: closed with it
                with contextlib.suppress(Exception):
                    engine.dispose()

    outer = asyncio._get_running_loop()  # a notebook kernel's: it waits for this cell anyway
    asyncio._set_running_loop(None)
    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(greenlet_spawn(unit))
        try:
            return loop.run_until_complete(task)
        except KeyboardInterrupt:
            task.cancel()
            with contextlib.suppress(BaseException):
                loop.run_until_complete(task)
            raise
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())  # as asyncio.run ends
        finally:
            loop.close()
            asyncio._set_running_loop(outer)


def wait(awaitable: Any) -> Any:
    """Inside a unit: what ``awaitable`` (a call of the async driver itself) gives, awaited on the unit's loop."""
    from sqlalchemy.util import concurrency

    await_ = getattr(concurrency, "await_", None) or concurrency.await_only  # SQLAlchemy 2.1's name, 2.0's
    return await_(awaitable)


def pooled_in_unit(engine: Any) -> None:
    """``engine``'s pool gave out a connection in this unit: it is emptied (its connections closed) when the unit ends.

    Connections are kept between the reads of one command and closed with its event loop:
    an asyncpg connection (and the lock of SQLAlchemy's async pool) belongs to one loop.
    """
    pooled = getattr(_unit, "pooled", None)
    if pooled is not None and engine not in pooled:
        pooled.append(engine)
