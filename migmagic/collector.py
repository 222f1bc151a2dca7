"""Python's cyclic garbage collector, held back while a command's steps run.

Running hundreds of revisions allocates millions of small objects (Alembic's
operations, SQLAlchemy's constructs), which triggers collections; each full
collection walks the whole heap of the kernel (DataFrames, models, history)
again. :func:`held` freezes the heap that exists before the steps
(``gc.freeze()``: collections no longer walk it) and raises the first
threshold, so collections are fewer and only look at what the steps made.
Collection stays on: cyclic garbage a revision makes is still collected.
Afterwards the heap is unfrozen and the thresholds are what they were, also
after an exception or a KeyboardInterrupt.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

ENABLED = True
"""Set to False to run the steps with the collector as the process has it (for measurements)."""

THRESHOLD = 50_000
"""The first generation's threshold while held (CPython's default is 700 or 2,000)."""

_depth = 0


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Collections during the block walk only what it allocates, and happen less often.

    Re-entrant. A heap already frozen by someone else (``gc.get_freeze_count()``)
    is left to them: it is neither frozen further nor unfrozen here.
    """
    global _depth
    if _depth or not ENABLED:
        yield
        return
    thresholds = gc.get_threshold()
    froze = False
    _depth += 1
    try:
        if gc.get_freeze_count() == 0:
            gc.freeze()
            froze = True
        gc.set_threshold(max(thresholds[0], THRESHOLD), *thresholds[1:])
        yield
    finally:
        gc.set_threshold(*thresholds)
        if froze:
            gc.unfreeze()
        _depth -= 1
