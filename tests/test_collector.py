"""The garbage collector is held while steps run, and given back as it was: after success, failure and interrupt."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from conftest import EVENTS

from migmagic import collector
from migmagic.errors import MigrationFailed

FAILS = '''def upgrade():
    op.create_table("tags", sa.Column("id", sa.Integer, primary_key=True))
    raise RuntimeError("boom")


def downgrade():
    op.drop_table("tags")
'''

SEES_THE_COLLECTOR = '''import builtins
import gc


def upgrade():
    builtins.SEEN.update(threshold=gc.get_threshold(), frozen=gc.get_freeze_count(), enabled=gc.isenabled())
    op.create_table("tags", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("tags")
'''


def _gc_state() -> tuple[Any, ...]:
    return gc.get_threshold(), gc.get_freeze_count(), gc.isenabled()


@pytest.fixture
def odd_thresholds() -> Any:
    """Thresholds nobody uses by default, put back after the test."""
    old = gc.get_threshold()
    gc.set_threshold(1234, 7, 9)
    yield
    gc.set_threshold(*old)


def test_held_while_steps_run_and_restored_after(migrator: Any, odd_thresholds: None) -> None:
    import builtins

    migrator.revision("create events table", EVENTS)
    migrator.revision("create tags", SEES_THE_COLLECTOR)
    before = _gc_state()
    builtins.SEEN = {}  # type: ignore[attr-defined]
    try:
        migrator.upgrade("head")
        seen = dict(builtins.SEEN)  # type: ignore[attr-defined]
    finally:
        del builtins.SEEN  # type: ignore[attr-defined]
    assert seen["enabled"] and seen["frozen"] > 0  # collection stays on; the old heap is frozen
    assert seen["threshold"] == (collector.THRESHOLD, 7, 9)
    assert _gc_state() == before


def test_restored_after_a_failing_revision(migrator: Any, odd_thresholds: None) -> None:
    migrator.revision("create events table", EVENTS)
    migrator.revision("create tags", FAILS)
    before = _gc_state()
    with pytest.raises(MigrationFailed):
        migrator.upgrade("head")
    assert _gc_state() == before


def test_restored_after_keyboard_interrupt_and_nested(odd_thresholds: None) -> None:
    before = _gc_state()
    with pytest.raises(KeyboardInterrupt), collector.held():
        with collector.held():  # re-entrant: the inner block changes nothing
            assert gc.get_threshold()[0] == collector.THRESHOLD
        assert gc.get_freeze_count() > 0
        raise KeyboardInterrupt
    assert _gc_state() == before


def test_a_heap_frozen_by_the_user_stays_frozen(odd_thresholds: None) -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with collector.held():
            assert gc.get_threshold()[0] == collector.THRESHOLD
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_cyclic_garbage_made_while_held_is_collected() -> None:
    import weakref

    class Node:
        pass

    with collector.held():
        a, b = Node(), Node()
        a.other, b.other = b, a  # type: ignore[attr-defined]
        ref = weakref.ref(a)
        del a, b
        gc.collect()
        assert ref() is None
